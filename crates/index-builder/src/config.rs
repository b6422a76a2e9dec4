//! Builder configuration: the `indexCoord.*` keys it reads and what `CreateJob` needs.

use std::sync::Arc;
use std::time::Duration;

use milvus_config::DataCoordConfig;

/// Directory under the chunk manager root where IndexNodes write index files (FACTS 1.10).
pub const INDEX_FILES_DIR: &str = "index_files";

/// Time an IndexNode gets to answer any one call (2.3.5's `reqTimeoutInterval`).
pub const NODE_RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Period of the sweep for segments missing a task (fixed at one minute in 2.3.5).
pub const DEFAULT_CREATE_INDEX_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// The index engine version to put in `CreateJob.current_index_version`; the server derives
/// it from QueryNode sessions (FACTS 1.9) and may change it at any time.
pub type EngineVersion = Arc<dyn Fn() -> i32 + Send + Sync>;

/// What the builder needs from configuration, read once from the loaded configuration
/// ([`BuilderConfig::from_config`]; the 2.3.5 defaults of its keys live in `milvus-config`).
#[derive(Clone, Debug)]
pub struct BuilderConfig {
    /// `msgChannel.chanNamePrefix.cluster` (`by-dev`), sent as `clusterID`.
    pub cluster_id: String,
    /// Root path of the chunk manager (`minio.rootPath` or `localStorage.path`): binlog paths
    /// are rebuilt under it and index files go to `{root}/index_files`.
    pub chunk_root_path: String,
    /// `CreateJob.storage_config`, as `milvus_storage::StorageConfig::to_index_storage_config`
    /// builds it.
    pub storage_config: milvus_proto::index::StorageConfig,
    /// `indexCoord.scheduler.interval`.
    pub interval: Duration,
    /// `indexCoord.segment.minSegmentNumRowsToEnableIndex`: smaller segments are marked
    /// Finished without a build (refreshable through `IndexBuilder::set_min_segment_rows`).
    pub min_segment_rows: i64,
    /// Period of the sweep for Flushed/Flushing segments missing a task
    /// ([`DEFAULT_CREATE_INDEX_CHECK_INTERVAL`]; not a key in 2.3.5).
    pub create_index_check_interval: Duration,
}

impl BuilderConfig {
    /// The builder's settings in `config`; the chunk root is the one the chunk manager derives
    /// from the same storage settings.
    pub fn from_config(config: &DataCoordConfig) -> Self {
        Self {
            cluster_id: config.common.cluster_prefix.clone(),
            chunk_root_path: config.storage.effective_root_path(),
            storage_config: config.storage.to_index_storage_config(),
            interval: config.indexcoord.scheduler_interval,
            min_segment_rows: config.indexcoord.min_segment_num_rows_to_enable_index,
            create_index_check_interval: DEFAULT_CREATE_INDEX_CHECK_INTERVAL,
        }
    }

    /// `CreateJob.index_file_prefix`: `path.Join(chunk root, "index_files")`.
    pub fn index_file_prefix(&self) -> String {
        milvus_storage::join_path(&[self.chunk_root_path.as_str(), INDEX_FILES_DIR])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_file_prefix_joins_like_go_path_join() {
        let cases = [
            ("files", "files/index_files"),
            ("", "index_files"),
            ("/var/lib/milvus/data/", "/var/lib/milvus/data/index_files"),
            ("/", "/index_files"),
            ("a//b/./c/../d", "a/b/d/index_files"),
        ];
        for (root, expected) in cases {
            let config = BuilderConfig {
                chunk_root_path: root.to_string(),
                ..BuilderConfig::from_config(&DataCoordConfig::default())
            };
            assert_eq!(config.index_file_prefix(), expected, "root {root:?}");
        }
    }

    #[test]
    fn every_setting_comes_from_its_key() {
        let mut config = DataCoordConfig::default();
        config.common.cluster_prefix = "cluster-a".to_string();
        config.storage = milvus_config::StorageConfig::local("/data/milvus");
        config.indexcoord.scheduler_interval = Duration::from_millis(10);
        config.indexcoord.min_segment_num_rows_to_enable_index = 11;
        let read = BuilderConfig::from_config(&config);
        assert_eq!(read.cluster_id, "cluster-a");
        assert_eq!(read.chunk_root_path, "/data/milvus");
        assert_eq!(
            read.storage_config,
            config.storage.to_index_storage_config()
        );
        assert_eq!(read.storage_config.root_path, "/data/milvus");
        assert_eq!(read.interval, Duration::from_millis(10));
        assert_eq!(read.min_segment_rows, 11);
        assert_eq!(
            read.create_index_check_interval,
            DEFAULT_CREATE_INDEX_CHECK_INTERVAL
        );
    }
}
