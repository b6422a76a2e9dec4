//! Handing plans to DataNodes: the plan a manual compaction sends, the per-node and global
//! limits, and plans refused before anything is persisted.

use datacoord_compaction::{TaskState, compaction_task_key};
use datacoord_meta::with_full_paths;
use milvus_proto::common::SegmentState;
use milvus_proto::data::CompactionType;
use milvus_types::{ErrorCode, parse_ts};

use crate::support::{CHANNEL, COLL, Env, NODE, config};

#[tokio::test]
async fn manual_compaction_sends_a_plan_with_every_field() {
    let env = Env::open(config()).await;
    env.set_properties(&[("collection.ttl.seconds", "3600")]);
    env.add_segment(1, 500, 2).await;
    env.add_segment(2, 400, 3).await;
    env.index_segments(&[1, 2]).await;
    let compaction_id = env.engine.manual_compaction(COLL).await.expect("manual");
    env.engine.wait_dispatched().await;

    let received = env.nodes.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let (node, plan) = &received[0];
    assert_eq!(*node, NODE);
    assert!(
        plan.plan_id > compaction_id,
        "a fresh ID after the signal's"
    );
    // Forced: both prioritized, the larger (1200 rows) first.
    let sources: Vec<i64> = plan.segment_binlogs.iter().map(|s| s.segment_id).collect();
    assert_eq!(sources, vec![2, 1]);
    for binlogs in &plan.segment_binlogs {
        let full = with_full_paths(
            &env.meta.segment(binlogs.segment_id).expect("seg"),
            &env.root(),
        );
        assert_eq!(binlogs.field_binlogs, full.binlogs);
        assert_eq!(binlogs.field2_statslog_paths, full.statslogs);
        assert_eq!(binlogs.deltalogs, full.deltalogs);
        assert!(
            binlogs.field_binlogs[0].binlogs[0]
                .log_path
                .starts_with(&env.root())
        );
        assert_eq!(binlogs.insert_channel, "", "2.3.5 leaves it unset");
    }
    let (physical_ms, _) = parse_ts(plan.start_time);
    assert!(
        physical_ms > 1_600_000_000_000,
        "start time is a TSO: {}",
        plan.start_time
    );
    assert_eq!(plan.timeout_in_seconds, 900);
    assert_eq!(plan.r#type, CompactionType::MixCompaction as i32);
    assert_eq!(plan.timetravel, 0);
    assert_eq!(plan.channel, CHANNEL);
    assert_eq!(plan.collection_ttl, 3_600_000_000_000);
    assert_eq!(plan.total_rows, 2200);

    assert_eq!(env.state(plan.plan_id), Some(TaskState::Executing));
    let stored = env.stored_task(plan.plan_id).await.expect("persisted");
    assert_eq!(stored.task_state(), TaskState::Executing);
    assert_eq!(stored.plan.as_ref(), Some(plan));
    assert_eq!(
        (
            stored.signal_id,
            stored.node_id,
            stored.collection_id,
            stored.channel.as_str()
        ),
        (compaction_id, NODE, COLL, CHANNEL)
    );
    assert!(env.engine.is_compacting(1) && env.engine.is_compacting(2));
}

#[tokio::test]
async fn a_node_runs_at_most_worker_max_plans_at_once() {
    let mut config = config();
    config.worker_max_parallel_task_num = 1;
    let env = Env::open(config).await;
    for id in 1..=4 {
        env.add_segment(id, 100, 1).await;
    }
    env.execute(1001, &[1, 2]).await;
    env.engine
        .execute(1, env.plan(1002, &[3, 4]))
        .await
        .expect("execute");
    // Persisted and locked, but the node's one slot is taken.
    assert_eq!(env.state(1002), Some(TaskState::Pipelining));
    assert!(env.stored_task(1002).await.is_some());
    assert!(env.engine.is_compacting(3));
    tokio::task::yield_now().await;
    assert_eq!(env.nodes.received().len(), 1);

    env.complete(1001, 500);
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Completed));
    env.engine.wait_dispatched().await;
    assert_eq!(env.state(1002), Some(TaskState::Executing));
    let plans: Vec<i64> = env
        .nodes
        .received()
        .iter()
        .map(|(_, p)| p.plan_id)
        .collect();
    assert_eq!(plans, vec![1001, 1002]);
}

#[tokio::test]
async fn max_parallel_stops_automatic_signals_but_not_manual_ones() {
    let mut config = config();
    config.max_parallel_task_num = 1;
    config.index_based_compaction = false;
    let env = Env::open(config).await;
    for id in 1..=5 {
        env.add_segment(id, 100, 1).await;
    }
    env.execute(1001, &[1, 2]).await;
    assert!(env.engine.is_full());
    env.engine.global_signal().await.expect("global");
    env.engine.wait_dispatched().await;
    assert_eq!(
        env.nodes.received().len(),
        1,
        "automatic signals plan nothing when full"
    );

    env.engine.manual_compaction(COLL).await.expect("manual");
    env.engine.wait_dispatched().await;
    let received = env.nodes.received();
    assert_eq!(received.len(), 2, "manual compaction is forced");
    let sources: Vec<i64> = received[1]
        .1
        .segment_binlogs
        .iter()
        .map(|s| s.segment_id)
        .collect();
    // Equal rows: by ID. Segments 1 and 2 are compacting already.
    assert_eq!(sources, vec![3, 4, 5]);
}

#[tokio::test]
async fn plans_with_ineligible_segments_are_refused_before_anything_is_written() {
    let env = Env::open(config()).await;
    for id in 1..=6 {
        env.add_segment(id, 100, 1).await;
    }
    env.add_segment(7, 100, 0).await;
    env.meta
        .set_state(2, SegmentState::Flushing)
        .await
        .expect("flushing");
    env.meta
        .set_state(3, SegmentState::Dropped)
        .await
        .expect("dropped");
    env.execute(1001, &[5, 6]).await;
    let mut other_channel = env.plan(1002, &[1]);
    other_channel.channel = "elsewhere".to_string();
    env.nodes.watch_channel("elsewhere", NODE);
    let cases = [
        (env.plan(1004, &[1, 2]), "Flushing"),
        (env.plan(1005, &[1, 3]), "Dropped"),
        (env.plan(1006, &[1, 6]), "being compacted"),
        (env.plan(1007, &[1, 1]), "listed twice"),
        (env.plan(1010, &[1, 7]), "no insert binlogs"),
        (other_channel, "on channel"),
        (env.plan(1001, &[4]), "already a task"),
    ];
    for (plan, expected) in cases {
        let plan_id = plan.plan_id;
        let err = env.engine.execute(1, plan).await.expect_err("refused");
        assert!(err.to_string().contains(expected), "plan {plan_id}: {err}");
        if plan_id != 1001 {
            assert!(env.state(plan_id).is_none());
            let key = compaction_task_key(plan_id);
            assert!(env.kv.load(&key).await.expect("load").is_none(), "{key}");
        }
    }
    let mut missing = env.plan(1008, &[1]);
    missing.segment_binlogs[0].segment_id = 404;
    let err = env.engine.execute(1, missing).await.expect_err("refused");
    assert_eq!(err.code(), ErrorCode::SEGMENT_NOT_FOUND);
    env.nodes.unwatch_channel(CHANNEL);
    let err = env
        .engine
        .execute(1, env.plan(1009, &[4]))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), ErrorCode::CHANNEL_NOT_FOUND);
    assert!(env.state(1009).is_none());
    assert!(!env.engine.is_compacting(1) && !env.engine.is_compacting(4));
    assert_eq!(env.nodes.received().len(), 1);
}
