//! The crate's one error type and its mapping to Milvus codes.

use milvus_types::{ErrorCode, MilvusError};

/// Everything that can go wrong while talking to the session tree in etcd.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// An etcd request failed (network, timeout, server error).
    #[error("etcd {op} failed: {source}")]
    Etcd {
        /// What we were doing, e.g. "get sessions", "grant lease".
        op: &'static str,
        #[source]
        source: etcd_client::Error,
    },
    /// A stored session value is not valid session JSON.
    #[error("cannot decode session at {key}: {source}")]
    Decode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// A stored session carries a `Version` that is not semver.
    #[error("session at {key} has invalid version {version:?}: {source}")]
    Version {
        key: String,
        version: String,
        #[source]
        source: semver::Error,
    },
    /// `session/id` holds something that is not a decimal integer.
    #[error("ServerID counter at {key} holds {value:?}, not an integer")]
    BadServerIdCounter { key: String, value: String },
    /// The session key stayed occupied by another live session for all retry attempts.
    #[error("cannot register session {key}: key held by another session after {attempts} attempts")]
    KeyTaken { key: String, attempts: u32 },
    /// The operation needs a registered session.
    #[error("session {role} is not registered")]
    NotRegistered { role: String },
    /// The session's lease or key is gone; the owner must stop serving.
    #[error("session {key} lost: {reason}")]
    Lost { key: String, reason: String },
    /// The operation was cancelled by `stop()` or the caller's token.
    #[error("session operation cancelled")]
    Cancelled,
    /// A watch stream ended in a way that cannot be recovered by re-listing.
    #[error("session watch on {prefix} failed: {reason}")]
    Watch { prefix: String, reason: String },
}

impl SessionError {
    pub(crate) fn etcd(op: &'static str) -> impl FnOnce(etcd_client::Error) -> SessionError {
        move |source| SessionError::Etcd { op, source }
    }

    /// True for failures a caller may retry as they are (etcd hiccups).
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            SessionError::Etcd { .. } | SessionError::KeyTaken { .. }
        )
    }
}

impl From<SessionError> for MilvusError {
    fn from(err: SessionError) -> Self {
        match err {
            SessionError::Cancelled => MilvusError::new(ErrorCode::CANCELED),
            SessionError::Etcd { .. } => MilvusError::io_failed(err.to_string()),
            other => MilvusError::internal(other.to_string()),
        }
    }
}
