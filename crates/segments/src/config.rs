//! Settings of the segment manager (2.3.5 `dataCoord.segment.*` keys) and its wall clock.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use milvus_config::DataCoordConfig;

/// Minimum gap between two FlushSegments requests for one sealed segment (fixed in 2.3.5).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(2);

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

/// Segment manager settings, read once from the loaded configuration
/// ([`SegmentConfig::from_config`]; their 2.3.5 defaults live in `milvus-config`).
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
    /// Wall clock for the idle and flush-gap policies (the system clock; tests swap it).
    pub clock: Arc<dyn Clock>,
}

impl SegmentConfig {
    /// The segment manager's settings in `config`, on the system clock.
    pub fn from_config(config: &DataCoordConfig) -> Self {
        let segment = &config.datacoord.segment;
        Self {
            max_size_mb: segment.max_size_mb,
            seal_proportion: segment.seal_proportion,
            assignment_expiration: segment.assignment_expiration,
            max_life: segment.max_life,
            max_idle_time: segment.max_idle_time,
            min_size_from_idle_to_sealed_mb: segment.min_size_from_idle_to_sealed_mb,
            max_binlog_file_number: segment.max_binlog_file_number,
            alloc_latest_expire_attempt: segment.alloc_latest_expire_attempt,
            import_task_expiration: config.rootcoord.import_task_expiration,
            clock: Arc::new(SystemClock),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_comes_from_its_key() {
        let mut config = DataCoordConfig::default();
        let segment = &mut config.datacoord.segment;
        segment.max_size_mb = 1.0;
        segment.seal_proportion = 0.5;
        segment.assignment_expiration = Duration::from_secs(3);
        segment.max_life = Duration::from_secs(4);
        segment.max_idle_time = Duration::from_secs(5);
        segment.min_size_from_idle_to_sealed_mb = 6.0;
        segment.max_binlog_file_number = 7;
        segment.alloc_latest_expire_attempt = 8;
        config.rootcoord.import_task_expiration = Duration::from_secs(9);
        let read = SegmentConfig::from_config(&config);
        assert_eq!(
            (read.max_size_mb, read.seal_proportion),
            (1.0, 0.5),
            "{read:?}"
        );
        assert_eq!(
            [
                read.assignment_expiration,
                read.max_life,
                read.max_idle_time,
                read.import_task_expiration
            ],
            [3, 4, 5, 9].map(Duration::from_secs)
        );
        assert_eq!(read.min_size_from_idle_to_sealed_mb, 6.0);
        assert_eq!(read.max_binlog_file_number, 7);
        assert_eq!(read.alloc_latest_expire_attempt, 8);
    }
}
