//! Settings of the segment manager (2.3.5 `dataCoord.segment.*` keys) and its wall clock.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Minimum gap between two FlushSegments requests for one sealed segment (fixed in 2.3.5).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// Backoff before the second attempt to allocate the startup timestamp; doubles up to
/// [`LAST_EXPIRE_MAX_BACKOFF`].
pub const LAST_EXPIRE_INITIAL_BACKOFF: Duration = Duration::from_millis(200);

/// Upper bound of the startup retry backoff.
pub const LAST_EXPIRE_MAX_BACKOFF: Duration = Duration::from_secs(3);

/// Where "now" comes from for the wall-clock policies (idle seal, flush gap); tests inject one.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// [`Clock`] reading the system time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Segment manager settings; [`Default`] gives the values of the shipped 2.3.5 `milvus.yaml`.
#[derive(Clone, Debug)]
pub struct SegmentConfig {
    /// `dataCoord.segment.maxSize` in MB: the byte budget that yields `max_row_num`.
    pub max_size_mb: f64,
    /// `dataCoord.segment.sealProportion`: seal once `currRows ≥ proportion × max_row_num`.
    pub seal_proportion: f64,
    /// `dataCoord.segment.assignmentExpiration`: how long a proxy may write into an allocation.
    pub assignment_expiration: Duration,
    /// `dataCoord.segment.maxLife`: seal a segment that saw no allocation for this long.
    pub max_life: Duration,
    /// `dataCoord.segment.maxIdleTime`: seal a segment whose row count did not grow for this long…
    pub max_idle_time: Duration,
    /// …if it holds more than `minSizeFromIdleToSealed` MB worth of rows.
    pub min_size_from_idle_to_sealed_mb: f64,
    /// `dataCoord.segment.maxBinlogFileNumber`: seal at this many statslog files.
    pub max_binlog_file_number: usize,
    /// `dataCoord.segment.allocLatestExpireAttempt`: startup timestamp attempts.
    pub alloc_latest_expire_attempt: u32,
    /// `rootCoord.importTaskExpiration`: lifetime of an import allocation.
    pub import_task_expiration: Duration,
    /// Wall clock for the idle and flush-gap policies.
    pub clock: Arc<dyn Clock>,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        Self {
            max_size_mb: 512.0,
            seal_proportion: 0.23,
            assignment_expiration: Duration::from_millis(2000),
            max_life: Duration::from_secs(86_400),
            max_idle_time: Duration::from_secs(600),
            min_size_from_idle_to_sealed_mb: 16.0,
            max_binlog_file_number: 32,
            alloc_latest_expire_attempt: 200,
            import_task_expiration: Duration::from_secs(900),
            clock: Arc::new(SystemClock),
        }
    }
}
