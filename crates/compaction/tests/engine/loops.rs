//! The started engine on a paused clock: the poller and the signal loop do the work the tests
//! above drive by hand, and stop with their token.

use std::time::Duration;

use datacoord_compaction::TaskState;
use tokio_util::sync::CancellationToken;

use crate::support::{CHANNEL, COLL, Env, PART, compacted_away, config};

#[tokio::test(start_paused = true)]
async fn started_loops_plan_poll_and_commit_until_cancelled() {
    let env = Env::open(config()).await;
    for id in 1..=3 {
        env.add_segment(id, 100, 1).await;
    }
    env.index_segments(&[1, 2, 3]).await;
    let token = CancellationToken::new();
    let loops = env.engine.start(token.clone());

    env.engine.on_segment_flushed(COLL, PART, 3, CHANNEL);
    let plan_id = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some((_, plan)) = env.nodes.received().first() {
            break plan.plan_id;
        }
    };
    env.complete(plan_id, 500);
    // One check interval later the poller has committed it.
    tokio::time::sleep(env.config.check_interval + Duration::from_secs(1)).await;
    assert_eq!(env.state(plan_id), Some(TaskState::Completed));
    assert!(compacted_away(&env.meta, 1));
    assert_eq!(env.flushed(), vec![500]);

    token.cancel();
    loops.await.expect("loops end");
    // Stopped: a flushed segment is no longer planned.
    env.engine.on_segment_flushed(COLL, PART, 500, CHANNEL);
    tokio::time::sleep(env.config.global_interval * 2).await;
    assert_eq!(env.nodes.received().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_global_signal_runs_every_global_interval() {
    let env = Env::open(config()).await;
    for id in 1..=3 {
        env.add_segment(id, 100, 1).await;
    }
    env.index_segments(&[1, 2, 3]).await;
    let loops = env.engine.start(CancellationToken::new());
    tokio::time::sleep(env.config.global_interval - Duration::from_secs(1)).await;
    assert!(env.nodes.received().is_empty(), "not before one interval");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.nodes.received().len(), 1);
    // Dropping the engine stops its loops, as a crash would.
    drop(env);
    loops.await.expect("loops end");
}

#[tokio::test(start_paused = true)]
async fn a_running_plan_is_followed_faster_than_the_check_interval() {
    let mut config = config();
    config.check_interval = Duration::from_secs(10);
    let env = Env::open(config).await;
    for id in 1..=3 {
        env.add_segment(id, 100, 1).await;
    }
    env.index_segments(&[1, 2, 3]).await;
    let loops = env.engine.start(CancellationToken::new());
    env.engine.on_segment_flushed(COLL, PART, 3, CHANNEL);
    let plan_id = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some((_, plan)) = env.nodes.received().first() {
            break plan.plan_id;
        }
    };
    env.complete(plan_id, 500);
    // 2.3.5 would see the result only at the next 10 s check; a running plan is polled every
    // FOLLOW_INTERVAL (500 ms).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.state(plan_id), Some(TaskState::Completed));
    drop(env);
    loops.await.expect("loops end");
}
