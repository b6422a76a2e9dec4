//! [`CompactionConfig`]: the `dataCoord.enableCompaction` / `dataCoord.compaction.*` values the
//! engine reads, taken once from the loaded configuration.

use std::time::Duration;

use milvus_config::DataCoordConfig;

use crate::policy::PolicyConfig;

/// Capacity of the flush-signal queue; signals beyond it are dropped (2.3.5's channel of 100).
pub const SIGNAL_QUEUE_CAPACITY: usize = 100;

/// Time RootCoord gets to describe a collection for plan generation (2.3.5: 1 s).
pub const DESCRIBE_COLLECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// Time RootCoord gets to hand out a signal ID, a plan ID or the signal's TSO (2.3.5: 5 s).
pub const ALLOCATE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a final task stays for GetCompactionState after its timeout (2.3.5: 1 h).
pub const FINAL_TASK_RETENTION: Duration = Duration::from_secs(3600);

/// SyncSegments attempts after a commit (2.3.5's `retry.Do` with 10 attempts).
pub const SYNC_ATTEMPTS: usize = 10;
/// How often the poller asks the DataNodes while a task is unfinished (at most
/// `check.interval`; 2.3.5 always waits `check.interval`, 10 s).
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

/// What compaction reads from the configuration (FACTS §2.1, §6.2). No `Default`: build it
/// with [`CompactionConfig::from_config`] (tests from `DataCoordConfig::default()`).
#[derive(Clone, Debug, PartialEq)]
pub struct CompactionConfig {
    /// `dataCoord.enableCompaction`: off → no loops, and the RPCs answer "compaction disabled".
    pub enable_compaction: bool,
    /// `dataCoord.compaction.enableAutoCompaction`: off → no flush or periodic signals.
    pub enable_auto_compaction: bool,
    /// `dataCoord.compaction.indexBasedCompaction`: only segments whose first vector field
    /// has a Finished index are candidates.
    pub index_based_compaction: bool,
    /// `dataCoord.compaction.rpcTimeout`: bound of every DataNode call and the poller's TSO.
    pub rpc_timeout: Duration,
    /// `dataCoord.compaction.maxParallelTaskNum`: unfinished tasks beyond which automatic
    /// signals plan nothing.
    pub max_parallel_task_num: usize,
    /// `dataCoord.compaction.workerMaxParallelTaskNum`: plans one DataNode runs at once.
    pub worker_max_parallel_task_num: usize,
    /// `dataCoord.compaction.timeout`, sent as `timeout_in_seconds`.
    pub timeout_seconds: i32,
    /// `dataCoord.compaction.check.interval`: period of the poller.
    pub check_interval: Duration,
    /// `dataCoord.compaction.global.interval`: period of the global signal.
    pub global_interval: Duration,
    /// The plan arithmetic's keys.
    pub policy: PolicyConfig,
}

impl CompactionConfig {
    /// Takes the compaction keys from the loaded configuration.
    pub fn from_config(config: &DataCoordConfig) -> Self {
        let section = &config.datacoord;
        let compaction = &section.compaction;
        Self {
            enable_compaction: section.enable_compaction,
            enable_auto_compaction: compaction.enable_auto_compaction,
            index_based_compaction: compaction.index_based_compaction,
            rpc_timeout: compaction.rpc_timeout,
            max_parallel_task_num: compaction.max_parallel_task_num,
            worker_max_parallel_task_num: compaction.worker_max_parallel_task_num,
            timeout_seconds: compaction.timeout_seconds,
            check_interval: compaction.check_interval,
            global_interval: compaction.global_interval,
            policy: PolicyConfig::from_config(config),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_2_3_5s() {
        let config = CompactionConfig::from_config(&DataCoordConfig::default());
        assert!(config.enable_compaction && config.enable_auto_compaction);
        assert!(config.index_based_compaction);
        assert_eq!(config.rpc_timeout, Duration::from_secs(10));
        assert_eq!(config.max_parallel_task_num, 10);
        assert_eq!(config.worker_max_parallel_task_num, 2);
        assert_eq!(config.timeout_seconds, 900);
        assert_eq!(config.check_interval, Duration::from_secs(10));
        assert_eq!(config.global_interval, Duration::from_secs(60));
    }
}
