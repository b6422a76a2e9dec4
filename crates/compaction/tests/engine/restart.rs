//! Crashes: the engine is dropped at each task transition (before the RPC, after it, in the
//! middle of the meta commit, after the commit before SyncSegments) and at every store write
//! of a whole compaction, then a new engine loads from the same store and talks to the same
//! DataNode. Every task ends final, no source is compacted twice, rows are exact.

use std::sync::Arc;

use bytes::Bytes;
use datacoord_compaction::{COMPACTION_TASK_PREFIX, TaskState, compaction_task_key};
use datacoord_meta::testing::{ALL_STATES, Fault, assert_matches_store};
use milvus_metastore::MetaKv;
use prost::Message;

use crate::support::{COLL, Env, NODE, compacted_away, config, untouched};

/// The task reaches a final state within a few polls of the new engine.
async fn settle(env: &Env, plan_id: i64) -> Option<TaskState> {
    for _ in 0..4 {
        env.engine.poll_once().await;
    }
    env.state(plan_id)
}

/// The invariants after any crash: the plan either committed once (sources 1, 2 compacted into
/// segment 500 with exactly their 300 rows, handed to the flush path) or not at all (sources
/// untouched and unlocked); memory equals the store.
async fn assert_converged(env: &Env, state: Option<TaskState>) {
    match state {
        Some(TaskState::Completed) => {
            assert!(compacted_away(&env.meta, 1) && compacted_away(&env.meta, 2));
            let child = env.meta.segment(500).expect("result");
            assert_eq!(child.num_of_rows, 300);
            assert_eq!(child.compaction_from, vec![1, 2]);
        }
        Some(TaskState::Failed) | None => {
            assert!(untouched(&env.meta, 1) && untouched(&env.meta, 2));
            assert!(env.meta.segment(500).is_none());
        }
        other => panic!("task not final: {other:?}"),
    }
    assert!(!env.engine.is_compacting(1) && !env.engine.is_compacting(2));
    // No source compacted twice: only segment 500 ever names them.
    let children: Vec<i64> = env
        .meta
        .segments_in_states(&ALL_STATES)
        .iter()
        .filter(|seg| !seg.compaction_from.is_empty())
        .map(|seg| seg.id)
        .collect();
    assert!(children.is_empty() || children == vec![500], "{children:?}");
    assert_matches_store(&env.meta).await;
}

async fn two_segments() -> Env {
    let env = Env::open(config()).await;
    env.add_segment(1, 100, 2).await;
    env.add_segment(2, 100, 1).await;
    env
}

#[tokio::test]
async fn crash_before_the_rpc() {
    let env = two_segments().await;
    env.nodes.hang_compaction(NODE, true);
    env.engine
        .execute(1, env.plan(1001, &[1, 2]))
        .await
        .expect("execute");
    assert_eq!(env.state(1001), Some(TaskState::Pipelining));

    let env = env.restart().await;
    env.nodes.hang_compaction(NODE, false);
    assert_eq!(env.state(1001), Some(TaskState::Executing), "maybe sent");
    assert!(
        env.engine.is_compacting(1),
        "resumed tasks lock their sources"
    );
    let state = settle(&env, 1001).await;
    assert_eq!(state, Some(TaskState::Failed));
    assert!(env.nodes.received().is_empty());
    assert_converged(&env, state).await;
}

#[tokio::test]
async fn crash_after_the_rpc_before_executing_is_saved() {
    let env = two_segments().await;
    // The Pipelining record is saved; the Executing one is not.
    env.faulty.fail_after(1, Fault::Rejected);
    env.execute(1001, &[1, 2]).await;
    assert_eq!(env.nodes.received().len(), 1);
    assert_eq!(
        env.stored_task(1001).await.expect("record").task_state(),
        TaskState::Pipelining
    );

    let env = env.restart().await;
    assert_eq!(env.state(1001), Some(TaskState::Executing));
    env.engine.poll_once().await;
    assert_eq!(
        env.state(1001),
        Some(TaskState::Executing),
        "the node runs it"
    );
    env.complete(1001, 500);
    let state = settle(&env, 1001).await;
    assert_eq!(state, Some(TaskState::Completed));
    assert_converged(&env, state).await;
}

#[tokio::test]
async fn crash_in_the_meta_commit() {
    for fault in [Fault::Rejected, Fault::AppliedThenTimeout] {
        let env = two_segments().await;
        env.execute(1001, &[1, 2]).await;
        env.complete(1001, 500);
        // The result is recorded, then the meta transaction fails (or lands and times out).
        env.faulty.fail_after(1, fault);
        env.engine.poll_once().await;
        assert_eq!(env.state(1001), Some(TaskState::Executing), "{fault:?}");
        assert!(env.nodes.synced().is_empty());

        let env = env.restart().await;
        let state = settle(&env, 1001).await;
        assert_eq!(state, Some(TaskState::Completed), "{fault:?}");
        assert_eq!(env.flushed(), vec![500]);
        assert_converged(&env, state).await;
    }
}

#[tokio::test]
async fn crash_between_the_two_parts_of_a_split_commit() {
    // 3 operations per transaction: the result's 5 log keys and its record take 3
    // transactions, the two sources a fourth.
    for ok_writes in 1..=4 {
        let env = Env::open_with_txn_limit(config(), 3).await;
        env.add_segment(1, 100, 2).await;
        env.add_segment(2, 100, 1).await;
        env.execute(1001, &[1, 2]).await;
        env.complete(1001, 500);
        // The first write of the poll records the result; then the commit's transactions.
        env.faulty.fail_after(ok_writes, Fault::Rejected);
        env.engine.poll_once().await;
        let child_stored = env.meta.segment(500).is_some();
        for id in [1, 2] {
            assert!(
                !compacted_away(&env.meta, id) || child_stored,
                "source {id} dropped before its result ({ok_writes} writes)"
            );
        }
        let env = env.restart().await;
        let state = settle(&env, 1001).await;
        assert_eq!(state, Some(TaskState::Completed), "{ok_writes} writes");
        assert_converged(&env, state).await;
    }
}

#[tokio::test(start_paused = true)]
async fn crash_after_the_commit_before_the_sync() {
    let env = two_segments().await;
    env.execute(1001, &[1, 2]).await;
    env.complete(1001, 500);
    env.nodes.fail_next_sync(NODE, 10);
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Committed));

    let env = env.restart().await;
    assert_eq!(env.state(1001), Some(TaskState::Committed));
    assert!(env.engine.is_compacting(1));
    let state = settle(&env, 1001).await;
    assert_eq!(state, Some(TaskState::Completed));
    assert_eq!(env.nodes.synced().len(), 1);
    assert_eq!(env.flushed(), vec![500], "the new engine hands it over");
    assert_converged(&env, state).await;
}

#[tokio::test]
async fn crash_after_the_sync_before_completed_is_saved() {
    let env = two_segments().await;
    env.execute(1001, &[1, 2]).await;
    env.complete(1001, 500);
    // Result recorded, meta committed; Committed and Completed are not saved. The node has
    // dropped its result once synced.
    env.faulty.fail_after(2, Fault::Rejected);
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Completed));
    assert!(env.nodes.plans_on(NODE).is_empty());

    let env = env.restart().await;
    assert_eq!(env.state(1001), Some(TaskState::Executing));
    let state = settle(&env, 1001).await;
    assert_eq!(
        state,
        Some(TaskState::Completed),
        "from the recorded result"
    );
    assert_converged(&env, state).await;
}

/// Counts the store writes of a whole compaction without faults, then crashes at each one,
/// with a refused write and with one that lands but times out.
#[tokio::test(start_paused = true)]
async fn a_crash_at_every_store_write_converges() {
    let writes = {
        let env = two_segments().await;
        let before = env.faulty.commits();
        lifecycle(&env).await;
        assert_eq!(env.state(1001), Some(TaskState::Completed));
        env.faulty.commits() - before
    };
    assert!(writes >= 5, "{writes} writes");
    for fault in [Fault::Rejected, Fault::AppliedThenTimeout] {
        for ok_writes in 0..writes {
            let env = two_segments().await;
            env.faulty.fail_after(ok_writes, fault);
            lifecycle(&env).await;
            let env = env.restart().await;
            let state = settle(&env, 1001).await;
            assert!(
                matches!(state, Some(TaskState::Completed | TaskState::Failed) | None),
                "{fault:?} after {ok_writes}: {state:?}"
            );
            assert_converged(&env, state).await;
        }
    }
}

/// Execute (refusals ignored), complete on the node if it received the plan, one poll.
async fn lifecycle(env: &Env) {
    let _ = env.engine.execute(1, env.plan(1001, &[1, 2])).await;
    env.engine.wait_dispatched().await;
    if !env.nodes.received().is_empty() {
        env.complete(1001, 500);
    }
    env.engine.poll_once().await;
}

#[tokio::test]
async fn keys_under_our_prefix_that_are_not_tasks_do_not_break_the_load() {
    let env = two_segments().await;
    env.execute(1001, &[1, 2]).await;
    let kv: Arc<dyn MetaKv> = env.kv.clone();
    let garbage = [
        (
            format!("{COMPACTION_TASK_PREFIX}not-a-plan"),
            Bytes::from_static(b"x"),
        ),
        (compaction_task_key(5), Bytes::from_static(b"\xff\xff\xff")),
        (
            compaction_task_key(6),
            Bytes::from(env.stored_task(1001).await.expect("record").encode_to_vec()),
        ),
        (format!("{COMPACTION_TASK_PREFIX}7/extra"), Bytes::new()),
    ];
    for (key, value) in garbage {
        kv.save(&key, value).await.expect("save");
    }
    let env = env.restart().await;
    let plans: Vec<i64> = env.engine.tasks().iter().map(|t| t.plan_id()).collect();
    assert_eq!(plans, vec![1001]);
    env.complete(1001, 500);
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Completed));
}

#[tokio::test]
async fn state_answers_survive_a_restart() {
    let env = two_segments().await;
    env.index_segments(&[1, 2]).await;
    let compaction_id = env.engine.manual_compaction(COLL).await.expect("manual");
    env.engine.wait_dispatched().await;
    let plan_id = env.nodes.received()[0].1.plan_id;
    env.complete(plan_id, 500);
    env.engine.poll_once().await;

    let env = env.restart().await;
    let state = env.engine.compaction_state(compaction_id).expect("state");
    assert_eq!(state.completed_plan_no, 1);
    assert_eq!(
        state.state,
        milvus_proto::common::CompactionState::Completed as i32
    );
    let plans = env
        .engine
        .compaction_state_with_plans(compaction_id)
        .expect("plans");
    assert_eq!(plans.merge_infos.len(), 1);
    assert_eq!(plans.merge_infos[0].sources, vec![1, 2]);
    assert_eq!(plans.merge_infos[0].target, 500);
}
