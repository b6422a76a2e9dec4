//! 2.3.5's compaction plan arithmetic (FACTS-index-compaction-gc.md §2.4–§2.6), pure: no I/O and
//! no clock. The caller brings what 2.3.5 looks up per (partition, channel) group — max rows, the
//! expiry TSO, whether the collection has a DISKANN index, the index-upgrade check — and gets back
//! the segments of each plan in 2.3.5's emission order.
//!
//! Every threshold keeps 2.3.5's exact shape: `int64(float64(x) * proportion)` truncations,
//! strict `<` against free space, `<=` against the expansion limit, float ratios where
//! `0 / 0` is NaN (false) and `n / 0` is +Inf (true). Deviations are listed in the README.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use milvus_config::DataCoordConfig;
use milvus_proto::common::KeyValuePair;
use milvus_proto::data::{FieldBinlog, SegmentInfo};
use milvus_proto::schema::CollectionSchema;
use milvus_types::{MilvusError, MilvusResult, compose_ts, parse_ts};

/// Collection property with the TTL in integer seconds (overrides `common.entityExpiration`).
const COLLECTION_TTL_KEY: &str = "collection.ttl.seconds";
const BYTES_PER_MB: f64 = 1024.0 * 1024.0;
const NANOS_PER_MILLI: i128 = 1_000_000;

/// The `dataCoord.segment.*` / `dataCoord.compaction.*` / `dataNode.segment.binlog.maxsize` values
/// plan generation reads. Built once from the loaded config; no `Default` (tests build it from
/// `milvus_config::DataCoordConfig::default()`).
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyConfig {
    /// `dataCoord.segment.maxSize` (MB)
    segment_max_size_mb: f64,
    /// `dataCoord.segment.diskSegmentMaxSize` (MB)
    disk_segment_max_size_mb: f64,
    /// §2.5 rule 1: more stats logs than this triggers (None: rule off, see `stats_log_limit`).
    max_stats_logs: Option<i64>,
    /// The same with `diskSegmentMaxSize`.
    disk_max_stats_logs: Option<i64>,
    small_proportion: f64,
    compactable_proportion: f64,
    expansion_rate: f64,
    /// `compaction.min.segment`
    min_segment: usize,
    /// `compaction.max.segment`, as Go's signed int so `max.segment − 1` may be −1.
    max_segment: i64,
    /// `compaction.single.ratio.threshold`
    ratio_threshold: f64,
    /// `compaction.single.deltalog.maxsize` (bytes)
    deltalog_max_size: i64,
    /// `compaction.single.expiredlog.maxsize` (bytes)
    expiredlog_max_size: i64,
    /// `compaction.single.deltalog.maxnum`
    deltalog_max_num: usize,
    /// `dataCoord.autoUpgradeSegmentIndex`
    auto_upgrade_segment_index: bool,
    /// `common.entityExpiration` (None when negative).
    entity_expiration: Option<Duration>,
}

impl PolicyConfig {
    /// Takes the plan-generation keys from the loaded configuration.
    pub fn from_config(config: &DataCoordConfig) -> Self {
        let segment = &config.datacoord.segment;
        let compaction = &config.datacoord.compaction;
        let binlog_max_size = config.datanode.binlog_max_size;
        Self {
            segment_max_size_mb: segment.max_size_mb,
            disk_segment_max_size_mb: segment.disk_segment_max_size_mb,
            max_stats_logs: stats_log_limit(segment.max_size_mb, binlog_max_size),
            disk_max_stats_logs: stats_log_limit(segment.disk_segment_max_size_mb, binlog_max_size),
            small_proportion: segment.small_proportion,
            compactable_proportion: segment.compactable_proportion,
            expansion_rate: segment.expansion_rate,
            min_segment: compaction.min_segment,
            max_segment: i64::try_from(compaction.max_segment).unwrap_or(i64::MAX),
            ratio_threshold: compaction.single_ratio_threshold,
            deltalog_max_size: compaction.single_deltalog_max_size,
            expiredlog_max_size: compaction.single_expiredlog_max_size,
            deltalog_max_num: compaction.single_deltalog_max_num,
            auto_upgrade_segment_index: config.datacoord.auto_upgrade_segment_index,
            entity_expiration: config.common.entity_expiration,
        }
    }
}

/// §2.5 rule 1: `2 × ⌊size MiB / binlog max size⌋`. A binlog max size ≤ 0 turns the rule off
/// (2.3.5 divides by zero and panics, or with a negative size prioritizes every segment).
/// The size in bytes is taken from the float MB value (2.3.5 reads a fractional maxSize as 0
/// here, which would prioritize every segment with a stats log).
fn stats_log_limit(size_mb: f64, binlog_max_size: i64) -> Option<i64> {
    if binlog_max_size <= 0 {
        return None;
    }
    let size_bytes = (size_mb * BYTES_PER_MB) as i64;
    Some((size_bytes / binlog_max_size).saturating_mul(2))
}

/// What plan generation needs to know about one (partition, channel) group.
pub struct GroupContext<'a> {
    /// §2.4 max rows of this collection's segments (see `max_rows`).
    pub max_rows: i64,
    /// Manual compaction: every candidate is prioritized.
    pub force: bool,
    /// §2.5 rule 3: insert binlogs with `timestamp_to` below this TSO are expired (None: no TTL).
    pub expire_ts: Option<u64>,
    /// §2.5 rule 1 limit uses diskSegmentMaxSize when the collection has a DISKANN index.
    pub has_diskann: bool,
    /// §2.5 rule 5 (only consulted when `dataCoord.autoUpgradeSegmentIndex`): whether a segment
    /// has a segment index older than the current engine version with files.
    pub needs_index_upgrade: &'a (dyn Fn(&SegmentInfo) -> bool + Sync),
}

/// §2.4: max rows per segment for a collection (DISKANN → diskSegmentMaxSize). Errors on a schema
/// whose row size cannot be estimated (e.g. no fields), as a MilvusError.
pub fn max_rows(
    schema: &CollectionSchema,
    has_diskann: bool,
    config: &PolicyConfig,
) -> MilvusResult<i64> {
    let size_mb = if has_diskann {
        config.disk_segment_max_size_mb
    } else {
        config.segment_max_size_mb
    };
    datacoord_segments::max_rows_per_segment(schema, size_mb)
}

/// §2.5 rule 3: the collection TTL: property `collection.ttl.seconds` else
/// `common.entityExpiration`; None when not positive. An unparsable property → error (2.3.5 aborts).
///
/// The last `collection.ttl.seconds` wins (2.3.5 keeps properties in a map). A TTL too long for
/// i64 nanoseconds is None: 2.3.5's `Duration` multiplication wraps there, possibly to a tiny TTL.
/// So a returned TTL always fits `CompactionPlan.collection_ttl` (i64 nanoseconds).
pub fn collection_ttl(
    properties: &[KeyValuePair],
    config: &PolicyConfig,
) -> MilvusResult<Option<Duration>> {
    let property = properties
        .iter()
        .rev()
        .find(|pair| pair.key == COLLECTION_TTL_KEY);
    let Some(property) = property else {
        return Ok(config.entity_expiration.and_then(usable_ttl));
    };
    // Go's strconv.Atoi: optional sign and decimal digits, nothing else.
    let seconds = property.value.parse::<i64>().map_err(|_| {
        MilvusError::parameter_invalid(
            format!("integer seconds in {COLLECTION_TTL_KEY}"),
            format!("{:?}", property.value),
        )
    })?;
    let Ok(seconds) = u64::try_from(seconds) else {
        return Ok(None);
    };
    Ok(usable_ttl(Duration::from_secs(seconds)))
}

fn usable_ttl(ttl: Duration) -> Option<Duration> {
    let fits_in_nanos = i64::try_from(ttl.as_nanos()).is_ok();
    (!ttl.is_zero() && fits_in_nanos).then_some(ttl)
}

/// expireTs = compose(physical(now_ts) − ttl, 0).
///
/// Milliseconds are truncated toward zero as in 2.3.5. A TTL reaching before the Unix epoch gives
/// 0 (nothing expired); 2.3.5 composes a negative time into a huge TSO that expires everything.
pub fn expire_ts(now_ts: u64, ttl: Duration) -> u64 {
    let (physical_ms, _logical) = parse_ts(now_ts);
    let now_ns = i128::from(physical_ms) * NANOS_PER_MILLI;
    let ttl_ns = i128::try_from(ttl.as_nanos()).unwrap_or(i128::MAX);
    let expired_ms = now_ns.saturating_sub(ttl_ns) / NANOS_PER_MILLI;
    match u64::try_from(expired_ms) {
        Ok(ms) => compose_ts(ms, 0),
        Err(_) => 0,
    }
}

/// Why a segment is compacted on its own (§2.5, in 2.3.5's evaluation order).
enum SingleReason {
    StatsLogs { count: usize },
    DeltaLogs { count: usize },
    Expired { rows: i64, size: i64 },
    Deleted { rows: i64, size: i64 },
    IndexUpgrade,
}

impl fmt::Display for SingleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StatsLogs { count } => write!(f, "{count} stats logs"),
            Self::DeltaLogs { count } => write!(f, "{count} delta logs"),
            Self::Expired { rows, size } => write!(f, "{rows} expired rows in {size} bytes"),
            Self::Deleted { rows, size } => write!(f, "{rows} deleted rows in {size} bytes"),
            Self::IndexUpgrade => f.write_str("segment index older than the engine"),
        }
    }
}

/// §2.5: whether the segment should be compacted on its own (the prioritized list).
///
/// True for every segment of a forced (manual) group, as 2.3.5 prioritizes them all.
pub fn should_compact_alone(
    segment: &SegmentInfo,
    ctx: &GroupContext<'_>,
    config: &PolicyConfig,
) -> bool {
    if ctx.force {
        return true;
    }
    match single_reason(segment, ctx, config) {
        Some(reason) => {
            tracing::debug!(segment_id = segment.id, %reason, "segment compacted alone");
            true
        }
        None => false,
    }
}

fn single_reason(
    segment: &SegmentInfo,
    ctx: &GroupContext<'_>,
    config: &PolicyConfig,
) -> Option<SingleReason> {
    // Segments written by compaction have one stats log per field; only flushed ones pile up.
    if segment.compaction_from.is_empty() {
        let limit = if ctx.has_diskann {
            config.disk_max_stats_logs
        } else {
            config.max_stats_logs
        };
        let count = log_count(&segment.statslogs);
        if let Some(limit) = limit
            && i64::try_from(count).unwrap_or(i64::MAX) > limit
        {
            return Some(SingleReason::StatsLogs { count });
        }
    }

    let delta_count = log_count(&segment.deltalogs);
    if delta_count > config.deltalog_max_num {
        return Some(SingleReason::DeltaLogs { count: delta_count });
    }

    // Without a TTL 2.3.5 still evaluates this rule against expireTs 0 (nothing is below it), so
    // a ratio threshold ≤ 0 fires on 0 expired rows; keep that.
    let expire_ts = ctx.expire_ts.unwrap_or(0);
    let (expired_rows, expired_size) = log_totals(&segment.binlogs, |ts_to| ts_to < expire_ts);
    if ratio_reached(expired_rows, segment.num_of_rows, config.ratio_threshold)
        || expired_size > config.expiredlog_max_size
    {
        return Some(SingleReason::Expired {
            rows: expired_rows,
            size: expired_size,
        });
    }

    let (deleted_rows, deleted_size) = log_totals(&segment.deltalogs, |_| true);
    if ratio_reached(deleted_rows, segment.num_of_rows, config.ratio_threshold)
        || deleted_size > config.deltalog_max_size
    {
        return Some(SingleReason::Deleted {
            rows: deleted_rows,
            size: deleted_size,
        });
    }

    if config.auto_upgrade_segment_index && (ctx.needs_index_upgrade)(segment) {
        return Some(SingleReason::IndexUpgrade);
    }
    None
}

fn log_count(fields: &[FieldBinlog]) -> usize {
    fields.iter().map(|field| field.binlogs.len()).sum()
}

/// Σ entries_num and Σ log_size of the logs whose `timestamp_to` passes `select`.
fn log_totals(fields: &[FieldBinlog], select: impl Fn(u64) -> bool) -> (i64, i64) {
    let mut rows: i64 = 0;
    let mut size: i64 = 0;
    for log in fields.iter().flat_map(|field| &field.binlogs) {
        if select(log.timestamp_to) {
            rows = rows.wrapping_add(log.entries_num);
            size = size.wrapping_add(log.log_size);
        }
    }
    (rows, size)
}

/// `float64(part)/float64(rows) >= threshold`: 0/0 is NaN (false), n/0 is ±Inf.
fn ratio_reached(part: i64, rows: i64, threshold: f64) -> bool {
    part as f64 / rows as f64 >= threshold
}

/// Go's `int64(float64(max_rows) * factor)`: truncation toward zero.
fn scaled(max_rows: i64, factor: f64) -> i64 {
    (max_rows as f64 * factor) as i64
}

/// §2.6: one group's candidates (already filtered: healthy, Flushed/Flushing, not compacting, not
/// importing, index gate applied) → the segments of each plan, in 2.3.5's emission order and with
/// each bucket's segments in 2.3.5's order (the plan lists them in that order).
///
/// Every candidate is measured against `ctx.max_rows` (2.3.5 uses each segment's in-memory
/// `max_row_num` after overwriting it with the recomputed value).
pub fn plan_buckets(
    candidates: Vec<Arc<SegmentInfo>>,
    ctx: &GroupContext<'_>,
    config: &PolicyConfig,
) -> Vec<Vec<Arc<SegmentInfo>>> {
    let max_rows = ctx.max_rows;
    let small_below = scaled(max_rows, config.small_proportion);
    let mut prioritized = Vec::new();
    let mut small = Vec::new();
    let mut non_planned = Vec::new();
    for segment in candidates {
        if should_compact_alone(&segment, ctx, config) {
            prioritized.push(segment);
        } else if segment.num_of_rows < small_below {
            small.push(segment);
        } else {
            non_planned.push(segment);
        }
    }
    prioritized.sort_by(largest_first);
    small.sort_by(largest_first);
    non_planned.sort_by(|a, b| largest_first(a, b).reverse());

    let mut prioritized = VecDeque::from(prioritized);
    let mut small = VecDeque::from(small);
    let mut plans: Vec<Bucket> = Vec::new();
    // Room besides the first segment of a bucket.
    let max_others = config.max_segment.saturating_sub(1);

    // Prioritized segments always get a plan, alone if nothing fits beside them.
    while let Some(first) = prioritized.pop_front() {
        let mut bucket = Bucket::new(first);
        let rows = bucket.total_rows;
        if rows < max_rows {
            let mut free = max_rows.wrapping_sub(rows);
            let mut budget = max_others;
            let taken = take_fitting(&mut prioritized, &mut free, budget, FromEnd::Front);
            budget -= taken.len() as i64;
            bucket.extend(taken);
            if budget > 0 {
                let taken = take_fitting(&mut small, &mut free, budget, FromEnd::Front);
                bucket.extend(taken);
            }
        }
        plans.push(bucket);
    }

    // The largest small segment with the smallest ones that fit: taking from the end makes
    // buckets of many segments, which min.segment asks for.
    let compactable_above = scaled(
        max_rows,
        config.compactable_proportion.max(config.small_proportion),
    );
    let mut remaining: Vec<Arc<SegmentInfo>> = Vec::new();
    while let Some(first) = small.pop_front() {
        let mut bucket = Bucket::new(first);
        let mut free = max_rows.wrapping_sub(bucket.total_rows);
        let taken = take_fitting(&mut small, &mut free, max_others, FromEnd::Back);
        bucket.extend(taken);
        let count = bucket.segments.len();
        if count >= config.min_segment || (count > 1 && bucket.total_rows > compactable_above) {
            plans.push(bucket);
        } else {
            remaining.extend(bucket.segments);
        }
    }

    // Leftover small segments may overfill an emitted plan up to expansionRate × max rows.
    let expansion_limit = (config.expansion_rate * max_rows as f64) as i64;
    let expandable_below = scaled(max_rows, config.expansion_rate - 1.0);
    for index in (0..remaining.len()).rev() {
        let rows = remaining[index].num_of_rows;
        if rows >= expandable_below {
            continue;
        }
        if let Some(plan) = plans
            .iter_mut()
            .find(|plan| plan.total_rows.wrapping_add(rows) <= expansion_limit)
        {
            plan.push(remaining.remove(index));
        }
    }

    // Then each non-planned segment, smallest first, absorbs what still fits under the limit.
    for segment in non_planned {
        let mut bucket = Bucket::new(segment);
        for index in (0..remaining.len()).rev() {
            let rows = remaining[index].num_of_rows;
            if bucket.total_rows.wrapping_add(rows) <= expansion_limit {
                bucket.push(remaining.remove(index));
            }
        }
        if bucket.segments.len() > 1 {
            plans.push(bucket);
        }
    }

    plans.into_iter().map(|plan| plan.segments).collect()
}

/// Rows descending, then segment ID ascending.
fn largest_first(a: &Arc<SegmentInfo>, b: &Arc<SegmentInfo>) -> Ordering {
    b.num_of_rows
        .cmp(&a.num_of_rows)
        .then_with(|| a.id.cmp(&b.id))
}

/// The segments of one plan and their summed rows (the plan's `total_rows`).
struct Bucket {
    segments: Vec<Arc<SegmentInfo>>,
    total_rows: i64,
}

impl Bucket {
    fn new(first: Arc<SegmentInfo>) -> Self {
        let total_rows = first.num_of_rows;
        Self {
            segments: vec![first],
            total_rows,
        }
    }

    fn push(&mut self, segment: Arc<SegmentInfo>) {
        self.total_rows = self.total_rows.wrapping_add(segment.num_of_rows);
        self.segments.push(segment);
    }

    fn extend(&mut self, segments: Vec<Arc<SegmentInfo>>) {
        for segment in segments {
            self.push(segment);
        }
    }
}

/// Which end of the candidate list the greedy scan starts from.
#[derive(Clone, Copy)]
enum FromEnd {
    Front,
    Back,
}

/// Moves out of `candidates`, scanning from `from`, every segment with fewer rows than `free`
/// (which shrinks as segments are taken), at most `limit` of them; returns them in scan order.
fn take_fitting(
    candidates: &mut VecDeque<Arc<SegmentInfo>>,
    free: &mut i64,
    limit: i64,
    from: FromEnd,
) -> Vec<Arc<SegmentInfo>> {
    let mut taken = Vec::new();
    let fits = |segment: &SegmentInfo, free: i64, taken: usize| {
        (taken as i64) < limit && segment.num_of_rows < free
    };
    match from {
        FromEnd::Front => {
            let mut index = 0;
            while index < candidates.len() {
                if fits(&candidates[index], *free, taken.len())
                    && let Some(segment) = candidates.remove(index)
                {
                    *free = free.wrapping_sub(segment.num_of_rows);
                    taken.push(segment);
                } else {
                    index += 1;
                }
            }
        }
        FromEnd::Back => {
            for index in (0..candidates.len()).rev() {
                if fits(&candidates[index], *free, taken.len())
                    && let Some(segment) = candidates.remove(index)
                {
                    *free = free.wrapping_sub(segment.num_of_rows);
                    taken.push(segment);
                }
            }
        }
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(rows: &[i64]) -> VecDeque<Arc<SegmentInfo>> {
        rows.iter()
            .enumerate()
            .map(|(index, rows)| {
                Arc::new(SegmentInfo {
                    id: index as i64 + 1,
                    num_of_rows: *rows,
                    ..Default::default()
                })
            })
            .collect()
    }

    fn ids(segments: &[Arc<SegmentInfo>]) -> Vec<i64> {
        segments.iter().map(|segment| segment.id).collect()
    }

    #[test]
    fn front_scan_skips_what_does_not_fit_and_keeps_scanning() {
        // free 10: 8 fits (free 2), 5 does not, 1 fits (free 1), 1 does not (strict <).
        let mut candidates = segments(&[8, 5, 1, 1]);
        let mut free = 10;
        let taken = take_fitting(&mut candidates, &mut free, 30, FromEnd::Front);
        assert_eq!(ids(&taken), vec![1, 3]);
        assert_eq!(free, 1);
        assert_eq!(ids(candidates.make_contiguous()), vec![2, 4]);
    }

    #[test]
    fn back_scan_takes_from_the_end_in_scan_order() {
        let mut candidates = segments(&[6, 3, 2, 1]);
        let mut free = 7;
        let taken = take_fitting(&mut candidates, &mut free, 30, FromEnd::Back);
        // 1 (free 6), 2 (free 4), 3 (free 1), 6 does not fit.
        assert_eq!(ids(&taken), vec![4, 3, 2]);
        assert_eq!(free, 1);
        assert_eq!(ids(candidates.make_contiguous()), vec![1]);
    }

    #[test]
    fn scans_stop_taking_at_the_limit() {
        let mut candidates = segments(&[1, 1, 1]);
        let mut free = 100;
        let taken = take_fitting(&mut candidates, &mut free, 2, FromEnd::Front);
        assert_eq!(ids(&taken), vec![1, 2]);
        let mut none = segments(&[1]);
        assert!(take_fitting(&mut none, &mut free, -1, FromEnd::Back).is_empty());
    }

    #[test]
    fn stats_log_limit_is_twice_the_binlogs_per_segment() {
        // 512 MiB / 64 MiB = 8 → 16; 2048 MiB → 64 (FACTS §2.5 rule 1).
        assert_eq!(stats_log_limit(512.0, 67_108_864), Some(16));
        assert_eq!(stats_log_limit(2048.0, 67_108_864), Some(64));
        assert_eq!(stats_log_limit(512.0, 0), None);
        assert_eq!(stats_log_limit(512.0, -1), None);
    }
}
