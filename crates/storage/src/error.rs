//! The storage error and its Milvus code.

use milvus_types::{ErrorCode, MilvusError};

/// Result with a [`StorageError`].
pub type StorageResult<T> = Result<T, StorageError>;

/// Why a chunk-manager call failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The object (or local file) does not exist. Milvus code 1000 (`key not found`).
    #[error("key not found: {path}")]
    NotFound {
        /// The full path that was asked for.
        path: String,
    },

    /// The storage rejected our credentials or permissions (wrong `minio.accessKeyID` /
    /// `minio.secretAccessKey`, missing IAM role, bucket policy). Milvus code 1001.
    #[error(
        "access denied by object storage on {op} of {path:?} (check minio.accessKeyID, \
         minio.secretAccessKey, minio.useIAM and the bucket policy): {detail}"
    )]
    AccessDenied {
        /// What we were doing (`check bucket`, `read`, ...).
        op: &'static str,
        /// The path or bucket concerned.
        path: String,
        /// The server's answer.
        detail: String,
    },

    /// A local filesystem call failed. Milvus code 1001.
    #[error("{op} {path:?} failed: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The path concerned.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// An object-storage call failed (transport, server error, bad response). Milvus code 1001.
    #[error("{op} {path:?} failed: {source}")]
    ObjectStore {
        /// What we were doing.
        op: &'static str,
        /// The path or bucket concerned.
        path: String,
        /// The object_store error (its text carries the HTTP status and body).
        #[source]
        source: object_store::Error,
    },

    /// Creating the missing bucket failed. Milvus code 1001.
    #[error("failed to create bucket {bucket:?}: {detail}")]
    CreateBucket {
        /// The bucket name.
        bucket: String,
        /// HTTP status and body, or the transport error.
        detail: String,
    },

    /// Some deletions of a bulk remove failed; carries the first failure. Code of that failure.
    #[error("{failed} of {total} removals failed, first: {first}")]
    PartialRemove {
        /// How many paths failed.
        failed: usize,
        /// How many paths were asked for.
        total: usize,
        /// The first failure.
        first: Box<StorageError>,
    },

    /// The configuration cannot be used (unknown storage type, empty address, unsupported
    /// cloud provider). Milvus code 1100.
    #[error("invalid storage configuration: {0}")]
    Config(String),

    /// A path argument is unusable (empty prefix for a bulk remove, not an object key, not a
    /// binlog path). Milvus code 1100.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The offending path.
        path: String,
        /// Why it was refused.
        reason: String,
    },
}

impl StorageError {
    /// The Milvus error code this failure reports.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound { .. } => ErrorCode::IO_KEY_NOT_FOUND,
            Self::AccessDenied { .. }
            | Self::Io { .. }
            | Self::ObjectStore { .. }
            | Self::CreateBucket { .. } => ErrorCode::IO_FAILED,
            Self::PartialRemove { first, .. } => first.code(),
            Self::Config(_) | Self::InvalidPath { .. } => ErrorCode::PARAMETER_INVALID,
        }
    }

    /// True for [`StorageError::NotFound`] (Go's `IsErrNoSuchKey`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// The path the error is about, when there is one.
    fn key(&self) -> Option<&str> {
        match self {
            Self::NotFound { path }
            | Self::AccessDenied { path, .. }
            | Self::Io { path, .. }
            | Self::ObjectStore { path, .. }
            | Self::InvalidPath { path, .. } => Some(path),
            Self::CreateBucket { bucket, .. } => Some(bucket),
            Self::PartialRemove { .. } | Self::Config(_) => None,
        }
    }

    /// Maps an object_store error, keeping "not found" and "access denied" distinct.
    pub(crate) fn from_object_store(
        op: &'static str,
        path: &str,
        source: object_store::Error,
    ) -> Self {
        match source {
            object_store::Error::NotFound { .. } => Self::NotFound {
                path: path.to_string(),
            },
            object_store::Error::PermissionDenied { source, .. }
            | object_store::Error::Unauthenticated { source, .. } => Self::AccessDenied {
                op,
                path: path.to_string(),
                detail: source.to_string(),
            },
            other => Self::ObjectStore {
                op,
                path: path.to_string(),
                source: other,
            },
        }
    }

    /// Maps a filesystem error, turning `NotFound` into [`StorageError::NotFound`].
    pub(crate) fn from_io(op: &'static str, path: &str, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            return Self::NotFound {
                path: path.to_string(),
            };
        }
        Self::Io {
            op,
            path: path.to_string(),
            source,
        }
    }
}

impl From<StorageError> for MilvusError {
    /// `key not found[key=...]` for missing objects, `IO failed[key=...]: <cause>` otherwise, as
    /// merr's `WrapErrIoKeyNotFound` / `WrapErrIoFailed`.
    fn from(err: StorageError) -> Self {
        let code = err.code();
        let base = MilvusError::new(code);
        let with_key = match err.key() {
            Some(key) => base.with_field("key", key),
            None => base,
        };
        if err.is_not_found() {
            return with_key;
        }
        with_key.with_desc(&err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_maps_to_key_not_found() {
        let err = StorageError::NotFound {
            path: "files/insert_log/1/2/3/4/5".into(),
        };
        let milvus: MilvusError = err.into();
        assert_eq!(milvus.code(), ErrorCode::IO_KEY_NOT_FOUND);
        assert_eq!(
            milvus.to_status().reason,
            "key not found[key=files/insert_log/1/2/3/4/5]"
        );
    }

    #[test]
    fn io_errors_map_to_io_failed_with_the_cause() {
        let err = StorageError::from_io(
            "read",
            "/data/x",
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert!(!err.is_not_found());
        let milvus: MilvusError = err.into();
        assert_eq!(milvus.code(), ErrorCode::IO_FAILED);
        let reason = milvus.to_status().reason;
        assert!(
            reason.starts_with("IO failed[key=/data/x]: read"),
            "{reason}"
        );
    }

    #[test]
    fn missing_file_is_not_found() {
        let err = StorageError::from_io(
            "read",
            "/data/x",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert!(err.is_not_found());
    }

    #[test]
    fn partial_remove_reports_the_code_of_its_first_failure() {
        let err = StorageError::PartialRemove {
            failed: 1,
            total: 3,
            first: Box::new(StorageError::Config("x".into())),
        };
        assert_eq!(err.code(), ErrorCode::PARAMETER_INVALID);
    }
}
