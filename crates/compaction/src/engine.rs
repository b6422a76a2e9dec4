//! [`CompactionEngine`]: what it holds, its start-up from the persisted tasks, its loops, and
//! the persistence of task changes.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use datacoord_index::IndexMeta;
use datacoord_meta::Meta;
use milvus_metastore::MetaKv;
use milvus_rootcoord_client::{Allocator, Broker};
use milvus_storage::ChunkManager;
use milvus_types::{CollectionId, MilvusResult, NodeId, PartitionId, SegmentId};
use prometheus::Histogram;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::{CompactionConfig, FOLLOW_INTERVAL, SIGNAL_QUEUE_CAPACITY};
use crate::nodes::CompactionNodes;
use crate::record::{CompactionTaskRecord, TaskState, load_records, save_record};
use crate::tasks::TaskTable;
use crate::trigger::FlushSignal;

/// The index engine version segment indexes are compared with (autoUpgradeSegmentIndex); the
/// server derives it from QueryNode sessions and may change it at any time.
pub type EngineVersion = Arc<dyn Fn() -> i32 + Send + Sync>;

/// What the engine works with, all owned by the server.
pub struct CompactionDeps {
    /// Segment meta; its catalog's store (the rooted meta kv) also holds the task records.
    pub meta: Arc<Meta>,
    /// Index meta, for the index gate, DISKANN and index-version checks.
    pub index_meta: IndexMeta,
    /// The DataNodes.
    pub nodes: Arc<dyn CompactionNodes>,
    /// Signal IDs, plan IDs and TSOs.
    pub allocator: Arc<dyn Allocator>,
    /// Collection schemas and properties.
    pub broker: Arc<dyn Broker>,
    /// Object storage: plan paths are built under its root; late delete logs are copied in it.
    pub chunk_manager: ChunkManager,
    /// The flush-complete path: each committed result segment is sent here (Flushing →
    /// Flushed → index tasks).
    pub flushed: mpsc::Sender<SegmentId>,
    /// `milvus_datacoord_compacted_segment_size` (see [`crate::compacted_segment_size_opts`]).
    pub compacted_segment_size: Histogram,
    /// The current index engine version.
    pub engine_version: EngineVersion,
}

/// DataCoord's compaction (one per active server): triggers turn flushed segments into plans
/// (FACTS §2.2–§2.7), each plan becomes a task persisted before it is sent to the DataNode
/// watching its channel, a poller follows the DataNodes and commits finished plans to meta
/// atomically (§2.8–§2.9), and the RPC logic reports the tasks (§2.10).
///
/// Driven by [`CompactionEngine::start`], or step by step with [`CompactionEngine::poll_once`]
/// and the signal methods (tests). Dropping the last handle stops its loops and sends, as a
/// crash would: the persisted tasks are what the next engine starts from.
pub struct CompactionEngine {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for CompactionEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompactionEngine")
            .field("config", &self.inner.config)
            .field("unfinished", &self.inner.lock_tasks().unfinished())
            .finish_non_exhaustive()
    }
}

impl Drop for CompactionEngine {
    fn drop(&mut self) {
        self.inner.cancel.cancel();
    }
}

pub(crate) struct Inner {
    pub(crate) config: CompactionConfig,
    pub(crate) meta: Arc<Meta>,
    pub(crate) index_meta: IndexMeta,
    pub(crate) nodes: Arc<dyn CompactionNodes>,
    pub(crate) allocator: Arc<dyn Allocator>,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) chunks: ChunkManager,
    pub(crate) flushed: mpsc::Sender<SegmentId>,
    pub(crate) compacted_segment_size: Histogram,
    pub(crate) engine_version: EngineVersion,
    pub(crate) kv: Arc<dyn MetaKv>,
    tasks: Mutex<TaskTable>,
    node_slots: Mutex<HashMap<NodeId, Arc<Semaphore>>>,
    /// Serialises task saves, so a later save always writes the latest state.
    saving: tokio::sync::Mutex<()>,
    /// Serialises signal handling (flush, global, manual), as 2.3.5's `forceMu`.
    pub(crate) signal_lock: tokio::sync::Mutex<()>,
    pub(crate) flush_signals: mpsc::Sender<FlushSignal>,
    flush_receiver: Mutex<Option<mpsc::Receiver<FlushSignal>>>,
    /// Cancelled when the engine stops or its last handle is dropped.
    pub(crate) cancel: CancellationToken,
    pub(crate) sends: TaskTracker,
    pub(crate) sends_in_flight: watch::Sender<usize>,
    /// Wakes the poller when a plan reached a DataNode, so it follows the plan at once.
    pub(crate) poll_wake: Notify,
}

impl CompactionEngine {
    /// An engine that resumes the persisted tasks: every record under
    /// `datacoord-rs/compaction-task/` is read (foreign keys skipped), the sources of
    /// unfinished tasks are locked again, and Pipelining tasks count as Executing (the plan may
    /// have reached the DataNode); the poller resolves each with the DataNodes.
    pub async fn load(config: CompactionConfig, deps: CompactionDeps) -> MilvusResult<Self> {
        let kv = deps.meta.catalog().kv().clone();
        let records = load_records(&kv).await?;
        let (flush_signals, flush_receiver) = mpsc::channel(SIGNAL_QUEUE_CAPACITY);
        let inner = Arc::new(Inner {
            config,
            meta: deps.meta,
            index_meta: deps.index_meta,
            nodes: deps.nodes,
            allocator: deps.allocator,
            broker: deps.broker,
            chunks: deps.chunk_manager,
            flushed: deps.flushed,
            compacted_segment_size: deps.compacted_segment_size,
            engine_version: deps.engine_version,
            kv,
            tasks: Mutex::new(TaskTable::default()),
            node_slots: Mutex::new(HashMap::new()),
            saving: tokio::sync::Mutex::new(()),
            signal_lock: tokio::sync::Mutex::new(()),
            flush_signals,
            flush_receiver: Mutex::new(Some(flush_receiver)),
            cancel: CancellationToken::new(),
            sends: TaskTracker::new(),
            sends_in_flight: watch::Sender::new(0),
            poll_wake: Notify::new(),
        });
        for mut record in records {
            let plan_id = record.plan_id();
            if record.task_state() == TaskState::Pipelining {
                record.set_task_state(TaskState::Executing);
            }
            let unfinished = !record.task_state().is_final();
            let node = record.node_id;
            if let Err(reason) = inner.lock_tasks().insert(record, true, false) {
                tracing::warn!(plan_id, reason = %reason, "compaction task not resumed");
                continue;
            }
            if unfinished {
                // A slot is taken when one is free; a node over its limit after a restart
                // (or a lowered limit) only delays new plans.
                if let Ok(permit) = inner.node_slots(node).try_acquire_owned() {
                    inner.lock_tasks().attach_permit(plan_id, permit);
                }
                tracing::info!(plan_id, node_id = node, "compaction task resumed");
            }
        }
        Ok(Self { inner })
    }

    /// Runs the poller (every `check.interval`) and the signal loop (flush signals, and the
    /// global signal every `global.interval` when auto compaction is on) until `token` is
    /// cancelled or the engine dropped; then stops the sends in flight. With compaction
    /// disabled nothing runs.
    pub fn start(&self, token: CancellationToken) -> JoinHandle<()> {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            if !inner.config.enable_compaction {
                tracing::info!("compaction disabled; no compaction loops");
                return;
            }
            tracing::info!("compaction loops start");
            tokio::select! {
                _ = token.cancelled() => {}
                _ = inner.cancel.cancelled() => {}
                _ = async { tokio::join!(inner.poll_loop(), inner.signal_loop()) } => {}
            }
            inner.cancel.cancel();
            inner.sends.close();
            inner.sends.wait().await;
            tracing::info!("compaction loops stopped");
        })
    }

    /// One round of the poller: every registered DataNode is asked for its plans, and each
    /// unfinished task moves on (commit, SyncSegments, timeout, failure); final tasks past
    /// their retention are removed. Also saves task changes an earlier save missed.
    pub async fn poll_once(&self) {
        self.inner
            .poll_once()
            .instrument(tracing::debug_span!("compaction_poll"))
            .await;
    }

    /// Waits until every plan handed to [`Self::execute`] so far was sent to its DataNode or
    /// given up (including those still waiting for a free slot on their node).
    pub async fn wait_dispatched(&self) {
        let mut in_flight = self.inner.sends_in_flight.subscribe();
        // The sender lives in `inner`, so the channel cannot close under us.
        let _ = in_flight.wait_for(|count| *count == 0).await;
    }

    /// Whether automatic signals must plan nothing more: unfinished tasks ≥
    /// `maxParallelTaskNum` (manual compactions ignore it).
    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    /// Whether an unfinished task holds the segment.
    pub fn is_compacting(&self, segment: SegmentId) -> bool {
        self.inner.lock_tasks().is_compacting(segment)
    }

    /// The state of one task, `None` when there is none (never was, or removed).
    pub fn task_state(&self, plan_id: i64) -> Option<TaskState> {
        self.inner
            .lock_tasks()
            .get(plan_id)
            .map(CompactionTaskRecord::task_state)
    }

    /// Every task as held in memory, by plan ID.
    pub fn tasks(&self) -> Vec<CompactionTaskRecord> {
        self.inner.lock_tasks().records().cloned().collect()
    }

    /// For GC: the (collection, partition) pairs with an unfinished task. The DataNode may
    /// still write files there that no segment references yet (a task is persisted before its
    /// plan is sent).
    pub fn unfinished_partitions(&self) -> BTreeSet<(CollectionId, PartitionId)> {
        self.inner.lock_tasks().unfinished_partitions()
    }
}

impl Inner {
    pub(crate) fn lock_tasks(&self) -> MutexGuard<'_, TaskTable> {
        // No code panics while holding the lock, so a poisoned table is still consistent.
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn is_full(&self) -> bool {
        self.lock_tasks().unfinished() >= self.config.max_parallel_task_num
    }

    pub(crate) fn root_path(&self) -> &str {
        self.chunks.root_path()
    }

    /// The node's slots (`workerMaxParallelTaskNum`), created on first use.
    pub(crate) fn node_slots(&self, node: NodeId) -> Arc<Semaphore> {
        let mut slots = self
            .node_slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slots
            .entry(node)
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.worker_max_parallel_task_num)))
            .clone()
    }

    /// Moves a task to `state` in memory and saves it; a failed save is retried by the next
    /// poll (every state the store may be left with resolves safely after a restart).
    pub(crate) async fn transition(&self, plan_id: i64, state: TaskState) {
        self.lock_tasks().set_state(plan_id, state);
        self.save(plan_id).await;
    }

    /// Saves the task's latest state if the store may not hold it; returns whether the store
    /// now holds it.
    pub(crate) async fn save(&self, plan_id: i64) -> bool {
        let _serialised = self.saving.lock().await;
        let Some((record, version)) = self.lock_tasks().unsaved(plan_id) else {
            return true;
        };
        match save_record(&self.kv, &record).await {
            Ok(()) => {
                self.lock_tasks().mark_saved(plan_id, version);
                true
            }
            Err(err) => {
                tracing::warn!(plan_id, error = %err, "cannot save compaction task; retried at the next poll");
                false
            }
        }
    }

    /// Saves every task whose latest change is not stored.
    pub(crate) async fn save_dirty(&self) {
        let dirty = self.lock_tasks().dirty();
        for plan_id in dirty {
            self.save(plan_id).await;
        }
    }

    /// Deletes a final task's record, then forgets it.
    pub(crate) async fn remove(&self, plan_id: i64) {
        let _serialised = self.saving.lock().await;
        if let Err(err) = crate::record::remove_record(&self.kv, plan_id).await {
            tracing::warn!(plan_id, error = %err, "cannot remove compaction task; retried later");
            return;
        }
        self.lock_tasks().remove(plan_id);
        tracing::debug!(plan_id, "compaction task removed");
    }

    /// Takes the flush-signal receiver (the signal loop's, or a test's).
    pub(crate) fn take_flush_receiver(&self) -> Option<mpsc::Receiver<FlushSignal>> {
        self.flush_receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    pub(crate) fn put_back_flush_receiver(&self, receiver: mpsc::Receiver<FlushSignal>) {
        *self
            .flush_receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(receiver);
    }

    async fn poll_loop(self: &Arc<Self>) {
        // The first poll runs at once: resumed tasks are resolved right after start.
        loop {
            self.poll_once()
                .instrument(tracing::debug_span!("compaction_poll"))
                .await;
            // While plans run, follow them closely: a DataNode learns nothing from the pause,
            // and its slots (workerMaxParallelTaskNum) free only once we see the result.
            let pause = if self.lock_tasks().unfinished() > 0 {
                FOLLOW_INTERVAL.min(self.config.check_interval)
            } else {
                self.config.check_interval
            };
            tokio::select! {
                _ = tokio::time::sleep(pause.max(Duration::from_millis(1))) => {}
                _ = self.poll_wake.notified() => {}
            }
        }
    }

    /// Spawns a send on the tracker, counted in `sends_in_flight` until it ends.
    pub(crate) fn spawn_send(self: &Arc<Self>, send: impl Future<Output = ()> + Send + 'static) {
        self.sends_in_flight.send_modify(|count| *count += 1);
        let inner = self.clone();
        self.sends.spawn(async move {
            let cancel = inner.cancel.clone();
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = send => {}
            }
            inner.sends_in_flight.send_modify(|count| *count -= 1);
        });
    }
}

pub(crate) fn ticker(period: Duration) -> tokio::time::Interval {
    // A zero period would make `interval` panic; configuration must not be able to.
    let mut ticker = tokio::time::interval(period.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    ticker
}
