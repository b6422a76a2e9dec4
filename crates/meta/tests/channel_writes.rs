//! Channel writes, GC removal and reads of `Meta` on the memory store and on a real etcd
//! (`ETCD_ENDPOINTS`): what is persisted decodes to what memory says, a reload equals memory.

use std::sync::Arc;

use bytes::Bytes;
use datacoord_meta::testing::{
    ALL_STATES, assert_matches_store, flushed_segment, position, segment,
};
use datacoord_meta::{
    Catalog, ChannelRemoval, Meta, MetaError, channel_checkpoint_key, channel_removal_key,
};
use milvus_metastore::MetaKv;
use milvus_proto::common::SegmentState;
use milvus_proto::data::SegmentInfo;
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

fn flushed_with_logs(id: i64, channel: &str, first_log: i64, logs: i64) -> SegmentInfo {
    flushed_segment((COLL, PART, id), channel, ROOT, first_log, logs)
}

async fn checkpoints_only_move_forward(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    let err = meta
        .update_channel_checkpoint(
            "v0",
            milvus_proto::msg::MsgPosition {
                timestamp: 5,
                ..Default::default()
            },
        )
        .await
        .expect_err("no msg id");
    assert!(matches!(err, MetaError::InvalidCheckpoint(_)));
    meta.update_channel_checkpoint("v0", position("v0", 100))
        .await
        .expect("first");
    meta.update_channel_checkpoint("v0", position("v0", 50))
        .await
        .expect("older");
    meta.update_channel_checkpoint("v0", position("v0", 100))
        .await
        .expect("same");
    assert_eq!(
        meta.channel_checkpoint("v0").map(|p| p.timestamp),
        Some(100)
    );
    // Stored as received; memory (and any reload) names the key's channel.
    meta.update_channel_checkpoint("v0", position("pchannel-name", 200))
        .await
        .expect("newer");
    let stored = kv
        .load(&channel_checkpoint_key("v0"))
        .await
        .expect("load")
        .expect("key");
    let stored = milvus_proto::msg::MsgPosition::decode(stored).expect("decode");
    assert_eq!(
        (stored.timestamp, stored.channel_name.as_str()),
        (200, "pchannel-name")
    );
    let in_memory = meta.channel_checkpoint("v0").expect("cp");
    assert_eq!(
        (in_memory.timestamp, in_memory.channel_name.as_str()),
        (200, "v0")
    );
    meta.update_channel_checkpoint("v1", position("v1", 1))
        .await
        .expect("v1");
    assert_eq!(
        meta.channel_checkpoints()
            .iter()
            .map(|(c, _)| c.as_str())
            .collect::<Vec<_>>(),
        vec!["v0", "v1"]
    );
    assert_matches_store(&meta).await;
    meta.drop_channel_checkpoint("v0").await.expect("drop");
    assert!(meta.channel_checkpoint("v0").is_none());
    assert!(
        kv.load(&channel_checkpoint_key("v0"))
            .await
            .expect("load")
            .is_none()
    );
    assert_matches_store(&meta).await;
}

async fn removal_flags(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    assert_eq!(meta.channel_removal("v0"), ChannelRemoval::Absent);
    meta.mark_channel_added("v0").await.expect("add");
    assert_eq!(meta.channel_removal("v0"), ChannelRemoval::NonRemoved);
    let stored = kv.load(&channel_removal_key("v0")).await.expect("load");
    assert_eq!(stored.as_deref(), Some(&b"non-removed"[..]));
    assert_eq!(
        open(&kv).await.channel_removal("v0"),
        ChannelRemoval::NonRemoved
    );
    meta.finish_drop_channel("v0").await.expect("finish");
    assert_eq!(meta.channel_removal("v0"), ChannelRemoval::Absent);
    assert_eq!(
        open(&kv).await.channel_removal("v0"),
        ChannelRemoval::Absent
    );
}

async fn drop_segment_removes_only_its_keys(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    meta.add_segment(flushed_with_logs(1, "ch", 100, 1))
        .await
        .expect("add");
    meta.add_segment(flushed_with_logs(10, "ch", 200, 1))
        .await
        .expect("add neighbour");
    meta.drop_segment(1).await.expect("drop");
    meta.drop_segment(1).await.expect("unknown is fine");
    assert!(meta.segment(1).is_none());
    let keys: Vec<String> = dump(&kv).await.into_iter().map(|(k, _)| k).collect();
    assert!(
        keys.iter()
            .all(|k| !k.ends_with("/1/2/1") && !k.contains("/1/2/1/")),
        "{keys:#?}"
    );
    // Segment 10's keys share the `…/1` prefix without the slash and must survive.
    assert_eq!(keys.len(), 1 + 3 + 1 + 1, "{keys:#?}");
    assert_matches_store(&meta).await;
}

async fn gc_confirm_by_collection_and_partition(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    meta.add_segment(segment(1, COLL, PART, "ch", SegmentState::Dropped))
        .await
        .expect("add");
    meta.add_segment(segment(2, 10, 20, "ch10", SegmentState::Growing))
        .await
        .expect("add");
    assert!(!meta.gc_confirm(COLL, -1).await.expect("confirm"));
    assert!(!meta.gc_confirm(COLL, PART).await.expect("confirm"));
    assert!(meta.gc_confirm(COLL, 3).await.expect("confirm"));
    meta.drop_segment(1).await.expect("gc");
    assert!(meta.gc_confirm(COLL, -1).await.expect("confirm"));
    assert!(!meta.gc_confirm(10, -1).await.expect("confirm"));
}

async fn reads_follow_the_indexes(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    meta.add_segment(flushed_with_logs(5, "a", 100, 2))
        .await
        .expect("add");
    meta.add_segment(flushed_with_logs(3, "a", 200, 1))
        .await
        .expect("add");
    let mut other_part = flushed_with_logs(4, "b", 300, 1);
    other_part.partition_id = 9;
    other_part
        .binlogs
        .iter_mut()
        .chain(&mut other_part.statslogs)
        .chain(&mut other_part.deltalogs)
        .flat_map(|f| &mut f.binlogs)
        .for_each(|b| b.log_path = b.log_path.replace("/1/2/4/", "/1/9/4/"));
    meta.add_segment(other_part).await.expect("add");
    meta.add_segment(segment(6, COLL, PART, "b", SegmentState::Growing))
        .await
        .expect("add");
    meta.add_segment(segment(7, 2, PART, "c", SegmentState::Growing))
        .await
        .expect("add");
    meta.set_state(3, SegmentState::Dropped)
        .await
        .expect("drop");

    let ids = |segs: Vec<Arc<SegmentInfo>>| segs.iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(meta.segments_of_collection(COLL)), vec![3, 4, 5, 6]);
    assert_eq!(ids(meta.segments_of_channel("b")), vec![4, 6]);
    assert_eq!(
        ids(meta.segments_in_states(&[SegmentState::Growing, SegmentState::Dropped])),
        vec![3, 6, 7]
    );
    assert_eq!(meta.collection_row_count(COLL), 20 + 10);
    assert_eq!(meta.partition_row_count(COLL, PART), 20);
    assert_eq!(meta.partition_row_count(COLL, 9), 10);
    assert_eq!(meta.segment_num(), 5);
    assert!(meta.healthy_segment(3).is_none() && meta.segment(3).is_some());
    assert_eq!(
        meta.segment_counts(),
        vec![
            (COLL, SegmentState::Growing, 1),
            (COLL, SegmentState::Flushed, 2),
            (COLL, SegmentState::Dropped, 1),
            (2, SegmentState::Growing, 1),
        ]
    );
    assert_eq!(meta.segments_in_states(&ALL_STATES).len(), 5);
    assert_matches_store(&meta).await;
}

macro_rules! all_cases {
    ($factory:path) => {
        datacoord_meta::meta_store_cases!(
            $factory;
            checkpoints_only_move_forward,
            removal_flags,
            drop_segment_removes_only_its_keys,
            gc_confirm_by_collection_and_partition,
            reads_follow_the_indexes,
        );
    };
}

mod memory {
    all_cases!(milvus_metastore::testing::memory_test_kv);
}

mod etcd {
    all_cases!(milvus_metastore::testing::etcd_test_kv);
}
