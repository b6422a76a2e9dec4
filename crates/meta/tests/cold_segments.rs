//! Flushed and Dropped segments are held in a compact form and rebuilt on read: through
//! `Meta`, on the memory store and on a real etcd (`ETCD_ENDPOINTS`), every field must come
//! back as written, whichever way the segment moves between hot and cold, and reloads agree.

use std::sync::Arc;

use datacoord_meta::testing::{assert_matches_store, position, segment, sent_logs};
use datacoord_meta::{Catalog, LogKind, Meta};
use milvus_metastore::MetaKv;
use milvus_proto::common::SegmentState;
use milvus_proto::data::{FieldBinlog, SegmentInfo};
use milvus_proto::msg::MsgPosition;

const COLL: i64 = 1;
const PART: i64 = 2;
const ID: i64 = 1_000_000_000_007;

async fn open(kv: &Arc<dyn MetaKv>) -> Meta {
    Meta::load(Catalog::new(kv.clone())).await.expect("load")
}

/// A compaction result with every field set, as AddSegment receives it (full log paths).
fn compacted_segment() -> SegmentInfo {
    let ids = (COLL, PART, ID);
    let mut seg = segment(
        ID,
        COLL,
        PART,
        "by-dev-rootcoord-dml_0_1v0",
        SegmentState::Growing,
    );
    seg.num_of_rows = 20;
    seg.last_expire_time = 449_000_000_000_000_123;
    seg.start_position = Some(MsgPosition {
        // A position without a message group.
        msg_group: String::new(),
        ..position("by-dev-rootcoord-dml_0", 449_000_000_000_000_000)
    });
    seg.dml_position = Some(position(
        "by-dev-rootcoord-dml_0_1v0",
        449_000_000_000_000_100,
    ));
    seg.binlogs = vec![
        sent_logs(LogKind::Insert, "files", ids, 0, &[ID + 1, ID + 2], 10),
        // An entry without logs is stored as a key of its own and must survive.
        FieldBinlog {
            field_id: 1,
            binlogs: vec![],
        },
        sent_logs(LogKind::Insert, "files", ids, 100, &[ID + 3, ID + 4], 10),
    ];
    seg.statslogs = vec![sent_logs(LogKind::Stats, "files", ids, 100, &[1], 20)];
    seg.deltalogs = vec![sent_logs(LogKind::Delta, "files", ids, 0, &[ID + 5], 2)];
    seg.created_by_compaction = true;
    seg.compaction_from = vec![ID - 2, ID - 1];
    seg.dropped_at = 7;
    seg.is_importing = true;
    seg.is_fake = true;
    seg.compacted = true;
    seg.level = 2;
    seg
}

async fn every_field_survives_hot_cold_hot(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    meta.add_segment(compacted_segment()).await.expect("add");
    let hot = meta.segment(ID).expect("added");
    assert_eq!(hot.level, 2);
    assert_eq!(hot.binlogs[1].binlogs.len(), 0);

    let mut expected = SegmentInfo::clone(&hot);
    for state in [
        SegmentState::Flushed,
        SegmentState::Sealed,
        SegmentState::Dropped,
    ] {
        meta.set_state(ID, state).await.expect("set state");
        expected.set_state(state);
        assert_eq!(*meta.segment(ID).expect("segment"), expected, "{state:?}");
        assert_eq!(meta.child_of(ID - 1).map(|seg| seg.id), Some(ID));
        assert_eq!(
            meta.segments_of_channel("by-dev-rootcoord-dml_0_1v0").len(),
            1
        );
        assert_eq!(meta.segments_in_states(&[state]).len(), 1);
        let rows = if state == SegmentState::Dropped {
            0
        } else {
            20
        };
        assert_eq!(meta.partition_row_count(COLL, PART), rows);
        assert_matches_store(&meta).await;
        let reloaded = open(&kv).await;
        assert_eq!(*reloaded.segment(ID).expect("reloaded"), expected);
    }
}

async fn many_cold_segments_read_back(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    let mut written = Vec::new();
    for id in 1..=40 {
        let ids = (COLL + id % 2, PART, id);
        let mut seg = segment(
            id,
            ids.0,
            PART,
            &format!("ch{}", id % 3),
            SegmentState::Flushed,
        );
        seg.binlogs = vec![sent_logs(LogKind::Insert, "files", ids, 0, &[id * 100], id)];
        seg.num_of_rows = id;
        seg.dml_position = Some(position("ch", 1_000 + id as u64));
        meta.add_segment(seg).await.expect("add");
        written.push(meta.segment(id).expect("added"));
    }
    let reloaded = open(&kv).await;
    for seg in &written {
        assert_eq!(reloaded.segment(seg.id).as_ref(), Some(seg));
    }
    let odd_rows: i64 = (1..=40).filter(|id| id % 2 == 1).sum();
    assert_eq!(reloaded.collection_row_count(COLL + 1), odd_rows);
    assert_eq!(reloaded.segments_of_channel("ch1").len(), 14);
    assert_matches_store(&meta).await;
}

macro_rules! all_cases {
    ($factory:path) => {
        datacoord_meta::meta_store_cases!(
            $factory;
            every_field_survives_hot_cold_hot,
            many_cold_segments_read_back,
        );
    };
}

mod memory {
    all_cases!(milvus_metastore::testing::memory_test_kv);
}

mod etcd {
    all_cases!(milvus_metastore::testing::etcd_test_kv);
}
