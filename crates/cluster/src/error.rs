//! The crate's error type and its Milvus codes.

use milvus_metastore::MetastoreError;
use milvus_types::{MilvusError, NodeId};

/// Result of a channel manager operation.
pub type ClusterResult<T> = Result<T, ClusterError>;

/// Why a channel manager operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The channel is not assigned to that node (Go: "fail to find matching nodeID").
    #[error("channel {channel} is not assigned to node {node}")]
    ChannelNotFound {
        /// The node that was named.
        node: NodeId,
        /// The vchannel that was named.
        channel: String,
    },
    /// Reading or writing the watch records failed. Memory was left equal to what is stored.
    #[error("channel watch store: {0}")]
    Metastore(#[from] MetastoreError),
    /// A direct etcd request (listing or watching `channelwatch/`) failed.
    #[error("etcd {op} failed: {source}")]
    Etcd {
        /// What we were doing.
        op: &'static str,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// A stored watch record cannot be understood.
    #[error("invalid channel watch record at {key}: {reason}")]
    InvalidRecord {
        /// The key, relative to metaRoot.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The meta provider failed to delete a dropped channel's removal flag.
    #[error("finish drop of channel {channel} failed: {source}")]
    FinishDrop {
        /// The dropped vchannel.
        channel: String,
        /// The provider's error.
        #[source]
        source: MilvusError,
    },
    /// etcd cancelled the watch on the records for a reason other than compaction.
    #[error("channel watch cancelled by etcd: {reason}")]
    WatchCancelled {
        /// etcd's cancel reason.
        reason: String,
    },
    /// `startup` was called a second time.
    #[error("channel manager already started")]
    AlreadyStarted,
}

impl ClusterError {
    pub(crate) fn etcd(op: &'static str) -> impl FnOnce(etcd_client::Error) -> Self {
        move |source| Self::Etcd { op, source }
    }

    /// Whether a write that failed with this error may nevertheless have been applied.
    pub fn maybe_applied(&self) -> bool {
        match self {
            Self::Metastore(err) => err.maybe_applied(),
            Self::Etcd { .. } => true,
            _ => false,
        }
    }
}

impl From<ClusterError> for MilvusError {
    fn from(err: ClusterError) -> Self {
        match err {
            ClusterError::ChannelNotFound { node, channel } => {
                MilvusError::channel_not_found(&channel).with_field("node", node)
            }
            ClusterError::Metastore(inner) => inner.into(),
            ClusterError::FinishDrop { source, .. } => source,
            ClusterError::Etcd { .. } | ClusterError::InvalidRecord { .. } => {
                MilvusError::io_failed(err.to_string())
            }
            ClusterError::AlreadyStarted | ClusterError::WatchCancelled { .. } => {
                MilvusError::internal(err.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use milvus_types::ErrorCode;

    use super::*;

    #[test]
    fn milvus_codes() {
        let missing: MilvusError = ClusterError::ChannelNotFound {
            node: 3,
            channel: "ch".into(),
        }
        .into();
        assert_eq!(missing.code(), ErrorCode::CHANNEL_NOT_FOUND);

        let io: MilvusError = ClusterError::InvalidRecord {
            key: "channelwatch/x".into(),
            reason: "bad".into(),
        }
        .into();
        assert_eq!(io.code(), ErrorCode::IO_FAILED);

        let timeout = ClusterError::Metastore(MetastoreError::Timeout {
            op: "txn",
            timeout: std::time::Duration::from_secs(1),
        });
        assert!(timeout.maybe_applied());
        let timeout: MilvusError = timeout.into();
        assert_eq!(timeout.code(), ErrorCode::TIMEOUT);
    }
}
