//! Configuration of the DataCoord port, read the way Milvus 2.3.5 reads it.
//!
//! Sources, highest priority first: environment variables, milvus.yaml, the 2.3.5 code defaults.
//! Keys match after normalisation (lower case, no `/`, `_`, `.`), so `DATACOORD_GC_INTERVAL`
//! overrides `dataCoord.gc.interval`. [`load`] finds the file (`--config`, `$MILVUSCONF`,
//! `<cwd>/configs`, beside the executable) and returns both the raw [`ConfigMap`] (for
//! `ShowConfigurations`) and the typed [`DataCoordConfig`].

mod datacoord;
mod defaults;
mod error;
mod keys;
mod load;
mod map;
mod reader;
mod sections;
#[cfg(any(test, feature = "testing"))]
mod template;

pub use defaults::declared_keys;
pub use error::ConfigError;
pub use keys::{normalize_env_key, normalize_key};
pub use load::{CONFIG_FILE_NAME, ConfigSearch, LoadedConfig, load};
pub use map::{ConfigMap, Source};
/// Storage settings are the chunk manager's own type, filled from `common.storageType`,
/// `localStorage.*` and `minio.*`.
pub use milvus_storage::{StorageConfig, StorageType};
pub use sections::{
    BindIndexNodeConfig, ChannelConfig, ChannelNames, CommonConfig, CompactionConfig,
    DataCoordConfig, DataCoordSection, DataNodeKeys, EtcdConfig, GcConfig, GrpcClientConfig,
    GrpcClients, GrpcServerConfig, IndexCoordConfig, LogConfig, MetastoreType, RootCoordKeys,
    SegmentConfig, TikvConfig, TlsConfig,
};
#[cfg(feature = "testing")]
pub use template::render_template;
