//! [`IndexBuilder`]: the task table, its inputs (new records, notifications) and the loops
//! that drive it.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use datacoord_index::{BuildId, IndexMeta};
use milvus_rootcoord_client::Allocator;
use milvus_types::{CollectionId, SegmentId};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{BuilderConfig, EngineVersion};
use crate::nodes::IndexNodes;
use crate::round::RoundSummary;
use crate::segments::SegmentView;
use crate::task::{TaskCounts, TaskState, TaskTable};

/// Segments and collections waiting for their records to be created.
#[derive(Debug, Default)]
struct Pending {
    segments: BTreeSet<SegmentId>,
    collections: BTreeSet<CollectionId>,
}

/// DataCoord's index builder (one per server): creates the segment-index records a Flushed or
/// Flushing segment lacks (FACTS 1.4) and drives each build task through IndexNodes
/// (FACTS 1.5–1.7): Init → InProgress → Done → forgotten, with Retry for lost jobs.
///
/// Driven by [`IndexBuilder::start`], or round by round with [`IndexBuilder::run_once`] and
/// the `create_*` methods (tests).
pub struct IndexBuilder {
    pub(crate) config: BuilderConfig,
    pub(crate) min_segment_rows: AtomicI64,
    pub(crate) meta: IndexMeta,
    pub(crate) segments: Arc<dyn SegmentView>,
    pub(crate) nodes: Arc<dyn IndexNodes>,
    pub(crate) allocator: Arc<dyn Allocator>,
    pub(crate) engine_version: EngineVersion,
    pub(crate) tasks: TaskTable,
    /// Serialises rounds (the loop and direct `run_once` calls never overlap).
    pub(crate) round: tokio::sync::Mutex<()>,
    /// Serialises record creation, so two triggers never allocate for the same pair.
    pub(crate) creating: tokio::sync::Mutex<()>,
    pending: Mutex<Pending>,
    wake_scheduler: Notify,
    wake_creator: Notify,
}

impl std::fmt::Debug for IndexBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexBuilder")
            .field("config", &self.config)
            .field("tasks", &self.tasks.counts())
            .finish()
    }
}

impl IndexBuilder {
    /// A builder whose task table is rebuilt from the records in `meta` (FACTS 1.5): live
    /// Unissued → Init, InProgress → InProgress; Finished, Failed and deleted ones are not
    /// tasks. (An Unissued record that already names a node starts at Retry, see README.)
    pub fn new(
        config: BuilderConfig,
        meta: IndexMeta,
        segments: Arc<dyn SegmentView>,
        nodes: Arc<dyn IndexNodes>,
        allocator: Arc<dyn Allocator>,
        engine_version: EngineVersion,
    ) -> Self {
        let tasks = TaskTable::recover(&meta.all_segment_indexes());
        let counts = tasks.counts();
        tracing::info!(
            init = counts.init,
            in_progress = counts.in_progress,
            retry = counts.retry,
            "index builder tasks recovered"
        );
        Self {
            min_segment_rows: AtomicI64::new(config.min_segment_rows),
            config,
            meta,
            segments,
            nodes,
            allocator,
            engine_version,
            tasks,
            round: tokio::sync::Mutex::new(()),
            creating: tokio::sync::Mutex::new(()),
            pending: Mutex::new(Pending::default()),
            wake_scheduler: Notify::new(),
            wake_creator: Notify::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &BuilderConfig {
        &self.config
    }

    /// Changes `indexCoord.segment.minSegmentNumRowsToEnableIndex` (refreshable in 2.3.5);
    /// applies to tasks not yet assigned.
    pub fn set_min_segment_rows(&self, rows: i64) {
        self.min_segment_rows.store(rows, Ordering::Relaxed);
    }

    pub(crate) fn min_segment_rows(&self) -> i64 {
        self.min_segment_rows.load(Ordering::Relaxed)
    }

    /// Adds a task for an existing record in Init (no-op when known) and wakes the scheduler.
    pub fn enqueue(&self, build_id: BuildId) {
        if self.tasks.enqueue(build_id) {
            tracing::info!(build_id, "index builder enqueue task");
        }
        self.wake_scheduler.notify_one();
    }

    /// Wakes the scheduler for a round now (e.g. an IndexNode joined).
    pub fn notify(&self) {
        self.wake_scheduler.notify_one();
    }

    /// The state of one task, `None` when it is not a task (never was, or forgotten).
    pub fn task_state(&self, build_id: BuildId) -> Option<TaskState> {
        self.tasks.get(build_id)
    }

    /// Every task and its state, by build ID.
    pub fn tasks(&self) -> Vec<(BuildId, TaskState)> {
        self.tasks.snapshot()
    }

    /// How many tasks are in each state (for metrics and tests).
    pub fn task_counts(&self) -> TaskCounts {
        self.tasks.counts()
    }

    /// Post-flush hook: the segment's missing records are created soon, off the caller's path
    /// (coalesced; a failure waits for the periodic sweep).
    pub fn on_segment_flushed(&self, segment_id: SegmentId) {
        self.lock_pending().segments.insert(segment_id);
        self.wake_creator.notify_one();
    }

    /// CreateIndex hook: every Flushed/Flushing segment of the collection gets its missing
    /// records soon.
    pub fn on_index_created(&self, collection_id: CollectionId) {
        self.lock_pending().collections.insert(collection_id);
        self.wake_creator.notify_one();
    }

    /// Creates the records of everything queued by [`Self::on_segment_flushed`] and
    /// [`Self::on_index_created`]; returns the new build IDs.
    pub async fn create_pending_tasks(&self) -> Vec<BuildId> {
        let pending = std::mem::take(&mut *self.lock_pending());
        let mut created = Vec::new();
        for collection_id in pending.collections {
            tracing::info!(collection_id, "receive create index notify");
            created.extend(self.create_tasks_for_collection(collection_id).await);
        }
        for segment_id in pending.segments {
            tracing::info!(segment_id, "receive new flushed segment");
            match self.create_tasks_for_segment(segment_id).await {
                Ok(built) => created.extend(built),
                Err(err) => tracing::warn!(
                    segment_id, error = %err,
                    "create index for segment fail, wait for retry"
                ),
            }
        }
        created
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs the scheduler (every `interval` and on every enqueue/notify) and the record
    /// creator (queued hooks, and a sweep every `create_index_check_interval`, the first one
    /// at start) until `token` is cancelled. A round in flight is abandoned at cancellation;
    /// the metadata writes it started still complete.
    pub fn start(self: &Arc<Self>, token: CancellationToken) -> JoinHandle<()> {
        let builder = self.clone();
        tokio::spawn(async move {
            tracing::info!("index builder schedule loop start");
            tokio::join!(builder.schedule_loop(&token), builder.create_loop(&token));
            tracing::info!("index builder stopped");
        })
    }

    async fn schedule_loop(&self, token: &CancellationToken) {
        let mut wait = self.config.interval;
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake_scheduler.notified() => {}
            }
            let round = self
                .run_once()
                .instrument(tracing::debug_span!("index_builder_round"));
            let summary = tokio::select! {
                _ = token.cancelled() => return,
                summary = round => summary,
            };
            wait = next_round_after(&summary, self.task_counts(), self.config.interval);
        }
    }

    async fn create_loop(&self, token: &CancellationToken) {
        let mut ticker = ticker(self.config.create_index_check_interval);
        loop {
            let sweep = tokio::select! {
                _ = token.cancelled() => return,
                _ = ticker.tick() => true,
                _ = self.wake_creator.notified() => false,
            };
            let work = async {
                if sweep {
                    self.sweep().await;
                } else {
                    self.create_pending_tasks().await;
                }
            };
            tokio::select! {
                _ = token.cancelled() => return,
                _ = work => {}
            }
        }
    }
}

/// A round that moved a task is followed at once (a released slot can take the next task, a
/// finished build frees one); while builds run, nodes are polled every [`BUSY_POLL`]; an idle
/// builder waits the configured interval. 2.3.5 always waits the interval, so with one slot per
/// IndexNode every build costs at least one interval. Anything failing (a task in Retry) falls
/// back to the interval, so a node that keeps refusing jobs is not asked faster than in 2.3.5.
fn next_round_after(summary: &RoundSummary, counts: TaskCounts, interval: Duration) -> Duration {
    if summary.retried > 0 || counts.retry > 0 {
        return interval;
    }
    let moved = summary.assigned
        + summary.skipped_build
        + summary.finished
        + summary.failed
        + summary.released
        + summary.removed;
    let pending = counts.done + counts.init;
    if moved > 0 && pending > 0 {
        FOLLOW_UP.min(interval)
    } else if counts.in_progress > 0 {
        BUSY_POLL.min(interval)
    } else {
        interval
    }
}

/// Delay before a round that follows one which moved tasks (lets a burst of hooks coalesce).
const FOLLOW_UP: Duration = Duration::from_millis(20);
/// Poll period while builds are in progress.
const BUSY_POLL: Duration = Duration::from_millis(200);

fn ticker(period: Duration) -> tokio::time::Interval {
    // A zero period would make `interval` panic; configuration must not be able to.
    let mut ticker = tokio::time::interval(period.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    ticker
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(1);

    fn counts(init: usize, in_progress: usize, done: usize, retry: usize) -> TaskCounts {
        TaskCounts {
            init,
            in_progress,
            done,
            retry,
        }
    }

    #[test]
    fn a_round_that_frees_a_slot_is_followed_at_once() {
        let finished = RoundSummary {
            finished: 1,
            ..RoundSummary::default()
        };
        assert_eq!(
            next_round_after(&finished, counts(3, 0, 1, 0), INTERVAL),
            FOLLOW_UP
        );
    }

    #[test]
    fn running_builds_are_polled_faster_than_the_interval() {
        let quiet = RoundSummary::default();
        assert_eq!(
            next_round_after(&quiet, counts(2, 1, 0, 0), INTERVAL),
            BUSY_POLL
        );
        // Moved, but nothing left to act on: only the running build to poll.
        let assigned = RoundSummary {
            assigned: 1,
            ..RoundSummary::default()
        };
        assert_eq!(
            next_round_after(&assigned, counts(0, 1, 0, 0), INTERVAL),
            BUSY_POLL
        );
    }

    #[test]
    fn failures_and_idleness_wait_the_interval() {
        let retried = RoundSummary {
            retried: 1,
            released: 1,
            ..RoundSummary::default()
        };
        assert_eq!(
            next_round_after(&retried, counts(1, 1, 0, 1), INTERVAL),
            INTERVAL
        );
        let released_retry = RoundSummary {
            released: 1,
            ..RoundSummary::default()
        };
        assert_eq!(
            next_round_after(&released_retry, counts(1, 0, 0, 1), INTERVAL),
            INTERVAL
        );
        assert_eq!(
            next_round_after(&RoundSummary::default(), counts(0, 0, 0, 0), INTERVAL),
            INTERVAL
        );
        // A short configured interval is never lengthened.
        let short = Duration::from_millis(5);
        assert_eq!(
            next_round_after(&RoundSummary::default(), counts(0, 1, 0, 0), short),
            short
        );
    }
}
