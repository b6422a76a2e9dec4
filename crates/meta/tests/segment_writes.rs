//! Segment writes of `Meta` on the memory store and on a real etcd (`ETCD_ENDPOINTS`): what
//! is persisted decodes to what memory says, and a reload equals memory.

use std::sync::Arc;

use bytes::Bytes;
use datacoord_meta::testing::{
    assert_matches_store, flushed_segment, position, segment, sent_logs, store_differences,
};
use datacoord_meta::{
    BinlogUpdate, Catalog, ChannelRemoval, DroppedSegment, LogKind, Meta, MetaError,
    channel_removal_key, log_key, segment_key,
};
use milvus_metastore::MetaKv;
use milvus_proto::common::SegmentState;
use milvus_proto::data::{CheckPoint, SegmentInfo, SegmentStartPosition};
use prost::Message;

const ROOT: &str = "files";
const COLL: i64 = 1;
const PART: i64 = 2;

async fn open(kv: &Arc<dyn MetaKv>) -> Meta {
    Meta::load(Catalog::new(kv.clone())).await.expect("load")
}

async fn dump(kv: &Arc<dyn MetaKv>) -> Vec<(String, Bytes)> {
    kv.load_all_with_prefix("datacoord-meta/")
        .await
        .expect("dump")
}

async fn stored_segment(kv: &Arc<dyn MetaKv>, id: i64) -> Option<SegmentInfo> {
    let value = kv.load(&segment_key(COLL, PART, id)).await.expect("load")?;
    Some(SegmentInfo::decode(value).expect("decode"))
}

fn flushed_with_logs(id: i64, channel: &str, first_log: i64, logs: i64) -> SegmentInfo {
    flushed_segment((COLL, PART, id), channel, ROOT, first_log, logs)
}

/// (field, log IDs) of one log list.
fn log_ids(kind_lists: &[milvus_proto::data::FieldBinlog]) -> Vec<(i64, Vec<i64>)> {
    kind_lists
        .iter()
        .map(|field| {
            (
                field.field_id,
                field.binlogs.iter().map(|b| b.log_id).collect(),
            )
        })
        .collect()
}
async fn add_segment_stores_logid_form(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    meta.add_segment(segment(1, COLL, PART, "ch", SegmentState::Growing))
        .await
        .expect("add growing");
    // AddSegment keeps a row count the logs cannot confirm (no insert logs).
    let mut counted = segment(2, COLL, PART, "ch", SegmentState::Growing);
    counted.num_of_rows = 5;
    meta.add_segment(counted).await.expect("add");
    assert_eq!(meta.segment(2).expect("seg 2").num_of_rows, 5);

    // A compaction result: rows corrected from the logs, logs in logID form, child indexed.
    let mut compacted = flushed_with_logs(3, "ch", 500, 2);
    compacted.num_of_rows = 0;
    compacted.compaction_from = vec![7, 8];
    compacted.created_by_compaction = true;
    compacted.statslogs[0].binlogs.truncate(1);
    meta.add_segment(compacted).await.expect("add compacted");
    let stored = meta.segment(3).expect("seg 3");
    assert_eq!(stored.num_of_rows, 20);
    assert_eq!(
        log_ids(&stored.binlogs),
        vec![
            (0, vec![500, 501]),
            (1, vec![500, 501]),
            (100, vec![500, 501])
        ]
    );
    assert!(
        stored
            .binlogs
            .iter()
            .flat_map(|f| &f.binlogs)
            .all(|b| b.log_path.is_empty())
    );
    assert_eq!(meta.child_of(7).map(|s| s.id), Some(3));
    assert!(meta.child_of(3).is_none());
    let record = stored_segment(&kv, 3).await.expect("record");
    assert!(
        record.binlogs.is_empty() && record.statslogs.is_empty() && record.deltalogs.is_empty()
    );
    assert!(
        kv.load(&log_key(LogKind::Delta, COLL, PART, 3, 0))
            .await
            .expect("load")
            .is_some()
    );

    // Stats logs fewer than insert logs on a non-compacted segment: refused, nothing written.
    let before = dump(&kv).await;
    let mut mismatched = flushed_with_logs(4, "ch", 600, 2);
    mismatched.statslogs[0].binlogs.truncate(1);
    let err = meta
        .add_segment(mismatched)
        .await
        .expect_err("count mismatch");
    assert!(
        matches!(err, MetaError::BinlogCountMismatch { segment_id: 4, .. }),
        "{err}"
    );
    // An insert path naming another segment: refused, nothing written.
    let mut wrong = flushed_with_logs(5, "ch", 700, 1);
    wrong.binlogs[0].binlogs[0].log_path = "files/insert_log/1/2/6/0/700".into();
    let err = meta.add_segment(wrong).await.expect_err("wrong path");
    assert!(
        matches!(err, MetaError::InvalidBinlog { segment_id: 5, .. }),
        "{err}"
    );
    assert_eq!(dump(&kv).await, before);
    assert!(meta.segment(4).is_none() && meta.segment(5).is_none());
    assert_matches_store(&meta).await;
}

async fn unset_is_importing_persists_healthy_segments(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    let err = meta.unset_is_importing(9).await.expect_err("unknown");
    assert!(matches!(err, MetaError::SegmentNotFound(9)));

    let mut imported = flushed_with_logs(1, "ch", 100, 2);
    imported.is_importing = true;
    meta.add_segment(imported).await.expect("add");
    meta.unset_is_importing(1).await.expect("unset");
    assert!(!meta.segment(1).expect("seg").is_importing);
    assert!(!stored_segment(&kv, 1).await.expect("record").is_importing);

    // An unhealthy segment is left as stored (2.3.5 clears its flag in memory only).
    let mut dropped = segment(2, COLL, PART, "ch", SegmentState::Dropped);
    dropped.is_importing = true;
    meta.add_segment(dropped).await.expect("add dropped");
    meta.unset_is_importing(2).await.expect("unset dropped");
    assert!(meta.segment(2).expect("seg").is_importing);
    assert!(stored_segment(&kv, 2).await.expect("record").is_importing);
    assert_matches_store(&meta).await;
}

async fn set_state_edge_cases(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    let err = meta
        .set_state(9, SegmentState::Sealed)
        .await
        .expect_err("unknown");
    assert!(matches!(err, MetaError::SegmentNotFound(9)));
    meta.set_state(9, SegmentState::Dropped)
        .await
        .expect("idempotent drop");
    assert!(dump(&kv).await.is_empty());

    let mut growing = segment(1, COLL, PART, "ch", SegmentState::Growing);
    growing.num_of_rows = 7;
    meta.add_segment(growing).await.expect("add");
    meta.set_state(1, SegmentState::Sealed).await.expect("seal");
    let sealed = meta.segment(1).expect("seg");
    assert_eq!(sealed.state(), SegmentState::Sealed);
    // AlterSegments stores the insert-log count even when it is 0.
    assert_eq!(sealed.num_of_rows, 0);
    assert_eq!(
        stored_segment(&kv, 1).await.expect("record").state(),
        SegmentState::Sealed
    );

    meta.add_segment(flushed_with_logs(2, "ch", 100, 1))
        .await
        .expect("add flushed");
    meta.set_state(2, SegmentState::Dropped)
        .await
        .expect("drop");
    let dropped = meta.segment(2).expect("seg");
    assert_eq!(dropped.state(), SegmentState::Dropped);
    assert_eq!(dropped.dropped_at, 0, "SetState sets nothing but the state");
    assert!(meta.healthy_segment(2).is_none());
    // No transition out of an unhealthy state: silently kept.
    meta.set_state(2, SegmentState::Flushed)
        .await
        .expect("noop");
    assert_eq!(meta.segment(2).expect("seg").state(), SegmentState::Dropped);
    // Transitions are not validated.
    meta.set_state(1, SegmentState::Growing)
        .await
        .expect("back to growing");
    assert_eq!(meta.segment(1).expect("seg").state(), SegmentState::Growing);
    assert_matches_store(&meta).await;
}

async fn save_binlog_paths_merges(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    meta.add_segment(segment(1, COLL, PART, "ch", SegmentState::Growing))
        .await
        .expect("add");
    meta.add_segment(segment(2, COLL, PART, "ch", SegmentState::Growing))
        .await
        .expect("add");
    let ids = (COLL, PART, 1);
    let first = BinlogUpdate {
        segment_id: 1,
        binlogs: [100, 0, 1]
            .iter()
            .map(|field| sent_logs(LogKind::Insert, ROOT, ids, *field, &[11, 12], 10))
            .collect(),
        statslogs: vec![sent_logs(LogKind::Stats, ROOT, ids, 100, &[13, 14], 10)],
        deltalogs: vec![sent_logs(LogKind::Delta, ROOT, ids, 0, &[15], 1)],
        checkpoints: vec![CheckPoint {
            segment_id: 1,
            position: Some(position("ch", 100)),
            num_of_rows: 20,
        }],
        start_positions: vec![
            SegmentStartPosition {
                start_position: Some(position("ch", 10)),
                segment_id: 1,
            },
            SegmentStartPosition {
                start_position: Some(position("ch", 11)),
                segment_id: 2,
            },
            SegmentStartPosition {
                start_position: Some(position("ch", 12)),
                segment_id: 99,
            },
            SegmentStartPosition {
                start_position: Some(milvus_proto::msg::MsgPosition {
                    timestamp: 13,
                    ..Default::default()
                }),
                segment_id: 1,
            },
        ],
        ..BinlogUpdate::default()
    };
    meta.save_binlog_paths(first).await.expect("first sync");
    let seg = meta.segment(1).expect("seg");
    assert_eq!(seg.state(), SegmentState::Growing);
    assert_eq!(seg.num_of_rows, 20);
    assert_eq!(seg.dml_position.as_ref().map(|p| p.timestamp), Some(100));
    // The start position without message ID is ignored.
    assert_eq!(seg.start_position.as_ref().map(|p| p.timestamp), Some(10));
    assert_eq!(
        meta.segment(2)
            .expect("seg 2")
            .start_position
            .as_ref()
            .map(|p| p.timestamp),
        Some(11)
    );
    assert!(meta.segment(99).is_none());
    // Fields in key order, logs in logID form.
    assert_eq!(
        log_ids(&seg.binlogs),
        vec![(0, vec![11, 12]), (1, vec![11, 12]), (100, vec![11, 12])]
    );
    assert_eq!(log_ids(&seg.statslogs), vec![(100, vec![13, 14])]);
    assert_matches_store(&meta).await;

    // Second sync: appended per field; an older checkpoint changes nothing.
    let second = BinlogUpdate {
        segment_id: 1,
        binlogs: [0, 1, 100]
            .iter()
            .map(|field| sent_logs(LogKind::Insert, ROOT, ids, *field, &[21], 10))
            .collect(),
        statslogs: vec![sent_logs(LogKind::Stats, ROOT, ids, 100, &[22], 10)],
        checkpoints: vec![
            CheckPoint {
                segment_id: 1,
                position: Some(position("ch", 50)),
                num_of_rows: 999,
            },
            CheckPoint {
                segment_id: 2,
                position: Some(position("ch", 500)),
                num_of_rows: 999,
            },
        ],
        ..BinlogUpdate::default()
    };
    meta.save_binlog_paths(second).await.expect("second sync");
    let seg = meta.segment(1).expect("seg");
    assert_eq!(log_ids(&seg.binlogs)[0], (0, vec![11, 12, 21]));
    assert_eq!(log_ids(&seg.deltalogs), vec![(0, vec![15])]);
    assert_eq!(seg.dml_position.as_ref().map(|p| p.timestamp), Some(100));
    assert_eq!(seg.num_of_rows, 30);
    assert!(meta.segment(2).expect("seg 2").dml_position.is_none());
    let stored = kv
        .load(&log_key(LogKind::Insert, COLL, PART, 1, 100))
        .await
        .expect("load")
        .expect("key");
    let stored = milvus_proto::data::FieldBinlog::decode(stored).expect("decode");
    assert_eq!(
        stored.binlogs.iter().map(|b| b.log_id).collect::<Vec<_>>(),
        vec![11, 12, 21]
    );
    assert!(stored.binlogs.iter().all(|b| b.log_path.is_empty()));

    // Last sync, newer checkpoint: Flushing.
    let last = BinlogUpdate {
        segment_id: 1,
        flushed: true,
        checkpoints: vec![CheckPoint {
            segment_id: 1,
            position: Some(position("ch", 300)),
            num_of_rows: 30,
        }],
        ..BinlogUpdate::default()
    };
    meta.save_binlog_paths(last).await.expect("flush");
    let seg = meta.segment(1).expect("seg");
    assert_eq!(seg.state(), SegmentState::Flushing);
    assert_eq!(seg.dml_position.as_ref().map(|p| p.timestamp), Some(300));
    assert_eq!(meta.segments_in_states(&[SegmentState::Flushing]).len(), 1);
    assert_matches_store(&meta).await;
}

async fn save_binlog_paths_refusals(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    meta.add_segment(segment(1, COLL, PART, "ch", SegmentState::Growing))
        .await
        .expect("add");
    let before = dump(&kv).await;
    let wrong_segment = BinlogUpdate {
        segment_id: 1,
        binlogs: vec![sent_logs(
            LogKind::Insert,
            ROOT,
            (COLL, PART, 2),
            0,
            &[5],
            10,
        )],
        checkpoints: vec![CheckPoint {
            segment_id: 1,
            position: Some(position("ch", 100)),
            num_of_rows: 10,
        }],
        ..BinlogUpdate::default()
    };
    let err = meta
        .save_binlog_paths(wrong_segment)
        .await
        .expect_err("wrong path");
    assert!(
        matches!(err, MetaError::InvalidBinlog { segment_id: 1, .. }),
        "{err}"
    );
    let mismatch = BinlogUpdate {
        segment_id: 1,
        binlogs: vec![sent_logs(
            LogKind::Insert,
            ROOT,
            (COLL, PART, 1),
            0,
            &[5, 6],
            10,
        )],
        statslogs: vec![sent_logs(
            LogKind::Stats,
            ROOT,
            (COLL, PART, 1),
            100,
            &[7],
            10,
        )],
        ..BinlogUpdate::default()
    };
    let err = meta
        .save_binlog_paths(mismatch)
        .await
        .expect_err("count mismatch");
    assert!(
        matches!(err, MetaError::BinlogCountMismatch { .. }),
        "{err}"
    );
    assert_eq!(dump(&kv).await, before);
    assert_eq!(
        *meta.segment(1).expect("seg"),
        segment(1, COLL, PART, "ch", SegmentState::Growing)
    );

    let err = meta
        .save_binlog_paths(BinlogUpdate {
            segment_id: 42,
            ..Default::default()
        })
        .await;
    assert!(matches!(err, Err(MetaError::SegmentNotFound(42))));
    meta.add_segment(segment(3, COLL, PART, "ch", SegmentState::NotExist))
        .await
        .expect("add");
    let err = meta
        .save_binlog_paths(BinlogUpdate {
            segment_id: 3,
            ..Default::default()
        })
        .await;
    assert!(matches!(err, Err(MetaError::SegmentNotFound(3))));

    // dropped=true: Dropped with dropped_at; then further syncs are ignored.
    let drop = BinlogUpdate {
        segment_id: 1,
        dropped: true,
        binlogs: vec![sent_logs(
            LogKind::Insert,
            ROOT,
            (COLL, PART, 1),
            0,
            &[8],
            10,
        )],
        ..BinlogUpdate::default()
    };
    meta.save_binlog_paths(drop).await.expect("drop");
    let dropped = meta.segment(1).expect("seg");
    assert_eq!(dropped.state(), SegmentState::Dropped);
    assert!(
        dropped.dropped_at > 1_600_000_000_000_000_000,
        "dropped_at is Unix ns"
    );
    assert_eq!(dropped.num_of_rows, 10);
    let after_drop = dump(&kv).await;
    let ignored = BinlogUpdate {
        segment_id: 1,
        flushed: true,
        binlogs: vec![sent_logs(
            LogKind::Insert,
            ROOT,
            (COLL, PART, 1),
            0,
            &[9],
            10,
        )],
        ..BinlogUpdate::default()
    };
    meta.save_binlog_paths(ignored)
        .await
        .expect("dropped segment: success");
    assert_eq!(meta.segment(1).expect("seg"), dropped);
    assert_eq!(dump(&kv).await, after_drop);
    assert_matches_store(&meta).await;
}

async fn save_binlog_paths_importing(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    let mut importing = segment(1, COLL, PART, "ch", SegmentState::Importing);
    importing.is_importing = true;
    meta.add_segment(importing).await.expect("add");
    let update = BinlogUpdate {
        segment_id: 1,
        importing: true,
        import_rows: Some(50),
        binlogs: vec![sent_logs(
            LogKind::Insert,
            ROOT,
            (COLL, PART, 1),
            0,
            &[1, 2, 3, 4],
            10,
        )],
        // Ignored while importing.
        checkpoints: vec![CheckPoint {
            segment_id: 1,
            position: Some(position("ch", 9)),
            num_of_rows: 7,
        }],
        ..BinlogUpdate::default()
    };
    meta.save_binlog_paths(update).await.expect("import sync");
    let seg = meta.segment(1).expect("seg");
    assert_eq!(seg.num_of_rows, 40);
    assert!(seg.dml_position.is_none());
    assert_matches_store(&meta).await;
}

async fn drop_channel_segments_drops_everything(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    meta.mark_channel_added("ch").await.expect("flag");
    meta.add_segment(segment(1, COLL, PART, "ch", SegmentState::Growing))
        .await
        .expect("add");
    meta.add_segment(flushed_with_logs(2, "ch", 100, 1))
        .await
        .expect("add");
    meta.add_segment(segment(3, COLL, PART, "ch", SegmentState::Growing))
        .await
        .expect("add");
    meta.set_state(3, SegmentState::Dropped)
        .await
        .expect("drop 3");
    meta.add_segment(segment(4, COLL, PART, "other", SegmentState::Growing))
        .await
        .expect("add");
    let ids = (COLL, PART, 1);
    let reported = vec![
        DroppedSegment {
            segment_id: 1,
            binlogs: vec![sent_logs(LogKind::Insert, ROOT, ids, 0, &[31, 32, 33], 10)],
            statslogs: vec![sent_logs(LogKind::Stats, ROOT, ids, 100, &[34, 35, 36], 10)],
            deltalogs: vec![sent_logs(LogKind::Delta, ROOT, ids, 0, &[37], 1)],
            start_position: Some(position("ch", 5)),
            checkpoint: Some(position("ch", 70)),
            num_of_rows: 25,
        },
        DroppedSegment {
            segment_id: 99,
            num_of_rows: 1,
            ..Default::default()
        },
    ];
    meta.drop_channel_segments("ch", reported)
        .await
        .expect("drop channel");
    for id in [1, 2, 3] {
        let seg = meta.segment(id).expect("seg");
        assert_eq!(seg.state(), SegmentState::Dropped, "segment {id}");
        assert_eq!(seg.dropped_at, 0, "DropVirtualChannel sets no dropped_at");
        assert_eq!(
            stored_segment(&kv, id).await.expect("record").state(),
            SegmentState::Dropped
        );
    }
    assert_eq!(
        meta.segment(4).expect("seg 4").state(),
        SegmentState::Growing
    );
    assert!(meta.segment(99).is_none());
    assert_eq!(meta.channel_removal("ch"), ChannelRemoval::Removed);
    let flag = kv.load(&channel_removal_key("ch")).await.expect("load");
    assert_eq!(flag.as_deref(), Some(&b"removed"[..]));

    let one = meta.segment(1).expect("seg 1");
    // The insert-log count (30) beats the reported 25.
    assert_eq!(one.num_of_rows, 30);
    assert_eq!(one.dml_position.as_ref().map(|p| p.timestamp), Some(70));
    assert_eq!(one.start_position.as_ref().map(|p| p.timestamp), Some(5));
    assert_eq!(log_ids(&one.binlogs), vec![(0, vec![31, 32, 33])]);
    // Like 2.3.5, only the records are written: the reported logs live in memory only.
    for kind in LogKind::ALL {
        let key = log_key(kind, COLL, PART, 1, 0);
        let prefix = key.strip_suffix('0').expect("field 0 key");
        assert!(
            kv.load_all_with_prefix(prefix)
                .await
                .expect("prefix")
                .is_empty(),
            "{prefix}"
        );
    }
    let differences = store_differences(&meta).await;
    assert!(
        differences
            .iter()
            .all(|d| d.contains("segment 1") || d.contains("/1/2/1/")),
        "{differences:#?}"
    );
    let reloaded = open(&kv).await;
    let mut expected = SegmentInfo::clone(&one);
    expected.binlogs.clear();
    expected.statslogs.clear();
    expected.deltalogs.clear();
    assert_eq!(*reloaded.segment(1).expect("seg 1"), expected);
    for id in [2, 3, 4] {
        assert_eq!(reloaded.segment(id), meta.segment(id), "segment {id}");
    }

    meta.finish_drop_channel("ch").await.expect("finish");
    assert_eq!(meta.channel_removal("ch"), ChannelRemoval::Absent);
    assert!(
        kv.load(&channel_removal_key("ch"))
            .await
            .expect("load")
            .is_none()
    );
}

macro_rules! all_cases {
    ($factory:path) => {
        datacoord_meta::meta_store_cases!(
            $factory;
            add_segment_stores_logid_form,
            set_state_edge_cases,
            unset_is_importing_persists_healthy_segments,
            save_binlog_paths_merges,
            save_binlog_paths_refusals,
            save_binlog_paths_importing,
            drop_channel_segments_drops_everything,
        );
    };
}

mod memory {
    all_cases!(milvus_metastore::testing::memory_test_kv);
}

mod etcd {
    all_cases!(milvus_metastore::testing::etcd_test_kv);
}
