//! Request checks: nothing malformed is relayed to a DataNode or reaches the meta. The Go
//! DataNode dereferences `import_task` without a nil check (a nil one takes the standalone
//! down), and Go's DataCoord indexes `start_positions[0]` of a SaveImportSegment unchecked.

use std::collections::{BTreeMap, BTreeSet};

use milvus_proto::common::SegmentState;
use milvus_proto::data::{
    Binlog, FieldBinlog, ImportTask, ImportTaskRequest, SaveImportSegmentRequest, SegmentInfo,
};
use milvus_types::{MilvusError, MilvusResult, SegmentId};

fn invalid(expected: impl std::fmt::Display, actual: impl std::fmt::Display) -> MilvusError {
    MilvusError::parameter_invalid(expected, actual)
}

/// The import task of an Import request, if every field a DataNode relies on is sane and every
/// file stays where imports may read (`local_root`: see `ImportService::local_sources_under`).
pub(crate) fn import_task<'a>(
    req: &'a ImportTaskRequest,
    local_root: Option<&str>,
) -> MilvusResult<&'a ImportTask> {
    let task = req
        .import_task
        .as_ref()
        .ok_or_else(|| invalid("an import_task", "none"))?;
    if task.task_id <= 0 {
        return Err(invalid("a positive task_id", task.task_id));
    }
    if task.collection_id <= 0 {
        return Err(invalid("a positive collection_id", task.collection_id));
    }
    // 0 asks the DataNode to spread rows over the partitions of a partition-key collection.
    if task.partition_id < 0 {
        return Err(invalid("a partition_id >= 0", task.partition_id));
    }
    if task.channel_names.is_empty() || task.channel_names.iter().any(|c| c.trim().is_empty()) {
        return Err(invalid(
            "non-empty channel_names",
            format!("{:?}", task.channel_names),
        ));
    }
    if task.files.is_empty() || task.files.iter().any(|f| f.trim().is_empty()) {
        return Err(invalid("non-empty files", format!("{:?}", task.files)));
    }
    for file in &task.files {
        source_file(file, local_root)?;
    }
    Ok(task)
}

/// A DataNode reads import files with its own chunk manager: on local storage that is a plain
/// `open`, so `../../etc/shadow` or `/etc/shadow` would be read (and its content echoed in
/// failure reasons). Files may not climb out with `..`, and on local storage must lie under the
/// storage directory.
fn source_file(file: &str, local_root: Option<&str>) -> MilvusResult<()> {
    let climbs = file.split(['/', '\\']).any(|part| part == "..");
    if climbs || file.contains('\0') {
        return Err(invalid("an import file without `..` components", file));
    }
    if let Some(root) = local_root {
        let root = root.trim_end_matches('/');
        let under_root = file
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1);
        if !under_root {
            return Err(invalid(format!("an import file under {root}/"), file));
        }
    }
    Ok(())
}

/// A SaveImportSegment whose fields agree with each other and with its SaveBinlogPaths part.
pub(crate) fn save_import_segment(req: &SaveImportSegmentRequest) -> MilvusResult<()> {
    let segment_id = req.segment_id;
    if segment_id <= 0 {
        return Err(invalid("a positive segment_id", segment_id));
    }
    if req.collection_id <= 0 {
        return Err(invalid("a positive collection_id", req.collection_id));
    }
    if req.partition_id <= 0 {
        return Err(invalid("a positive partition_id", req.partition_id));
    }
    if req.channel_name.trim().is_empty() {
        return Err(invalid("a channel_name", "empty"));
    }
    if req.row_num < 0 {
        return Err(invalid("row_num >= 0", req.row_num));
    }
    let save = req
        .save_binlog_path_req
        .as_ref()
        .ok_or_else(|| invalid("a save_binlog_path_req", "none"))?;
    if save.segment_id != segment_id {
        return Err(invalid(
            format!("save_binlog_path_req.segmentID {segment_id}"),
            save.segment_id,
        ));
    }
    if save.collection_id != req.collection_id {
        return Err(invalid(
            format!("save_binlog_path_req.collectionID {}", req.collection_id),
            save.collection_id,
        ));
    }
    if !save.channel.is_empty() && save.channel != req.channel_name {
        return Err(invalid(
            format!("save_binlog_path_req.channel {}", req.channel_name),
            &save.channel,
        ));
    }
    // An import segment is saved once, still Importing; flushing and dropping are later steps.
    if save.flushed || save.dropped {
        return Err(invalid(
            "flushed=false and dropped=false",
            format!("flushed={} dropped={}", save.flushed, save.dropped),
        ));
    }
    // Start positions may name other segments in SaveBinlogPaths; here only this one.
    if save.start_positions.is_empty() {
        return Err(invalid("a start position of the segment", "none"));
    }
    for entry in &save.start_positions {
        if entry.segment_id != segment_id || entry.start_position.is_none() {
            return Err(invalid(
                format!("start positions of segment {segment_id}"),
                format!(
                    "segment {} with position: {}",
                    entry.segment_id,
                    entry.start_position.is_some()
                ),
            ));
        }
    }
    if save.field2_binlog_paths.is_empty() {
        return Err(invalid("insert binlogs", "none"));
    }
    logs("insert", &save.field2_binlog_paths, false)?;
    logs("stats", &save.field2_statslog_paths, true)?;
    logs("delta", &save.deltalogs, true)?;
    Ok(())
}

/// Each field listed once with at least one log (unless `may_be_empty`), each log named by a
/// path without `..` (or by a log ID) and with a non-negative entry count. Paths are absolute
/// on local storage, so a leading `/` is fine; the meta checks they name this segment.
fn logs(kind: &str, fields: &[FieldBinlog], may_be_empty: bool) -> MilvusResult<()> {
    // A field may be listed more than once: a DataNode that reads the import file in chunks
    // sends one entry per chunk, and the meta merges them (as 2.3.5 does).
    for field in fields {
        if field.field_id < 0 {
            return Err(invalid(
                format!("{kind} logs with field IDs >= 0"),
                field.field_id,
            ));
        }
        if field.binlogs.is_empty() && !may_be_empty {
            return Err(invalid(
                format!("{kind} logs of field {}", field.field_id),
                "none",
            ));
        }
        for binlog in &field.binlogs {
            let path = binlog.log_path.as_str();
            let named = if path.is_empty() {
                binlog.log_id > 0
            } else {
                !path.split('/').any(|part| part == "..")
            };
            if !named || binlog.entries_num < 0 {
                return Err(invalid(
                    format!("a sane {kind} log of field {}", field.field_id),
                    format!(
                        "path {path:?}, logID {}, entries {}",
                        binlog.log_id, binlog.entries_num
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The stored segment is the Importing segment the request describes.
pub(crate) fn import_segment(
    seg: &SegmentInfo,
    req: &SaveImportSegmentRequest,
) -> MilvusResult<()> {
    if seg.state != SegmentState::Importing as i32 || !seg.is_importing {
        let state = SegmentState::try_from(seg.state).unwrap_or(SegmentState::None);
        return Err(invalid(
            format!("segment {} Importing", seg.id),
            format!("{state:?} (is_importing={})", seg.is_importing),
        ));
    }
    let stored = (
        seg.collection_id,
        seg.partition_id,
        seg.insert_channel.as_str(),
    );
    let asked = (
        req.collection_id,
        req.partition_id,
        req.channel_name.as_str(),
    );
    if stored != asked {
        return Err(invalid(
            format!("segment {} of {stored:?}", seg.id),
            format!("{asked:?}"),
        ));
    }
    Ok(())
}

/// Whether `seg` already holds exactly the insert logs `incoming` names: a SaveImportSegment
/// retried after its write landed (the answer was lost). A segment holding other insert logs is
/// an error: appending them would count its rows twice.
pub(crate) fn already_saved(
    segment_id: SegmentId,
    stored: &[FieldBinlog],
    incoming: &[FieldBinlog],
) -> MilvusResult<bool> {
    if stored.iter().all(|field| field.binlogs.is_empty()) {
        return Ok(false);
    }
    if log_ids(stored) == log_ids(incoming) {
        return Ok(true);
    }
    Err(invalid(
        format!("segment {segment_id} without insert logs, or the same ones again"),
        "other insert logs",
    ))
}

fn log_ids(fields: &[FieldBinlog]) -> BTreeMap<i64, BTreeSet<i64>> {
    let mut ids: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for field in fields {
        ids.entry(field.field_id)
            .or_default()
            .extend(field.binlogs.iter().map(log_id));
    }
    ids
}

/// The log ID a binlog names: its own, or its file name (logID form stores only the ID).
fn log_id(binlog: &Binlog) -> i64 {
    if binlog.log_path.is_empty() {
        return binlog.log_id;
    }
    binlog
        .log_path
        .rsplit('/')
        .next()
        .and_then(|name| name.parse().ok())
        .unwrap_or(binlog.log_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binlog(path: &str) -> Binlog {
        Binlog {
            log_path: path.to_string(),
            entries_num: 1,
            ..Default::default()
        }
    }

    #[test]
    fn a_saved_log_matches_its_path_by_log_id() {
        let stored = vec![FieldBinlog {
            field_id: 100,
            binlogs: vec![Binlog {
                log_id: 7,
                ..Default::default()
            }],
        }];
        let same = vec![FieldBinlog {
            field_id: 100,
            binlogs: vec![binlog("files/insert_log/1/2/3/100/7")],
        }];
        let other = vec![FieldBinlog {
            field_id: 100,
            binlogs: vec![binlog("files/insert_log/1/2/3/100/8")],
        }];
        assert!(!already_saved(3, &[], &same).unwrap());
        assert!(already_saved(3, &stored, &same).unwrap());
        assert!(already_saved(3, &stored, &other).is_err());
    }

    #[test]
    fn import_files_stay_where_imports_may_read() {
        let request = |files: &[&str]| ImportTaskRequest {
            import_task: Some(ImportTask {
                task_id: 1,
                collection_id: 2,
                channel_names: vec!["ch".into()],
                files: files.iter().map(|f| f.to_string()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let local = Some("/data/milvus/");
        assert!(import_task(&request(&["/data/milvus/import/rows.json"]), local).is_ok());
        assert!(import_task(&request(&["import/rows.json"]), None).is_ok());
        for hostile in [
            "/etc/shadow",
            "/data/milvus/../../etc/passwd",
            "/data/milvusX/rows.json",
            "/data/milvus/",
            "import/rows.json",
        ] {
            assert!(
                import_task(&request(&[hostile]), local).is_err(),
                "{hostile}"
            );
        }
        for hostile in ["../../etc/passwd", "a/../../b", "a\\..\\b", "a\0b"] {
            assert!(
                import_task(&request(&[hostile]), None).is_err(),
                "{hostile}"
            );
        }
    }

    #[test]
    fn log_paths_must_be_named_and_stay_in_the_tree() {
        let field = |path: &str| FieldBinlog {
            field_id: 100,
            binlogs: vec![binlog(path)],
        };
        assert!(logs("insert", &[field("a/b/7")], false).is_ok());
        assert!(
            logs(
                "insert",
                &[field("/var/lib/milvus/data/insert_log/1/2/3/100/7")],
                false
            )
            .is_ok()
        );
        assert!(logs("insert", &[field("a/../../7")], false).is_err());
        assert!(logs("insert", &[field("")], false).is_err());
        // One entry per chunk the DataNode read.
        assert!(logs("insert", &[field("a/7"), field("a/8")], false).is_ok());
    }
}
