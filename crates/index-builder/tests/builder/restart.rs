//! A restarted coordinator rebuilds the task table from the records and carries on without
//! creating a second record for any (segment, index).

use std::sync::Arc;

use datacoord_index::testing::assert_matches_store;
use datacoord_index_builder::{IndexNodes, TaskState};
use milvus_metastore::MetaKv;
use milvus_proto::common::IndexState;
use milvus_proto::index::CreateJobRequest;

use crate::support::{COLL, Env, VECTOR_FIELD};

async fn restart_resumes_tasks_without_duplicate_records(kv: Arc<dyn MetaKv>) {
    let env = Env::open(kv).await;
    env.nodes.add_node(1, 1);
    env.create_index(COLL, VECTOR_FIELD, "IVF_FLAT").await;
    env.add_segment(COLL, 1, 1500, 2).await;
    env.add_segment(COLL, 2, 1500, 2).await;
    let running = env.one_task(1).await;
    let queued = env.one_task(2).await;
    env.builder.run_once().await;
    assert_eq!(env.record(running).state, IndexState::InProgress);

    let restarted = env.restart().await;
    assert_eq!(
        restarted.builder.tasks(),
        vec![(running, TaskState::InProgress), (queued, TaskState::Init)]
    );
    let allocations = env.alloc.call_count();
    assert!(restarted.builder.sweep().await.is_empty());
    assert_eq!(env.alloc.call_count(), allocations, "no new build IDs");

    env.nodes.finish(running);
    let summary = restarted.builder.run_once().await;
    assert_eq!((summary.finished, summary.assigned), (1, 1), "{summary:?}");
    assert_eq!(restarted.record(running).state, IndexState::Finished);
    let record = restarted.record(queued);
    assert_eq!(
        (record.state, record.node_id, record.index_version),
        (IndexState::InProgress, 1, 1)
    );
    for seg in [1, 2] {
        assert_eq!(restarted.index_meta.segment_indexes_of(seg).len(), 1);
    }
    assert_eq!(restarted.index_meta.all_segment_indexes().len(), 2);

    // A crash after the outcome is recorded but before DropJobs: the finished record is no
    // task any more, so the IndexNode keeps the job (known, harmless: it only holds its info).
    let again = restarted.restart().await;
    assert_eq!(again.builder.task_state(running), None);
    assert_eq!(
        again.builder.task_state(queued),
        Some(TaskState::InProgress)
    );
    assert!(env.nodes.jobs_on(1).contains(&running));
    assert_matches_store(&again.index_meta).await;
}

async fn interrupted_assignment_is_dropped_then_reassigned(kv: Arc<dyn MetaKv>) {
    let env = Env::open(kv).await;
    env.nodes.add_node(1, 1);
    env.nodes.add_node(5, 1);
    let build_id = env.ivf_flat_task().await;
    // The old coordinator recorded node 5, sent the job, and died before recording InProgress.
    env.index_meta
        .update_version(build_id, 5)
        .await
        .expect("update version");
    let status = env
        .nodes
        .create_job(
            5,
            CreateJobRequest {
                build_id,
                index_version: 1,
                ..CreateJobRequest::default()
            },
        )
        .await
        .expect("create job");
    assert_eq!(status.code, 0);

    let restarted = env.restart().await;
    assert_eq!(
        restarted.builder.task_state(build_id),
        Some(TaskState::Retry)
    );
    restarted.builder.run_once().await;
    assert_eq!(env.nodes.dropped(), vec![(5, vec![build_id])]);
    assert!(env.nodes.jobs_on(5).is_empty());
    restarted.builder.run_once().await;
    let record = restarted.record(build_id);
    assert_eq!(
        (record.state, record.index_version),
        (IndexState::InProgress, 2)
    );
    assert_matches_store(&restarted.index_meta).await;
}

mod memory {
    datacoord_meta::meta_store_cases!(milvus_metastore::testing::memory_test_kv;
        restart_resumes_tasks_without_duplicate_records,
        interrupted_assignment_is_dropped_then_reassigned,
    );
}

mod etcd {
    datacoord_meta::meta_store_cases!(milvus_metastore::testing::etcd_test_kv;
        restart_resumes_tasks_without_duplicate_records,
        interrupted_assignment_is_dropped_then_reassigned,
    );
}
