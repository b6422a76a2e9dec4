//! One task through its states: no-build finishes, the normal build, CreateJob's fields,
//! node loss, Failed, Retry and refused jobs.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use datacoord_index::testing::assert_matches_store;
use datacoord_index_builder::testing::FAKE_SERIALIZED_SIZE;
use datacoord_index_builder::{RoundSummary, TaskState};
use milvus_metastore::MetaKv;
use milvus_proto::common::IndexState;

use crate::support::{COLL, Env, VECTOR_FIELD, config, expected_paths};

const OTHER_COLL: i64 = 11;

async fn flat_and_small_segments_finish_without_a_node(kv: Arc<dyn MetaKv>) {
    let env = Env::open(kv).await;
    env.create_index(COLL, VECTOR_FIELD, "IVF_FLAT").await;
    env.create_index(OTHER_COLL, VECTOR_FIELD, "FLAT").await;
    env.add_segment(COLL, 1, 100, 10).await; // 1000 rows < 1024
    env.add_segment(OTHER_COLL, 2, 1000, 3).await; // FLAT
    let small = env.one_task(1).await;
    let flat = env.one_task(2).await;

    let summary = env.builder.run_once().await;
    assert_eq!(summary.skipped_build, 2, "{summary:?}");
    for build_id in [small, flat] {
        let record = env.record(build_id);
        assert_eq!(
            (
                record.state,
                record.node_id,
                record.index_version,
                record.index_file_keys.len(),
                record.serialize_size,
                record.fail_reason.as_str()
            ),
            (IndexState::Finished, 0, 0, 0, 0, ""),
            "build {build_id}"
        );
        assert_eq!(env.builder.task_state(build_id), Some(TaskState::Done));
    }
    env.builder.run_once().await;
    assert_eq!(env.builder.task_counts().total(), 0);
    assert!(env.nodes.created().is_empty() && env.nodes.dropped().is_empty());
    assert_matches_store(&env.index_meta).await;
}

async fn normal_flow_builds_records_and_drops_the_job(kv: Arc<dyn MetaKv>) {
    let env = Env::open(kv).await;
    env.engine_version.store(3, Ordering::Relaxed);
    env.nodes.add_node(7, 2);
    let build_id = env.ivf_flat_task().await;
    assert_eq!(env.record(build_id).state, IndexState::Unissued);

    let summary = env.builder.run_once().await;
    assert_eq!(summary.assigned, 1, "{summary:?}");
    let record = env.record(build_id);
    assert_eq!(
        (record.state, record.node_id, record.index_version),
        (IndexState::InProgress, 7, 1)
    );
    assert_eq!(env.nodes.jobs_on(7), vec![build_id]);

    // Still building: nothing changes.
    assert_eq!(env.builder.run_once().await, RoundSummary::default());
    assert_eq!(
        env.builder.task_state(build_id),
        Some(TaskState::InProgress)
    );

    assert_eq!(env.nodes.finish(build_id), 1);
    let summary = env.builder.run_once().await;
    assert_eq!(summary.finished, 1, "{summary:?}");
    let record = env.record(build_id);
    assert_eq!(record.state, IndexState::Finished);
    assert_eq!(record.index_file_keys, vec!["IVF_FLAT".to_string()]);
    assert_eq!(record.serialize_size, FAKE_SERIALIZED_SIZE);
    assert_eq!(record.current_index_version, 3);
    assert_eq!(record.index_version, 1);
    assert_eq!(env.builder.task_state(build_id), Some(TaskState::Done));
    assert!(env.nodes.dropped().is_empty(), "dropped one round later");

    // A failed DropJobs keeps the task Done until the node takes it.
    env.nodes.fail_next_drop(7, 1);
    env.builder.run_once().await;
    assert_eq!(env.builder.task_state(build_id), Some(TaskState::Done));
    assert_eq!(env.nodes.jobs_on(7), vec![build_id]);
    let summary = env.builder.run_once().await;
    assert_eq!(summary.released, 1, "{summary:?}");
    assert_eq!(env.builder.task_state(build_id), None);
    assert!(env.nodes.jobs_on(7).is_empty());
    assert_eq!(
        env.nodes.dropped().last(),
        Some(&(7, vec![build_id])),
        "{:?}",
        env.nodes.dropped()
    );
    assert_matches_store(&env.index_meta).await;
}

async fn create_job_request_has_every_field_of_2_3_5(kv: Arc<dyn MetaKv>) {
    let env = Env::open(kv).await;
    env.engine_version.store(2, Ordering::Relaxed);
    env.nodes.add_node(7, 1);
    let index_id = env.create_index(COLL, VECTOR_FIELD, "HNSW").await;
    env.add_segment(COLL, 1, 700, 3).await;
    let build_id = env.one_task(1).await;
    env.builder.run_once().await;

    let created = env.nodes.created();
    assert_eq!(created.len(), 1);
    let (node_id, req) = &created[0];
    let index = env.index_meta.index(COLL, index_id).expect("index");
    assert_eq!(*node_id, 7);
    assert_eq!(req.cluster_id, "by-dev");
    assert_eq!(req.index_file_prefix, "files/index_files");
    assert_eq!(req.build_id, build_id);
    assert_eq!(req.data_paths, expected_paths(COLL, 1, VECTOR_FIELD, 3));
    assert_eq!(req.index_version, 1);
    assert_eq!((req.index_id, req.index_name.as_str()), (0, ""));
    assert_eq!(req.storage_config, Some(config().storage_config));
    assert_eq!(req.index_params, index.index_params);
    assert_eq!(req.type_params, index.type_params);
    assert_eq!(req.num_rows, 2100);
    assert_eq!(req.current_index_version, 2);
}

async fn lost_node_means_reassignment_with_the_next_version(kv: Arc<dyn MetaKv>) {
    let env = Env::open(kv).await;
    env.nodes.add_node(1, 2);
    env.nodes.add_node(2, 1);
    let build_id = env.ivf_flat_task().await;
    env.builder.run_once().await;
    assert_eq!(env.record(build_id).node_id, 1, "most free slots");

    env.nodes.remove_node(1);
    let summary = env.builder.run_once().await;
    assert_eq!(summary.retried, 1, "{summary:?}");
    assert_eq!(env.builder.task_state(build_id), Some(TaskState::Retry));
    let summary = env.builder.run_once().await;
    assert_eq!(summary.released, 1, "{summary:?}");
    assert_eq!(env.builder.task_state(build_id), Some(TaskState::Init));
    let summary = env.builder.run_once().await;
    assert_eq!(summary.assigned, 1, "{summary:?}");
    let record = env.record(build_id);
    assert_eq!(
        (record.state, record.node_id, record.index_version),
        (IndexState::InProgress, 2, 2)
    );
    let (node_id, req) = env.nodes.created().last().cloned().expect("created");
    assert_eq!((node_id, req.index_version), (2, 2));

    env.nodes.finish(build_id);
    env.builder.run_once().await;
    let record = env.record(build_id);
    assert_eq!(
        (record.state, record.node_id, record.index_version),
        (IndexState::Finished, 2, 2)
    );
    assert_matches_store(&env.index_meta).await;
}

async fn failed_build_is_terminal(kv: Arc<dyn MetaKv>) {
    let env = Env::open(kv).await;
    env.nodes.add_node(1, 1);
    let build_id = env.ivf_flat_task().await;
    env.builder.run_once().await;
    env.nodes.fail(build_id, "out of memory");
    let summary = env.builder.run_once().await;
    assert_eq!(summary.failed, 1, "{summary:?}");
    env.builder.run_once().await;
    assert_eq!(env.builder.task_state(build_id), None);
    for _ in 0..3 {
        env.builder.run_once().await;
    }
    assert!(env.builder.sweep().await.is_empty());
    let record = env.record(build_id);
    assert_eq!(
        (
            record.state,
            record.fail_reason.as_str(),
            record.index_version
        ),
        (IndexState::Failed, "out of memory", 1)
    );
    assert_eq!(env.nodes.created().len(), 1, "never rebuilt");
    assert_matches_store(&env.index_meta).await;
}

async fn retry_report_lost_job_and_refused_create_reassign(kv: Arc<dyn MetaKv>) {
    let env = Env::open(kv).await;
    env.nodes.add_node(1, 1);
    let build_id = env.ivf_flat_task().await;

    // CreateJob refused: the record names the node and version 1 but stays Unissued.
    env.nodes.fail_next_create(1, 1);
    let summary = env.builder.run_once().await;
    assert_eq!((summary.assigned, summary.retried), (0, 1), "{summary:?}");
    let record = env.record(build_id);
    assert_eq!(
        (record.state, record.node_id, record.index_version),
        (IndexState::Unissued, 1, 1)
    );
    env.builder.run_once().await; // DropJobs, back to Init
    env.builder.run_once().await; // assigned again
    assert_eq!(env.record(build_id).index_version, 2);

    // The node reports Retry.
    env.nodes.report_retry(build_id);
    env.builder.run_once().await;
    assert_eq!(env.builder.task_state(build_id), Some(TaskState::Retry));
    env.builder.run_once().await;
    env.builder.run_once().await;
    assert_eq!(env.record(build_id).index_version, 3);

    // The node lost the job; then QueryJobs answers a failure status.
    env.nodes.forget(build_id);
    env.builder.run_once().await;
    assert_eq!(env.builder.task_state(build_id), Some(TaskState::Retry));
    env.builder.run_once().await;
    env.builder.run_once().await;
    assert_eq!(env.record(build_id).index_version, 4);
    env.nodes.fail_next_query(1, 1);
    env.builder.run_once().await;
    assert_eq!(env.builder.task_state(build_id), Some(TaskState::Retry));
    env.builder.run_once().await;
    env.builder.run_once().await;

    env.nodes.finish(build_id);
    env.builder.run_once().await;
    let record = env.record(build_id);
    assert_eq!(
        (record.state, record.node_id, record.index_version),
        (IndexState::Finished, 1, 5)
    );
    let versions: Vec<i64> = env
        .nodes
        .created()
        .iter()
        .map(|(_, req)| req.index_version)
        .collect();
    assert_eq!(
        versions,
        vec![2, 3, 4, 5],
        "refused CreateJob is not recorded"
    );
    assert_matches_store(&env.index_meta).await;
}

mod memory {
    datacoord_meta::meta_store_cases!(milvus_metastore::testing::memory_test_kv;
        flat_and_small_segments_finish_without_a_node,
        normal_flow_builds_records_and_drops_the_job,
        create_job_request_has_every_field_of_2_3_5,
        lost_node_means_reassignment_with_the_next_version,
        failed_build_is_terminal,
        retry_report_lost_job_and_refused_create_reassign,
    );
}

mod etcd {
    datacoord_meta::meta_store_cases!(milvus_metastore::testing::etcd_test_kv;
        flat_and_small_segments_finish_without_a_node,
        normal_flow_builds_records_and_drops_the_job,
        create_job_request_has_every_field_of_2_3_5,
        lost_node_means_reassignment_with_the_next_version,
        failed_build_is_terminal,
        retry_report_lost_job_and_refused_create_reassign,
    );
}
