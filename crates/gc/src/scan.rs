//! The scan step (FACTS §3.5): objects under `insert_log/`, `stats_log/` and `delta_log/`
//! that no segment references, deleted once older than `missingTolerance`. The listing is
//! consumed as a stream, [`SCAN_BATCH`] objects at a time, each batch judged against meta
//! read after it was listed. The ordering and race arguments are in the crate README
//! ("Safety").

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use datacoord_meta::Meta;
use futures::StreamExt;
use futures::stream::{TryChunksError, TryStreamExt};
use milvus_proto::data::SegmentInfo;
use milvus_storage::{BinlogKind, ObjectInfo, binlog_prefix};
use milvus_types::{CollectionId, FieldId, PartitionId, SegmentId};
use tracing::{debug, info, warn};

use crate::config::GcConfig;
use crate::remove::remove_in_slices;
use crate::step::{GcStep, Stage, StepReport};
use crate::storage::GcStorage;

/// How many listed objects are held, judged and deleted together: the scan's memory bound,
/// whatever the number of objects in the bucket.
const SCAN_BATCH: usize = 1000;

/// Compaction tasks that may still write files: GC keeps every object of their partitions.
pub trait PendingCompactions: Send + Sync {
    /// The (collection, partition) of every persisted compaction task that is not finished
    /// (neither committed to meta nor failed). A task must be persisted before its DataNode
    /// can write any output, and marked finished only after its commit is in meta; tasks
    /// recovered at start-up must be included before GC's first run.
    fn unfinished_partitions(&self) -> BTreeSet<(CollectionId, PartitionId)>;
}

/// Where a listed object sits in the binlog layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BinlogKey {
    collection: CollectionId,
    partition: PartitionId,
    segment: SegmentId,
    /// None for delete logs (their path has no field).
    field: Option<FieldId>,
    log_id: i64,
}

/// An ID exactly as Milvus writes it (plain decimal); anything else is not ours to judge.
fn parse_id(text: &str) -> Option<i64> {
    let id: i64 = text.parse().ok()?;
    (id.to_string() == text).then_some(id)
}

/// Parses `{dir}coll/part/seg/field/log` (insert, stats) or `{dir}coll/part/seg/log` (delta).
fn parse_key(kind: BinlogKind, dir: &str, path: &str) -> Option<BinlogKey> {
    let rest = path.strip_prefix(dir)?;
    let ids: Vec<i64> = rest.split('/').map(parse_id).collect::<Option<_>>()?;
    match (kind, ids.as_slice()) {
        (BinlogKind::Delta, &[collection, partition, segment, log_id]) => Some(BinlogKey {
            collection,
            partition,
            segment,
            field: None,
            log_id,
        }),
        (
            BinlogKind::Insert | BinlogKind::Stats,
            &[collection, partition, segment, field, log_id],
        ) => Some(BinlogKey {
            collection,
            partition,
            segment,
            field: Some(field),
            log_id,
        }),
        _ => None,
    }
}

/// Whether `seg` lists the object at `path`. Logs in logID form are compared by (field, log
/// ID): meta builds their path under the segment's own collection/partition/segment, so no
/// path string is built. Legacy logs that kept a full path are compared by path.
fn references(seg: &SegmentInfo, kind: BinlogKind, key: &BinlogKey, path: &str) -> bool {
    let fields = match kind {
        BinlogKind::Insert => &seg.binlogs,
        BinlogKind::Stats => &seg.statslogs,
        BinlogKind::Delta => &seg.deltalogs,
    };
    let own_directory = seg.collection_id == key.collection && seg.partition_id == key.partition;
    fields.iter().any(|field| {
        let same_field = key.field.is_none_or(|wanted| wanted == field.field_id);
        field.binlogs.iter().any(|binlog| {
            if binlog.log_path.is_empty() {
                own_directory && same_field && binlog.log_id == key.log_id
            } else {
                binlog.log_path == path
            }
        })
    })
}

/// Why an object stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keep {
    /// Not `coll/part/seg[/field]/log` with plain decimal IDs.
    Unparsable,
    /// A segment in meta (any state) lists it.
    Referenced,
    /// An insert log of a segment in meta (a datanode writes them before reporting them).
    LiveInsertLog,
    /// Younger than `missingTolerance` (or without a modification time).
    Young,
    /// Its partition has an unfinished compaction task.
    PendingCompaction,
}

/// Counters of one scan, for the closing log.
#[derive(Debug, Default)]
struct ScanCounts {
    listed: usize,
    unparsable: usize,
    referenced: usize,
    live_insert_logs: usize,
    young: usize,
    pending_compaction: usize,
    removed: usize,
    failed: usize,
    list_failures: usize,
}

impl ScanCounts {
    fn keep(&mut self, keep: Keep) {
        let counter = match keep {
            Keep::Unparsable => &mut self.unparsable,
            Keep::Referenced => &mut self.referenced,
            Keep::LiveInsertLog => &mut self.live_insert_logs,
            Keep::Young => &mut self.young,
            Keep::PendingCompaction => &mut self.pending_compaction,
        };
        *counter += 1;
    }

    fn report(&self) -> StepReport {
        StepReport {
            records_removed: 0,
            files_removed: self.removed,
            failures: self.failed + self.list_failures,
            skipped: self.unparsable,
        }
    }
}

/// The last segment looked up, so consecutive objects of one segment decode it once. Lives
/// for one batch only: the view it holds is never older than the batch's listing.
struct SegmentLookup<'a> {
    meta: &'a Meta,
    last: Option<(SegmentId, Option<Arc<SegmentInfo>>)>,
}

impl SegmentLookup<'_> {
    fn get(&mut self, id: SegmentId) -> Option<Arc<SegmentInfo>> {
        match &self.last {
            Some((last_id, seg)) if *last_id == id => seg.clone(),
            _ => {
                let seg = self.meta.segment(id);
                self.last = Some((id, seg.clone()));
                seg
            }
        }
    }
}

/// The scan step over segment metadata, pending compactions and object storage.
pub struct ScanStep {
    meta: Arc<Meta>,
    pending: Arc<dyn PendingCompactions>,
    storage: Arc<dyn GcStorage>,
    missing_tolerance: Duration,
    concurrency: usize,
}

impl std::fmt::Debug for ScanStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanStep")
            .field("root_path", &self.storage.root_path())
            .field("missing_tolerance", &self.missing_tolerance)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl ScanStep {
    /// The step; `config` gives `missing_tolerance` and `remove_concurrent` (deletions
    /// running at once).
    pub fn new(
        meta: Arc<Meta>,
        pending: Arc<dyn PendingCompactions>,
        storage: Arc<dyn GcStorage>,
        config: &GcConfig,
    ) -> Self {
        Self {
            meta,
            pending,
            storage,
            missing_tolerance: config.missing_tolerance,
            concurrency: config.effective_concurrency(),
        }
    }

    /// Lists `{root}/insert_log/`, `{root}/stats_log/` and `{root}/delta_log/` and deletes
    /// every object no segment references, unless it is an insert log of a segment in meta,
    /// younger than `missingTolerance`, in a partition with an unfinished compaction, or not
    /// named like a binlog.
    pub async fn scan(&self) -> StepReport {
        let mut counts = ScanCounts::default();
        for kind in [BinlogKind::Insert, BinlogKind::Stats, BinlogKind::Delta] {
            self.scan_kind(kind, &mut counts).await;
        }
        info!(
            listed = counts.listed,
            referenced = counts.referenced,
            live_insert_logs = counts.live_insert_logs,
            young = counts.young,
            pending_compaction = counts.pending_compaction,
            unparsable = counts.unparsable,
            removed = counts.removed,
            failed = counts.failed,
            list_failures = counts.list_failures,
            "scan file to do garbage collection"
        );
        counts.report()
    }

    async fn scan_kind(&self, kind: BinlogKind, counts: &mut ScanCounts) {
        // With the trailing `/`: `insert_log_backup/` is not ours (2.3.5 lists without it).
        let dir = format!("{}/", binlog_prefix(self.storage.root_path(), kind));
        let mut batches = self.storage.list(&dir, true).try_chunks(SCAN_BATCH);
        while let Some(batch) = batches.next().await {
            match batch {
                Ok(objects) => self.sweep(kind, &dir, objects, counts).await,
                Err(TryChunksError(objects, err)) => {
                    self.sweep(kind, &dir, objects, counts).await;
                    warn!(prefix = %dir, error = %err, "listing failed, rest of the prefix left for next run");
                    counts.list_failures += 1;
                    return;
                }
            }
        }
    }

    /// Judges one listed batch against meta as it is now, then deletes what it may.
    async fn sweep(
        &self,
        kind: BinlogKind,
        dir: &str,
        objects: Vec<ObjectInfo>,
        counts: &mut ScanCounts,
    ) {
        // Pending tasks first, meta second: a task that finishes in between has its commit in
        // meta by the time meta is read; a task created after this line writes nothing this
        // batch holds (the batch was listed before).
        let pending = self.pending.unfinished_partitions();
        let now = SystemTime::now();
        let mut segments = SegmentLookup {
            meta: &self.meta,
            last: None,
        };
        let mut doomed = Vec::new();
        for object in objects {
            counts.listed += 1;
            match self.judge(kind, dir, &object, &pending, now, &mut segments) {
                Some(keep) => counts.keep(keep),
                None => doomed.push(object.path),
            }
        }
        let removal = remove_in_slices(self.storage.as_ref(), &doomed, self.concurrency).await;
        counts.removed += removal.removed;
        counts.failed += removal.failed;
        if let Some(err) = removal.first_error {
            warn!(failed = removal.failed, error = %err, "cannot remove orphan binlogs, retrying next run");
        }
    }

    fn judge(
        &self,
        kind: BinlogKind,
        dir: &str,
        object: &ObjectInfo,
        pending: &BTreeSet<(CollectionId, PartitionId)>,
        now: SystemTime,
        segments: &mut SegmentLookup<'_>,
    ) -> Option<Keep> {
        let Some(key) = parse_key(kind, dir, &object.path) else {
            debug!(path = %object.path, "not a binlog path, kept");
            return Some(Keep::Unparsable);
        };
        let seg = segments.get(key.segment);
        if let Some(seg) = &seg {
            if references(seg, kind, &key, &object.path) {
                return Some(Keep::Referenced);
            }
            if kind == BinlogKind::Insert {
                return Some(Keep::LiveInsertLog);
            }
        }
        let age = object
            .last_modified
            .and_then(|modified| now.duration_since(modified).ok());
        if age.is_none_or(|age| age <= self.missing_tolerance) {
            return Some(Keep::Young);
        }
        if pending.contains(&(key.collection, key.partition)) {
            return Some(Keep::PendingCompaction);
        }
        debug!(
            path = %object.path,
            segment_id = key.segment,
            collection_id = key.collection,
            "orphan binlog to remove"
        );
        None
    }
}

#[async_trait]
impl GcStep for ScanStep {
    fn stage(&self) -> Stage {
        Stage::Scan
    }

    async fn run(&self) -> StepReport {
        self.scan().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use milvus_proto::data::{Binlog, FieldBinlog};

    const DIR: &str = "files/insert_log/";

    fn key(segment: SegmentId, field: Option<FieldId>, log_id: i64) -> BinlogKey {
        BinlogKey {
            collection: 1,
            partition: 2,
            segment,
            field,
            log_id,
        }
    }

    #[test]
    fn keys_parse_only_in_the_binlog_layout() {
        assert_eq!(
            parse_key(BinlogKind::Insert, DIR, "files/insert_log/1/2/3/100/7"),
            Some(key(3, Some(100), 7))
        );
        assert_eq!(
            parse_key(
                BinlogKind::Delta,
                "files/delta_log/",
                "files/delta_log/1/2/3/7"
            ),
            Some(key(3, None, 7))
        );
        for path in [
            "files/insert_log/1/2/3/100",
            "files/insert_log/1/2/3/100/7/8",
            "files/insert_log/1/2/x/100/7",
            "files/insert_log/1/2/03/100/7",
            "files/insert_log/1/2/+3/100/7",
            "files/insert_log/1/2/3/100/.7.tmp.1.2",
            "files/insert_log//1/2/3/100/7",
            "files/stats_log/1/2/3/100/7",
        ] {
            assert_eq!(parse_key(BinlogKind::Insert, DIR, path), None, "{path}");
        }
        assert_eq!(
            parse_key(
                BinlogKind::Delta,
                "files/delta_log/",
                "files/delta_log/1/2/3/100/7"
            ),
            None
        );
    }

    #[test]
    fn references_compare_log_ids_and_legacy_paths() {
        let seg = SegmentInfo {
            id: 3,
            collection_id: 1,
            partition_id: 2,
            binlogs: vec![FieldBinlog {
                field_id: 100,
                binlogs: vec![
                    Binlog {
                        log_id: 7,
                        ..Binlog::default()
                    },
                    Binlog {
                        log_path: "files/insert_log/1/2/3/101/8".to_string(),
                        ..Binlog::default()
                    },
                ],
            }],
            ..SegmentInfo::default()
        };
        let path = |field, log| format!("files/insert_log/1/2/3/{field}/{log}");
        assert!(references(
            &seg,
            BinlogKind::Insert,
            &key(3, Some(100), 7),
            &path(100, 7)
        ));
        assert!(!references(
            &seg,
            BinlogKind::Insert,
            &key(3, Some(101), 7),
            &path(101, 7)
        ));
        assert!(!references(
            &seg,
            BinlogKind::Insert,
            &key(3, Some(100), 9),
            &path(100, 9)
        ));
        assert!(references(
            &seg,
            BinlogKind::Insert,
            &key(3, Some(101), 8),
            &path(101, 8)
        ));
        assert!(!references(
            &seg,
            BinlogKind::Stats,
            &key(3, Some(100), 7),
            &path(100, 7)
        ));
        let other_partition = BinlogKey {
            partition: 5,
            ..key(3, Some(100), 7)
        };
        assert!(!references(
            &seg,
            BinlogKind::Insert,
            &other_partition,
            "files/insert_log/1/5/3/100/7"
        ));
    }
}
