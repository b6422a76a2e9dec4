//! Triggers (FACTS §2.2, §2.3, §2.7): flush signals (one segment's partition and channel),
//! the periodic global signal and the manual one (forced), serialised by one lock; candidate
//! selection per (collection, partition, channel) group; plans built and executed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use datacoord_index::{DISKANN, first_vector_field};
use datacoord_meta::{is_healthy, with_full_paths};
use milvus_proto::common::{KeyValuePair, SegmentState};
use milvus_proto::data::{CompactionPlan, CompactionSegmentBinlogs, CompactionType, SegmentInfo};
use milvus_proto::milvus::DescribeCollectionResponse;
use milvus_proto::schema::CollectionSchema;
use milvus_types::{CollectionId, MilvusError, MilvusResult, PartitionId, SegmentId, Timestamp};
use tokio::sync::mpsc::error::TrySendError;

use crate::config::{ALLOCATE_TIMEOUT, DESCRIBE_COLLECTION_TIMEOUT};
use crate::engine::{CompactionEngine, Inner, ticker};
use crate::policy::{self, GroupContext};

/// Collection property that overrides `enableAutoCompaction` for automatic signals.
const AUTO_COMPACTION_KEY: &str = "collection.autocompaction.enabled";

/// A flushed segment's signal, queued for the signal loop.
#[derive(Clone, Debug)]
pub(crate) struct FlushSignal {
    pub(crate) collection_id: CollectionId,
    pub(crate) partition_id: PartitionId,
    pub(crate) segment_id: SegmentId,
    pub(crate) channel: String,
}

/// One (collection, partition, channel) group of candidates.
struct Group {
    collection_id: CollectionId,
    channel: String,
    segments: Vec<Arc<SegmentInfo>>,
}

impl CompactionEngine {
    /// Flush trigger (SaveBinlogPaths with `flushed` and not importing): queues a signal for
    /// the segment's partition and channel. Ignored when compaction or auto compaction is off;
    /// dropped when 100 signals are already queued.
    pub fn on_segment_flushed(
        &self,
        collection_id: CollectionId,
        partition_id: PartitionId,
        segment_id: SegmentId,
        channel: &str,
    ) {
        let config = &self.inner.config;
        if !config.enable_compaction || !config.enable_auto_compaction {
            return;
        }
        let signal = FlushSignal {
            collection_id,
            partition_id,
            segment_id,
            channel: channel.to_string(),
        };
        match self.inner.flush_signals.try_send(signal) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => tracing::info!(
                collection_id,
                segment_id,
                channel,
                "no space to send compaction signal"
            ),
            Err(TrySendError::Closed(_)) => {}
        }
    }

    /// Handles the queued flush signals now, unless the running signal loop owns the queue;
    /// returns how many were handled.
    pub async fn handle_flush_signals(&self) -> usize {
        let Some(mut receiver) = self.inner.take_flush_receiver() else {
            return 0;
        };
        let mut handled = 0;
        while let Ok(signal) = receiver.try_recv() {
            self.inner.flush_signal(signal).await;
            handled += 1;
        }
        self.inner.put_back_flush_receiver(receiver);
        handled
    }

    /// One global signal now, as the periodic trigger sends it (not forced; every
    /// collection); returns its signal ID.
    pub async fn global_signal(&self) -> MilvusResult<i64> {
        let signal_id = self.inner.allocate_id().await?;
        self.inner.global_signal(signal_id, None, false).await;
        Ok(signal_id)
    }
}

impl Inner {
    /// Flush signals as they come, and the global signal every `global.interval` (first one
    /// interval after start, as 2.3.5's ticker) when auto compaction is on.
    pub(crate) async fn signal_loop(self: &Arc<Self>) {
        let Some(mut receiver) = self.take_flush_receiver() else {
            tracing::error!("compaction signal queue already taken; no signal loop");
            return;
        };
        let auto = self.config.enable_auto_compaction;
        let mut global = ticker(self.config.global_interval);
        global.tick().await;
        loop {
            tokio::select! {
                Some(signal) = receiver.recv() => self.flush_signal(signal).await,
                _ = global.tick(), if auto => {
                    match self.allocate_id().await {
                        Ok(signal_id) => {
                            self.global_signal(signal_id, None, false).await;
                        }
                        Err(err) => tracing::warn!(error = %err, "unable to trigger global compaction"),
                    }
                }
            }
        }
    }

    pub(crate) async fn allocate_id(&self) -> MilvusResult<i64> {
        tokio::time::timeout(ALLOCATE_TIMEOUT, self.allocator.alloc_id())
            .await
            .map_err(|_| MilvusError::unexpected("ID allocation timed out"))?
    }

    async fn flush_signal(self: &Arc<Self>, signal: FlushSignal) {
        let signal_id = match self.allocate_id().await {
            Ok(id) => id,
            Err(err) => {
                tracing::warn!(segment_id = signal.segment_id, error = %err, "cannot allocate a compaction signal ID");
                return;
            }
        };
        let _serialised = self.signal_lock.lock().await;
        if self.is_full() {
            return;
        }
        let Some(segment) = self.meta.healthy_segment(signal.segment_id) else {
            tracing::warn!(
                segment_id = signal.segment_id,
                collection_id = signal.collection_id,
                partition_id = signal.partition_id,
                channel = %signal.channel,
                "segment in compaction signal not found in meta"
            );
            return;
        };
        let segments = self
            .meta
            .segments_of_channel(&segment.insert_channel)
            .into_iter()
            .filter(|seg| seg.partition_id == segment.partition_id && self.is_candidate(seg))
            .collect();
        let group = Group {
            collection_id: segment.collection_id,
            channel: segment.insert_channel.clone(),
            segments,
        };
        self.plan_groups(signal_id, false, vec![group]).await;
    }

    /// A global (periodic) or manual (`force`, one collection) signal.
    pub(crate) async fn global_signal(
        self: &Arc<Self>,
        signal_id: i64,
        collection: Option<CollectionId>,
        force: bool,
    ) -> usize {
        let _serialised = self.signal_lock.lock().await;
        let segments = match collection {
            Some(collection_id) => self.meta.segments_of_collection(collection_id),
            None => self.meta.segments_in_states(&[SegmentState::Flushed]),
        };
        let mut groups: BTreeMap<(CollectionId, PartitionId, String), Vec<Arc<SegmentInfo>>> =
            BTreeMap::new();
        for seg in segments.into_iter().filter(|seg| self.is_candidate(seg)) {
            let key = (
                seg.collection_id,
                seg.partition_id,
                seg.insert_channel.clone(),
            );
            groups.entry(key).or_default().push(seg);
        }
        let groups = groups
            .into_iter()
            .map(|((collection_id, _, channel), segments)| Group {
                collection_id,
                channel,
                segments,
            })
            .collect();
        self.plan_groups(signal_id, force, groups).await
    }

    /// §2.3 candidate: healthy, Flushed (a plan never holds a Flushing segment: the DataNode
    /// would refuse it), not importing, not compacting.
    fn is_candidate(&self, seg: &SegmentInfo) -> bool {
        is_healthy(seg.state())
            && seg.state() == SegmentState::Flushed
            && !seg.is_importing
            && !self.lock_tasks().is_compacting(seg.id)
    }

    /// Plans and executes each group; returns the plans executed. Stops at the first group
    /// whose collection cannot be described, has auto compaction off (unless forced) or an
    /// unreadable TTL, and when the handler is full (unless forced), as 2.3.5.
    async fn plan_groups(
        self: &Arc<Self>,
        signal_id: i64,
        force: bool,
        groups: Vec<Group>,
    ) -> usize {
        let groups: Vec<Group> = groups
            .into_iter()
            .filter(|g| !g.segments.is_empty())
            .collect();
        if groups.is_empty() {
            return 0;
        }
        let now =
            match tokio::time::timeout(ALLOCATE_TIMEOUT, self.allocator.alloc_timestamp()).await {
                Ok(Ok(ts)) => ts,
                _ => {
                    tracing::warn!(signal_id, "allocate ts failed, skip to handle compaction");
                    return 0;
                }
            };
        let mut collections: HashMap<CollectionId, Arc<DescribeCollectionResponse>> =
            HashMap::new();
        let mut executed = 0;
        for group in groups {
            if !force && self.is_full() {
                break;
            }
            let collection_id = group.collection_id;
            let info = match collections.get(&collection_id) {
                Some(info) => info.clone(),
                None => match self.describe(collection_id).await {
                    Ok(info) => collections.entry(collection_id).or_insert(info).clone(),
                    Err(err) => {
                        tracing::warn!(collection_id, channel = %group.channel, error = %err, "get collection info failed, skip handling compaction");
                        return executed;
                    }
                },
            };
            if !force
                && !auto_compaction_enabled(&info.properties, self.config.enable_auto_compaction)
            {
                tracing::info!(collection_id, "collection auto compaction disabled");
                return executed;
            }
            match self.plan_group(signal_id, force, group, &info, now).await {
                Some(count) => executed += count,
                None => return executed,
            }
        }
        executed
    }

    /// One group: index gate, max rows, TTL, plan arithmetic, then each plan. `None` stops
    /// the signal (unreadable TTL, or full).
    async fn plan_group(
        self: &Arc<Self>,
        signal_id: i64,
        force: bool,
        group: Group,
        info: &DescribeCollectionResponse,
        now: Timestamp,
    ) -> Option<usize> {
        let collection_id = group.collection_id;
        let schema = info.schema.clone().unwrap_or_default();
        let segments = if self.config.index_based_compaction {
            self.indexed_only(collection_id, &schema, group.segments)
        } else {
            group.segments
        };
        if segments.is_empty() {
            return Some(0);
        }
        let policy = &self.config.policy;
        let has_diskann = self
            .index_meta
            .live_indexes(collection_id, "")
            .iter()
            .any(|index| index.index_type() == DISKANN);
        let max_rows = match policy::max_rows(&schema, has_diskann, policy) {
            Ok(rows) => rows,
            Err(err) => {
                tracing::warn!(collection_id, error = %err, "failed to update segment max size");
                return Some(0);
            }
        };
        let ttl = match policy::collection_ttl(&info.properties, policy) {
            Ok(ttl) => ttl,
            Err(err) => {
                tracing::warn!(collection_id, channel = %group.channel, error = %err, "get compact time failed, skip to handle compaction");
                return None;
            }
        };
        let engine_version = (self.engine_version)();
        let needs_index_upgrade = |seg: &SegmentInfo| self.needs_index_upgrade(seg, engine_version);
        let context = GroupContext {
            max_rows,
            force,
            expire_ts: ttl.map(|ttl| policy::expire_ts(now, ttl)),
            has_diskann,
            needs_index_upgrade: &needs_index_upgrade,
        };
        let buckets = policy::plan_buckets(segments, &context, policy);
        let mut executed = 0;
        for bucket in buckets {
            let segment_ids: Vec<SegmentId> = bucket.iter().map(|seg| seg.id).collect();
            if !force && self.is_full() {
                tracing::warn!(collection_id, segments = ?segment_ids, "compaction plan skipped due to handler full");
                return None;
            }
            let plan_id = match self.allocate_id().await {
                Ok(id) => id,
                Err(err) => {
                    tracing::warn!(collection_id, segments = ?segment_ids, error = %err, "failed to fill plan");
                    continue;
                }
            };
            let plan = self.build_plan(plan_id, &bucket, ttl);
            match self.execute(signal_id, plan).await {
                Ok(()) => executed += 1,
                Err(err) => {
                    tracing::warn!(plan_id, collection_id, segments = ?segment_ids, error = %err, "failed to execute compaction plan")
                }
            }
        }
        Some(executed)
    }

    async fn describe(
        &self,
        collection_id: CollectionId,
    ) -> MilvusResult<Arc<DescribeCollectionResponse>> {
        let response = tokio::time::timeout(
            DESCRIBE_COLLECTION_TIMEOUT,
            self.broker.describe_collection_internal(collection_id),
        )
        .await
        .map_err(|_| MilvusError::unexpected("describe collection timed out"))??;
        if let Some(err) = response.status.as_ref().and_then(MilvusError::from_status) {
            return Err(err);
        }
        Ok(Arc::new(response))
    }

    /// §1.13 index gate: the segments whose first vector field has a Finished segment index
    /// (none when the collection has no vector field or no index on it).
    fn indexed_only(
        &self,
        collection_id: CollectionId,
        schema: &CollectionSchema,
        segments: Vec<Arc<SegmentInfo>>,
    ) -> Vec<Arc<SegmentInfo>> {
        let Some(field) = first_vector_field(schema) else {
            return Vec::new();
        };
        segments
            .into_iter()
            .filter(|seg| {
                self.index_meta
                    .segment_indexed(collection_id, seg.id, field)
            })
            .collect()
    }

    /// §2.5 rule 5: a segment index built by an older engine, with files.
    fn needs_index_upgrade(&self, seg: &SegmentInfo, engine_version: i32) -> bool {
        self.index_meta
            .segment_indexes_of(seg.id)
            .iter()
            .any(|built| {
                built.current_index_version < engine_version && !built.index_file_keys.is_empty()
            })
    }

    /// §2.7: the plan sent to the DataNode (start time added when sent).
    fn build_plan(
        &self,
        plan_id: i64,
        bucket: &[Arc<SegmentInfo>],
        ttl: Option<Duration>,
    ) -> CompactionPlan {
        let root = self.root_path();
        CompactionPlan {
            plan_id,
            segment_binlogs: bucket
                .iter()
                .map(|seg| {
                    let full = with_full_paths(seg, root);
                    CompactionSegmentBinlogs {
                        segment_id: seg.id,
                        field_binlogs: full.binlogs,
                        field2_statslog_paths: full.statslogs,
                        deltalogs: full.deltalogs,
                        insert_channel: String::new(),
                    }
                })
                .collect(),
            start_time: 0,
            timeout_in_seconds: self.config.timeout_seconds,
            r#type: CompactionType::MixCompaction as i32,
            timetravel: 0,
            channel: bucket
                .first()
                .map(|seg| seg.insert_channel.clone())
                .unwrap_or_default(),
            collection_ttl: ttl.map_or(0, |ttl| i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX)),
            total_rows: bucket.iter().map(|seg| seg.num_of_rows).sum(),
        }
    }
}

/// The collection's `collection.autocompaction.enabled` (Go `strconv.ParseBool`), else the
/// global switch; an unparsable value disables it.
fn auto_compaction_enabled(properties: &[KeyValuePair], global: bool) -> bool {
    let Some(property) = properties
        .iter()
        .rev()
        .find(|pair| pair.key == AUTO_COMPACTION_KEY)
    else {
        return global;
    };
    match property.value.as_str() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
        "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
        other => {
            tracing::warn!(
                value = other,
                "collection properties auto compaction not valid, returning false"
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(key: &str, value: &str) -> KeyValuePair {
        KeyValuePair {
            key: key.to_string(),
            value: value.to_string(),
        }
    }

    #[test]
    fn auto_compaction_property_reads_like_go_parse_bool() {
        assert!(auto_compaction_enabled(&[], true));
        assert!(!auto_compaction_enabled(&[], false));
        assert!(auto_compaction_enabled(
            &[pair(AUTO_COMPACTION_KEY, "T")],
            false
        ));
        assert!(!auto_compaction_enabled(
            &[pair(AUTO_COMPACTION_KEY, "0")],
            true
        ));
        assert!(!auto_compaction_enabled(
            &[pair(AUTO_COMPACTION_KEY, "yes")],
            true
        ));
        assert!(!auto_compaction_enabled(
            &[pair(AUTO_COMPACTION_KEY, "")],
            true
        ));
        assert!(auto_compaction_enabled(&[pair("other", "false")], true));
    }
}
