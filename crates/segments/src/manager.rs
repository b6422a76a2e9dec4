//! The segment manager: which segments take new rows, when they are sealed, when they are
//! flushable, and the runtime state 2.3.5 never persists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use milvus_proto::common::SegmentState;
use milvus_proto::data::SegmentInfo;
use milvus_proto::schema::CollectionSchema;
use milvus_rootcoord_client::Allocator;
use milvus_types::{Backoff, CollectionId, MilvusResult, PartitionId, SegmentId, Timestamp};
use tracing::{debug, info, warn};

use crate::config::SegmentConfig;
use crate::policy::{
    AllocationPlan, Runtime, free_rows, is_flushable, plan_allocation, seal_reason, ts_after,
};
use crate::store::{SegmentStore, healthy_segment, state_of};
use crate::{SegmentError, max_rows_per_segment};

/// Rows a proxy (or import task) may write into a segment until `expire_time`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// The segment the rows go to.
    pub segment_id: SegmentId,
    /// How many rows.
    pub num_of_rows: i64,
    /// TSO after which the allocation is void.
    pub expire_time: Timestamp,
    /// Collection of the segment.
    pub collection_id: CollectionId,
    /// Partition of the segment.
    pub partition_id: PartitionId,
    /// Virtual channel of the segment.
    pub channel: String,
}

/// A snapshot of a managed segment's in-memory state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentRuntime {
    /// Rows reported by the datanode (starts at the persisted count).
    pub curr_rows: i64,
    /// Rows promised by live allocations.
    pub allocated_rows: i64,
    /// Number of live allocations.
    pub allocations: usize,
    /// Expiry of the newest allocation (or the startup guard).
    pub last_expire: Timestamp,
    /// When a flush was last requested (or the time it became eligible).
    pub last_flush_time: SystemTime,
    /// When `curr_rows` last grew.
    pub last_written_time: Option<SystemTime>,
}

/// Managed segment IDs in 2.3.5's list order (first fit depends on it) and their runtime.
#[derive(Default)]
struct Managed {
    order: Vec<SegmentId>,
    runtime: HashMap<SegmentId, Runtime>,
}

impl Managed {
    fn insert(&mut self, id: SegmentId, runtime: Runtime) {
        debug_assert!(
            !self.runtime.contains_key(&id),
            "segment {id} managed twice"
        );
        self.order.push(id);
        self.runtime.insert(id, runtime);
    }

    fn remove(&mut self, id: SegmentId) {
        self.order.retain(|managed| *managed != id);
        self.runtime.remove(&id);
    }

    /// Managed segments of a channel with their runtime, in list order.
    fn of_channel<'a>(
        &'a self,
        channel: &'a str,
    ) -> impl Iterator<Item = (SegmentId, &'a Runtime)> + 'a {
        self.order.iter().filter_map(move |id| {
            let runtime = &self.runtime[id];
            (runtime.channel == channel).then_some((*id, runtime))
        })
    }
}

/// Why the cleanup step drops a segment.
#[derive(Clone, Copy, Debug)]
enum DropCause {
    EmptySealed,
    StaleImport,
}

/// DataCoord's segment manager (one per active DataCoord).
///
/// Locking: `state` is a std mutex held only for in-memory work, never across `.await`.
/// Operations that await RootCoord or the store (allocation, sealing, ticks) also hold `ops`, an
/// async mutex, so their plan-then-apply steps cannot interleave with each other; the synchronous
/// calls (stats, drops, reads) may run between the steps, and the apply steps tolerate that.
pub struct SegmentManager {
    store: Arc<dyn SegmentStore>,
    allocator: Arc<dyn Allocator>,
    config: SegmentConfig,
    ops: tokio::sync::Mutex<()>,
    state: Mutex<Managed>,
}

impl SegmentManager {
    /// Manages every Growing, Sealed and Importing segment of the store. If there is any, a fresh
    /// timestamp (retried `alloc_latest_expire_attempt` times, 200 ms backoff doubling to 3 s)
    /// moves their last expiry to `ts + assignment_expiration` (`ts + import_task_expiration` for
    /// Importing ones), so allocations a proxy or an import task got from the previous DataCoord
    /// are still honoured. Deliberate fix: 2.3.5 leaves Importing segments out, so after a
    /// restart they are never flushed or dropped as stale.
    pub async fn new(
        store: Arc<dyn SegmentStore>,
        allocator: Arc<dyn Allocator>,
        config: SegmentConfig,
    ) -> MilvusResult<Self> {
        let mut reloaded = store.segments_in_states(&[
            SegmentState::Growing,
            SegmentState::Sealed,
            SegmentState::Importing,
        ]);
        reloaded.sort_by_key(|seg| seg.id);
        let now = config.clock.now();
        let mut managed = Managed::default();
        for seg in &reloaded {
            // Deliberate fix: a restart says nothing about ingestion, so the idle clock starts now
            // instead of at the zero time (which idle-seals every reloaded segment at once).
            managed.insert(seg.id, Runtime::new(seg, now, Some(now)));
        }
        if !reloaded.is_empty() {
            let ts =
                alloc_startup_ts(allocator.as_ref(), config.alloc_latest_expire_attempt).await?;
            let guard = ts_after(ts, config.assignment_expiration);
            // A live import keeps its segment for a whole import lifetime after the restart; a
            // dead one is dropped as stale once that passes.
            let import_guard = ts_after(ts, config.import_task_expiration);
            for seg in &reloaded {
                let runtime = managed.runtime.get_mut(&seg.id).expect("just inserted");
                let guard = if state_of(seg) == SegmentState::Importing {
                    import_guard
                } else {
                    guard
                };
                // Sealed ones too: our store does not persist the in-memory expiry at seal time,
                // so the stored value may be 0; never lower what is stored.
                runtime.last_expire = runtime.last_expire.max(guard);
            }
            info!(
                segments = reloaded.len(),
                last_expire = guard,
                import_last_expire = import_guard,
                "segment manager reloaded growing, sealed and importing segments"
            );
        }
        Ok(Self {
            store,
            allocator,
            config,
            ops: tokio::sync::Mutex::new(()),
            state: Mutex::new(managed),
        })
    }

    /// AssignSegmentID for normal inserts: `rows` spread over Growing segments of (collection,
    /// partition, channel) with policy V1; segments are opened as needed. Every allocation expires
    /// at a fresh TSO + `assignment_expiration`.
    pub async fn alloc_segment(
        &self,
        collection_id: CollectionId,
        partition_id: PartitionId,
        channel: &str,
        rows: i64,
        schema: &CollectionSchema,
    ) -> MilvusResult<Vec<Allocation>> {
        if rows < 0 {
            return Err(SegmentError::InvalidRowCount(rows).into());
        }
        let max_rows = max_rows_per_segment(schema, self.config.max_size_mb)?;
        let _op = self.ops.lock().await;
        let plan = self.plan(collection_id, partition_id, channel, rows, max_rows);
        if plan == AllocationPlan::default() {
            return Ok(Vec::new());
        }
        let ts = self.alloc_timestamp().await?;
        let expire_time = ts_after(ts, self.config.assignment_expiration);
        let allocation = |segment_id, num_of_rows| Allocation {
            segment_id,
            num_of_rows,
            expire_time,
            collection_id,
            partition_id,
            channel: channel.to_string(),
        };

        let mut allocations = Vec::with_capacity(plan.new_segments.len() + 1);
        for new_rows in plan.new_segments {
            let template = SegmentInfo {
                collection_id,
                partition_id,
                insert_channel: channel.to_string(),
                state: SegmentState::Growing as i32,
                max_row_num: max_rows,
                ..Default::default()
            };
            let segment_id = self.open_segment(template, new_rows, expire_time).await?;
            allocations.push(allocation(segment_id, new_rows));
        }
        if let Some((segment_id, existing_rows)) = plan.existing {
            let mut state = self.lock_state();
            // A segment dropped meanwhile gets the allocation as if the drop came right after.
            if let Some(runtime) = state.runtime.get_mut(&segment_id) {
                runtime.reserve(existing_rows, expire_time);
            }
            allocations.push(allocation(segment_id, existing_rows));
        }
        debug!(
            collection_id,
            partition_id,
            channel,
            rows,
            ?allocations,
            "rows allocated"
        );
        Ok(allocations)
    }

    /// AssignSegmentID for an import task: always a new Importing segment (`is_importing`) with
    /// one allocation of `rows`, valid for `import_task_expiration`.
    pub async fn alloc_import_segment(
        &self,
        collection_id: CollectionId,
        partition_id: PartitionId,
        channel: &str,
        rows: i64,
        task_id: i64,
        schema: &CollectionSchema,
    ) -> MilvusResult<Allocation> {
        if rows < 0 {
            return Err(SegmentError::InvalidRowCount(rows).into());
        }
        let max_rows = max_rows_per_segment(schema, self.config.max_size_mb)?;
        let _op = self.ops.lock().await;
        let ts = self.alloc_timestamp().await?;
        let expire_time = ts_after(ts, self.config.import_task_expiration);
        let template = SegmentInfo {
            collection_id,
            partition_id,
            insert_channel: channel.to_string(),
            state: SegmentState::Importing as i32,
            max_row_num: max_rows,
            is_importing: true,
            ..Default::default()
        };
        let segment_id = self.open_segment(template, rows, expire_time).await?;
        if let Some(runtime) = self.lock_state().runtime.get_mut(&segment_id) {
            runtime.import_task = Some(task_id);
        }
        info!(
            collection_id,
            partition_id, channel, segment_id, task_id, rows, "import segment allocated"
        );
        Ok(Allocation {
            segment_id,
            num_of_rows: rows,
            expire_time,
            collection_id,
            partition_id,
            channel: channel.to_string(),
        })
    }

    /// Flush RPC, step 2: seals the collection's Growing segments (Importing ones instead when
    /// `is_import`) among `segment_ids`, or among all managed segments if it is empty. Returns the
    /// IDs sealed now or already Sealed. The first store error aborts.
    pub async fn seal_all_segments(
        &self,
        collection_id: CollectionId,
        segment_ids: &[SegmentId],
        is_import: bool,
    ) -> MilvusResult<Vec<SegmentId>> {
        let _op = self.ops.lock().await;
        let candidates = if segment_ids.is_empty() {
            self.lock_state().order.clone()
        } else {
            segment_ids.to_vec()
        };
        let mut sealed = Vec::new();
        for id in candidates {
            let Some(seg) = healthy_segment(self.store.as_ref(), id) else {
                debug!(segment_id = id, "seal skips a segment that is not healthy");
                continue;
            };
            if seg.collection_id != collection_id {
                continue;
            }
            let needs_seal = match state_of(&seg) {
                SegmentState::Sealed => false,
                SegmentState::Growing if !is_import => true,
                SegmentState::Importing if is_import => true,
                _ => continue,
            };
            if needs_seal {
                self.store
                    .set_state(id, SegmentState::Sealed)
                    .await
                    .map_err(SegmentError::Store)?;
                info!(collection_id, segment_id = id, channel = %seg.insert_channel, is_import, "segment sealed by flush");
            }
            sealed.push(id);
        }
        Ok(sealed)
    }

    /// One datanode time tick of `channel` at `ts`: expires allocations ≤ `ts`, applies the seal
    /// policies to its Growing segments, drops empty Sealed and stale Importing segments, and
    /// returns the Sealed segments to flush now (stamping their last flush time).
    pub async fn flushable_on_tick(
        &self,
        channel: &str,
        ts: Timestamp,
    ) -> MilvusResult<Vec<SegmentId>> {
        let _op = self.ops.lock().await;
        let now = self.config.clock.now();

        let to_seal = {
            let mut state = self.lock_state();
            let Managed { order, runtime } = &mut *state;
            let mut to_seal = Vec::new();
            for &id in order.iter() {
                let Some(runtime) = runtime.get_mut(&id) else {
                    continue;
                };
                if runtime.channel != channel {
                    continue;
                }
                runtime.expire(ts);
                let Some(seg) = healthy_segment(self.store.as_ref(), id) else {
                    continue;
                };
                if state_of(&seg) != SegmentState::Growing {
                    continue;
                }
                if let Some(reason) = seal_reason(&seg, runtime, ts, now, &self.config) {
                    to_seal.push((id, seg.collection_id, reason));
                }
            }
            to_seal
        };
        for (id, collection_id, reason) in to_seal {
            self.store
                .set_state(id, SegmentState::Sealed)
                .await
                .map_err(SegmentError::Store)?;
            info!(collection_id, segment_id = id, channel, %reason, "segment sealed by policy");
        }

        let to_drop: Vec<(SegmentId, CollectionId, DropCause)> = {
            let state = self.lock_state();
            state
                .of_channel(channel)
                .filter_map(|(id, runtime)| {
                    let seg = healthy_segment(self.store.as_ref(), id)?;
                    let cause = match state_of(&seg) {
                        SegmentState::Sealed
                            if runtime.last_expire <= ts && runtime.curr_rows == 0 =>
                        {
                            DropCause::EmptySealed
                        }
                        SegmentState::Importing if runtime.last_expire < ts => {
                            DropCause::StaleImport
                        }
                        _ => return None,
                    };
                    Some((id, seg.collection_id, cause))
                })
                .collect()
        };
        for (id, collection_id, cause) in to_drop {
            match self.store.set_state(id, SegmentState::Dropped).await {
                Ok(()) => {
                    self.lock_state().remove(id);
                    info!(
                        collection_id,
                        segment_id = id,
                        channel,
                        ?cause,
                        "segment dropped by cleanup"
                    );
                }
                // Deliberate fix: 2.3.5 stops managing it anyway and it stays Sealed until a
                // restart; keeping it managed retries on the next tick.
                Err(err) => {
                    warn!(collection_id, segment_id = id, channel, ?cause, error = %err, "drop by cleanup failed, retried next tick");
                }
            }
        }

        let mut state = self.lock_state();
        let Managed { order, runtime } = &mut *state;
        let mut flushable = Vec::new();
        for &id in order.iter() {
            let Some(runtime) = runtime.get_mut(&id) else {
                continue;
            };
            if runtime.channel != channel {
                continue;
            }
            let Some(seg) = healthy_segment(self.store.as_ref(), id) else {
                continue;
            };
            if is_flushable(&seg, runtime, ts, now) {
                runtime.last_flush_time = now;
                flushable.push(id);
            }
        }
        Ok(flushable)
    }

    /// Datanode row counts (`(segment, rows)`): raises `curr_rows` and marks the segment written.
    /// Unknown, unmanaged, Flushing and Flushed segments are ignored; counts never go down.
    pub fn update_segment_stats(&self, stats: &[(SegmentId, i64)]) {
        let now = self.config.clock.now();
        let mut state = self.lock_state();
        for &(id, rows) in stats {
            let Some(runtime) = state.runtime.get_mut(&id) else {
                debug!(
                    segment_id = id,
                    rows, "stats for an unmanaged segment ignored"
                );
                continue;
            };
            let Some(seg) = self.store.segment(id) else {
                warn!(
                    segment_id = id,
                    rows, "skip updating row number for not exist segment"
                );
                continue;
            };
            if matches!(
                state_of(&seg),
                SegmentState::Flushing | SegmentState::Flushed
            ) {
                warn!(
                    segment_id = id,
                    rows, "skip updating row number for flushed segment"
                );
                continue;
            }
            if rows > runtime.curr_rows {
                debug!(
                    segment_id = id,
                    old = runtime.curr_rows,
                    new = rows,
                    "segment rows updated"
                );
                runtime.curr_rows = rows;
                runtime.last_written_time = Some(now);
            }
        }
    }

    /// Whether any managed segment is Importing.
    pub fn has_importing(&self) -> bool {
        let state = self.lock_state();
        state.runtime.keys().any(|id| {
            healthy_segment(self.store.as_ref(), *id)
                .is_some_and(|seg| state_of(&seg) == SegmentState::Importing)
        })
    }

    /// A failed import task: its Importing segments (allocated for `task_id`, or listed in
    /// `segments`) lose their allocations, so the channel's next time tick drops them as stale
    /// imports. Returns the segments expired.
    pub fn abandon_import(&self, task_id: i64, segments: &[SegmentId]) -> Vec<SegmentId> {
        let mut state = self.lock_state();
        let mut expired = Vec::new();
        for (id, runtime) in state.runtime.iter_mut() {
            let ours = runtime.import_task == Some(task_id) || segments.contains(id);
            let importing = healthy_segment(self.store.as_ref(), *id)
                .is_some_and(|seg| state_of(&seg) == SegmentState::Importing);
            if ours && importing && runtime.last_expire > 0 {
                runtime.reservations.clear();
                runtime.last_expire = 0;
                expired.push(*id);
            }
        }
        expired
    }

    /// The datanode-reported row count of a managed segment.
    pub fn curr_rows(&self, id: SegmentId) -> Option<i64> {
        self.lock_state().runtime.get(&id).map(|r| r.curr_rows)
    }

    /// A snapshot of a managed segment's runtime state.
    pub fn runtime(&self, id: SegmentId) -> Option<SegmentRuntime> {
        self.lock_state().runtime.get(&id).map(|r| SegmentRuntime {
            curr_rows: r.curr_rows,
            allocated_rows: r.reserved_rows(),
            allocations: r.reservations.len(),
            last_expire: r.last_expire,
            last_flush_time: r.last_flush_time,
            last_written_time: r.last_written_time,
        })
    }

    /// Stops managing a segment and forgets its allocations (flushed or dropped by a datanode).
    pub fn drop_segment(&self, id: SegmentId) {
        self.lock_state().remove(id);
    }

    /// Stops managing every segment of a channel (DropVirtualChannel); unhealthy segments of any
    /// channel are forgotten too, as in 2.3.5.
    pub fn drop_segments_of_channel(&self, channel: &str) {
        let mut state = self.lock_state();
        let dropped: Vec<SegmentId> = state
            .order
            .iter()
            .copied()
            .filter(|id| {
                state.runtime[id].channel == channel
                    || healthy_segment(self.store.as_ref(), *id).is_none()
            })
            .collect();
        for id in &dropped {
            state.remove(*id);
        }
        info!(channel, segments = ?dropped, "segments of channel no longer managed");
    }

    /// IDs of the managed segments, in allocation (first-fit) order.
    pub fn managed_segments(&self) -> Vec<SegmentId> {
        self.lock_state().order.clone()
    }

    fn lock_state(&self) -> MutexGuard<'_, Managed> {
        // The state stays consistent across a panic (no multi-step updates under the lock).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Policy V1 over the Growing segments of (collection, partition, channel).
    fn plan(
        &self,
        collection_id: CollectionId,
        partition_id: PartitionId,
        channel: &str,
        rows: i64,
        max_rows: i64,
    ) -> AllocationPlan {
        let state = self.lock_state();
        let candidates: Vec<(SegmentId, i64)> = state
            .of_channel(channel)
            .filter(|(_, r)| r.collection_id == collection_id && r.partition_id == partition_id)
            .filter_map(|(id, runtime)| {
                let seg = healthy_segment(self.store.as_ref(), id)?;
                (state_of(&seg) == SegmentState::Growing).then(|| (id, free_rows(&seg, runtime)))
            })
            .collect();
        plan_allocation(&candidates, rows, max_rows)
    }

    async fn alloc_timestamp(&self) -> Result<Timestamp, SegmentError> {
        self.allocator
            .alloc_timestamp()
            .await
            .map_err(SegmentError::Allocator)
    }

    /// Persists a new segment from `template` (ID filled in) and manages it with one allocation.
    async fn open_segment(
        &self,
        template: SegmentInfo,
        rows: i64,
        expire_time: Timestamp,
    ) -> Result<SegmentId, SegmentError> {
        let id = self
            .allocator
            .alloc_id()
            .await
            .map_err(SegmentError::Allocator)?;
        let seg = SegmentInfo { id, ..template };
        let now = self.config.clock.now();
        let mut runtime = Runtime::new(&seg, now, None);
        runtime.reserve(rows, expire_time);
        let (collection_id, max_row_num) = (seg.collection_id, seg.max_row_num);
        let channel = seg.insert_channel.clone();
        self.store
            .add_segment(seg)
            .await
            .map_err(SegmentError::Store)?;
        self.lock_state().insert(id, runtime);
        info!(collection_id, segment_id = id, %channel, max_row_num, "segment opened");
        Ok(id)
    }
}

/// The startup timestamp, retried with 2.3.5's backoff.
async fn alloc_startup_ts(allocator: &dyn Allocator, attempts: u32) -> MilvusResult<Timestamp> {
    let attempts = attempts.max(1);
    let allocated = milvus_types::retry(
        Backoff::RETRY_DO,
        || allocator.alloc_timestamp(),
        |err, attempt| {
            if attempt >= attempts {
                return false;
            }
            warn!(attempt, error = %err, "failed to get ts from rootcoord for last expire");
            true
        },
    )
    .await;
    allocated.map_err(|err| {
        warn!(attempts, error = %err, "cannot allocate latest last expire from rootcoord");
        SegmentError::LastExpireUnavailable(err).into()
    })
}
