//! What the chunk manager needs from `milvus.yaml` (`common.storageType`, `localStorage.*`,
//! `minio.*`). The config crate fills it; no parsing of YAML happens here.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::StorageError;
use crate::paths::{normalize_local_root, normalize_remote_root};

/// `common.storageType`: where segment files live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StorageType {
    /// Local filesystem under `localStorage.path`.
    Local,
    /// MinIO (S3 API).
    Minio,
    /// Any S3-compatible object storage (`minio.cloudProvider` says which).
    Remote,
}

impl StorageType {
    /// The value as written in `common.storageType`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Minio => "minio",
            Self::Remote => "remote",
        }
    }
}

impl fmt::Display for StorageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StorageType {
    type Err = StorageError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "local" => Ok(Self::Local),
            "minio" => Ok(Self::Minio),
            "remote" => Ok(Self::Remote),
            other => Err(StorageError::Config(format!(
                "no chunk manager implemented with engine: {other}"
            ))),
        }
    }
}

/// Storage settings of one Milvus component.
///
/// `Default` gives the values of the `milvus.yaml` shipped with 2.3.5 (remote storage on
/// `localhost:9000`, bucket `a-bucket`, root `files`, `minioadmin` keys).
#[derive(Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// `common.storageType`
    pub storage_type: StorageType,
    /// `localStorage.path`: root when `storage_type` is local.
    pub local_path: String,
    /// `minio.address`: host, or `host:port` (then `port` is ignored).
    pub address: String,
    /// `minio.port`
    pub port: u16,
    /// `minio.bucketName`
    pub bucket_name: String,
    /// `minio.rootPath`: key prefix inside the bucket.
    pub root_path: String,
    /// `minio.accessKeyID`
    pub access_key_id: String,
    /// `minio.secretAccessKey`
    pub secret_access_key: String,
    /// `minio.useSSL`
    pub use_ssl: bool,
    /// `minio.useIAM`: take credentials from the environment / instance role, not the keys.
    pub use_iam: bool,
    /// `minio.cloudProvider`: `aws` (also MinIO and other S3 V4 stores), `gcp`, `aliyun`, `azure`.
    pub cloud_provider: String,
    /// `minio.region`; empty means `us-east-1` for signing.
    pub region: String,
    /// `minio.iamEndpoint`: instance-metadata endpoint when `use_iam`; empty = AWS default.
    pub iam_endpoint: String,
    /// `minio.useVirtualHost`: `bucket.host` addressing instead of `host/bucket`.
    pub use_virtual_host: bool,
    /// `minio.requestTimeoutMs`: per-request timeout.
    pub request_timeout: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            storage_type: StorageType::Remote,
            local_path: "/var/lib/milvus/data/".to_string(),
            address: "localhost".to_string(),
            port: 9000,
            bucket_name: "a-bucket".to_string(),
            root_path: "files".to_string(),
            access_key_id: "minioadmin".to_string(),
            secret_access_key: "minioadmin".to_string(),
            use_ssl: false,
            use_iam: false,
            cloud_provider: "aws".to_string(),
            region: String::new(),
            iam_endpoint: String::new(),
            use_virtual_host: false,
            request_timeout: Duration::from_millis(10_000),
        }
    }
}

impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageConfig")
            .field("storage_type", &self.storage_type)
            .field("local_path", &self.local_path)
            .field("address", &self.address)
            .field("port", &self.port)
            .field("bucket_name", &self.bucket_name)
            .field("root_path", &self.root_path)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"******")
            .field("use_ssl", &self.use_ssl)
            .field("use_iam", &self.use_iam)
            .field("cloud_provider", &self.cloud_provider)
            .field("region", &self.region)
            .field("iam_endpoint", &self.iam_endpoint)
            .field("use_virtual_host", &self.use_virtual_host)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl StorageConfig {
    /// Local-storage settings rooted at `path` (other fields default).
    pub fn local(path: impl Into<String>) -> Self {
        Self {
            storage_type: StorageType::Local,
            local_path: path.into(),
            ..Self::default()
        }
    }

    /// `minio.address` as Milvus formats it: `:port` appended when it has no colon; empty stays
    /// empty.
    pub fn address_with_port(&self) -> String {
        if self.address.is_empty() || self.address.contains(':') {
            return self.address.clone();
        }
        format!("{}:{}", self.address, self.port)
    }

    /// The root every built path starts with: the cleaned `localStorage.path` for local storage,
    /// `minio.rootPath` without leading slash for remote storage.
    pub fn effective_root_path(&self) -> String {
        match self.storage_type {
            StorageType::Local => normalize_local_root(&self.local_path),
            StorageType::Minio | StorageType::Remote => normalize_remote_root(&self.root_path),
        }
    }

    /// The `indexpb.StorageConfig` DataCoord puts in every `CreateJob` request, filled as 2.3.5
    /// fills it (local: only root path and type).
    pub fn to_index_storage_config(&self) -> milvus_proto::index::StorageConfig {
        if self.storage_type == StorageType::Local {
            return milvus_proto::index::StorageConfig {
                root_path: self.local_path.clone(),
                storage_type: self.storage_type.as_str().to_string(),
                ..Default::default()
            };
        }
        milvus_proto::index::StorageConfig {
            address: self.address_with_port(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            use_ssl: self.use_ssl,
            bucket_name: self.bucket_name.clone(),
            root_path: normalize_remote_root(&self.root_path),
            use_iam: self.use_iam,
            iam_endpoint: self.iam_endpoint.clone(),
            storage_type: self.storage_type.as_str().to_string(),
            use_virtual_host: self.use_virtual_host,
            region: self.region.clone(),
            cloud_provider: self.cloud_provider.clone(),
            request_timeout_ms: i64::try_from(self.request_timeout.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_type_accepts_exactly_the_go_values() {
        for value in ["local", "minio", "remote"] {
            let parsed: StorageType = value.parse().unwrap();
            assert_eq!(parsed.as_str(), value);
        }
        let err = "opendal".parse::<StorageType>().unwrap_err();
        assert!(err.to_string().contains("opendal"), "{err}");
    }

    #[test]
    fn port_is_appended_only_without_a_colon() {
        let mut config = StorageConfig {
            address: "minio".into(),
            port: 9100,
            ..StorageConfig::default()
        };
        assert_eq!(config.address_with_port(), "minio:9100");
        config.address = "minio:9000".into();
        assert_eq!(config.address_with_port(), "minio:9000");
        config.address = String::new();
        assert_eq!(config.address_with_port(), "");
    }

    #[test]
    fn effective_root_depends_on_the_storage_type() {
        let mut config = StorageConfig {
            root_path: "/files/".into(),
            local_path: "/tmp/milvus/data/".into(),
            ..StorageConfig::default()
        };
        assert_eq!(config.effective_root_path(), "files");
        config.storage_type = StorageType::Local;
        assert_eq!(config.effective_root_path(), "/tmp/milvus/data");
    }

    #[test]
    fn debug_hides_the_secret() {
        let config = StorageConfig {
            secret_access_key: "s3cr3t-value".into(),
            ..StorageConfig::default()
        };
        assert!(!format!("{config:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn index_storage_config_for_local_carries_only_root_and_type() {
        let proto = StorageConfig::local("/var/lib/milvus/data").to_index_storage_config();
        assert_eq!(proto.root_path, "/var/lib/milvus/data");
        assert_eq!(proto.storage_type, "local");
        assert!(proto.address.is_empty() && proto.bucket_name.is_empty());
        let remote = StorageConfig::default().to_index_storage_config();
        assert_eq!(remote.address, "localhost:9000");
        assert_eq!(remote.root_path, "files");
        assert_eq!(remote.request_timeout_ms, 10_000);
    }
}
