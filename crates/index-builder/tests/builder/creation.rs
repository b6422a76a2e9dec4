//! Which segments get records, and when (FACTS 1.4).

use std::sync::Arc;

use datacoord_index::testing::assert_matches_store;
use datacoord_index_builder::{BuilderError, TaskState};
use milvus_metastore::MetaKv;
use milvus_proto::common::{IndexState, SegmentState};
use milvus_types::{ErrorCode, MilvusError};

use crate::support::{COLL, Env, VECTOR_FIELD};

async fn records_for_flushed_segments_only(kv: Arc<dyn MetaKv>) {
    let env = Env::open(kv).await;
    let other_coll = COLL + 1;
    let vector_index = env.create_index(COLL, VECTOR_FIELD, "IVF_FLAT").await;
    let scalar_index = env.create_index(COLL, 100, "STL_SORT").await;
    env.add_segment(COLL, 1, 1500, 2).await;
    env.add_segment(COLL, 2, 1500, 2).await;
    env.meta
        .set_state(2, SegmentState::Growing)
        .await
        .expect("growing");
    env.add_segment(other_coll, 3, 1500, 2).await;

    // Post-flush hooks are queued, then handled together.
    env.builder.on_segment_flushed(1);
    env.builder.on_segment_flushed(2);
    env.builder.on_segment_flushed(99); // unknown
    let created = env.builder.create_pending_tasks().await;
    assert_eq!(created.len(), 2, "{created:?}");
    let mut index_ids: Vec<i64> = created
        .iter()
        .map(|&build_id| {
            let record = env.record(build_id);
            assert_eq!(
                (
                    record.segment_id,
                    record.state,
                    record.create_time,
                    record.num_rows,
                    record.node_id,
                    record.index_version
                ),
                (1, IndexState::Unissued, 1, 3000, 0, 0)
            );
            assert_eq!(env.builder.task_state(build_id), Some(TaskState::Init));
            record.index_id
        })
        .collect();
    index_ids.sort();
    let mut expected = vec![vector_index, scalar_index];
    expected.sort();
    assert_eq!(index_ids, expected);
    assert!(env.index_meta.segment_indexes_of(2).is_empty(), "growing");
    assert!(
        env.builder.create_pending_tasks().await.is_empty(),
        "queue drained"
    );

    // CreateIndex on the other collection: its flushed segment gets a record.
    env.create_index(other_coll, VECTOR_FIELD, "IVF_FLAT").await;
    env.builder.on_index_created(other_coll);
    let created = env.builder.create_pending_tasks().await;
    assert_eq!(created.len(), 1);
    assert_eq!(env.record(created[0]).segment_id, 3);

    // The sweep finds segments nobody announced (Flushing counts too) and nothing twice.
    assert!(env.builder.sweep().await.is_empty());
    env.add_segment(COLL, 4, 1500, 2).await;
    env.add_segment(COLL, 5, 1500, 2).await;
    env.meta
        .set_state(5, SegmentState::Flushing)
        .await
        .expect("flushing");
    assert_eq!(env.builder.sweep().await.len(), 4);
    assert!(env.builder.sweep().await.is_empty());
    assert!(
        env.builder
            .create_tasks_for_segment(1)
            .await
            .expect("again")
            .is_empty()
    );
    assert_matches_store(&env.index_meta).await;
}

async fn allocation_failure_creates_nothing_and_the_sweep_recovers(kv: Arc<dyn MetaKv>) {
    let env = Env::open(kv).await;
    env.create_index(COLL, VECTOR_FIELD, "IVF_FLAT").await;
    env.add_segment(COLL, 1, 1500, 2).await;
    let refusal = MilvusError::service_unavailable("rootcoord down");
    env.alloc.fail_next(1, refusal.to_status());
    let err = env
        .builder
        .create_tasks_for_segment(1)
        .await
        .expect_err("allocation fails");
    assert!(matches!(err, BuilderError::Allocator(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::SERVICE_UNAVAILABLE);
    assert!(env.index_meta.segment_indexes_of(1).is_empty());
    assert_eq!(env.builder.task_counts().total(), 0);

    let created = env.builder.sweep().await;
    assert_eq!(created.len(), 1);
    assert_eq!(env.builder.task_state(created[0]), Some(TaskState::Init));
    assert_matches_store(&env.index_meta).await;
}

mod memory {
    datacoord_meta::meta_store_cases!(milvus_metastore::testing::memory_test_kv;
        records_for_flushed_segments_only,
        allocation_failure_creates_nothing_and_the_sweep_recovers,
    );
}

mod etcd {
    datacoord_meta::meta_store_cases!(milvus_metastore::testing::etcd_test_kv;
        records_for_flushed_segments_only,
        allocation_failure_creates_nothing_and_the_sweep_recovers,
    );
}
