//! Segment-index record operations and index alters on the memory store and a real etcd
//! (`ETCD_ENDPOINTS`), each ending with a reload equal to memory; split and failed writes.

use std::sync::Arc;

use datacoord_index::testing::{assert_matches_store, create_request, env_with_fields, segment};
use datacoord_index::{FinishedTask, IndexCatalog, IndexError, IndexMeta};
use datacoord_meta::testing::{Fault, FaultyKv};
use milvus_metastore::{MemoryKv, MetaKv};
use milvus_proto::common::{IndexState, SegmentState};
use milvus_proto::index::SegmentIndex as SegmentIndexRecord;
use milvus_rootcoord_client::FakeAllocator;
use prost::Message;

const COLL: i64 = 10;

async fn open(kv: &Arc<dyn MetaKv>) -> IndexMeta {
    IndexMeta::load(IndexCatalog::new(kv.clone()))
        .await
        .expect("load")
}

async fn builder_lifecycle(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    let alloc = FakeAllocator::new(1);
    let index_id = meta
        .create_index(
            create_request(COLL, 101, "vec", "16", 5),
            &alloc,
            &env_with_fields(100..400, []),
        )
        .await
        .expect("create");
    let seg = segment(77, COLL, SegmentState::Flushed, 3000, 1);
    assert_eq!(meta.missing_indexes(&seg).len(), 1);
    let added = meta
        .add_segment_index(&seg, index_id, 900)
        .await
        .expect("add");
    assert_eq!(
        (
            added.state,
            added.num_rows,
            added.create_time,
            added.node_id
        ),
        (IndexState::Unissued, 3000, 77, 0)
    );
    assert!(meta.missing_indexes(&seg).is_empty());
    // A second add for the same pair writes nothing and returns the first.
    assert_eq!(
        meta.add_segment_index(&seg, index_id, 901)
            .await
            .expect("again")
            .build_id,
        900
    );
    assert!(meta.segment_index(901).is_none());

    meta.update_version(900, 4).await.expect("assign");
    meta.update_version(900, 5).await.expect("reassign");
    meta.build_index(900).await.expect("in progress");
    let task = FinishedTask {
        state: IndexState::Finished,
        index_file_keys: vec!["IVF_FLAT".into()],
        fail_reason: String::new(),
        serialized_size: 42,
        current_index_version: 3,
    };
    meta.finish_task(900, task).await.expect("finish");
    let key = meta.segment_index(900).expect("held").key();
    assert_eq!(key, format!("segment-index/{COLL}/2/77/900"));
    let stored = SegmentIndexRecord::decode(kv.load(&key).await.expect("load").expect("stored"))
        .expect("decode");
    assert_eq!(
        (stored.node_id, stored.index_version, stored.state),
        (5, 2, IndexState::Finished as i32)
    );
    assert_eq!(
        (
            stored.serialize_size,
            stored.current_index_version,
            stored.create_time
        ),
        (42, 3, 77)
    );
    assert_eq!(stored.index_file_keys, vec!["IVF_FLAT".to_string()]);
    assert_matches_store(&meta).await;

    meta.mark_segment_index_deleted(900).await.expect("delete");
    assert!(meta.segment_index(900).expect("held").deleted);
    assert_matches_store(&meta).await;
    meta.remove_segment_index(900).await.expect("remove");
    assert!(meta.segment_index(900).is_none());
    assert!(meta.segment_indexes_of(77).is_empty());
    assert!(kv.load(&key).await.expect("load").is_none());
    assert!(matches!(
        meta.build_index(900).await,
        Err(IndexError::BuildNotFound(900))
    ));
    assert_matches_store(&meta).await;
}

mod memory {
    datacoord_meta::meta_store_cases!(milvus_metastore::testing::memory_test_kv; builder_lifecycle);
}

mod etcd {
    datacoord_meta::meta_store_cases!(milvus_metastore::testing::etcd_test_kv; builder_lifecycle);
}

async fn many_indexes(kv: Arc<dyn MetaKv>, count: i64) -> (IndexMeta, Vec<i64>) {
    let meta = open(&kv).await;
    let alloc = FakeAllocator::new(1);
    let mut ids = Vec::new();
    for field in 0..count {
        let id = meta
            .create_index(
                create_request(COLL, 100 + field, &format!("i{field}"), "16", 1),
                &alloc,
                &env_with_fields(100..400, []),
            )
            .await
            .expect("create");
        ids.push(id);
    }
    (meta, ids)
}

#[tokio::test]
async fn mark_deleted_in_one_txn_when_it_fits() {
    let faulty = Arc::new(FaultyKv::new(Arc::new(MemoryKv::with_max_txn_ops(128))));
    let kv: Arc<dyn MetaKv> = faulty.clone();
    let (meta, ids) = many_indexes(kv, 100).await;
    let before = faulty.commits();
    assert_eq!(
        meta.mark_indexes_deleted(COLL, &ids).await.expect("mark"),
        100
    );
    assert_eq!(faulty.commits() - before, 1);
    assert!(meta.live_indexes(COLL, "").is_empty());
    assert_matches_store(&meta).await;
}

#[tokio::test]
async fn mark_deleted_in_chunks_of_64_and_resync_after_a_failed_chunk() {
    let faulty = Arc::new(FaultyKv::new(Arc::new(MemoryKv::with_max_txn_ops(100))));
    let kv: Arc<dyn MetaKv> = faulty.clone();
    let (meta, ids) = many_indexes(kv, 150).await;
    // 150 > 100 ops: chunks of 64, 64, 22; the second fails.
    faulty.fail_after(1, Fault::Rejected);
    let err = meta
        .mark_indexes_deleted(COLL, &ids)
        .await
        .expect_err("second chunk fails");
    assert!(matches!(err, IndexError::Kv(_)));
    faulty.heal();
    assert_eq!(meta.live_indexes(COLL, "").len(), 150 - 64);
    assert_matches_store(&meta).await;
    // A retry marks the remaining 86, which fit one transaction.
    let before = faulty.commits();
    assert_eq!(
        meta.mark_indexes_deleted(COLL, &ids).await.expect("retry"),
        86
    );
    assert_eq!(faulty.commits() - before, 1);
    assert!(meta.live_indexes(COLL, "").is_empty());
    assert_matches_store(&meta).await;
}

#[tokio::test]
async fn applied_then_timed_out_write_is_reread() {
    let faulty = Arc::new(FaultyKv::new(Arc::new(MemoryKv::new())));
    let kv: Arc<dyn MetaKv> = faulty.clone();
    let meta = open(&kv).await;
    let seg = segment(5, COLL, SegmentState::Flushed, 10, 1);
    faulty.fail_after(0, Fault::AppliedThenTimeout);
    assert!(meta.add_segment_index(&seg, 3, 44).await.is_err());
    faulty.heal();
    // The record landed: memory holds it after the re-read.
    assert_eq!(meta.segment_index(44).expect("re-read").segment_id, 5);
    assert_matches_store(&meta).await;
    faulty.fail_after(0, Fault::Rejected);
    assert!(meta.build_index(44).await.is_err());
    faulty.heal();
    assert_eq!(
        meta.segment_index(44).expect("held").state,
        IndexState::Unissued
    );
    assert_matches_store(&meta).await;
}
