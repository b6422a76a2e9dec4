//! The poller: no false failures when a node does not answer (Go #31352), lost plans, gone
//! nodes, timeouts (and a completion after one), and the removal of old final tasks.

use datacoord_compaction::TaskState;
use milvus_types::{compose_ts, parse_ts};

use crate::support::{Env, NODE, compacted_away, config, untouched};

/// Segments 1 and 2, plan 1001 of them sent to [`NODE`].
async fn running() -> Env {
    let env = Env::open(config()).await;
    env.add_segment(1, 100, 1).await;
    env.add_segment(2, 100, 1).await;
    env.execute(1001, &[1, 2]).await;
    env
}

/// Moves RootCoord's clock `seconds` past the plan's start time.
fn advance_past_start(env: &Env, plan_id: i64, seconds: u64) {
    let (start_ms, _) = parse_ts(env.nodes.plan(plan_id).start_time);
    env.alloc
        .advance_timestamp_to(compose_ts(start_ms + seconds * 1000, 0));
}

#[tokio::test]
async fn a_node_that_does_not_answer_fails_nothing() {
    let env = running().await;
    env.complete(1001, 500);
    env.nodes.fail_next_state(NODE, 1);
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Executing));
    assert!(env.engine.is_compacting(1) && env.engine.is_compacting(2));
    assert!(untouched(&env.meta, 1));
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Completed));
    assert!(compacted_away(&env.meta, 1));
}

#[tokio::test]
async fn an_unregistered_node_fails_its_tasks() {
    let env = running().await;
    env.nodes.remove_node(NODE);
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Failed));
    assert!(!env.engine.is_compacting(1) && !env.engine.is_compacting(2));
    assert!(untouched(&env.meta, 1) && untouched(&env.meta, 2));
    assert_eq!(
        env.stored_task(1001).await.expect("record").task_state(),
        TaskState::Failed
    );
}

#[tokio::test]
async fn a_plan_gone_from_its_node_fails_and_unlocks() {
    let env = running().await;
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Executing), "still running");
    env.nodes.forget(1001);
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Failed));
    assert!(!env.engine.is_compacting(1));
}

#[tokio::test]
async fn a_plan_the_node_refused_fails_at_the_next_poll() {
    let env = Env::open(config()).await;
    env.add_segment(1, 100, 1).await;
    env.add_segment(2, 100, 1).await;
    env.nodes.reject_next_compaction(NODE, 1);
    env.execute(1001, &[1, 2]).await;
    assert_eq!(
        env.state(1001),
        Some(TaskState::Executing),
        "as 2.3.5: executing anyway"
    );
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Failed));
    assert!(!env.engine.is_compacting(1));
}

#[tokio::test]
async fn a_timed_out_plan_waits_for_its_node_then_fails() {
    let env = running().await;
    advance_past_start(&env, 1001, 899);
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Executing), "899 s < 900 s");
    advance_past_start(&env, 1001, 900);
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Timeout));
    let state = env.engine.compaction_state(1).expect("state");
    assert_eq!((state.timeout_plan_no, state.executing_plan_no), (1, 0));
    assert!(env.engine.is_compacting(1), "the node may still write");
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Timeout));
    env.nodes.forget(1001);
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Failed));
    assert!(!env.engine.is_compacting(1));
}

#[tokio::test]
async fn a_plan_completed_after_its_timeout_is_still_committed() {
    let env = running().await;
    advance_past_start(&env, 1001, 1000);
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Timeout));
    env.complete(1001, 500);
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Completed));
    assert!(compacted_away(&env.meta, 1) && compacted_away(&env.meta, 2));
    assert_eq!(env.flushed(), vec![500]);
}

#[tokio::test]
async fn final_tasks_are_removed_an_hour_after_their_timeout() {
    let env = running().await;
    env.complete(1001, 500);
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Completed));
    advance_past_start(&env, 1001, 900 + 3600 - 1);
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Completed));
    advance_past_start(&env, 1001, 900 + 3600);
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), None);
    assert!(env.stored_task(1001).await.is_none());
    assert_eq!(
        env.engine
            .compaction_state(1)
            .expect("state")
            .completed_plan_no,
        0
    );
}

#[tokio::test]
async fn unfinished_tasks_keep_their_partition_from_gc() {
    let env = running().await;
    assert_eq!(
        env.engine
            .unfinished_partitions()
            .into_iter()
            .collect::<Vec<_>>(),
        vec![(crate::support::COLL, crate::support::PART)]
    );
    env.complete(1001, 500);
    env.engine.poll_once().await;
    assert!(env.engine.unfinished_partitions().is_empty());
}

#[tokio::test]
async fn a_timed_out_task_is_never_removed_while_its_node_may_run_it() {
    let env = running().await;
    advance_past_start(&env, 1001, 900 + 3600 + 60);
    env.engine.poll_once().await;
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Timeout));
    assert!(env.stored_task(1001).await.is_some());
    assert!(env.engine.is_compacting(1));
}

#[tokio::test(start_paused = true)]
async fn a_committed_task_whose_node_is_gone_completes_without_sync() {
    let env = running().await;
    env.complete(1001, 500);
    env.nodes.fail_next_sync(NODE, 10);
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Committed));
    env.nodes.remove_node(NODE);
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Completed));
    assert!(env.nodes.synced().is_empty());
    assert_eq!(
        env.flushed(),
        vec![500],
        "the result still reaches the flush path"
    );
}
