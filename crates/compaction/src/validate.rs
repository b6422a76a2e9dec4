//! The checks a DataNode's result passes before anything is written (better than 2.3.5, which
//! stores whatever it gets): it must be this plan's, on its channel, with a row count its insert
//! logs confirm and every log under the result segment's own paths.
//!
//! Checks that depend on the current meta (sources still healthy, the segment ID not taken) run
//! under the meta writer lock in `Meta::complete_compaction`.

use milvus_proto::data::{CompactionResult, FieldBinlog};
use milvus_storage::{BinlogKind, binlog_path, log_id_from_path};

use crate::record::CompactionTaskRecord;

/// Why `result` does not fit the task, or `Ok` when it does. `root` is the chunk manager's.
pub(crate) fn check_result(
    task: &CompactionTaskRecord,
    result: &CompactionResult,
    root: &str,
) -> Result<(), String> {
    let plan_id = task.plan_id();
    if result.plan_id != plan_id {
        return Err(format!(
            "result of plan {}, expected {plan_id}",
            result.plan_id
        ));
    }
    if result.channel != task.channel {
        return Err(format!(
            "result on channel {:?}, the plan's is {:?}",
            result.channel, task.channel
        ));
    }
    if result.segment_id <= 0 {
        return Err(format!("invalid result segment ID {}", result.segment_id));
    }
    if task.sources().contains(&result.segment_id) {
        return Err(format!(
            "result segment {} is one of the sources",
            result.segment_id
        ));
    }
    check_rows(result)?;
    let ids = (task.collection_id, task.partition_id, result.segment_id);
    check_paths(BinlogKind::Insert, &result.insert_logs, root, ids)?;
    check_paths(BinlogKind::Stats, &result.field2_statslog_paths, root, ids)?;
    check_paths(BinlogKind::Delta, &result.deltalogs, root, ids)
}

/// Rows ≥ 0; with insert logs, every field's logs hold exactly that many rows (none empty);
/// rows without insert logs are not believed.
fn check_rows(result: &CompactionResult) -> Result<(), String> {
    let rows = result.num_of_rows;
    if rows < 0 {
        return Err(format!("negative row count {rows}"));
    }
    if result.insert_logs.is_empty() {
        if rows > 0 {
            return Err(format!("{rows} rows but no insert log"));
        }
        return Ok(());
    }
    for field in &result.insert_logs {
        if let Some(empty) = field.binlogs.iter().find(|binlog| binlog.entries_num <= 0) {
            return Err(format!(
                "insert log {:?} of field {} holds {} rows",
                empty.log_path, field.field_id, empty.entries_num
            ));
        }
        let logged: i64 = field.binlogs.iter().map(|binlog| binlog.entries_num).sum();
        if logged != rows {
            return Err(format!(
                "{rows} rows but the insert logs of field {} hold {logged}",
                field.field_id
            ));
        }
    }
    Ok(())
}

/// Every log is `{root}/{kind}_log/{coll}/{part}/{result segment}/[{field}/]{logID}` (or, as
/// newer DataNodes send it, no path and a log ID).
fn check_paths(
    kind: BinlogKind,
    fields: &[FieldBinlog],
    root: &str,
    (coll, part, seg): (i64, i64, i64),
) -> Result<(), String> {
    for field in fields {
        for binlog in &field.binlogs {
            if binlog.log_path.is_empty() {
                if binlog.log_id <= 0 {
                    return Err(format!(
                        "{} log of field {} has neither path nor log ID",
                        kind.dir(),
                        field.field_id
                    ));
                }
                continue;
            }
            let log_id = log_id_from_path(&binlog.log_path).map_err(|err| err.to_string())?;
            let expected = binlog_path(root, kind, coll, part, seg, field.field_id, log_id);
            if binlog.log_path != expected {
                return Err(format!(
                    "log path {:?} is not under the result segment (expected {expected:?})",
                    binlog.log_path
                ));
            }
            if binlog.log_id != 0 && binlog.log_id != log_id {
                return Err(format!(
                    "log ID {} does not match its path {:?}",
                    binlog.log_id, binlog.log_path
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use milvus_proto::data::{Binlog, CompactionPlan, CompactionSegmentBinlogs};

    use super::*;

    fn task() -> CompactionTaskRecord {
        CompactionTaskRecord {
            plan: Some(CompactionPlan {
                plan_id: 7,
                segment_binlogs: vec![CompactionSegmentBinlogs {
                    segment_id: 1,
                    ..CompactionSegmentBinlogs::default()
                }],
                ..CompactionPlan::default()
            }),
            collection_id: 10,
            partition_id: 20,
            channel: "ch".to_string(),
            ..CompactionTaskRecord::default()
        }
    }

    fn log(path: &str, rows: i64) -> Binlog {
        Binlog {
            entries_num: rows,
            log_path: path.to_string(),
            ..Binlog::default()
        }
    }

    fn result() -> CompactionResult {
        CompactionResult {
            plan_id: 7,
            segment_id: 30,
            num_of_rows: 5,
            channel: "ch".to_string(),
            insert_logs: vec![
                FieldBinlog {
                    field_id: 0,
                    binlogs: vec![
                        log("files/insert_log/10/20/30/0/1", 2),
                        log("files/insert_log/10/20/30/0/2", 3),
                    ],
                },
                FieldBinlog {
                    field_id: 100,
                    binlogs: vec![log("files/insert_log/10/20/30/100/3", 5)],
                },
            ],
            field2_statslog_paths: vec![FieldBinlog {
                field_id: 100,
                binlogs: vec![log("files/stats_log/10/20/30/100/1", 5)],
            }],
            deltalogs: vec![FieldBinlog {
                field_id: 0,
                binlogs: vec![log("files/delta_log/10/20/30/9", 1)],
            }],
        }
    }

    fn refused(change: impl FnOnce(&mut CompactionResult)) -> String {
        let mut bad = result();
        change(&mut bad);
        check_result(&task(), &bad, "files").expect_err("refused")
    }

    #[test]
    fn a_fitting_result_passes() {
        assert_eq!(check_result(&task(), &result(), "files"), Ok(()));
        let mut empty = result();
        empty.num_of_rows = 0;
        empty.insert_logs.clear();
        empty.field2_statslog_paths.clear();
        assert_eq!(check_result(&task(), &empty, "files"), Ok(()));
    }

    #[test]
    fn each_misfit_is_refused() {
        assert!(refused(|r| r.plan_id = 8).contains("plan 8"));
        assert!(refused(|r| r.channel = "other".into()).contains("channel"));
        assert!(refused(|r| r.segment_id = 1).contains("one of the sources"));
        assert!(refused(|r| r.segment_id = 0).contains("segment ID"));
        assert!(refused(|r| r.num_of_rows = -1).contains("negative"));
        assert!(refused(|r| r.num_of_rows = 6).contains("hold 5"));
        assert!(refused(|r| r.insert_logs[1].binlogs[0].entries_num = 4).contains("hold 4"));
        assert!(refused(|r| r.insert_logs[0].binlogs[0].entries_num = 0).contains("holds 0"));
        assert!(refused(|r| r.insert_logs.clear()).contains("no insert log"));
        // Paths: other root, collection, partition, segment, field, kind, unparsable ID.
        for bad in [
            "other/insert_log/10/20/30/0/1",
            "files/insert_log/11/20/30/0/1",
            "files/insert_log/10/21/30/0/1",
            "files/insert_log/10/20/31/0/1",
            "files/insert_log/10/20/30/1/1",
            "files/stats_log/10/20/30/0/1",
            "files/insert_log/10/20/30/0/x",
        ] {
            let reason = refused(|r| r.insert_logs[0].binlogs[0].log_path = bad.into());
            assert!(
                reason.contains(bad) || reason.contains("x"),
                "{bad}: {reason}"
            );
        }
        refused(|r| {
            r.field2_statslog_paths[0].binlogs[0].log_path = "files/stats_log/10/20/1/100/1".into()
        });
        refused(|r| r.deltalogs[0].binlogs[0].log_path = "files/delta_log/10/20/30/0/9".into());
        refused(|r| r.deltalogs[0].binlogs[0].log_id = 10);
        refused(|r| r.deltalogs[0].binlogs[0].log_path.clear());
    }
}
