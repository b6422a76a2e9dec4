//! The builder as a running task, and hung IndexNodes, on the memory store with a paused
//! clock (a hung call costs no real time).

use std::time::Duration;

use datacoord_index_builder::{NODE_RPC_TIMEOUT, TaskState};
use milvus_proto::common::IndexState;
use tokio_util::sync::CancellationToken;

use crate::support::{COLL, Env, VECTOR_FIELD};

async fn memory_env() -> Env {
    let test_kv = milvus_metastore::testing::memory_test_kv()
        .await
        .expect("memory store");
    Env::open(test_kv.kv).await
}

#[tokio::test(start_paused = true)]
async fn hung_nodes_cost_one_timeout_and_do_not_stall_the_round() {
    let env = memory_env().await;
    env.nodes.add_node(1, 5);
    env.nodes.add_node(2, 1);
    env.nodes.set_hung(1, true);
    let build_id = env.ivf_flat_task().await;

    // Node 1 never answers GetJobStats: node 2 gets the task once the call times out.
    let started = tokio::time::Instant::now();
    let summary = env.builder.run_once().await;
    assert_eq!(summary.assigned, 1, "{summary:?}");
    assert_eq!(env.record(build_id).node_id, 2);
    assert!(started.elapsed() >= NODE_RPC_TIMEOUT);

    // Node 2 hangs on QueryJobs: the task goes to Retry after the timeout.
    env.nodes.set_hung(2, true);
    env.builder.run_once().await;
    assert_eq!(env.builder.task_state(build_id), Some(TaskState::Retry));
    // Still hung on DropJobs: stays Retry; answered: back to Init and reassigned.
    env.builder.run_once().await;
    assert_eq!(env.builder.task_state(build_id), Some(TaskState::Retry));
    env.nodes.set_hung(1, false);
    env.nodes.set_hung(2, false);
    env.builder.run_once().await;
    assert_eq!(env.builder.task_state(build_id), Some(TaskState::Init));
    env.builder.run_once().await;
    let record = env.record(build_id);
    assert_eq!(
        (record.state, record.node_id, record.index_version),
        (IndexState::InProgress, 1, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn started_builder_sweeps_follows_hooks_and_stops_on_cancel() {
    let env = memory_env().await;
    env.nodes.add_node(1, 4);
    env.nodes.finish_after_polls(Some(1));
    env.create_index(COLL, VECTOR_FIELD, "IVF_FLAT").await;
    env.add_segment(COLL, 1, 1500, 2).await; // found by the sweep at start

    let token = CancellationToken::new();
    let handle = env.builder.start(token.clone());
    env.add_segment(COLL, 2, 1500, 2).await;
    env.builder.on_segment_flushed(2);

    let finished = |seg| {
        env.index_meta
            .segment_indexes_of(seg)
            .first()
            .is_some_and(|record| record.state == IndexState::Finished)
    };
    let mut waited = 0;
    while !(finished(1) && finished(2) && env.builder.task_counts().total() == 0) {
        assert!(
            waited < 100,
            "builder did not finish: {:?}",
            env.builder.tasks()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        waited += 1;
    }
    assert_eq!(env.nodes.created().len(), 2);
    assert!(env.nodes.jobs_on(1).is_empty(), "jobs dropped");

    token.cancel();
    handle.await.expect("builder task ends cleanly");
}
