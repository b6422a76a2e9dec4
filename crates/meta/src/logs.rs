//! Segment log lists: the stored logID form, validation of paths sent by datanodes, merging,
//! row counts (FACTS C.2, C.3) and the full paths answered to clients.

use milvus_proto::common::SegmentState;
use milvus_proto::data::{Binlog, FieldBinlog, SegmentInfo};
use milvus_types::{CollectionId, FieldId, PartitionId, SegmentId};

use crate::error::{MetaError, MetaResult};
use crate::keys::{LogKind, field_key_order};

/// File name of the merged ("compound") stats log a flushed segment gets.
const MERGED_STATS_LOG_ID: i64 = 1;

/// Whether a segment in `state` counts as alive: not None, NotExist or Dropped.
pub fn is_healthy(state: SegmentState) -> bool {
    !matches!(
        state,
        SegmentState::None | SegmentState::NotExist | SegmentState::Dropped
    )
}

/// Bytes in object storage a segment's logs take: Σ `log_size` over its insert, delete and
/// stats logs (what 2.3.5 reports to the quota center).
pub fn segment_binlog_size(seg: &SegmentInfo) -> i64 {
    [&seg.binlogs, &seg.deltalogs, &seg.statslogs]
        .into_iter()
        .flatten()
        .flat_map(|field| &field.binlogs)
        .fold(0i64, |size, binlog| size.wrapping_add(binlog.log_size))
}

/// Whether `state` is Flushing or Flushed.
pub fn is_flush_state(state: SegmentState) -> bool {
    matches!(state, SegmentState::Flushing | SegmentState::Flushed)
}

/// Rows as the insert logs tell (FACTS C.3): the sum of `entries_num` over the first field's
/// logs; `-1` when any of them is ≤ 0 (stale logs); `0` without insert logs.
pub fn binlog_row_count(seg: &SegmentInfo) -> i64 {
    let Some(first_field) = seg.binlogs.first() else {
        return 0;
    };
    let mut rows = 0;
    for binlog in &first_field.binlogs {
        if binlog.entries_num <= 0 {
            return -1;
        }
        rows += binlog.entries_num;
    }
    rows
}

/// A copy of `seg` whose logs carry full storage paths (FACTS C.2), as every RPC answers them:
/// `{root}/insert_log/{coll}/{part}/{seg}/{field}/{logID}`, `{root}/stats_log/…` likewise, and
/// `{root}/delta_log/{coll}/{part}/{seg}/{logID}`. `root` is the chunk manager's root path
/// (`minio.rootPath` or `localStorage.path`), joined with Go's `path.Join` rules. Logs that
/// already carry a path (legacy records with inline logs) keep it, as 2.3.5 does.
pub fn with_full_paths(seg: &SegmentInfo, root: &str) -> SegmentInfo {
    let mut full = seg.clone();
    let ids = (seg.collection_id, seg.partition_id, seg.id);
    fill_paths(&mut full.binlogs, LogKind::Insert, root, ids);
    fill_paths(&mut full.statslogs, LogKind::Stats, root, ids);
    fill_paths(&mut full.deltalogs, LogKind::Delta, root, ids);
    full
}

fn fill_paths(
    fields: &mut [FieldBinlog],
    kind: LogKind,
    root: &str,
    (coll, part, seg): (CollectionId, PartitionId, SegmentId),
) {
    for field in fields {
        for binlog in &mut field.binlogs {
            if binlog.log_path.is_empty() {
                binlog.log_path =
                    log_path(kind, root, coll, part, seg, field.field_id, binlog.log_id);
            }
        }
    }
}

/// The storage path of one log file.
pub(crate) fn log_path(
    kind: LogKind,
    root: &str,
    coll: CollectionId,
    part: PartitionId,
    seg: SegmentId,
    field: FieldId,
    log_id: i64,
) -> String {
    milvus_storage::binlog_path(root, kind.binlog_kind(), coll, part, seg, field, log_id)
}

/// The log ID a path names: its file name, if that parses (a bare `123` counts, as in 2.3.5).
fn log_id_of(path: &str) -> Option<i64> {
    path.rsplit('/').next()?.parse().ok()
}

/// Converts logs sent by a datanode (full paths) to the stored logID form, after the checks
/// of FACTS C.2: the log ID is the path's file name; an insert log's path must name
/// `segment_id` (3rd component from the end). A log with an empty path is accepted when it
/// already carries a log ID (newer datanodes send that) and rejected otherwise. 2.3.5 only
/// enforces the insert-path check; stats and delta paths naming another segment are logged.
pub(crate) fn to_stored_logs(
    kind: LogKind,
    segment_id: SegmentId,
    mut fields: Vec<FieldBinlog>,
) -> MetaResult<Vec<FieldBinlog>> {
    let invalid = |path: &str, reason: &str| MetaError::InvalidBinlog {
        segment_id,
        path: path.to_string(),
        reason: reason.to_string(),
    };
    for field in &mut fields {
        for binlog in &mut field.binlogs {
            if binlog.log_path.is_empty() {
                if binlog.log_id == 0 {
                    return Err(invalid("", "empty path and no log ID"));
                }
                continue;
            }
            let path_segment =
                milvus_storage::segment_id_from_binlog_path(kind.binlog_kind(), &binlog.log_path);
            if path_segment != Some(segment_id) {
                if kind == LogKind::Insert {
                    return Err(invalid(&binlog.log_path, "path names another segment"));
                }
                tracing::warn!(
                    segment_id,
                    path = %binlog.log_path,
                    kind = ?kind,
                    "log path names another segment"
                );
            }
            let Some(log_id) = log_id_of(&binlog.log_path) else {
                return Err(invalid(&binlog.log_path, "file name is not a log ID"));
            };
            binlog.log_id = log_id;
            binlog.log_path.clear();
        }
    }
    Ok(fields)
}

/// Brings logs loaded from a legacy record (inline, with paths) to the stored logID form
/// where the file name is a log ID; others keep their path.
pub(crate) fn to_stored_form(fields: &mut [FieldBinlog]) {
    for binlog in fields.iter_mut().flat_map(|field| field.binlogs.iter_mut()) {
        if binlog.log_path.is_empty() {
            continue;
        }
        if let Some(log_id) = log_id_of(&binlog.log_path) {
            binlog.log_id = log_id;
            binlog.log_path.clear();
        }
    }
}

/// Appends `incoming` to `existing` field by field: a field already listed gets the new logs
/// at the end of its list, a new field is added (E.12 step 5).
pub(crate) fn merge_by_field(existing: &mut Vec<FieldBinlog>, incoming: Vec<FieldBinlog>) {
    for field in incoming {
        match existing
            .iter_mut()
            .find(|have| have.field_id == field.field_id)
        {
            Some(have) => have.binlogs.extend(field.binlogs),
            None => existing.push(field),
        }
    }
}

/// The form a list is persisted in, one key per field: duplicate fields merged (in order),
/// fields in key order, which is also the order a reload yields.
pub(crate) fn canonical(fields: Vec<FieldBinlog>) -> Vec<FieldBinlog> {
    let mut merged: Vec<FieldBinlog> = Vec::with_capacity(fields.len());
    merge_by_field(&mut merged, fields);
    merged.sort_by(|a, b| field_key_order(a.field_id, b.field_id));
    merged
}

/// 2.3.5's guard against half-written flushes (FACTS C.2): unless the segment comes from a
/// compaction, when it has insert and stats logs and the first stats field has no merged
/// stats log, the first insert field and the first stats field list as many logs.
pub(crate) fn check_stats_count(seg: &SegmentInfo) -> MetaResult<()> {
    if !seg.compaction_from.is_empty() {
        return Ok(());
    }
    let (Some(insert), Some(stats)) = (seg.binlogs.first(), seg.statslogs.first()) else {
        return Ok(());
    };
    if stats.binlogs.iter().any(is_merged_stats_log) {
        return Ok(());
    }
    if insert.binlogs.len() == stats.binlogs.len() {
        return Ok(());
    }
    Err(MetaError::BinlogCountMismatch {
        segment_id: seg.id,
        binlogs: insert.binlogs.len(),
        statslogs: stats.binlogs.len(),
    })
}

fn is_merged_stats_log(binlog: &Binlog) -> bool {
    if binlog.log_path.is_empty() {
        binlog.log_id == MERGED_STATS_LOG_ID
    } else {
        binlog.log_path.rsplit('/').next() == Some("1")
    }
}

/// Whether the segment lists any log at all.
pub(crate) fn has_logs(seg: &SegmentInfo) -> bool {
    !(seg.binlogs.is_empty() && seg.statslogs.is_empty() && seg.deltalogs.is_empty())
}

/// The list of one kind.
pub(crate) fn logs_of(seg: &SegmentInfo, kind: LogKind) -> &Vec<FieldBinlog> {
    match kind {
        LogKind::Insert => &seg.binlogs,
        LogKind::Delta => &seg.deltalogs,
        LogKind::Stats => &seg.statslogs,
    }
}

/// The list of one kind, mutably.
pub(crate) fn logs_of_mut(seg: &mut SegmentInfo, kind: LogKind) -> &mut Vec<FieldBinlog> {
    match kind {
        LogKind::Insert => &mut seg.binlogs,
        LogKind::Delta => &mut seg.deltalogs,
        LogKind::Stats => &mut seg.statslogs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binlog(entries: i64, path: &str, log_id: i64) -> Binlog {
        Binlog {
            entries_num: entries,
            log_path: path.to_string(),
            log_id,
            ..Binlog::default()
        }
    }

    fn field(field_id: i64, binlogs: Vec<Binlog>) -> FieldBinlog {
        FieldBinlog { field_id, binlogs }
    }

    #[test]
    fn log_paths_join_the_root_like_go() {
        let path = |kind, root| log_path(kind, root, 1, 2, 3, 4, 5);
        assert_eq!(path(LogKind::Insert, "files"), "files/insert_log/1/2/3/4/5");
        assert_eq!(
            path(LogKind::Delta, "/var/lib/milvus/data/"),
            "/var/lib/milvus/data/delta_log/1/2/3/5"
        );
        assert_eq!(path(LogKind::Stats, ""), "stats_log/1/2/3/4/5");
        assert_eq!(
            path(LogKind::Insert, "a//b/./c/.."),
            "a/b/insert_log/1/2/3/4/5"
        );
        assert_eq!(path(LogKind::Insert, "/.."), "/insert_log/1/2/3/4/5");
        assert_eq!(path(LogKind::Insert, "../a"), "../a/insert_log/1/2/3/4/5");
    }

    #[test]
    fn full_paths_per_kind() {
        let seg = SegmentInfo {
            id: 3,
            collection_id: 1,
            partition_id: 2,
            binlogs: vec![field(100, vec![binlog(1, "", 7)])],
            statslogs: vec![field(100, vec![binlog(1, "", 1)])],
            deltalogs: vec![field(0, vec![binlog(1, "", 9), binlog(1, "legacy/x/9", 9)])],
            ..SegmentInfo::default()
        };
        let full = with_full_paths(&seg, "files");
        assert_eq!(
            full.binlogs[0].binlogs[0].log_path,
            "files/insert_log/1/2/3/100/7"
        );
        assert_eq!(
            full.statslogs[0].binlogs[0].log_path,
            "files/stats_log/1/2/3/100/1"
        );
        assert_eq!(
            full.deltalogs[0].binlogs[0].log_path,
            "files/delta_log/1/2/3/9"
        );
        assert_eq!(full.deltalogs[0].binlogs[1].log_path, "legacy/x/9");
        // The source stays in logID form.
        assert!(seg.binlogs[0].binlogs[0].log_path.is_empty());
    }

    #[test]
    fn row_count_rule() {
        let mut seg = SegmentInfo::default();
        assert_eq!(binlog_row_count(&seg), 0);
        seg.binlogs = vec![
            field(0, vec![binlog(3, "", 1), binlog(4, "", 2)]),
            field(1, vec![binlog(100, "", 3)]),
        ];
        assert_eq!(binlog_row_count(&seg), 7);
        seg.binlogs[0].binlogs.push(binlog(0, "", 4));
        assert_eq!(binlog_row_count(&seg), -1);
    }

    #[test]
    fn incoming_paths_are_validated_and_reduced_to_log_ids() {
        let stored = to_stored_logs(
            LogKind::Insert,
            3,
            vec![field(
                100,
                vec![
                    binlog(5, "files/insert_log/1/2/3/100/77", 0),
                    binlog(5, "", 78),
                ],
            )],
        )
        .expect("valid");
        assert_eq!(stored[0].binlogs[0].log_id, 77);
        assert!(stored[0].binlogs[0].log_path.is_empty());
        assert_eq!(stored[0].binlogs[1].log_id, 78);

        let wrong_segment = to_stored_logs(
            LogKind::Insert,
            4,
            vec![field(
                100,
                vec![binlog(5, "files/insert_log/1/2/3/100/77", 0)],
            )],
        );
        assert!(matches!(
            wrong_segment,
            Err(MetaError::InvalidBinlog { segment_id: 4, .. })
        ));

        let empty = to_stored_logs(LogKind::Delta, 3, vec![field(0, vec![binlog(5, "", 0)])]);
        assert!(matches!(empty, Err(MetaError::InvalidBinlog { .. })));

        let no_id = to_stored_logs(
            LogKind::Stats,
            3,
            vec![field(
                100,
                vec![binlog(5, "files/stats_log/1/2/3/100/x", 0)],
            )],
        );
        assert!(matches!(no_id, Err(MetaError::InvalidBinlog { .. })));

        // Only insert paths must name the segment (2.3.5 computes but ignores the others).
        let delta = to_stored_logs(
            LogKind::Delta,
            4,
            vec![field(0, vec![binlog(5, "files/delta_log/1/2/3/88", 0)])],
        )
        .expect("delta of another segment is only logged");
        assert_eq!(delta[0].binlogs[0].log_id, 88);
    }

    #[test]
    fn merge_and_canonical_order() {
        let mut have = vec![field(100, vec![binlog(1, "", 1)])];
        merge_by_field(
            &mut have,
            vec![
                field(2, vec![binlog(1, "", 2)]),
                field(100, vec![binlog(1, "", 3)]),
            ],
        );
        assert_eq!(have.len(), 2);
        assert_eq!(
            have[0].binlogs.iter().map(|b| b.log_id).collect::<Vec<_>>(),
            vec![1, 3]
        );
        let sorted = canonical(vec![
            field(2, vec![]),
            field(100, vec![binlog(1, "", 4)]),
            field(2, vec![binlog(1, "", 5)]),
        ]);
        assert_eq!(
            sorted.iter().map(|f| f.field_id).collect::<Vec<_>>(),
            vec![100, 2]
        );
        assert_eq!(sorted[1].binlogs[0].log_id, 5);
    }

    #[test]
    fn stats_count_guard() {
        let mut seg = SegmentInfo {
            id: 3,
            binlogs: vec![field(0, vec![binlog(1, "", 10), binlog(1, "", 11)])],
            statslogs: vec![field(100, vec![binlog(1, "", 12)])],
            ..SegmentInfo::default()
        };
        assert!(matches!(
            check_stats_count(&seg),
            Err(MetaError::BinlogCountMismatch {
                binlogs: 2,
                statslogs: 1,
                ..
            })
        ));
        // The merged stats log (file name 1) lifts the rule, in both forms.
        seg.statslogs[0]
            .binlogs
            .push(binlog(1, "", MERGED_STATS_LOG_ID));
        assert!(check_stats_count(&seg).is_ok());
        seg.statslogs[0].binlogs[1] = binlog(1, "files/stats_log/1/2/3/100/1", 0);
        assert!(check_stats_count(&seg).is_ok());
        seg.statslogs[0].binlogs.pop();
        seg.compaction_from = vec![1];
        assert!(check_stats_count(&seg).is_ok());
    }

    #[test]
    fn health() {
        assert!(is_healthy(SegmentState::Growing));
        assert!(is_healthy(SegmentState::Importing));
        assert!(!is_healthy(SegmentState::Dropped));
        assert!(!is_healthy(SegmentState::NotExist));
        assert!(!is_healthy(SegmentState::None));
        assert!(is_flush_state(SegmentState::Flushing));
        assert!(!is_flush_state(SegmentState::Sealed));
    }
}
