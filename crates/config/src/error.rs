//! Why a configuration could not be loaded.

use std::path::PathBuf;

use milvus_types::{ErrorCode, MilvusError};

/// A configuration that 2.3.5 would refuse (or that we refuse where 2.3.5 silently guesses).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file exists but cannot be read.
    #[error("reading config file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A path given explicitly (`--config`) does not exist.
    #[error("config file {path} not found")]
    NotFound { path: PathBuf },
    /// The file is not valid YAML.
    #[error("parsing {origin}: {source}")]
    Yaml {
        origin: String,
        source: serde_yaml_ng::Error,
    },
    /// The document's top level is not a mapping.
    #[error("{origin}: the top level must be a mapping of sections")]
    NotAMapping { origin: String },
    /// A key 2.3.5 requires to be non-empty is empty.
    #[error("{key} is empty")]
    Empty { key: &'static str },
    /// A value does not parse as the type the key needs.
    #[error("{key}: {value:?} is not a valid {expected}")]
    Invalid {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    /// `metastore.type` is neither `etcd` nor `tikv`.
    #[error("not supported meta store: {0}")]
    UnsupportedMetastore(String),
    /// `common.storageType` is not `local`, `minio` or `remote`.
    #[error("no chunk manager implemented with engine: {0}")]
    UnsupportedStorage(String),
}

impl ConfigError {
    /// The Milvus code a caller reports for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Io { .. } => ErrorCode::IO_FAILED,
            _ => ErrorCode::PARAMETER_INVALID,
        }
    }
}

impl From<ConfigError> for MilvusError {
    fn from(error: ConfigError) -> Self {
        MilvusError::new(error.code()).with_desc(error)
    }
}
