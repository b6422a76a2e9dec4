//! The index part of GC (FACTS §3.4): deleted `field-index` records, `segment-index` records
//! whose segment or index is gone (with their files), and objects under `index_files/` that no
//! record references. The ordering and race arguments are in the crate README ("Safety").

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use datacoord_index::{BuildId, IndexMeta, SegmentIndex};
use futures::{StreamExt, TryStreamExt, stream};
use milvus_proto::common::IndexState;
use milvus_storage::{ObjectInfo, build_id_from_index_path, index_files_prefix};
use tracing::{debug, info, warn};

use crate::config::GcConfig;
use crate::segments::SegmentPresence;
use crate::step::{GcStep, Stage, StepReport};
use crate::storage::GcStorage;

/// The three index steps over one index metadata, segment metadata and object storage.
pub struct IndexGc {
    index_meta: IndexMeta,
    segments: Arc<dyn SegmentPresence>,
    storage: Arc<dyn GcStorage>,
    concurrency: usize,
}

impl std::fmt::Debug for IndexGc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexGc")
            .field("root_path", &self.storage.root_path())
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl IndexGc {
    /// The index steps; `config.remove_concurrent` bounds how many builds are handled at once.
    pub fn new(
        index_meta: IndexMeta,
        segments: Arc<dyn SegmentPresence>,
        storage: Arc<dyn GcStorage>,
        config: &GcConfig,
    ) -> Self {
        Self {
            index_meta,
            segments,
            storage,
            concurrency: config.effective_concurrency(),
        }
    }

    /// The three steps, for [`crate::GarbageCollector::new`].
    pub fn steps(self: &Arc<Self>) -> Vec<Arc<dyn GcStep>> {
        [
            IndexStepKind::Indexes,
            IndexStepKind::SegmentIndexes,
            IndexStepKind::Files,
        ]
        .into_iter()
        .map(|kind| {
            Arc::new(IndexStep {
                gc: self.clone(),
                kind,
            }) as Arc<dyn GcStep>
        })
        .collect()
    }

    /// `{root}/index_files/`: every build directory sits one level below it.
    fn index_files_dir(&self) -> String {
        format!("{}/", index_files_prefix(self.storage.root_path()))
    }

    /// Removes the `field-index` record of every index marked deleted. Its segment indexes
    /// follow in [`Self::recycle_unused_segment_indexes`] of the same run (their index is gone).
    pub async fn recycle_unused_indexes(&self) -> StepReport {
        let deleted = self.index_meta.deleted_indexes();
        info!(indexes = deleted.len(), "recycling deleted indexes");
        let mut report = StepReport::default();
        for index in deleted {
            match self
                .index_meta
                .remove_index(index.collection_id, index.index_id)
                .await
            {
                Ok(()) => report.records_removed += 1,
                Err(err) => {
                    warn!(
                        collection_id = index.collection_id,
                        index_id = index.index_id,
                        error = %err,
                        "cannot remove deleted index, retrying next run"
                    );
                    report.failures += 1;
                }
            }
        }
        report
    }

    /// Removes every segment index whose segment is no longer in segment metadata or whose
    /// index is gone or deleted: the record first, then the files of its build.
    pub async fn recycle_unused_segment_indexes(&self) -> StepReport {
        let unused: Vec<Arc<SegmentIndex>> = self
            .index_meta
            .all_segment_indexes()
            .into_iter()
            .filter(|seg_index| self.is_unused(seg_index))
            .collect();
        info!(
            segment_indexes = unused.len(),
            "recycling unused segment indexes"
        );
        stream::iter(unused)
            .map(|seg_index| self.recycle_segment_index(seg_index))
            .buffer_unordered(self.concurrency)
            .fold(StepReport::default(), |mut total, one| async move {
                total += one;
                total
            })
            .await
    }

    fn is_unused(&self, seg_index: &SegmentIndex) -> bool {
        let segment_gone = !self.segments.segment_exists(seg_index.segment_id);
        let index_gone = self
            .index_meta
            .index(seg_index.collection_id, seg_index.index_id)
            .is_none_or(|index| index.deleted);
        segment_gone || index_gone
    }

    async fn recycle_segment_index(&self, seg_index: Arc<SegmentIndex>) -> StepReport {
        let mut report = StepReport::default();
        let build_id = seg_index.build_id;
        // Record first: while it exists it names the files, so they must outlive it. Once it is
        // gone, nothing can name `index_files/{build}/` again (build IDs are never reused), and
        // if the deletion below fails the files sweep finds the build missing from meta.
        if let Err(err) = self.index_meta.remove_segment_index(build_id).await {
            warn!(
                build_id,
                segment_id = seg_index.segment_id,
                error = %err,
                "cannot remove unused segment index, retrying next run"
            );
            report.failures += 1;
            return report;
        }
        report.records_removed += 1;
        let build_dir = format!("{}{build_id}/", self.index_files_dir());
        let files = match self.storage.list(&build_dir, true).try_collect().await {
            Ok(files) => files,
            Err(err) => {
                warn!(build_id, error = %err, "cannot list files of a recycled build, the files sweep retries");
                report.failures += 1;
                return report;
            }
        };
        report += self.remove(build_id, paths_of(files)).await;
        info!(
            build_id,
            segment_id = seg_index.segment_id,
            files_removed = report.files_removed,
            "unused segment index recycled"
        );
        report
    }

    /// Lists `{root}/index_files/` one level deep and, per build directory, deletes what no
    /// record references: everything when the build is not in meta, nothing while it is not
    /// Finished, and everything but its current files once Finished.
    pub async fn recycle_unused_index_files(&self) -> StepReport {
        let dir = self.index_files_dir();
        // The listing comes first and each build's record is read after it (in `sweep_build`):
        // a build created after this point is not listed, so it cannot be swept.
        let entries: Vec<ObjectInfo> = match self.storage.list(&dir, false).try_collect().await {
            Ok(entries) => entries,
            Err(err) => {
                warn!(prefix = %dir, error = %err, "cannot list index files, retrying next run");
                return StepReport {
                    failures: 1,
                    ..StepReport::default()
                };
            }
        };
        info!(builds = entries.len(), "sweeping index files");
        stream::iter(entries)
            .map(|entry| self.sweep_build(entry))
            .buffer_unordered(self.concurrency)
            .fold(StepReport::default(), |mut total, one| async move {
                total += one;
                total
            })
            .await
    }

    async fn sweep_build(&self, entry: ObjectInfo) -> StepReport {
        let mut report = StepReport::default();
        let build_id = match build_id_from_index_path(&entry.path) {
            Ok(build_id) => build_id,
            Err(err) => {
                warn!(path = %entry.path, error = %err, "not a build directory, skipped");
                report.skipped += 1;
                return report;
            }
        };
        let record = self.index_meta.segment_index(build_id);
        let in_meta = record.is_some();
        let keep: HashSet<String> = match record {
            None => HashSet::new(),
            Some(record) if record.state != IndexState::Finished => {
                debug!(build_id, state = ?record.state, "build not finished, files kept");
                return report;
            }
            Some(record) => record
                .file_paths(self.storage.root_path())
                .into_iter()
                .collect(),
        };
        // A stray object directly under `index_files/` is handled alone: listing its name as
        // a prefix would also match the directories of longer build IDs.
        let files = if entry.is_dir {
            let build_dir = if entry.path.ends_with('/') {
                entry.path
            } else {
                format!("{}/", entry.path)
            };
            match self.storage.list(&build_dir, true).try_collect().await {
                Ok(files) => paths_of(files),
                Err(err) => {
                    warn!(build_id, error = %err, "cannot list build files, retrying next run");
                    report.failures += 1;
                    return report;
                }
            }
        } else {
            vec![entry.path]
        };
        let doomed: Vec<String> = files
            .into_iter()
            .filter(|path| !keep.contains(path))
            .collect();
        if doomed.is_empty() {
            return report;
        }
        info!(
            build_id,
            in_meta,
            files = doomed.len(),
            "removing unreferenced index files"
        );
        report += self.remove(build_id, doomed).await;
        report
    }

    /// Deletes `paths`, refusing anything outside `{root}/index_files/`.
    async fn remove(&self, build_id: BuildId, paths: Vec<String>) -> StepReport {
        let dir = index_files_prefix(self.storage.root_path());
        let (inside, outside): (Vec<String>, Vec<String>) = paths
            .into_iter()
            .partition(|path| crate::remove::is_below(&dir, path));
        debug_assert!(outside.is_empty(), "listed outside {dir}: {outside:?}");
        let mut report = StepReport {
            skipped: outside.len(),
            ..StepReport::default()
        };
        if inside.is_empty() {
            return report;
        }
        match self.storage.remove_files(&inside).await {
            Ok(()) => report.files_removed += inside.len(),
            Err(err) => {
                warn!(build_id, files = inside.len(), error = %err, "cannot remove index files, retrying next run");
                report.failures += 1;
            }
        }
        report
    }
}

fn paths_of(entries: Vec<ObjectInfo>) -> Vec<String> {
    entries
        .into_iter()
        .filter(|entry| !entry.is_dir)
        .map(|entry| entry.path)
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum IndexStepKind {
    Indexes,
    SegmentIndexes,
    Files,
}

struct IndexStep {
    gc: Arc<IndexGc>,
    kind: IndexStepKind,
}

#[async_trait]
impl GcStep for IndexStep {
    fn stage(&self) -> Stage {
        match self.kind {
            IndexStepKind::Indexes => Stage::RecycleUnusedIndexes,
            IndexStepKind::SegmentIndexes => Stage::RecycleUnusedSegmentIndexes,
            IndexStepKind::Files => Stage::RecycleUnusedIndexFiles,
        }
    }

    async fn run(&self) -> StepReport {
        match self.kind {
            IndexStepKind::Indexes => self.gc.recycle_unused_indexes().await,
            IndexStepKind::SegmentIndexes => self.gc.recycle_unused_segment_indexes().await,
            IndexStepKind::Files => self.gc.recycle_unused_index_files().await,
        }
    }
}
