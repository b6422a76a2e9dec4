//! [`GcConfig`]: the `dataCoord.*` GC settings, read from the loaded configuration.

use std::time::Duration;

use milvus_config::DataCoordConfig;

/// Garbage-collection settings (FACTS §3.1), read once from the loaded configuration
/// ([`GcConfig::from_config`]; their 2.3.5 defaults live in `milvus-config`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcConfig {
    /// `dataCoord.enableGarbageCollection`.
    pub enabled: bool,
    /// `dataCoord.gc.interval`: time between runs; the first run comes one full interval after
    /// start.
    pub interval: Duration,
    /// `dataCoord.gc.missingTolerance`: minimum age of an unreferenced binlog object before the
    /// scan step deletes it.
    pub missing_tolerance: Duration,
    /// `dataCoord.gc.dropTolerance`: how long a dropped segment is kept before the clearEtcd
    /// step collects it.
    pub drop_tolerance: Duration,
    /// `dataCoord.gc.removeConcurrent`: how many deletions run at once.
    pub remove_concurrent: usize,
}

impl GcConfig {
    /// The GC settings in `config`.
    pub fn from_config(config: &DataCoordConfig) -> Self {
        let datacoord = &config.datacoord;
        Self {
            enabled: datacoord.enable_garbage_collection,
            interval: datacoord.gc.interval,
            missing_tolerance: datacoord.gc.missing_tolerance,
            drop_tolerance: datacoord.gc.drop_tolerance,
            remove_concurrent: datacoord.gc.remove_concurrent,
        }
    }

    /// The interval the loop uses: a zero interval (which would spin) is raised to one second.
    pub(crate) fn effective_interval(&self) -> Duration {
        self.interval.max(Duration::from_secs(1))
    }

    /// At least one deletion at a time.
    pub(crate) fn effective_concurrency(&self) -> usize {
        self.remove_concurrent.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_comes_from_its_key() {
        let mut config = DataCoordConfig::default();
        config.datacoord.enable_garbage_collection = false;
        config.datacoord.gc.interval = Duration::from_secs(1);
        config.datacoord.gc.missing_tolerance = Duration::from_secs(2);
        config.datacoord.gc.drop_tolerance = Duration::from_secs(3);
        config.datacoord.gc.remove_concurrent = 4;
        assert_eq!(
            GcConfig::from_config(&config),
            GcConfig {
                enabled: false,
                interval: Duration::from_secs(1),
                missing_tolerance: Duration::from_secs(2),
                drop_tolerance: Duration::from_secs(3),
                remove_concurrent: 4,
            }
        );
    }
}
