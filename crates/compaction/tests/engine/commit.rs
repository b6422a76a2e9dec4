//! Completed plans: the meta commit, SyncSegments, the flush path and the metric; zero-row
//! results; late delete logs; and every kind of result that does not fit, refused with
//! nothing written.

use datacoord_compaction::TaskState;
use datacoord_meta::testing::{assert_matches_store, segment};
use milvus_proto::common::SegmentState;
use milvus_proto::data::CompactionResult;

use crate::support::{CHANNEL, COLL, Env, NODE, PART, compacted_away, config, untouched};

#[tokio::test]
async fn completion_commits_then_syncs_then_hands_the_segment_to_the_flush_path() {
    let env = Env::open(config()).await;
    env.add_segment(1, 100, 2).await;
    env.add_segment(2, 50, 1).await;
    env.execute(1001, &[1, 2]).await;
    let start_time = env.nodes.plan(1001).start_time;
    let result = env.complete(1001, 500);
    assert_eq!(result.num_of_rows, 250);

    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Completed));
    for id in [1, 2] {
        assert!(compacted_away(&env.meta, id), "source {id}");
        assert!(env.meta.segment(id).expect("source").dropped_at > 0);
    }
    let child = env.meta.segment(500).expect("result segment");
    assert_eq!(child.state(), SegmentState::Flushing);
    assert_eq!(child.compaction_from, vec![1, 2]);
    assert!(child.created_by_compaction);
    assert_eq!(child.num_of_rows, 250);
    assert_eq!(child.last_expire_time, start_time);
    assert_eq!((child.collection_id, child.partition_id), (COLL, PART));
    assert_eq!(child.insert_channel, CHANNEL);

    let synced = env.nodes.synced();
    assert_eq!(synced.len(), 1);
    let (node, sync) = &synced[0];
    assert_eq!(*node, NODE);
    assert_eq!(sync.plan_id, 1001);
    assert_eq!(sync.compacted_to, 500);
    assert_eq!(sync.num_of_rows, 250);
    assert_eq!(sync.compacted_from, vec![1, 2]);
    assert_eq!(sync.stats_logs, result.field2_statslog_paths);
    assert!(
        env.nodes.plans_on(NODE).is_empty(),
        "the node dropped the synced result"
    );

    assert_eq!(env.flushed(), vec![500]);
    assert_eq!(env.histogram.get_sample_count(), 1);
    let size: i64 = result
        .insert_logs
        .iter()
        .flat_map(|f| &f.binlogs)
        .map(|b| b.log_size)
        .sum();
    assert_eq!(env.histogram.get_sample_sum(), size as f64);
    assert!(!env.engine.is_compacting(1) && !env.engine.is_compacting(2));

    let stored = env.stored_task(1001).await.expect("record");
    assert_eq!(stored.task_state(), TaskState::Completed);
    assert_eq!(stored.result.as_ref().map(|r| r.segment_id), Some(500));
    assert!(
        stored.plan.as_ref().expect("plan").segment_binlogs[0]
            .field_binlogs
            .is_empty(),
        "a final record keeps no log lists"
    );
    assert_matches_store(&env.meta).await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_sync_keeps_the_task_committed_and_only_the_sync_is_retried() {
    let env = Env::open(config()).await;
    env.add_segment(1, 100, 1).await;
    env.add_segment(2, 100, 1).await;
    env.execute(1001, &[1, 2]).await;
    env.complete(1001, 500);
    env.nodes.fail_next_sync(NODE, 10);

    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Committed));
    assert!(
        compacted_away(&env.meta, 1) && env.meta.segment(500).is_some(),
        "meta is final"
    );
    assert!(env.nodes.synced().is_empty());
    assert!(env.flushed().is_empty(), "not flushed before the sync");
    assert_eq!(env.histogram.get_sample_count(), 0);
    assert_eq!(
        env.engine
            .compaction_state(1)
            .expect("state")
            .executing_plan_no,
        1
    );
    let committed = env.segment_meta_dump().await;

    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Completed));
    assert_eq!(env.nodes.synced().len(), 1);
    assert_eq!(env.flushed(), vec![500]);
    assert_eq!(
        env.segment_meta_dump().await,
        committed,
        "the commit is not redone"
    );
    assert_matches_store(&env.meta).await;
}

#[tokio::test(start_paused = true)]
async fn sync_is_retried_within_one_poll() {
    let env = Env::open(config()).await;
    env.add_segment(1, 100, 1).await;
    env.add_segment(2, 100, 1).await;
    env.execute(1001, &[1, 2]).await;
    env.complete(1001, 500);
    env.nodes.fail_next_sync(NODE, 9);
    env.engine.poll_once().await;
    assert_eq!(
        env.state(1001),
        Some(TaskState::Completed),
        "the 10th attempt succeeds"
    );
    assert_eq!(env.nodes.synced().len(), 1);
}

#[tokio::test]
async fn a_zero_row_result_is_written_dropped() {
    let env = Env::open(config()).await;
    env.add_segment(1, 100, 1).await;
    env.add_segment(2, 100, 1).await;
    env.execute(1001, &[1, 2]).await;
    let mut result = env.result(1001, 500);
    result.num_of_rows = 0;
    result.insert_logs.clear();
    result.field2_statslog_paths.clear();
    env.nodes.complete(1001, result);
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Completed));
    let child = env.meta.segment(500).expect("result segment");
    assert_eq!(child.state(), SegmentState::Dropped);
    assert_eq!(child.num_of_rows, 0);
    assert!(compacted_away(&env.meta, 1) && compacted_away(&env.meta, 2));
    assert_matches_store(&env.meta).await;
}

#[tokio::test]
async fn late_delete_logs_are_copied_to_the_result_and_referenced() {
    let env = Env::open(config()).await;
    env.add_segment(1, 100, 1).await;
    env.add_segment(2, 100, 1).await;
    env.add_deltalog(2, 7001, 3, "planned deletes").await;
    env.execute(1001, &[1, 2]).await;
    // Deletes flushed after the plan was made: the DataNode did not see them.
    env.add_deltalog(2, 7002, 2, "late deletes").await;
    env.complete(1001, 500);
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Completed));

    let child = env.meta.segment(500).expect("result");
    let delta_ids: Vec<i64> = child
        .deltalogs
        .iter()
        .flat_map(|f| &f.binlogs)
        .map(|b| b.log_id)
        .collect();
    assert_eq!(
        delta_ids,
        vec![7002],
        "only the late log; the planned one is merged"
    );
    let copy = format!("{}/delta_log/{COLL}/{PART}/500/7002", env.root());
    let content = env.chunks.read(&copy).await.expect("copied file");
    assert_eq!(&content[..], b"late deletes");
    assert_matches_store(&env.meta).await;
}

/// Plan 1001 of segments 1 and 2 sent, and the result its node would report into segment 500.
async fn sent_plan() -> (Env, CompactionResult) {
    let env = Env::open(config()).await;
    env.add_segment(1, 100, 2).await;
    env.add_segment(2, 100, 1).await;
    env.execute(1001, &[1, 2]).await;
    let result = env.result(1001, 500);
    (env, result)
}

/// Reports `result` and checks the refusal: task Failed, sources unlocked, no segment meta
/// written, no sync, nothing flushed.
async fn assert_refused(env: &Env, result: CompactionResult) {
    env.nodes.complete(1001, result);
    let before = env.segment_meta_dump().await;
    env.engine.poll_once().await;
    assert_eq!(env.state(1001), Some(TaskState::Failed));
    assert_eq!(env.segment_meta_dump().await, before, "nothing written");
    assert!(!env.engine.is_compacting(1) && !env.engine.is_compacting(2));
    assert!(env.nodes.synced().is_empty());
    assert!(env.flushed().is_empty());
    assert_eq!(
        env.engine
            .compaction_state(1)
            .expect("state")
            .failed_plan_no,
        1
    );
}

#[tokio::test]
async fn results_that_do_not_fit_the_plan_are_refused() {
    let spoils: [fn(&str, &mut CompactionResult); 9] = [
        |_, r| r.plan_id = 999,
        |_, r| r.channel = "another-channel".to_string(),
        |_, r| r.num_of_rows += 1,
        |_, r| r.num_of_rows = -1,
        |_, r| r.insert_logs[1].binlogs[0].entries_num -= 1,
        |_, r| r.segment_id = 1,
        |_, r| {
            let path = &mut r.insert_logs[0].binlogs[0].log_path;
            *path = path.replace("/500/", "/501/");
        },
        |root, r| {
            let path = &mut r.field2_statslog_paths[0].binlogs[0].log_path;
            *path = path.replacen(root, "/elsewhere", 1);
        },
        |_, r| {
            let path = &mut r.insert_logs[0].binlogs[0].log_path;
            *path = path.replace("insert_log", "stats_log");
        },
    ];
    for spoil in spoils {
        let (env, mut result) = sent_plan().await;
        spoil(&env.root(), &mut result);
        assert_refused(&env, result).await;
        assert!(untouched(&env.meta, 1) && untouched(&env.meta, 2));
    }
}

#[tokio::test]
async fn a_result_segment_id_taken_by_another_segment_is_refused() {
    let (env, result) = sent_plan().await;
    env.meta
        .add_segment(segment(500, COLL, PART, CHANNEL, SegmentState::Flushed))
        .await
        .expect("add");
    assert_refused(&env, result).await;
    assert!(untouched(&env.meta, 1));
}

#[tokio::test]
async fn a_source_dropped_meanwhile_fails_the_task() {
    let (env, result) = sent_plan().await;
    // The collection was dropped while the DataNode compacted.
    env.meta
        .set_state(2, SegmentState::Dropped)
        .await
        .expect("drop");
    assert_refused(&env, result).await;
    assert!(untouched(&env.meta, 1));
    assert!(env.meta.segment(500).is_none());
}
