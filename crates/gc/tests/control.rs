//! The GC loop and its control API (FACTS §3.1, §3.2) with recording steps, on tokio's paused
//! clock: first run one interval after start, 2.3.5 step order, paused ticks skipped, pause
//! waiting for a running cycle, disabled GC, cancellation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use datacoord_gc::{
    GarbageCollector, GcConfig, GcError, GcStats, GcStep, RunOutcome, Stage, StepReport,
};
use milvus_config::DataCoordConfig;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const INTERVAL: Duration = Duration::from_secs(3600);

/// Appends its stage to a shared log when run.
struct Recording {
    stage: Stage,
    log: Arc<Mutex<Vec<Stage>>>,
}

#[async_trait]
impl GcStep for Recording {
    fn stage(&self) -> Stage {
        self.stage
    }

    async fn run(&self) -> StepReport {
        self.log.lock().unwrap().push(self.stage);
        StepReport {
            records_removed: 1,
            ..StepReport::default()
        }
    }
}

/// Signals `entered`, then waits for `release`.
struct Blocking {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

#[async_trait]
impl GcStep for Blocking {
    fn stage(&self) -> Stage {
        Stage::ClearEtcd
    }

    async fn run(&self) -> StepReport {
        self.entered.notify_one();
        self.release.notified().await;
        StepReport::default()
    }
}

fn recording_gc(config: GcConfig, stages: &[Stage]) -> (GarbageCollector, Arc<Mutex<Vec<Stage>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let steps = stages
        .iter()
        .map(|&stage| {
            Arc::new(Recording {
                stage,
                log: log.clone(),
            }) as Arc<dyn GcStep>
        })
        .collect();
    (GarbageCollector::new(config, steps), log)
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

async fn wait_for(
    rx: &mut watch::Receiver<GcStats>,
    what: impl FnMut(&GcStats) -> bool,
) -> GcStats {
    *rx.wait_for(what).await.expect("collector alive")
}

#[tokio::test(start_paused = true)]
async fn first_run_one_interval_after_start_in_2_3_5_step_order() {
    let shuffled = [
        Stage::RecycleUnusedIndexFiles,
        Stage::Scan,
        Stage::RecycleUnusedSegmentIndexes,
        Stage::ClearEtcd,
        Stage::RecycleUnusedIndexes,
    ];
    let (gc, log) = recording_gc(
        GcConfig::from_config(&DataCoordConfig::default()),
        &shuffled,
    );
    let in_order = vec![
        Stage::ClearEtcd,
        Stage::RecycleUnusedIndexes,
        Stage::RecycleUnusedSegmentIndexes,
        Stage::Scan,
        Stage::RecycleUnusedIndexFiles,
    ];
    assert_eq!(gc.stages(), in_order);
    let mut stats = gc.subscribe();
    let token = CancellationToken::new();
    let started = Instant::now();
    let handle = gc.start(token.clone());

    settle().await;
    tokio::time::advance(INTERVAL - Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(
        *stats.borrow(),
        GcStats::default(),
        "no run before one interval"
    );
    assert!(log.lock().unwrap().is_empty());

    let after_first = wait_for(&mut stats, |s| s.runs == 1).await;
    assert_eq!(after_first.ticks, 1);
    assert!(Instant::now() - started >= INTERVAL);
    assert_eq!(*log.lock().unwrap(), in_order);

    wait_for(&mut stats, |s| s.runs == 2).await;
    assert!(Instant::now() - started >= 2 * INTERVAL);
    assert_eq!(log.lock().unwrap().len(), 10);

    token.cancel();
    handle.await.expect("loop ends");
}

#[tokio::test(start_paused = true)]
async fn paused_ticks_are_skipped_until_the_pause_ends() {
    let (gc, log) = recording_gc(
        GcConfig::from_config(&DataCoordConfig::default()),
        &[Stage::RecycleUnusedIndexFiles],
    );
    let mut stats = gc.subscribe();
    let token = CancellationToken::new();
    let handle = gc.start(token.clone());
    let started = Instant::now();
    gc.pause(Duration::from_secs(5400)).await;
    assert!(gc.paused_until().is_some());

    let first = wait_for(&mut stats, |s| s.ticks == 1).await;
    assert_eq!((first.runs, first.paused_skips), (0, 1));
    assert!(log.lock().unwrap().is_empty());

    // The pause ended at 1.5 intervals; the next run waits for the next tick.
    let second = wait_for(&mut stats, |s| s.runs == 1).await;
    assert_eq!((second.ticks, second.paused_skips), (2, 1));
    assert!(Instant::now() - started >= 2 * INTERVAL);
    assert_eq!(log.lock().unwrap().len(), 1);
    assert!(gc.paused_until().is_none());

    token.cancel();
    handle.await.expect("loop ends");
}

#[tokio::test(start_paused = true)]
async fn a_shorter_pause_keeps_the_later_end_and_resume_clears_it() {
    let (gc, _log) = recording_gc(
        GcConfig::from_config(&DataCoordConfig::default()),
        &[Stage::Scan],
    );
    gc.pause(Duration::from_secs(7200)).await;
    let long_end = gc.paused_until().expect("paused");
    gc.pause(Duration::from_secs(60)).await;
    assert_eq!(gc.paused_until(), Some(long_end));
    gc.pause(Duration::from_secs(10_000)).await;
    assert!(gc.paused_until().expect("paused") > long_end);
    // A duration past the clock's range still pauses instead of panicking.
    gc.pause(Duration::MAX).await;
    assert!(matches!(gc.run_once().await, RunOutcome::Paused { .. }));

    gc.resume().await.expect("resume");
    assert!(gc.paused_until().is_none());
    assert!(matches!(gc.run_once().await, RunOutcome::Ran(_)));
}

#[tokio::test]
async fn pause_and_resume_wait_for_a_running_cycle() {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let blocking: Arc<dyn GcStep> = Arc::new(Blocking {
        entered: entered.clone(),
        release: release.clone(),
    });
    let gc = GarbageCollector::new(
        GcConfig::from_config(&DataCoordConfig::default()),
        vec![blocking],
    );
    let running = tokio::spawn({
        let gc = gc.clone();
        async move { gc.run_once().await }
    });
    entered.notified().await;

    let pause = gc.pause(Duration::from_secs(60));
    tokio::pin!(pause);
    assert!(futures::poll!(pause.as_mut()).is_pending());
    let resume = gc.resume();
    tokio::pin!(resume);
    assert!(futures::poll!(resume.as_mut()).is_pending());
    assert!(gc.paused_until().is_none(), "pause applied during a run");

    release.notify_one();
    assert!(matches!(running.await.expect("run"), RunOutcome::Ran(_)));
    pause.await;
    assert!(gc.paused_until().is_some());
    resume.await.expect("resume");
    assert!(gc.paused_until().is_none());
}

#[tokio::test]
async fn cancellation_stops_the_loop_even_mid_run() {
    let entered = Arc::new(Notify::new());
    let blocking: Arc<dyn GcStep> = Arc::new(Blocking {
        entered: entered.clone(),
        release: Arc::new(Notify::new()),
    });
    let config = GcConfig {
        interval: Duration::from_millis(10),
        ..GcConfig::from_config(&DataCoordConfig::default())
    };
    let gc = GarbageCollector::new(config, vec![blocking]);
    let token = CancellationToken::new();
    let handle = gc.start(token.clone());
    entered.notified().await;
    token.cancel();
    handle.await.expect("loop ends");
    // The abandoned run released the cycle: control calls go through.
    gc.pause(Duration::from_secs(1)).await;
    assert!(gc.paused_until().is_some());
}

#[tokio::test]
async fn disabled_gc_runs_nothing_and_refuses_resume() {
    let config = GcConfig {
        enabled: false,
        ..GcConfig::from_config(&DataCoordConfig::default())
    };
    let (gc, log) = recording_gc(config, &[Stage::ClearEtcd]);
    assert_eq!(gc.run_once().await, RunOutcome::Disabled);
    gc.pause(Duration::from_secs(60)).await;
    assert!(gc.paused_until().is_none());
    assert!(matches!(gc.resume().await, Err(GcError::Disabled)));
    gc.start(CancellationToken::new())
        .await
        .expect("finished at once");
    assert!(log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_second_start_does_not_start_a_second_loop() {
    let (gc, _log) = recording_gc(
        GcConfig::from_config(&DataCoordConfig::default()),
        &[Stage::Scan],
    );
    let token = CancellationToken::new();
    let first = gc.start(token.clone());
    gc.start(token.clone()).await.expect("finished at once");
    assert!(!first.is_finished());
    token.cancel();
    first.await.expect("loop ends");
}

#[tokio::test]
async fn run_once_reports_each_step() {
    let (gc, log) = recording_gc(
        GcConfig::from_config(&DataCoordConfig::default()),
        &[Stage::Scan, Stage::ClearEtcd],
    );
    let RunOutcome::Ran(report) = gc.run_once().await else {
        panic!("expected a run");
    };
    assert_eq!(
        report
            .steps
            .iter()
            .map(|(stage, _)| *stage)
            .collect::<Vec<_>>(),
        vec![Stage::ClearEtcd, Stage::Scan]
    );
    assert_eq!(report.total().records_removed, 2);
    assert_eq!(report.step(Stage::RecycleUnusedIndexes), None);
    assert_eq!(log.lock().unwrap().len(), 2);
    assert_eq!(gc.subscribe().borrow().runs, 1);
}
