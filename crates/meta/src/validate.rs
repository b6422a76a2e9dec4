//! Checks of what nodes and coordinators report before it becomes metadata another component
//! acts on: vchannel names (a datanode watches them) and log paths (querynodes read them, GC
//! deletes them). Stricter than 2.3.5, which accepts any name and checks only the segment ID of
//! insert-log paths; README.md "Rejected input" lists each rule with its test.

use milvus_proto::data::FieldBinlog;
use milvus_types::{CollectionId, PartitionId, SegmentId};

use crate::error::{MetaError, MetaResult};
use crate::keys::LogKind;
use crate::logs::log_path;

/// Longest vchannel name accepted (MQ topic names in Pulsar and Kafka stay well below this).
const MAX_CHANNEL_NAME: usize = 255;

/// Checks that `name` is a DML vchannel of `collection_id` as RootCoord names them,
/// `{pchannel}_{collectionID}v{shard}`, with a physical channel of letters, digits, `-`, `_`
/// and `.` only (no path separators, no `..`), so a datanode never watches or subscribes to a
/// channel that is not the collection's.
pub fn check_vchannel(name: &str, collection_id: CollectionId) -> MetaResult<()> {
    let invalid = |reason: &str| MetaError::InvalidChannel {
        channel: name.chars().take(MAX_CHANNEL_NAME).collect(),
        reason: reason.to_string(),
    };
    if collection_id <= 0 {
        return Err(invalid("collection ID must be positive"));
    }
    if name.is_empty() {
        return Err(invalid("empty channel name"));
    }
    if name.len() > MAX_CHANNEL_NAME {
        return Err(invalid("channel name too long"));
    }
    let Some((pchannel, suffix)) = name.rsplit_once('_') else {
        return Err(invalid(
            "not a vchannel name ({pchannel}_{collectionID}v{shard})",
        ));
    };
    let Some((collection, shard)) = suffix.split_once('v') else {
        return Err(invalid(
            "not a vchannel name ({pchannel}_{collectionID}v{shard})",
        ));
    };
    if collection != collection_id.to_string() {
        return Err(invalid(&format!(
            "vchannel does not belong to collection {collection_id}"
        )));
    }
    if shard.is_empty() || !shard.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("shard index is not a number"));
    }
    check_pchannel(pchannel).map_err(invalid)
}

/// Checks a physical channel name (the key of a WatchChannels start position).
pub fn check_pchannel_name(name: &str) -> MetaResult<()> {
    check_pchannel(name).map_err(|reason| MetaError::InvalidChannel {
        channel: name.chars().take(MAX_CHANNEL_NAME).collect(),
        reason: reason.to_string(),
    })
}

fn check_pchannel(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_CHANNEL_NAME {
        return Err("physical channel name empty or too long");
    }
    if name.contains("..") {
        return Err("physical channel name contains '..'");
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if !name.bytes().all(allowed) {
        return Err(
            "physical channel name has characters other than letters, digits, '-', '_', '.'",
        );
    }
    Ok(())
}

/// The IDs a segment's log paths are built from.
#[derive(Clone, Copy, Debug)]
pub struct LogOwner {
    /// The segment's collection.
    pub collection_id: CollectionId,
    /// The segment's partition.
    pub partition_id: PartitionId,
    /// The segment.
    pub segment_id: SegmentId,
}

/// Checks logs a node reports for `owner`: every non-empty `log_path` must be exactly the path
/// the log ID it names rebuilds to under `root` (`{root}/{insert_log|stats_log|delta_log}/
/// {coll}/{part}/{seg}/[{field}/]{logID}`, FACTS C.2), and every log ID must be positive.
/// Only the log ID is stored, so a path anywhere else (`../`, absolute, another prefix, another
/// segment or field) would make querynodes read, and GC delete, a file other than the one the
/// node wrote.
pub fn check_reported_logs(
    root: &str,
    owner: LogOwner,
    kind: LogKind,
    fields: &[FieldBinlog],
) -> MetaResult<()> {
    let invalid = |path: &str, reason: String| MetaError::InvalidBinlog {
        segment_id: owner.segment_id,
        path: path.chars().take(512).collect(),
        reason,
    };
    for field in fields {
        if kind != LogKind::Delta && field.field_id < 0 {
            return Err(invalid("", format!("negative field ID {}", field.field_id)));
        }
        for binlog in &field.binlogs {
            if binlog.log_path.is_empty() {
                if binlog.log_id <= 0 {
                    return Err(invalid(
                        "",
                        format!("empty path and log ID {}", binlog.log_id),
                    ));
                }
                continue;
            }
            let Some(log_id) = binlog
                .log_path
                .rsplit('/')
                .next()
                .and_then(|name| name.parse::<i64>().ok())
                .filter(|id| *id > 0)
            else {
                return Err(invalid(
                    &binlog.log_path,
                    "file name is not a positive log ID".to_string(),
                ));
            };
            let expected = log_path(
                kind,
                root,
                owner.collection_id,
                owner.partition_id,
                owner.segment_id,
                field.field_id,
                log_id,
            );
            if binlog.log_path != expected {
                return Err(invalid(
                    &binlog.log_path,
                    format!("not the segment's own log file (expected {expected})"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use milvus_proto::data::Binlog;
    use milvus_types::ErrorCode;

    use super::*;

    const OWNER: LogOwner = LogOwner {
        collection_id: 10,
        partition_id: 20,
        segment_id: 30,
    };

    fn logs(field_id: i64, path: &str, log_id: i64) -> Vec<FieldBinlog> {
        vec![FieldBinlog {
            field_id,
            binlogs: vec![Binlog {
                log_path: path.to_string(),
                log_id,
                ..Default::default()
            }],
        }]
    }

    #[test]
    fn vchannels_of_the_collection_are_accepted() {
        check_vchannel(
            "by-dev-rootcoord-dml_1_470730857520700478v0",
            470730857520700478,
        )
        .expect("rootcoord name");
        check_vchannel("by-dev-rootcoord-dml_15_7v12", 7).expect("two-digit shard");
    }

    #[test]
    fn hostile_vchannels_are_rejected() {
        for (name, collection) in [
            ("", 7),
            ("by-dev-rootcoord-dml_1_7v0", 0),
            ("by-dev-rootcoord-dml_1_7v0", -7),
            ("by-dev-rootcoord-dml_1_8v0", 7),
            ("by-dev-rootcoord-dml_1_7v", 7),
            ("by-dev-rootcoord-dml_1_7vx", 7),
            ("plain", 7),
            ("_7v0", 7),
            ("../../../etc/passwd_7v0", 7),
            ("a/b_7v0", 7),
            ("by-dev..x_7v0", 7),
            ("by dev_7v0", 7),
        ] {
            let err = check_vchannel(name, collection).expect_err(name);
            assert_eq!(err.code(), ErrorCode::PARAMETER_INVALID, "{name}");
        }
        let long = format!("{}_7v0", "a".repeat(300));
        assert!(check_vchannel(&long, 7).is_err());
    }

    #[test]
    fn pchannel_names() {
        check_pchannel_name("by-dev-rootcoord-dml_3").expect("rootcoord pchannel");
        for name in ["", "../x", "a/b", "x y"] {
            assert!(check_pchannel_name(name).is_err(), "{name}");
        }
    }

    #[test]
    fn the_segments_own_paths_are_accepted() {
        for (kind, path) in [
            (LogKind::Insert, "files/insert_log/10/20/30/100/5"),
            (LogKind::Stats, "files/stats_log/10/20/30/100/1"),
            (LogKind::Delta, "files/delta_log/10/20/30/6"),
        ] {
            check_reported_logs("files", OWNER, kind, &logs(100, path, 0)).expect(path);
        }
        check_reported_logs(
            "/var/lib/milvus/data/",
            OWNER,
            LogKind::Insert,
            &logs(100, "/var/lib/milvus/data/insert_log/10/20/30/100/5", 0),
        )
        .expect("local root with trailing slash");
        check_reported_logs("files", OWNER, LogKind::Insert, &logs(100, "", 9))
            .expect("log ID without path");
    }

    #[test]
    fn paths_outside_the_segment_are_rejected() {
        for (kind, path) in [
            // traversal that still names the segment 3rd from the end (2.3.5's only check)
            (LogKind::Insert, "../../tmp/x/insert_log/10/20/30/100/5"),
            (
                LogKind::Insert,
                "files/insert_log/10/20/30/../../../../../etc/5",
            ),
            (LogKind::Insert, "/etc/insert_log/10/20/30/100/5"),
            (LogKind::Insert, "other/insert_log/10/20/30/100/5"),
            (LogKind::Insert, "files/insert_log/10/20/31/100/5"),
            (LogKind::Insert, "files/insert_log/11/20/30/100/5"),
            (LogKind::Insert, "files/insert_log/10/20/30/101/5"),
            (LogKind::Insert, "files/stats_log/10/20/30/100/5"),
            (LogKind::Insert, "files/insert_log/10/20/30/100/-5"),
            (LogKind::Insert, "files/insert_log/10/20/30/100/x"),
            (LogKind::Stats, "files/stats_log/10/20/31/100/5"),
            (LogKind::Delta, "/etc/6"),
            (LogKind::Delta, "files/delta_log/10/20/31/6"),
            (LogKind::Delta, "files/delta_log/10/20/30/100/6"),
        ] {
            let err =
                check_reported_logs("files", OWNER, kind, &logs(100, path, 0)).expect_err(path);
            assert_eq!(err.code(), ErrorCode::PARAMETER_INVALID, "{path}");
        }
        for log_id in [0, -3] {
            assert!(
                check_reported_logs("files", OWNER, LogKind::Delta, &logs(0, "", log_id)).is_err()
            );
        }
        assert!(
            check_reported_logs(
                "files",
                OWNER,
                LogKind::Insert,
                &logs(-1, "files/insert_log/10/20/30/-1/5", 0)
            )
            .is_err()
        );
    }
}
