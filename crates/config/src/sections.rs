//! The typed configuration DataCoord runs with, grouped like milvus.yaml.
//!
//! Field docs name the key; defaults are in `defaults.rs`. Durations are converted from the unit
//! 2.3.5 gives the key (seconds unless the doc says milliseconds).

use std::time::Duration;

use milvus_storage::StorageConfig;

/// Everything the DataCoord port reads from milvus.yaml and the environment.
#[derive(Clone, Debug, PartialEq)]
pub struct DataCoordConfig {
    pub etcd: EtcdConfig,
    /// `metastore.type`.
    pub metastore: MetastoreType,
    pub tikv: TikvConfig,
    pub storage: StorageConfig,
    pub common: CommonConfig,
    pub datacoord: DataCoordSection,
    pub indexcoord: IndexCoordConfig,
    pub datanode: DataNodeKeys,
    pub rootcoord: RootCoordKeys,
    /// Clients DataCoord opens, per target role.
    pub grpc_clients: GrpcClients,
    pub log: LogConfig,
    /// HTTP port for `/metrics` and `/healthz`: env `METRICS_PORT`, else 9091 (also when the
    /// variable is not a port number). Not a yaml key.
    pub metrics_port: u16,
}

/// Which store holds the metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetastoreType {
    Etcd,
    Tikv,
}

/// `etcd.*`
#[derive(Clone, Debug, PartialEq)]
pub struct EtcdConfig {
    /// `etcd.endpoints`, comma-separated (or a yaml list).
    pub endpoints: Vec<String>,
    /// `etcd.rootPath`
    pub root_path: String,
    /// `etcd.metaSubPath`
    pub meta_sub_path: String,
    /// `etcd.kvSubPath`
    pub kv_sub_path: String,
    /// `rootPath/metaSubPath`, cleaned like Go's `path.Join` (the metadata root, `by-dev/meta`).
    pub meta_root_path: String,
    /// `rootPath/kvSubPath`
    pub kv_root_path: String,
    /// `etcd.requestTimeout` (milliseconds): deadline of each metadata operation.
    pub request_timeout: Duration,
    /// `etcd.use.embed`: the Go process would start etcd in-process; we only connect.
    pub use_embed: bool,
    pub ssl: TlsConfig,
    /// `etcd.ssl.tlsMinVersion` (`1.0`..`1.3`).
    pub tls_min_version: String,
}

/// `<store>.ssl.*`
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// `ssl.enabled`
    pub enabled: bool,
    /// `ssl.tlsCert`
    pub cert: String,
    /// `ssl.tlsKey`
    pub key: String,
    /// `ssl.tlsCACert`
    pub ca_cert: String,
}

/// `tikv.*`
#[derive(Clone, Debug, PartialEq)]
pub struct TikvConfig {
    /// `tikv.endpoints` (PD addresses).
    pub endpoints: Vec<String>,
    pub root_path: String,
    pub meta_sub_path: String,
    pub kv_sub_path: String,
    /// `rootPath/metaSubPath`
    pub meta_root_path: String,
    pub kv_root_path: String,
    /// `tikv.requestTimeout` (milliseconds).
    pub request_timeout: Duration,
    /// `tikv.snapshotScanSize`: page size of range scans.
    pub snapshot_scan_size: usize,
    pub ssl: TlsConfig,
}

/// `common.*` and `msgChannel.*` (with `common.chanNamePrefix.*` / `common.subNamePrefix.*` as
/// fallbacks).
#[derive(Clone, Debug, PartialEq)]
pub struct CommonConfig {
    /// `msgChannel.chanNamePrefix.cluster`, else `common.chanNamePrefix.cluster`: the cluster ID
    /// checked on incoming RPCs and the prefix of channel names.
    pub cluster_prefix: String,
    pub channels: ChannelNames,
    /// `common.session.ttl`: lease TTL of the session key.
    pub session_ttl: Duration,
    /// `common.session.retryTimes`
    pub session_retry_times: u32,
    /// `common.entityExpiration`: default collection TTL; `None` when negative (never expire).
    pub entity_expiration: Option<Duration>,
    /// `common.preCreatedTopic.enabled`
    pub pre_created_topic_enabled: bool,
    /// `common.preCreatedTopic.timeticker`
    pub pre_created_topic_timeticker: String,
}

/// Channel and subscription names, already prefixed with `{cluster}-` where 2.3.5 does so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelNames {
    /// `...chanNamePrefix.dataCoordTimeTick` → `by-dev-datacoord-timetick-channel`
    pub datacoord_timetick: String,
    /// `...chanNamePrefix.dataCoordSegmentInfo` → `by-dev-segment-info-channel`
    pub datacoord_segment_info: String,
    /// `...subNamePrefix.dataCoordSubNamePrefix` → `by-dev-dataCoord`
    pub datacoord_sub_name: String,
    /// `...subNamePrefix.dataNodeSubNamePrefix` → `by-dev-dataNode`
    pub datanode_sub_name: String,
    /// `msgChannel.subNamePrefix.dataCoordWatchSubPath` (not prefixed): `channelwatch`
    pub datacoord_watch_sub_path: String,
}

/// `dataCoord.*`
#[derive(Clone, Debug, PartialEq)]
pub struct DataCoordSection {
    /// `dataCoord.ip`; empty means "first unicast address of this host".
    pub ip: String,
    /// `dataCoord.port` (code default 19530; milvus.yaml ships 13333).
    pub port: u16,
    /// `dataCoord.enableActiveStandby`
    pub enable_active_standby: bool,
    pub grpc: GrpcServerConfig,
    pub channel: ChannelConfig,
    /// `dataCoord.autoBalance`
    pub auto_balance: bool,
    /// `dataCoord.checkAutoBalanceConfigInterval`
    pub check_auto_balance_config_interval: Duration,
    pub segment: SegmentConfig,
    /// `dataCoord.autoUpgradeSegmentIndex`
    pub auto_upgrade_segment_index: bool,
    /// `dataCoord.enableCompaction`
    pub enable_compaction: bool,
    pub compaction: CompactionConfig,
    /// `dataCoord.enableGarbageCollection`
    pub enable_garbage_collection: bool,
    pub gc: GcConfig,
}

/// `dataCoord.grpc.server*` (fallback `grpc.server*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrpcServerConfig {
    pub server_max_send_size: usize,
    pub server_max_recv_size: usize,
}

/// `dataCoord.channel.*`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    /// `watchTimeoutInterval`; zero disables watch timers.
    pub watch_timeout_interval: Duration,
    pub balance_silent_duration: Duration,
    pub balance_interval: Duration,
    /// `notifyChannelOperationTimeout`
    pub notify_channel_operation_timeout: Duration,
}

/// `dataCoord.segment.*`
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentConfig {
    /// `maxSize` (MB)
    pub max_size_mb: f64,
    /// `diskSegmentMaxSize` (MB), for collections with a DiskANN index.
    pub disk_segment_max_size_mb: f64,
    pub seal_proportion: f64,
    /// `assignmentExpiration` (milliseconds)
    pub assignment_expiration: Duration,
    pub alloc_latest_expire_attempt: u32,
    /// `maxLife`
    pub max_life: Duration,
    /// `maxIdleTime`
    pub max_idle_time: Duration,
    /// `minSizeFromIdleToSealed` (MB)
    pub min_size_from_idle_to_sealed_mb: f64,
    pub max_binlog_file_number: usize,
    pub small_proportion: f64,
    pub compactable_proportion: f64,
    pub expansion_rate: f64,
}

/// `dataCoord.compaction.*`
#[derive(Clone, Debug, PartialEq)]
pub struct CompactionConfig {
    pub enable_auto_compaction: bool,
    pub index_based_compaction: bool,
    /// `rpcTimeout`
    pub rpc_timeout: Duration,
    pub max_parallel_task_num: usize,
    pub worker_max_parallel_task_num: usize,
    /// `min.segment`
    pub min_segment: usize,
    /// `max.segment`
    pub max_segment: usize,
    /// `timeout`, kept in seconds because it travels in `CompactionPlan.timeout_in_seconds`.
    pub timeout_seconds: i32,
    /// `check.interval`
    pub check_interval: Duration,
    /// `single.ratio.threshold`
    pub single_ratio_threshold: f64,
    /// `single.deltalog.maxsize` (bytes)
    pub single_deltalog_max_size: i64,
    /// `single.expiredlog.maxsize` (bytes)
    pub single_expiredlog_max_size: i64,
    /// `single.deltalog.maxnum`
    pub single_deltalog_max_num: usize,
    /// `global.interval`
    pub global_interval: Duration,
}

/// `dataCoord.gc.*`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcConfig {
    pub interval: Duration,
    pub missing_tolerance: Duration,
    pub drop_tolerance: Duration,
    pub remove_concurrent: usize,
}

/// `indexCoord.*` (IndexCoord runs inside DataCoord in 2.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexCoordConfig {
    /// `segment.minSegmentNumRowsToEnableIndex`
    pub min_segment_num_rows_to_enable_index: i64,
    /// `scheduler.interval` (milliseconds)
    pub scheduler_interval: Duration,
    pub bind_index_node: BindIndexNodeConfig,
}

/// `indexCoord.bindIndexNodeMode.*`: use one fixed IndexNode instead of discovered ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindIndexNodeConfig {
    pub enable: bool,
    pub address: String,
    pub with_cred: bool,
    pub node_id: i64,
}

/// DataNode keys that DataCoord acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataNodeKeys {
    /// `dataNode.segment.binlog.maxsize` (bytes)
    pub binlog_max_size: i64,
    /// `datanode.timetick.byRPC`
    pub timetick_by_rpc: bool,
}

/// RootCoord keys that DataCoord acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootCoordKeys {
    /// `rootCoord.importTaskExpiration`
    pub import_task_expiration: Duration,
}

/// gRPC clients DataCoord opens.
#[derive(Clone, Debug, PartialEq)]
pub struct GrpcClients {
    pub root_coord: GrpcClientConfig,
    pub data_node: GrpcClientConfig,
    pub index_node: GrpcClientConfig,
}

/// `<role>.grpc.client*` (fallback `grpc.client*`) and the shared `grpc.client.*`.
#[derive(Clone, Debug, PartialEq)]
pub struct GrpcClientConfig {
    pub client_max_send_size: usize,
    pub client_max_recv_size: usize,
    /// `grpc.client.dialTimeout` (milliseconds)
    pub dial_timeout: Duration,
    /// `grpc.client.keepAliveTime` (milliseconds)
    pub keep_alive_time: Duration,
    /// `grpc.client.keepAliveTimeout` (milliseconds)
    pub keep_alive_timeout: Duration,
    /// `grpc.client.maxMaxAttempts`
    pub max_attempts: u32,
    /// `grpc.client.initialBackoff` (seconds)
    pub initial_backoff: Duration,
    /// `grpc.client.maxBackoff` (seconds)
    pub max_backoff: Duration,
    pub compression_enabled: bool,
}

/// `log.*`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    pub level: String,
    /// `log.file.rootPath`; empty means no log file.
    pub file_root_path: String,
    /// `log.file.maxSize` (MB)
    pub file_max_size_mb: u64,
    /// `log.file.maxAge` (days)
    pub file_max_age_days: u64,
    pub file_max_backups: u64,
    /// `log.format`: `text` or `json`.
    pub format: String,
    pub stdout: bool,
    /// `grpc.log.level`
    pub grpc_level: String,
}
