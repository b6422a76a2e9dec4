//! Triggers and the RPC logic: ManualCompaction / GetCompactionState(WithPlans) answers, the
//! flush signal and its queue, the global signal, the index gate, the collection switch, and
//! compaction disabled.

use datacoord_compaction::TaskState;
use milvus_proto::common::CompactionState;
use milvus_types::{ErrorCode, MilvusError};

use crate::support::{CHANNEL, COLL, Env, OTHER_PART, PART, compacted_away, config};

#[tokio::test]
async fn manual_compaction_and_its_state_answers() {
    let env = Env::open(config()).await;
    env.add_segment(1, 100, 1).await;
    env.add_segment(2, 200, 1).await;
    env.index_segments(&[1, 2]).await;
    let compaction_id = env.engine.manual_compaction(COLL).await.expect("manual");
    env.engine.wait_dispatched().await;
    let plan_id = env.nodes.received()[0].1.plan_id;

    let state = env.engine.compaction_state(compaction_id).expect("state");
    assert_eq!(state.state, CompactionState::Executing as i32);
    assert_eq!(
        (
            state.executing_plan_no,
            state.completed_plan_no,
            state.failed_plan_no,
            state.timeout_plan_no
        ),
        (1, 0, 0, 0)
    );
    let plans = env
        .engine
        .compaction_state_with_plans(compaction_id)
        .expect("plans");
    assert_eq!(plans.state, CompactionState::Executing as i32);
    assert_eq!(plans.merge_infos.len(), 1);
    assert_eq!(plans.merge_infos[0].sources, vec![2, 1]);
    assert_eq!(plans.merge_infos[0].target, -1, "no result yet");

    env.complete(plan_id, 500);
    env.engine.poll_once().await;
    let state = env.engine.compaction_state(compaction_id).expect("state");
    assert_eq!(state.state, CompactionState::Completed as i32);
    assert_eq!((state.executing_plan_no, state.completed_plan_no), (0, 1));
    let plans = env
        .engine
        .compaction_state_with_plans(compaction_id)
        .expect("plans");
    assert_eq!(plans.merge_infos[0].target, 500);

    // Unknown IDs read as Completed with nothing counted; 0 means every task.
    let unknown = env.engine.compaction_state(424242).expect("state");
    assert_eq!(unknown.state, CompactionState::Completed as i32);
    assert_eq!(unknown.completed_plan_no, 0);
    assert!(
        env.engine
            .compaction_state_with_plans(424242)
            .expect("plans")
            .merge_infos
            .is_empty()
    );
    assert_eq!(
        env.engine
            .compaction_state(0)
            .expect("state")
            .completed_plan_no,
        1
    );

    // A manual compaction with nothing to plan still returns its ID.
    let nothing = env
        .engine
        .manual_compaction(COLL + 1)
        .await
        .expect("manual");
    assert!(nothing > compaction_id);
    assert_eq!(
        env.engine.compaction_state(nothing).expect("state").state,
        CompactionState::Completed as i32
    );
}

#[tokio::test]
async fn compaction_disabled_answers_service_unavailable() {
    let mut config = config();
    config.enable_compaction = false;
    let env = Env::open(config).await;
    env.add_segment(1, 100, 1).await;
    let errors: Vec<MilvusError> = vec![
        env.engine
            .manual_compaction(COLL)
            .await
            .expect_err("disabled"),
        env.engine.compaction_state(1).expect_err("disabled"),
        env.engine
            .compaction_state_with_plans(1)
            .expect_err("disabled"),
        env.engine
            .execute(1, env.plan(1001, &[1]))
            .await
            .expect_err("disabled"),
    ];
    for err in errors {
        assert_eq!(err.code(), ErrorCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.to_string(), "service unavailable: compaction disabled");
    }
    env.engine.on_segment_flushed(COLL, PART, 1, CHANNEL);
    assert_eq!(env.engine.handle_flush_signals().await, 0);
}

#[tokio::test]
async fn a_flush_signal_plans_the_small_segments_of_its_partition_and_channel() {
    let env = Env::open(config()).await;
    for id in 1..=3 {
        env.add_segment(id, 100, 1).await;
    }
    for id in 4..=6 {
        env.add_segment_in(OTHER_PART, id, 100, 1).await;
    }
    env.index_segments(&[1, 2, 3, 4, 5, 6]).await;
    env.engine.on_segment_flushed(COLL, PART, 3, CHANNEL);
    assert_eq!(env.engine.handle_flush_signals().await, 1);
    env.engine.wait_dispatched().await;
    let received = env.nodes.received();
    assert_eq!(received.len(), 1);
    let mut sources: Vec<i64> = received[0]
        .1
        .segment_binlogs
        .iter()
        .map(|s| s.segment_id)
        .collect();
    sources.sort_unstable();
    assert_eq!(sources, vec![1, 2, 3], "only partition {PART}");
    let task = &env.engine.tasks()[0];
    assert_ne!(task.signal_id, 0);
    env.complete(received[0].1.plan_id, 500);
    env.engine.poll_once().await;
    assert!(compacted_away(&env.meta, 1));
}

#[tokio::test]
async fn flush_signals_beyond_the_queue_are_dropped_and_ignored_without_auto_compaction() {
    let env = Env::open(config()).await;
    for _ in 0..150 {
        env.engine.on_segment_flushed(COLL, PART, 404, CHANNEL);
    }
    assert_eq!(env.engine.handle_flush_signals().await, 100);

    let mut manual_only = config();
    manual_only.enable_auto_compaction = false;
    let env = Env::open(manual_only).await;
    env.engine.on_segment_flushed(COLL, PART, 404, CHANNEL);
    assert_eq!(env.engine.handle_flush_signals().await, 0);
}

#[tokio::test]
async fn the_global_signal_plans_every_collection_not_forced() {
    let env = Env::open(config()).await;
    // Two small segments alone make no plan (min.segment 3) unless forced.
    env.add_segment(1, 100, 1).await;
    env.add_segment(2, 100, 1).await;
    env.index_segments(&[1, 2]).await;
    env.engine.global_signal().await.expect("global");
    env.engine.wait_dispatched().await;
    assert!(env.nodes.received().is_empty());
    env.add_segment(3, 100, 1).await;
    env.index_segments(&[3]).await;
    env.engine.global_signal().await.expect("global");
    env.engine.wait_dispatched().await;
    assert_eq!(env.nodes.received().len(), 1);
}

#[tokio::test]
async fn segments_without_a_finished_vector_index_are_not_candidates() {
    let env = Env::open(config()).await;
    env.add_segment(1, 100, 1).await;
    env.add_segment(2, 100, 1).await;
    env.add_segment(3, 100, 1).await;
    env.index_segments(&[1, 2]).await;
    env.engine.manual_compaction(COLL).await.expect("manual");
    env.engine.wait_dispatched().await;
    let received = env.nodes.received();
    assert_eq!(received.len(), 1);
    let sources: Vec<i64> = received[0]
        .1
        .segment_binlogs
        .iter()
        .map(|s| s.segment_id)
        .collect();
    assert_eq!(sources, vec![1, 2], "segment 3 has no index");
    assert!(!env.engine.is_compacting(3));
}

#[tokio::test]
async fn the_collection_switch_stops_automatic_signals_only() {
    for value in ["false", "not-a-bool"] {
        let env = Env::open(config()).await;
        env.set_properties(&[("collection.autocompaction.enabled", value)]);
        for id in 1..=3 {
            env.add_segment(id, 100, 1).await;
        }
        env.index_segments(&[1, 2, 3]).await;
        env.engine.global_signal().await.expect("global");
        env.engine.on_segment_flushed(COLL, PART, 3, CHANNEL);
        env.engine.handle_flush_signals().await;
        env.engine.wait_dispatched().await;
        assert!(env.nodes.received().is_empty(), "{value}");
        env.engine.manual_compaction(COLL).await.expect("manual");
        env.engine.wait_dispatched().await;
        assert_eq!(env.nodes.received().len(), 1, "{value}");
    }
}

#[tokio::test]
async fn an_unreachable_rootcoord_aborts_the_signal() {
    let env = Env::open(config()).await;
    env.add_segment(1, 100, 1).await;
    env.add_segment(2, 100, 1).await;
    env.index_segments(&[1, 2]).await;
    env.broker
        .fail_next(1, MilvusError::unexpected("rootcoord down").to_status());
    let compaction_id = env.engine.manual_compaction(COLL).await.expect("manual");
    env.engine.wait_dispatched().await;
    assert!(env.nodes.received().is_empty());
    assert!(env.engine.tasks().is_empty());
    assert_eq!(
        env.engine
            .compaction_state(compaction_id)
            .expect("state")
            .state,
        CompactionState::Completed as i32
    );
    // Nothing was left locked.
    env.engine.manual_compaction(COLL).await.expect("manual");
    env.engine.wait_dispatched().await;
    assert_eq!(env.nodes.received().len(), 1);
    assert_eq!(
        env.state(env.nodes.received()[0].1.plan_id),
        Some(TaskState::Executing)
    );
}

#[tokio::test]
async fn manual_compaction_fails_when_no_id_can_be_allocated() {
    let env = Env::open(config()).await;
    env.alloc
        .fail_next(1, MilvusError::unexpected("rootcoord down").to_status());
    let err = env.engine.manual_compaction(COLL).await.expect_err("no ID");
    assert_eq!(err.code(), ErrorCode::UNEXPECTED);
    assert!(err.to_string().contains("rootcoord down"), "{err}");
    assert!(env.engine.tasks().is_empty());
}

#[tokio::test]
async fn flushing_segments_are_not_candidates() {
    let env = Env::open(config()).await;
    for id in 1..=3 {
        env.add_segment(id, 100, 1).await;
    }
    env.index_segments(&[1, 2, 3]).await;
    env.meta
        .set_state(3, milvus_proto::common::SegmentState::Flushing)
        .await
        .expect("flushing");
    env.engine.manual_compaction(COLL).await.expect("manual");
    env.engine.wait_dispatched().await;
    let received = env.nodes.received();
    assert_eq!(received.len(), 1);
    let sources: Vec<i64> = received[0]
        .1
        .segment_binlogs
        .iter()
        .map(|s| s.segment_id)
        .collect();
    assert_eq!(sources, vec![1, 2]);
}
