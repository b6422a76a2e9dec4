//! [`IndexMeta`]: the index records in memory, with synchronous reads and serialised,
//! persist-first writes (the discipline of `datacoord_meta::Meta`).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use milvus_proto::common::IndexState;
use milvus_proto::data::SegmentInfo;
use milvus_types::{CollectionId, FieldId, IndexId, NodeId, SegmentId};
use tokio::sync::OwnedMutexGuard;

use crate::catalog::IndexCatalog;
use crate::error::{IndexError, IndexResult};
use crate::model::{BuildId, Index, SegmentIndex};

/// What an IndexNode reported for a finished (or failed) build, as stored by `finish_task`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FinishedTask {
    /// `Finished` or `Failed`.
    pub state: IndexState,
    /// Base names of the files written.
    pub index_file_keys: Vec<String>,
    /// Why it failed ("" when finished).
    pub fail_reason: String,
    /// Total size of the files.
    pub serialized_size: u64,
    /// Engine version the files were built with.
    pub current_index_version: i32,
}

#[derive(Default)]
struct State {
    /// Every index, deleted ones included, by collection then ID.
    indexes: HashMap<CollectionId, BTreeMap<IndexId, Arc<Index>>>,
    /// The segment index of each (segment, index); when the store holds two builds of one
    /// pair (2.3.5 never writes that), the later key wins, as in 2.3.5's load.
    by_segment: HashMap<SegmentId, BTreeMap<IndexId, Arc<SegmentIndex>>>,
    /// Every segment index by build ID, whether or not its segment still exists.
    by_build: HashMap<BuildId, Arc<SegmentIndex>>,
}

impl State {
    fn put_index(&mut self, index: Index) {
        self.indexes
            .entry(index.collection_id)
            .or_default()
            .insert(index.index_id, Arc::new(index));
    }

    fn remove_index(&mut self, coll: CollectionId, index_id: IndexId) {
        if let Some(of_coll) = self.indexes.get_mut(&coll) {
            of_coll.remove(&index_id);
            if of_coll.is_empty() {
                self.indexes.remove(&coll);
            }
        }
    }

    fn put_segment_index(&mut self, seg_index: SegmentIndex) {
        let seg_index = Arc::new(seg_index);
        self.by_build.insert(seg_index.build_id, seg_index.clone());
        self.by_segment
            .entry(seg_index.segment_id)
            .or_default()
            .insert(seg_index.index_id, seg_index);
    }

    fn remove_segment_index(&mut self, build_id: BuildId) {
        let Some(gone) = self.by_build.remove(&build_id) else {
            return;
        };
        if let Some(of_seg) = self.by_segment.get_mut(&gone.segment_id) {
            if of_seg
                .get(&gone.index_id)
                .is_some_and(|held| held.build_id == build_id)
            {
                of_seg.remove(&gone.index_id);
            }
            if of_seg.is_empty() {
                self.by_segment.remove(&gone.segment_id);
            }
        }
    }
}

pub(crate) struct Shared {
    catalog: IndexCatalog,
    state: RwLock<State>,
    writer: Arc<tokio::sync::Mutex<()>>,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        // No code panics while holding the lock, so a poisoned state is still consistent.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Re-reads field-index keys after a write that may have landed in part.
    async fn resync_indexes(&self, touched: &[(CollectionId, IndexId)]) {
        for &(coll, index_id) in touched {
            match self.catalog.load_index(coll, index_id).await {
                Ok(Some(index)) => self.write().put_index(index),
                Ok(None) => self.write().remove_index(coll, index_id),
                Err(err) => tracing::error!(
                    collection_id = coll, index_id, error = %err,
                    "cannot re-read index after a failed write; memory may differ from the store until restart"
                ),
            }
        }
    }

    async fn resync_segment_index(&self, held: &SegmentIndex) {
        match self.catalog.load_segment_index(&held.key()).await {
            Ok(Some(seg_index)) => self.write().put_segment_index(seg_index),
            Ok(None) => self.write().remove_segment_index(held.build_id),
            Err(err) => tracing::error!(
                build_id = held.build_id, error = %err,
                "cannot re-read segment index after a failed write; memory may differ from the store until restart"
            ),
        }
    }
}

/// Index metadata: every `field-index` and `segment-index` record, in memory.
///
/// Reads are synchronous snapshots by collection, segment or build ID (never a scan of all
/// records on a hot path). Writes persist first and then update memory, one at a time under
/// an async mutex, each on its own task so a cancelled caller cannot stop it halfway; after a
/// failed write that may have landed, the touched keys are re-read.
#[derive(Clone)]
pub struct IndexMeta {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for IndexMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.read();
        f.debug_struct("IndexMeta")
            .field("collections", &state.indexes.len())
            .field("segment_indexes", &state.by_build.len())
            .finish()
    }
}

impl IndexMeta {
    /// Loads every index record of the store behind `catalog`.
    pub async fn load(catalog: IndexCatalog) -> IndexResult<IndexMeta> {
        let (indexes, segment_indexes) = catalog.load().await?;
        let mut state = State::default();
        for index in indexes {
            state.put_index(index);
        }
        for seg_index in segment_indexes {
            state.put_segment_index(seg_index);
        }
        tracing::info!(
            indexes = state.indexes.values().map(BTreeMap::len).sum::<usize>(),
            segment_indexes = state.by_build.len(),
            "index meta loaded"
        );
        Ok(IndexMeta {
            shared: Arc::new(Shared {
                catalog,
                state: RwLock::new(state),
                writer: Arc::new(tokio::sync::Mutex::new(())),
            }),
        })
    }

    /// The catalog underneath.
    pub fn catalog(&self) -> &IndexCatalog {
        &self.shared.catalog
    }

    /// Takes the writer lock (fair: writes run in call order). Checks that must not race a
    /// write (CreateIndex's conflict rule) run while holding it, then hand it to [`Self::run`].
    pub(crate) async fn lock_writer(&self) -> OwnedMutexGuard<()> {
        self.shared.writer.clone().lock_owned().await
    }

    /// Runs a write under `guard` on its own task, so once started it completes even if the
    /// caller's future is dropped.
    pub(crate) async fn run<T, Fut>(
        &self,
        guard: OwnedMutexGuard<()>,
        op: impl FnOnce(Arc<Shared>) -> Fut,
    ) -> IndexResult<T>
    where
        Fut: Future<Output = IndexResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let work = op(self.shared.clone());
        tokio::spawn(async move {
            let result = work.await;
            drop(guard);
            result
        })
        .await
        .map_err(|err| IndexError::Internal(err.to_string()))?
    }

    // --- reads ---

    /// An index by ID, deleted or not.
    pub fn index(&self, coll: CollectionId, index_id: IndexId) -> Option<Arc<Index>> {
        self.shared
            .read()
            .indexes
            .get(&coll)?
            .get(&index_id)
            .cloned()
    }

    /// Every index of the collection, deleted ones included, by ID.
    pub fn indexes_of_collection(&self, coll: CollectionId) -> Vec<Arc<Index>> {
        self.shared
            .read()
            .indexes
            .get(&coll)
            .map(|of_coll| of_coll.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Live (not deleted) indexes of the collection named `name` ("" = all), by ID.
    pub fn live_indexes(&self, coll: CollectionId, name: &str) -> Vec<Arc<Index>> {
        self.indexes_of_collection(coll)
            .into_iter()
            .filter(|index| !index.deleted && (name.is_empty() || index.index_name == name))
            .collect()
    }

    /// Live indexes on one field named `name` ("" = all), by ID.
    pub fn live_field_indexes(
        &self,
        coll: CollectionId,
        field: FieldId,
        name: &str,
    ) -> Vec<Arc<Index>> {
        self.live_indexes(coll, name)
            .into_iter()
            .filter(|index| index.field_id == field)
            .collect()
    }

    /// Whether the segment's build of the live index on `field` is Finished: 2.3.5's
    /// "indexed", which recovery info, the compaction index gate and GC of compaction sources
    /// all ask with the collection's [`first_vector_field`].
    pub fn segment_indexed(&self, coll: CollectionId, seg: SegmentId, field: FieldId) -> bool {
        self.live_field_indexes(coll, field, "")
            .first()
            .and_then(|index| self.segment_index_of(seg, index.index_id))
            .is_some_and(|build| build.state == IndexState::Finished)
    }

    /// Every index marked deleted (for GC; scans all indexes, which are few).
    pub fn deleted_indexes(&self) -> Vec<Arc<Index>> {
        self.shared
            .read()
            .indexes
            .values()
            .flat_map(BTreeMap::values)
            .filter(|index| index.deleted)
            .cloned()
            .collect()
    }

    /// A segment index by build ID.
    pub fn segment_index(&self, build_id: BuildId) -> Option<Arc<SegmentIndex>> {
        self.shared.read().by_build.get(&build_id).cloned()
    }

    /// The segment index of (segment, index), if any.
    pub fn segment_index_of(&self, seg: SegmentId, index_id: IndexId) -> Option<Arc<SegmentIndex>> {
        self.shared
            .read()
            .by_segment
            .get(&seg)?
            .get(&index_id)
            .cloned()
    }

    /// Every segment index of a segment (of deleted indexes too), by index ID.
    pub fn segment_indexes_of(&self, seg: SegmentId) -> Vec<Arc<SegmentIndex>> {
        self.shared
            .read()
            .by_segment
            .get(&seg)
            .map(|of_seg| of_seg.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every segment index, by build ID (startup of the builder, GC; not for hot paths).
    pub fn all_segment_indexes(&self) -> Vec<Arc<SegmentIndex>> {
        let mut all: Vec<_> = self.shared.read().by_build.values().cloned().collect();
        all.sort_by_key(|seg_index| seg_index.build_id);
        all
    }

    /// Live indexes of the segment's collection it has no segment index for (FACTS 1.4).
    pub fn missing_indexes(&self, seg: &SegmentInfo) -> Vec<Arc<Index>> {
        let state = self.shared.read();
        let Some(of_coll) = state.indexes.get(&seg.collection_id) else {
            return Vec::new();
        };
        let of_seg = state.by_segment.get(&seg.id);
        of_coll
            .values()
            .filter(|index| !index.deleted)
            .filter(|index| of_seg.is_none_or(|held| !held.contains_key(&index.index_id)))
            .cloned()
            .collect()
    }

    // --- index writes ---

    /// Saves `index` (new, or the idempotent re-save of CreateIndex) under a held writer lock.
    pub(crate) async fn save_index_locked(
        &self,
        guard: OwnedMutexGuard<()>,
        index: Index,
    ) -> IndexResult<()> {
        self.run(guard, move |shared| async move {
            if let Err(err) = shared.catalog.save_index(&index).await {
                if err.maybe_applied() {
                    shared
                        .resync_indexes(&[(index.collection_id, index.index_id)])
                        .await;
                }
                return Err(err.into());
            }
            tracing::info!(
                collection_id = index.collection_id,
                index_id = index.index_id,
                index_name = %index.index_name,
                "index saved"
            );
            shared.write().put_index(index);
            Ok(())
        })
        .await
    }

    /// Marks the live ones of `index_ids` deleted (DropIndex). Unknown or already deleted IDs
    /// are skipped; returns how many were marked.
    pub async fn mark_indexes_deleted(
        &self,
        coll: CollectionId,
        index_ids: &[IndexId],
    ) -> IndexResult<usize> {
        let guard = self.lock_writer().await;
        let marked: Vec<Index> = index_ids
            .iter()
            .filter_map(|&id| self.index(coll, id))
            .filter(|index| !index.deleted)
            .map(|index| Index {
                deleted: true,
                ..(*index).clone()
            })
            .collect();
        if marked.is_empty() {
            return Ok(0);
        }
        self.run(guard, move |shared| async move {
            if let Err(err) = shared.catalog.alter_indexes(&marked).await {
                // A later chunk may have failed after earlier ones landed: re-read them all.
                let touched: Vec<_> = marked
                    .iter()
                    .map(|index| (index.collection_id, index.index_id))
                    .collect();
                shared.resync_indexes(&touched).await;
                return Err(err.into());
            }
            let count = marked.len();
            let mut state = shared.write();
            for index in marked {
                tracing::info!(
                    collection_id = coll,
                    index_id = index.index_id,
                    "index marked deleted"
                );
                state.put_index(index);
            }
            Ok(count)
        })
        .await
    }

    /// Removes an index record for good (GC of a deleted index).
    pub async fn remove_index(&self, coll: CollectionId, index_id: IndexId) -> IndexResult<()> {
        let guard = self.lock_writer().await;
        self.run(guard, move |shared| async move {
            if let Err(err) = shared.catalog.drop_index(coll, index_id).await {
                if err.maybe_applied() {
                    shared.resync_indexes(&[(coll, index_id)]).await;
                }
                return Err(err.into());
            }
            shared.write().remove_index(coll, index_id);
            tracing::info!(collection_id = coll, index_id, "index removed");
            Ok(())
        })
        .await
    }

    // --- segment-index writes ---

    /// Creates the Unissued task of `index_id` for `seg` with `build_id` (FACTS 1.4:
    /// `num_rows` = the segment's rows now, `create_time` = the segment ID). When the segment
    /// already has a record for the index, nothing is written and that record is returned.
    pub async fn add_segment_index(
        &self,
        seg: &SegmentInfo,
        index_id: IndexId,
        build_id: BuildId,
    ) -> IndexResult<Arc<SegmentIndex>> {
        let guard = self.lock_writer().await;
        if let Some(existing) = self.segment_index_of(seg.id, index_id) {
            return Ok(existing);
        }
        let seg_index = SegmentIndex {
            collection_id: seg.collection_id,
            partition_id: seg.partition_id,
            segment_id: seg.id,
            num_rows: seg.num_of_rows,
            index_id,
            build_id,
            state: IndexState::Unissued,
            create_time: seg.id as u64,
            ..SegmentIndex::default()
        };
        self.put_segment_index(guard, seg_index).await?;
        self.segment_index(build_id)
            .ok_or(IndexError::BuildNotFound(build_id))
    }

    /// Records an assignment: `node_id` and `index_version + 1` (2.3.5 `UpdateVersion`).
    pub async fn update_version(&self, build_id: BuildId, node_id: NodeId) -> IndexResult<()> {
        self.alter(build_id, move |seg_index| {
            seg_index.node_id = node_id;
            seg_index.index_version += 1;
        })
        .await
    }

    /// Marks the task InProgress (2.3.5 `BuildIndex`).
    pub async fn build_index(&self, build_id: BuildId) -> IndexResult<()> {
        self.alter(build_id, |seg_index| {
            seg_index.state = IndexState::InProgress
        })
        .await
    }

    /// Stores a build's outcome (2.3.5 `FinishTask`; also the no-build Finished of FLAT and
    /// small segments with an empty [`FinishedTask`] of state Finished).
    pub async fn finish_task(&self, build_id: BuildId, task: FinishedTask) -> IndexResult<()> {
        self.alter(build_id, move |seg_index| {
            seg_index.state = task.state;
            seg_index.index_file_keys = task.index_file_keys;
            seg_index.fail_reason = task.fail_reason;
            seg_index.serialize_size = task.serialized_size;
            seg_index.current_index_version = task.current_index_version;
        })
        .await
    }

    /// Marks the task deleted (its segment or index went away; 2.3.5 `DeleteTask`).
    pub async fn mark_segment_index_deleted(&self, build_id: BuildId) -> IndexResult<()> {
        self.alter(build_id, |seg_index| seg_index.deleted = true)
            .await
    }

    /// Removes a segment-index record for good (GC). Unknown build IDs are fine.
    pub async fn remove_segment_index(&self, build_id: BuildId) -> IndexResult<()> {
        let guard = self.lock_writer().await;
        let Some(held) = self.segment_index(build_id) else {
            return Ok(());
        };
        self.run(guard, move |shared| async move {
            if let Err(err) = shared.catalog.drop_segment_index(&held).await {
                if err.maybe_applied() {
                    shared.resync_segment_index(&held).await;
                }
                return Err(err.into());
            }
            shared.write().remove_segment_index(build_id);
            tracing::info!(
                build_id,
                segment_id = held.segment_id,
                "segment index removed"
            );
            Ok(())
        })
        .await
    }

    async fn alter(
        &self,
        build_id: BuildId,
        change: impl FnOnce(&mut SegmentIndex),
    ) -> IndexResult<()> {
        let guard = self.lock_writer().await;
        let held = self
            .segment_index(build_id)
            .ok_or(IndexError::BuildNotFound(build_id))?;
        let mut updated = (*held).clone();
        change(&mut updated);
        self.put_segment_index(guard, updated).await
    }

    async fn put_segment_index(
        &self,
        guard: OwnedMutexGuard<()>,
        seg_index: SegmentIndex,
    ) -> IndexResult<()> {
        self.run(guard, move |shared| async move {
            if let Err(err) = shared.catalog.save_segment_index(&seg_index).await {
                if err.maybe_applied() {
                    shared.resync_segment_index(&seg_index).await;
                }
                return Err(err.into());
            }
            tracing::debug!(
                build_id = seg_index.build_id,
                segment_id = seg_index.segment_id,
                state = ?seg_index.state,
                "segment index saved"
            );
            shared.write().put_segment_index(seg_index);
            Ok(())
        })
        .await
    }
}
