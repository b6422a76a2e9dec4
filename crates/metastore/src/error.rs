//! The one error type of the metastore and its Milvus code.

use std::time::Duration;

use milvus_types::{ErrorCode, MilvusError};

/// Result of a metastore operation.
pub type MetastoreResult<T> = Result<T, MetastoreError>;

/// Why a metastore operation failed.
///
/// A write that failed with [`MetastoreError::Timeout`] may have been applied after the deadline;
/// so may (rarely) one that failed with [`MetastoreError::Backend`] when the connection broke
/// after the request was sent. After either, callers reload the affected keys instead of
/// assuming an outcome ([`MetastoreError::maybe_applied`]). The other variants are raised before
/// anything is sent: nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum MetastoreError {
    /// The request did not finish within the per-request timeout; a write may have been applied.
    #[error("metastore {op} timed out after {timeout:?}; a write may have been applied")]
    Timeout {
        /// Operation name, e.g. `txn`.
        op: &'static str,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// A single transaction holds more operations than the backend accepts; nothing was written.
    #[error(
        "transaction has {ops} operations, more than the limit of {limit}; nothing was written"
    )]
    TxnTooLarge {
        /// Operations in the rejected transaction.
        ops: usize,
        /// The backend's limit ([`crate::MetaKv::max_txn_ops`]).
        limit: usize,
    },
    /// The request is malformed (duplicate or overlapping keys, empty prefix, reserved value);
    /// nothing was written.
    #[error("invalid metastore request: {0}")]
    InvalidRequest(String),
    /// A key that had to exist does not.
    #[error("key not found: {key}")]
    KeyNotFound {
        /// The key as the caller named it.
        key: String,
    },
    /// The backend failed (connection, server error, unreadable data).
    #[error("metastore {op} failed: {source}")]
    Backend {
        /// Operation name, e.g. `get`.
        op: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl MetastoreError {
    /// Wraps a backend error.
    pub fn backend(
        op: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Backend {
            op,
            source: source.into(),
        }
    }

    /// Whether a write that returned this error may nevertheless have been applied.
    pub fn maybe_applied(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::Backend { .. })
    }

    /// Whether the request ran out of time (the server or our per-request deadline).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    /// The Milvus code: 1000 key not found, 10001 timeout (as Go's context deadline), 1100 for an
    /// invalid request, 1001 IO failed otherwise.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::KeyNotFound { .. } => ErrorCode::IO_KEY_NOT_FOUND,
            Self::Timeout { .. } => ErrorCode::TIMEOUT,
            Self::InvalidRequest(_) | Self::TxnTooLarge { .. } => ErrorCode::IO_FAILED,
            Self::Backend { .. } => ErrorCode::IO_FAILED,
        }
    }
}

impl From<MetastoreError> for MilvusError {
    fn from(err: MetastoreError) -> Self {
        match &err {
            MetastoreError::KeyNotFound { key } => {
                MilvusError::new(ErrorCode::IO_KEY_NOT_FOUND).with_field("key", key)
            }
            MetastoreError::Timeout { .. } => MilvusError::new(ErrorCode::TIMEOUT).with_desc(&err),
            _ => MilvusError::io_failed(&err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milvus_codes() {
        let missing: MilvusError = MetastoreError::KeyNotFound { key: "a/b".into() }.into();
        assert_eq!(missing.code(), ErrorCode::IO_KEY_NOT_FOUND);
        assert_eq!(missing.to_string(), "key not found[key=a/b]");

        let timeout = MetastoreError::Timeout {
            op: "txn",
            timeout: Duration::from_secs(10),
        };
        assert!(timeout.maybe_applied() && timeout.is_timeout());
        let timeout: MilvusError = timeout.into();
        assert_eq!(timeout.code(), ErrorCode::TIMEOUT);

        let backend = MetastoreError::backend("get", "connection refused");
        assert!(backend.maybe_applied());
        assert!(!backend.is_timeout());
        let backend: MilvusError = backend.into();
        assert_eq!(backend.code(), ErrorCode::IO_FAILED);
        assert!(
            backend
                .to_string()
                .starts_with("IO failed: metastore get failed")
        );

        let too_large = MetastoreError::TxnTooLarge {
            ops: 129,
            limit: 128,
        };
        assert!(!too_large.maybe_applied());
        let too_large: MilvusError = too_large.into();
        assert_eq!(too_large.code(), ErrorCode::IO_FAILED);
    }
}
