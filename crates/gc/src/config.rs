//! [`GcConfig`]: the `dataCoord.*` GC settings with their 2.3.5 defaults.

use std::time::Duration;

/// Garbage-collection settings (FACTS §3.1). `Default` = the 2.3.5 values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcConfig {
    /// `dataCoord.enableGarbageCollection` (true).
    pub enabled: bool,
    /// `dataCoord.gc.interval` (3600 s): time between runs; the first run comes one full
    /// interval after start.
    pub interval: Duration,
    /// `dataCoord.gc.missingTolerance` (3600 s): minimum age of an unreferenced binlog object
    /// before the (future) scan step deletes it.
    pub missing_tolerance: Duration,
    /// `dataCoord.gc.dropTolerance` (10800 s): how long a dropped segment is kept before the
    /// (future) clearEtcd step collects it.
    pub drop_tolerance: Duration,
    /// `dataCoord.gc.removeConcurrent` (32): how many deletions run at once.
    pub remove_concurrent: usize,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(3600),
            missing_tolerance: Duration::from_secs(3600),
            drop_tolerance: Duration::from_secs(10800),
            remove_concurrent: 32,
        }
    }
}

impl GcConfig {
    /// The interval the loop uses: a zero interval (which would spin) is raised to one second.
    pub(crate) fn effective_interval(&self) -> Duration {
        self.interval.max(Duration::from_secs(1))
    }

    /// At least one deletion at a time.
    pub(crate) fn effective_concurrency(&self) -> usize {
        self.remove_concurrent.max(1)
    }
}
