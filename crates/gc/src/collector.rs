//! [`GarbageCollector`]: runs its steps in 2.3.5 order every `dataCoord.gc.interval`, with
//! pause/resume (FACTS §3.1, §3.2) and on-demand runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::config::GcConfig;
use crate::error::{GcError, GcResult};
use crate::step::{GcStep, Stage, StepReport};

/// How far "forever" is when a pause duration overflows the clock.
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 86_400);

/// Counters of the collector, published on a watch channel ([`GarbageCollector::subscribe`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Ticks of the loop (each one a run or a paused skip).
    pub ticks: u64,
    /// Completed runs (loop and [`GarbageCollector::run_once`]).
    pub runs: u64,
    /// Runs skipped because GC was paused.
    pub paused_skips: u64,
}

/// What one run did, step by step, in the order the steps ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Each step's stage and report.
    pub steps: Vec<(Stage, StepReport)>,
}

impl RunReport {
    /// The report of the step at `stage`, if the collector has one.
    pub fn step(&self, stage: Stage) -> Option<StepReport> {
        self.steps
            .iter()
            .find(|(step_stage, _)| *step_stage == stage)
            .map(|(_, report)| *report)
    }

    /// All steps added up.
    pub fn total(&self) -> StepReport {
        let mut total = StepReport::default();
        for (_, report) in &self.steps {
            total += *report;
        }
        total
    }
}

/// The result of asking for a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every step ran.
    Ran(RunReport),
    /// Paused until `until`; nothing ran.
    Paused {
        /// When the pause ends.
        until: Instant,
    },
    /// `dataCoord.enableGarbageCollection` is false; nothing ran.
    Disabled,
}

struct Inner {
    config: GcConfig,
    steps: Vec<Arc<dyn GcStep>>,
    /// Held for a whole run. Pause and resume take it too, so when they return no run is in
    /// progress (2.3.5 hands them to the busy loop, with the same effect).
    cycle: tokio::sync::Mutex<()>,
    pause_until: Mutex<Option<Instant>>,
    stats: watch::Sender<GcStats>,
    started: AtomicBool,
}

/// DataCoord's garbage collector. Cheap to clone; clones share one state.
#[derive(Clone)]
pub struct GarbageCollector {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GarbageCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GarbageCollector")
            .field("config", &self.inner.config)
            .field("stages", &self.stages())
            .finish()
    }
}

impl GarbageCollector {
    /// A collector running `steps` in [`Stage`] order (steps of one stage keep their order).
    pub fn new(config: GcConfig, mut steps: Vec<Arc<dyn GcStep>>) -> Self {
        steps.sort_by_key(|step| step.stage());
        info!(
            enabled = config.enabled,
            interval = ?config.interval,
            missing_tolerance = ?config.missing_tolerance,
            drop_tolerance = ?config.drop_tolerance,
            remove_concurrent = config.remove_concurrent,
            "gc with option"
        );
        Self {
            inner: Arc::new(Inner {
                config,
                steps,
                cycle: tokio::sync::Mutex::new(()),
                pause_until: Mutex::new(None),
                stats: watch::Sender::new(GcStats::default()),
                started: AtomicBool::new(false),
            }),
        }
    }

    /// The settings it runs with.
    pub fn config(&self) -> &GcConfig {
        &self.inner.config
    }

    /// The stages of its steps, in run order.
    pub fn stages(&self) -> Vec<Stage> {
        self.inner.steps.iter().map(|step| step.stage()).collect()
    }

    /// Counters, updated after every tick and run.
    pub fn subscribe(&self) -> watch::Receiver<GcStats> {
        self.inner.stats.subscribe()
    }

    /// When the current pause ends (`None` when not paused or the pause has expired).
    pub fn paused_until(&self) -> Option<Instant> {
        self.pause_state().filter(|until| Instant::now() < *until)
    }

    fn pause_state(&self) -> Option<Instant> {
        *self
            .inner
            .pause_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn set_pause_state(&self, until: Option<Instant>) {
        *self
            .inner
            .pause_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = until;
    }

    /// Starts the loop: the first run one full interval from now, then one per interval
    /// (ticks missed while a run is slow are dropped). Stops when `token` is cancelled, also in
    /// the middle of a run (every step tolerates that). Disabled, or started before: returns
    /// a finished task.
    pub fn start(&self, token: CancellationToken) -> JoinHandle<()> {
        if !self.inner.config.enabled {
            info!("garbage collection not enabled, loop not started");
            return tokio::spawn(async {});
        }
        if self.inner.started.swap(true, Ordering::SeqCst) {
            warn!("garbage collector already started");
            return tokio::spawn(async {});
        }
        let gc = self.clone();
        tokio::spawn(async move { gc.run_loop(token).await })
    }

    async fn run_loop(self, token: CancellationToken) {
        let interval = self.inner.config.effective_interval();
        let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        info!(interval = ?interval, stages = ?self.stages(), "garbage collector started");
        loop {
            tokio::select! {
                biased;
                () = token.cancelled() => break,
                _ = ticker.tick() => {}
            }
            self.inner.stats.send_modify(|stats| stats.ticks += 1);
            tokio::select! {
                biased;
                () = token.cancelled() => break,
                _ = self.run_once() => {}
            }
        }
        info!("garbage collector stopped");
    }

    /// One run now, unless GC is disabled or paused (an operator's run must not break a pause
    /// taken for a backup). Waits for a run already in progress instead of overlapping it.
    pub async fn run_once(&self) -> RunOutcome {
        if !self.inner.config.enabled {
            return RunOutcome::Disabled;
        }
        let _cycle = self.inner.cycle.lock().await;
        if let Some(until) = self.paused_until() {
            info!(
                remaining = ?until.saturating_duration_since(Instant::now()),
                "garbage collector paused, run skipped"
            );
            self.inner
                .stats
                .send_modify(|stats| stats.paused_skips += 1);
            return RunOutcome::Paused { until };
        }
        let run = self.inner.stats.borrow().runs + 1;
        let mut report = RunReport::default();
        async {
            for step in &self.inner.steps {
                let stage = step.stage();
                let step_report = step.run().instrument(info_span!("gc_step", ?stage)).await;
                info!(?stage, report = ?step_report, "gc step done");
                report.steps.push((stage, step_report));
            }
            info!(total = ?report.total(), "gc run done");
        }
        .instrument(info_span!("gc_run", run))
        .await;
        self.inner.stats.send_modify(|stats| stats.runs += 1);
        RunOutcome::Ran(report)
    }

    /// Pauses GC for `duration` from now, unless an existing pause lasts longer (2.3.5 keeps
    /// the later end). Waits for a run in progress to finish first, so once this returns no GC
    /// deletion happens until the pause ends. Disabled: does nothing, as 2.3.5.
    pub async fn pause(&self, duration: Duration) {
        if !self.inner.config.enabled {
            info!("garbage collection not enabled, pause ignored");
            return;
        }
        let _cycle = self.inner.cycle.lock().await;
        let now = Instant::now();
        let until = now
            .checked_add(duration)
            .or_else(|| now.checked_add(FAR_FUTURE))
            .unwrap_or(now);
        match self.pause_state() {
            Some(current) if current >= until => {
                info!(duration = ?duration, "gc already paused for longer, pause kept");
            }
            _ => {
                info!(duration = ?duration, "garbage collection paused");
                self.set_pause_state(Some(until));
            }
        }
    }

    /// Ends any pause (the next tick runs). Waits for a run in progress. Disabled:
    /// [`GcError::Disabled`], as 2.3.5.
    pub async fn resume(&self) -> GcResult<()> {
        if !self.inner.config.enabled {
            warn!("garbage collection not enabled, cannot resume");
            return Err(GcError::Disabled);
        }
        let _cycle = self.inner.cycle.lock().await;
        self.set_pause_state(None);
        info!("garbage collection resumed");
        Ok(())
    }
}
