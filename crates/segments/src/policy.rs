//! Per-segment runtime state and the 2.3.5 policies over it: allocation (V1), seal, flush.
//! Everything here is pure; the manager supplies the stored segment, "now" and the tick.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use milvus_proto::common::SegmentState;
use milvus_proto::data::SegmentInfo;
use milvus_types::{CollectionId, PartitionId, SegmentId, Timestamp, compose_ts, parse_ts};

use crate::config::{FLUSH_INTERVAL, SegmentConfig};
use crate::store::state_of;

/// Rows promised to a proxy until `expire_time`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reservation {
    pub rows: i64,
    pub expire_time: Timestamp,
}

/// What 2.3.5 keeps only in memory for a managed segment.
#[derive(Clone, Debug)]
pub(crate) struct Runtime {
    pub collection_id: CollectionId,
    pub partition_id: PartitionId,
    pub channel: String,
    /// Rows the datanode reported; starts at the persisted `num_of_rows`.
    pub curr_rows: i64,
    pub reservations: Vec<Reservation>,
    /// Expiry of the newest allocation: the segment may still receive rows until then.
    pub last_expire: Timestamp,
    pub last_flush_time: SystemTime,
    /// When `curr_rows` last grew; `None` = never (counts as idle forever).
    pub last_written_time: Option<SystemTime>,
    /// The import task an Importing segment was allocated for (memory only: unknown after a
    /// restart, when only RootCoord's record of the task names its saved segments).
    pub import_task: Option<i64>,
}

impl Runtime {
    /// Runtime of a segment the manager starts to manage at `now`.
    pub fn new(seg: &SegmentInfo, now: SystemTime, last_written_time: Option<SystemTime>) -> Self {
        Self {
            collection_id: seg.collection_id,
            partition_id: seg.partition_id,
            channel: seg.insert_channel.clone(),
            curr_rows: seg.num_of_rows,
            reservations: Vec::new(),
            last_expire: seg.last_expire_time,
            // Eligible for a flush request at once.
            last_flush_time: now.checked_sub(FLUSH_INTERVAL).unwrap_or(UNIX_EPOCH),
            last_written_time,
            import_task: None,
        }
    }

    pub fn reserved_rows(&self) -> i64 {
        self.reservations.iter().map(|r| r.rows).sum()
    }

    pub fn reserve(&mut self, rows: i64, expire_time: Timestamp) {
        self.reservations.push(Reservation { rows, expire_time });
        // The newest allocation decides, even if an older one expired later (2.3.5 does this).
        self.last_expire = expire_time;
    }

    pub fn expire(&mut self, ts: Timestamp) {
        self.reservations.retain(|r| r.expire_time > ts);
    }
}

/// `ts` moved forward by `by` in its physical part; the logical part is kept.
pub(crate) fn ts_after(ts: Timestamp, by: Duration) -> Timestamp {
    let (physical_ms, logical) = parse_ts(ts);
    compose_ts(physical_ms + by.as_millis() as u64, logical)
}

/// Where the rows of one request go (allocation policy V1).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct AllocationPlan {
    /// Row counts of the segments to open, in order.
    pub new_segments: Vec<i64>,
    /// The remainder placed in an existing segment.
    pub existing: Option<(SegmentId, i64)>,
}

/// V1: whole new segments while `rows ≥ max`, then the remainder into the first candidate with
/// enough free rows, else one more new segment. `candidates` are `(id, free rows)` in order.
pub(crate) fn plan_allocation(
    candidates: &[(SegmentId, i64)],
    rows: i64,
    max: i64,
) -> AllocationPlan {
    debug_assert!(max > 0 && rows >= 0);
    let mut plan = AllocationPlan::default();
    let mut remaining = rows;
    while remaining >= max {
        plan.new_segments.push(max);
        remaining -= max;
    }
    if remaining == 0 {
        return plan;
    }
    match candidates.iter().find(|(_, free)| *free >= remaining) {
        Some((id, _)) => plan.existing = Some((*id, remaining)),
        None => plan.new_segments.push(remaining),
    }
    plan
}

/// Free rows of a growing segment: 2.3.5 counts persisted rows, not the datanode's `curr_rows`.
pub(crate) fn free_rows(seg: &SegmentInfo, runtime: &Runtime) -> i64 {
    seg.max_row_num - seg.num_of_rows - runtime.reserved_rows()
}

/// Why a growing segment gets sealed on a tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealReason {
    /// Too many statslog files.
    MaxBinlogFiles,
    /// No allocation for `max_life`.
    Lifetime,
    /// `curr_rows` reached `seal_proportion` of capacity.
    Capacity,
    /// No row growth for `max_idle_time` while holding enough rows.
    Idle,
}

impl fmt::Display for SealReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MaxBinlogFiles => "max binlog files",
            Self::Lifetime => "lifetime",
            Self::Capacity => "capacity",
            Self::Idle => "idle",
        })
    }
}

/// The first seal policy a growing segment meets at tick `ts`, in 2.3.5's order.
pub(crate) fn seal_reason(
    seg: &SegmentInfo,
    runtime: &Runtime,
    ts: Timestamp,
    now: SystemTime,
    config: &SegmentConfig,
) -> Option<SealReason> {
    let statslog_files: usize = seg.statslogs.iter().map(|f| f.binlogs.len()).sum();
    if statslog_files >= config.max_binlog_file_number {
        return Some(SealReason::MaxBinlogFiles);
    }
    let (tick_ms, _) = parse_ts(ts);
    let (last_expire_ms, _) = parse_ts(runtime.last_expire);
    let since_last_expire_ms = i128::from(tick_ms) - i128::from(last_expire_ms);
    if since_last_expire_ms >= config.max_life.as_millis() as i128 {
        return Some(SealReason::Lifetime);
    }
    let max_rows = seg.max_row_num as f64;
    if runtime.curr_rows as f64 >= config.seal_proportion * max_rows {
        return Some(SealReason::Capacity);
    }
    let idle = match runtime.last_written_time {
        None => true,
        Some(written) => now
            .duration_since(written)
            .is_ok_and(|idle_for| idle_for > config.max_idle_time),
    };
    let idle_limit = config.min_size_from_idle_to_sealed_mb / config.max_size_mb * max_rows;
    if idle && runtime.curr_rows as f64 > idle_limit {
        return Some(SealReason::Idle);
    }
    None
}

/// Flush policy V1: a sealed segment whose last allocation expired and that holds rows (or any
/// sealed import segment), at most once per [`FLUSH_INTERVAL`].
pub(crate) fn is_flushable(
    seg: &SegmentInfo,
    runtime: &Runtime,
    ts: Timestamp,
    now: SystemTime,
) -> bool {
    if state_of(seg) != SegmentState::Sealed {
        return false;
    }
    let gap_passed = now
        .duration_since(runtime.last_flush_time)
        .is_ok_and(|gap| gap >= FLUSH_INTERVAL);
    let drained = runtime.last_expire <= ts && runtime.curr_rows != 0;
    gap_passed && (drained || seg.is_importing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_fills_whole_segments_then_first_fit() {
        let plan = plan_allocation(&[(1, 10), (2, 100), (3, 1000)], 2 * 50 + 30, 50);
        assert_eq!(plan.new_segments, vec![50, 50]);
        assert_eq!(plan.existing, Some((2, 30)));

        let exact = plan_allocation(&[(1, 1000)], 100, 50);
        assert_eq!(exact.new_segments, vec![50, 50]);
        assert_eq!(exact.existing, None);

        let no_fit = plan_allocation(&[(1, 29)], 30, 50);
        assert_eq!(no_fit.new_segments, vec![30]);
        assert_eq!(no_fit.existing, None);

        assert_eq!(plan_allocation(&[(1, 5)], 0, 50), AllocationPlan::default());
    }

    #[test]
    fn ts_after_keeps_logical_part() {
        let ts = compose_ts(1_000, 7);
        assert_eq!(
            ts_after(ts, Duration::from_millis(2000)),
            compose_ts(3_000, 7)
        );
    }
}
