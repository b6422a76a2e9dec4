//! [`Meta`]: the catalog plus the in-memory index, with synchronous reads and serialised,
//! persist-first writes. Segment writes live in `segment_writes.rs`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use milvus_proto::common::SegmentState;
use milvus_proto::data::SegmentInfo;
use milvus_proto::msg::MsgPosition;
use milvus_types::{CollectionId, PartitionId, SegmentId};

use crate::catalog::{Catalog, WriteFailure, WritePlan};
use crate::compaction_writes::{CommitOutcome, CompactionCommit};
use crate::error::{MetaError, MetaResult};
use crate::index::{ChannelRemoval, Index};
use crate::keys::{NON_REMOVED_FLAG, REMOVED_FLAG, channel_checkpoint_key, channel_removal_key};
use crate::loader::{load_index, parse_removal_flag};
use crate::logs::is_healthy;
use crate::segment_writes::{BinlogUpdate, DroppedSegment};

/// DataCoord's segment metadata: what the catalog holds, indexed in memory.
///
/// Reads are synchronous snapshots that never scan every segment. Writes persist first and
/// then update memory; they are serialised by one async mutex and run on their own task, so a
/// caller that gives up (a cancelled RPC) cannot leave memory behind the store. When a write
/// fails after part of it may have landed, the touched keys are re-read, so memory equals
/// what is persisted (one documented exception: [`Meta::drop_channel_segments`]).
pub struct Meta {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meta")
            .field("segments", &self.segment_num())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Shared {
    pub(crate) catalog: Catalog,
    index: RwLock<Index>,
    writer: Arc<tokio::sync::Mutex<()>>,
}

impl Shared {
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Index> {
        // No code panics while holding the lock, so a poisoned index is still consistent.
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies a plan; after a failure that may have written something, re-reads `touched`.
    pub(crate) async fn persist(
        &self,
        plan: WritePlan,
        touched: &[(CollectionId, PartitionId, SegmentId)],
    ) -> MetaResult<()> {
        match self.catalog.write(plan).await {
            Ok(()) => Ok(()),
            Err(WriteFailure {
                error,
                store_may_differ,
            }) => {
                if store_may_differ {
                    self.resync_segments(touched).await;
                }
                Err(error)
            }
        }
    }

    /// Re-reads segments from the store into memory after an uncertain write.
    pub(crate) async fn resync_segments(&self, touched: &[(CollectionId, PartitionId, SegmentId)]) {
        for &(coll, part, id) in touched {
            match self.catalog.read_segment(coll, part, id).await {
                Ok(Some((seg, inline))) => {
                    let mut index = self.write();
                    index.put(Arc::new(seg));
                    index.set_inline_logs(id, inline);
                }
                Ok(None) => {
                    self.write().remove(id);
                }
                Err(err) => tracing::error!(
                    segment_id = id,
                    error = %err,
                    "cannot re-read segment after a failed write; memory may differ from the store until restart"
                ),
            }
        }
    }

    async fn resync_checkpoint(&self, vchannel: &str) {
        let key = channel_checkpoint_key(vchannel);
        let loaded = match self.catalog.kv().load(&key).await {
            Ok(value) => value,
            Err(err) => {
                tracing::error!(channel = vchannel, error = %err, "cannot re-read channel checkpoint");
                return;
            }
        };
        let mut index = self.write();
        match loaded.map(|value| crate::catalog::decode_position(&key, &value)) {
            Some(Ok(mut position)) => {
                position.channel_name = vchannel.to_string();
                index.checkpoints.insert(vchannel.to_string(), position);
            }
            Some(Err(err)) => {
                tracing::error!(channel = vchannel, error = %err, "unreadable channel checkpoint")
            }
            None => {
                index.checkpoints.remove(vchannel);
            }
        }
    }

    async fn resync_removal(&self, vchannel: &str) {
        match self.catalog.kv().load(&channel_removal_key(vchannel)).await {
            Ok(value) => {
                let flag = value
                    .and_then(|value| parse_removal_flag(&value))
                    .unwrap_or(ChannelRemoval::Absent);
                self.set_removal(vchannel, flag);
            }
            Err(err) => {
                tracing::error!(channel = vchannel, error = %err, "cannot re-read removal flag")
            }
        }
    }

    pub(crate) fn set_removal(&self, vchannel: &str, flag: ChannelRemoval) {
        let mut index = self.write();
        match flag {
            ChannelRemoval::Absent => index.removals.remove(vchannel),
            flag => index.removals.insert(vchannel.to_string(), flag),
        };
    }

    /// Writes or deletes the removal flag, then memory.
    pub(crate) async fn put_removal(&self, vchannel: &str, flag: ChannelRemoval) -> MetaResult<()> {
        let key = channel_removal_key(vchannel);
        let kv = self.catalog.kv();
        let result = match flag {
            ChannelRemoval::Absent => kv.remove(&key).await,
            ChannelRemoval::NonRemoved => {
                kv.save(&key, Bytes::from_static(NON_REMOVED_FLAG.as_bytes()))
                    .await
            }
            ChannelRemoval::Removed => {
                kv.save(&key, Bytes::from_static(REMOVED_FLAG.as_bytes()))
                    .await
            }
        };
        if let Err(err) = result {
            if err.maybe_applied() {
                self.resync_removal(vchannel).await;
            }
            return Err(err.into());
        }
        self.set_removal(vchannel, flag);
        Ok(())
    }

    async fn update_channel_checkpoint(
        &self,
        vchannel: String,
        position: MsgPosition,
    ) -> MetaResult<()> {
        if position.msg_id.is_empty() {
            return Err(MetaError::InvalidCheckpoint(vchannel));
        }
        let current = self
            .read()
            .checkpoints
            .get(&vchannel)
            .map(|pos| pos.timestamp);
        if current.is_some_and(|stored| stored >= position.timestamp) {
            tracing::debug!(channel = %vchannel, ts = position.timestamp, "channel checkpoint not newer; kept");
            return Ok(());
        }
        let key = channel_checkpoint_key(&vchannel);
        let value = Bytes::from(prost::Message::encode_to_vec(&position));
        if let Err(err) = self.catalog.kv().save(&key, value).await {
            if err.maybe_applied() {
                self.resync_checkpoint(&vchannel).await;
            }
            return Err(err.into());
        }
        tracing::info!(channel = %vchannel, ts = position.timestamp, "channel checkpoint updated");
        let mut in_memory = position;
        // The value is stored as received; memory holds what a reload would read.
        in_memory.channel_name = vchannel.clone();
        self.write().checkpoints.insert(vchannel, in_memory);
        Ok(())
    }

    async fn drop_channel_checkpoint(&self, vchannel: String) -> MetaResult<()> {
        if let Err(err) = self
            .catalog
            .kv()
            .remove(&channel_checkpoint_key(&vchannel))
            .await
        {
            if err.maybe_applied() {
                self.resync_checkpoint(&vchannel).await;
            }
            return Err(err.into());
        }
        self.write().checkpoints.remove(&vchannel);
        tracing::debug!(channel = %vchannel, "channel checkpoint dropped");
        Ok(())
    }
}

/// Hands free heap memory (a load's spent response buffers) back to the OS. glibc keeps it
/// otherwise: its threshold for trimming grows with the largest buffer freed, and the pages
/// of a large catalog are tens of MB, more than the loaded segments take.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the OS; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Meta {
    /// Loads the whole catalog (FACTS C.8): the `s/`, `binlog/`, `deltalog/` and `statslog/`
    /// walks in pages of 40000 keys, merged by key into segments as pages arrive (log keys
    /// without a segment record are logged and ignored; a record carrying legacy inline logs
    /// keeps them), then channel checkpoints and removal flags. Freed load buffers are handed
    /// back to the OS before returning.
    pub async fn load(catalog: Catalog) -> MetaResult<Meta> {
        let index = load_index(&catalog).await?;
        release_free_memory();
        Ok(Meta {
            shared: Arc::new(Shared {
                catalog,
                index: RwLock::new(index),
                writer: Arc::new(tokio::sync::Mutex::new(())),
            }),
        })
    }

    /// The catalog underneath.
    pub fn catalog(&self) -> &Catalog {
        &self.shared.catalog
    }

    /// Runs a write under the writer lock (fair: writes run in call order) on its own task,
    /// so once it started it completes even if the caller's future is dropped. A caller
    /// dropped while still waiting for the lock changes nothing.
    async fn run<T, Fut>(&self, op: impl FnOnce(Arc<Shared>) -> Fut) -> MetaResult<T>
    where
        Fut: Future<Output = MetaResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let serialised = self.shared.writer.clone().lock_owned().await;
        let work = op(self.shared.clone());
        tokio::spawn(async move {
            let result = work.await;
            drop(serialised);
            result
        })
        .await
        .map_err(|err| MetaError::Internal(err.to_string()))?
    }

    // --- reads ---

    /// The segment in any state.
    pub fn segment(&self, id: SegmentId) -> Option<Arc<SegmentInfo>> {
        self.shared.read().get(id)
    }

    /// The segment if it is healthy (not None, NotExist or Dropped).
    pub fn healthy_segment(&self, id: SegmentId) -> Option<Arc<SegmentInfo>> {
        self.segment(id).filter(|seg| is_healthy(seg.state()))
    }

    /// Every segment of the collection, any state, by ID.
    pub fn segments_of_collection(&self, coll: CollectionId) -> Vec<Arc<SegmentInfo>> {
        self.shared.read().of_collection(coll)
    }

    /// Every segment whose insert channel is `vchannel`, any state, by ID.
    pub fn segments_of_channel(&self, vchannel: &str) -> Vec<Arc<SegmentInfo>> {
        self.shared.read().of_channel(vchannel)
    }

    /// Every segment in one of `states`, by ID.
    pub fn segments_in_states(&self, states: &[SegmentState]) -> Vec<Arc<SegmentInfo>> {
        self.shared.read().in_states(states)
    }

    /// IDs of the segments in one of `states`, ascending, without decoding any (GC walks
    /// every Dropped segment one at a time with it).
    pub fn segment_ids_in_states(&self, states: &[SegmentState]) -> Vec<SegmentId> {
        self.shared.read().ids_in_states(states)
    }

    /// Whether the insert channel still has a healthy segment (not None, NotExist or Dropped),
    /// without decoding any.
    pub fn channel_has_healthy_segment(&self, vchannel: &str) -> bool {
        self.shared.read().channel_has_healthy(vchannel)
    }

    /// The segment that lists `parent` in `compactionFrom`, in any state.
    pub fn child_of(&self, parent: SegmentId) -> Option<Arc<SegmentInfo>> {
        self.shared.read().child_of(parent)
    }

    /// Σ num_of_rows over the healthy segments of the collection.
    pub fn collection_row_count(&self, coll: CollectionId) -> i64 {
        self.shared.read().row_count(coll, None)
    }

    /// Σ num_of_rows over the healthy segments of one partition.
    pub fn partition_row_count(&self, coll: CollectionId, part: PartitionId) -> i64 {
        self.shared.read().row_count(coll, Some(part))
    }

    /// Bytes the logs of healthy segments take in object storage: the total and each
    /// collection's (every collection with a healthy segment, zero included). The quota
    /// center's disk protection reads these.
    pub fn binlog_sizes(&self) -> (i64, BTreeMap<CollectionId, i64>) {
        self.shared.read().binlog_sizes()
    }

    /// Segments per collection and state, for metrics.
    pub fn segment_counts(&self) -> Vec<(CollectionId, SegmentState, usize)> {
        self.shared.read().counts()
    }

    /// Number of segments in any state.
    pub fn segment_num(&self) -> usize {
        self.shared.read().len()
    }

    /// The channel's checkpoint, if any.
    pub fn channel_checkpoint(&self, vchannel: &str) -> Option<MsgPosition> {
        self.shared.read().checkpoints.get(vchannel).cloned()
    }

    /// Every channel checkpoint, by channel name.
    pub fn channel_checkpoints(&self) -> Vec<(String, MsgPosition)> {
        let mut all: Vec<_> = self
            .shared
            .read()
            .checkpoints
            .iter()
            .map(|(channel, position)| (channel.clone(), position.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The channel's removal flag.
    pub fn channel_removal(&self, vchannel: &str) -> ChannelRemoval {
        self.shared
            .read()
            .removals
            .get(vchannel)
            .copied()
            .unwrap_or(ChannelRemoval::Absent)
    }

    // --- writes ---

    /// Stores a new segment (FACTS C.4 AddSegment): its logs are validated and reduced to
    /// logID form; `num_of_rows` is replaced by the insert-log row count only when that is
    /// positive and differs. An existing segment with this ID is replaced.
    pub async fn add_segment(&self, seg: SegmentInfo) -> MetaResult<()> {
        self.run(move |shared| async move { shared.add_segment(seg).await })
            .await
    }

    /// SetState (FACTS E.2): unknown segment → [`MetaError::SegmentNotFound`] unless the
    /// target is Dropped (then Ok); an unhealthy segment is left as it is (Ok). Otherwise the
    /// state is set without checking the transition and the segment persisted with
    /// `num_of_rows` := insert-log row count. Dropped sets nothing else (no `dropped_at`).
    pub async fn set_state(&self, id: SegmentId, state: SegmentState) -> MetaResult<()> {
        self.run(move |shared| async move { shared.set_state(id, state).await })
            .await
    }

    /// UnsetIsImporting (FACTS-index-compaction-gc §4 step 5): clears `is_importing` of a healthy
    /// segment and persists it (`num_of_rows` := insert-log row count, as every AlterSegments).
    /// Unknown → [`MetaError::SegmentNotFound`]; unhealthy or not importing → Ok, unchanged.
    pub async fn unset_is_importing(&self, id: SegmentId) -> MetaResult<()> {
        self.run(move |shared| async move { shared.unset_is_importing(id).await })
            .await
    }

    /// SaveBinlogPaths' meta update (FACTS E.12 step 5). Unknown or None/NotExist segment →
    /// [`MetaError::SegmentNotFound`]; a Dropped segment → Ok, unchanged.
    pub async fn save_binlog_paths(&self, update: BinlogUpdate) -> MetaResult<()> {
        self.run(move |shared| async move { shared.save_binlog_paths(update).await })
            .await
    }

    /// DropVirtualChannel's meta update (FACTS D.8 steps 2–4): the reported segments absorb
    /// their last logs, positions and row count; every segment of the channel becomes
    /// Dropped; only `s/` keys are written (like 2.3.5, the reported logs are kept in memory
    /// but not persisted); then the removal flag becomes `removed`.
    pub async fn drop_channel_segments(
        &self,
        vchannel: &str,
        reported: Vec<DroppedSegment>,
    ) -> MetaResult<()> {
        let vchannel = vchannel.to_string();
        self.run(
            move |shared| async move { shared.drop_channel_segments(vchannel, reported).await },
        )
        .await
    }

    /// UpdateChannelCheckpoint (FACTS C.6): rejects a position without message ID; writes
    /// only when no checkpoint exists or the stored one is strictly older.
    pub async fn update_channel_checkpoint(
        &self,
        vchannel: &str,
        pos: MsgPosition,
    ) -> MetaResult<()> {
        let vchannel = vchannel.to_string();
        self.run(move |shared| async move { shared.update_channel_checkpoint(vchannel, pos).await })
            .await
    }

    /// Sets the removal flag `non-removed` (after WatchChannels succeeded).
    pub async fn mark_channel_added(&self, vchannel: &str) -> MetaResult<()> {
        let vchannel = vchannel.to_string();
        self.run(move |shared| async move {
            shared
                .put_removal(&vchannel, ChannelRemoval::NonRemoved)
                .await?;
            tracing::info!(channel = %vchannel, "channel removal flag set to non-removed");
            Ok(())
        })
        .await
    }

    /// Deletes the removal flag once a dropped channel is fully released.
    pub async fn finish_drop_channel(&self, vchannel: &str) -> MetaResult<()> {
        let vchannel = vchannel.to_string();
        self.run(move |shared| async move {
            shared
                .put_removal(&vchannel, ChannelRemoval::Absent)
                .await?;
            tracing::info!(channel = %vchannel, "channel removal flag deleted");
            Ok(())
        })
        .await
    }

    /// A finished compaction plan (FACTS part 2 §2.9): the sources become Dropped and `compacted`,
    /// the result segment is added (Flushing, or Dropped when it has no rows). Idempotent by
    /// plan; refusals write nothing. See `compaction_writes.rs`.
    pub async fn complete_compaction(&self, commit: CompactionCommit) -> MetaResult<CommitOutcome> {
        self.run(move |shared| async move { shared.complete_compaction(commit).await })
            .await
    }

    /// Removes a segment and all its log keys in one transaction (GC, FACTS C.5). An unknown
    /// segment is Ok.
    pub async fn drop_segment(&self, id: SegmentId) -> MetaResult<()> {
        self.run(move |shared| async move { shared.drop_segment(id).await })
            .await
    }

    /// Deletes the channel's checkpoint.
    pub async fn drop_channel_checkpoint(&self, vchannel: &str) -> MetaResult<()> {
        let vchannel = vchannel.to_string();
        self.run(move |shared| async move { shared.drop_channel_checkpoint(vchannel).await })
            .await
    }

    /// GcConfirm (FACTS C.9): whether no segment record of the collection (`part == -1`) or
    /// partition is left in the store. Asks the store, not memory.
    pub async fn gc_confirm(&self, coll: CollectionId, part: PartitionId) -> MetaResult<bool> {
        self.shared.catalog.gc_confirm(coll, part).await
    }
}
