//! The one error type of the segment metadata and its Milvus code.

use milvus_metastore::MetastoreError;
use milvus_types::{ErrorCode, MilvusError, SegmentId};

/// Result of a metadata operation.
pub type MetaResult<T> = Result<T, MetaError>;

/// Why a metadata operation failed.
///
/// Validation errors ([`MetaError::SegmentNotFound`], [`MetaError::InvalidBinlog`],
/// [`MetaError::BinlogCountMismatch`], [`MetaError::InvalidCheckpoint`]) are raised before anything
/// is written. After a [`MetaError::Kv`] failure the in-memory state has been re-read from the
/// store wherever the write may have landed, so memory still equals what is persisted.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// No segment with this ID (or, where the operation needs one, no healthy segment).
    #[error("segment not found: {0}")]
    SegmentNotFound(SegmentId),
    /// A binlog path sent by a datanode cannot be stored: wrong segment, no log ID.
    #[error("invalid binlog of segment {segment_id}: path {path:?}: {reason}")]
    InvalidBinlog {
        /// The segment the logs were sent for.
        segment_id: SegmentId,
        /// The offending `log_path` as received.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Insert and stats logs of the first field disagree in number (and no merged stats log
    /// exists), which 2.3.5 refuses to store.
    #[error(
        "segment {segment_id} can not be saved: {binlogs} insert logs but {statslogs} stats logs"
    )]
    BinlogCountMismatch {
        /// The segment.
        segment_id: SegmentId,
        /// Insert logs of the first field.
        binlogs: usize,
        /// Stats logs of the first stats field.
        statslogs: usize,
    },
    /// A channel name that is not a DML vchannel of its collection (or not a physical channel).
    #[error("invalid channel {channel:?}: {reason}")]
    InvalidChannel {
        /// The name as received (cut to 255 characters).
        channel: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A channel checkpoint without a position or message ID.
    #[error("channel checkpoint of {0} has no message ID")]
    InvalidCheckpoint(String),
    /// A stored key or value cannot be read (not one of ours, or not decodable).
    #[error("corrupt metadata at {key}: {reason}")]
    Corrupt {
        /// The key as the catalog names it (relative to the meta root).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The metadata store failed.
    #[error(transparent)]
    Kv(#[from] MetastoreError),
    /// A write task ended without an answer (it panicked or the runtime is shutting down).
    #[error("metadata write task failed: {0}")]
    Internal(String),
}

impl MetaError {
    /// The Milvus code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::SegmentNotFound(_) => ErrorCode::SEGMENT_NOT_FOUND,
            Self::InvalidBinlog { .. }
            | Self::BinlogCountMismatch { .. }
            | Self::InvalidChannel { .. }
            | Self::InvalidCheckpoint(_) => ErrorCode::PARAMETER_INVALID,
            Self::Kv(err) => err.code(),
            Self::Corrupt { .. } | Self::Internal(_) => ErrorCode::SERVICE_INTERNAL,
        }
    }
}

impl From<MetaError> for MilvusError {
    fn from(err: MetaError) -> Self {
        match err {
            MetaError::SegmentNotFound(id) => MilvusError::segment_not_found(id),
            MetaError::Kv(kv) => kv.into(),
            MetaError::Corrupt { .. } | MetaError::Internal(_) => MilvusError::internal(&err),
            MetaError::InvalidBinlog { .. }
            | MetaError::BinlogCountMismatch { .. }
            | MetaError::InvalidChannel { .. }
            | MetaError::InvalidCheckpoint(_) => {
                MilvusError::new(ErrorCode::PARAMETER_INVALID).with_desc(&err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milvus_codes() {
        let missing: MilvusError = MetaError::SegmentNotFound(7).into();
        assert_eq!(missing.code(), ErrorCode::SEGMENT_NOT_FOUND);
        assert_eq!(missing.to_string(), "segment not found[segment=7]");

        let path = MetaError::InvalidBinlog {
            segment_id: 7,
            path: "a/b".into(),
            reason: "no log ID".into(),
        };
        assert_eq!(path.code(), ErrorCode::PARAMETER_INVALID);
        let path: MilvusError = path.into();
        assert_eq!(path.code(), ErrorCode::PARAMETER_INVALID);
        assert!(
            path.to_string()
                .starts_with("invalid parameter: invalid binlog of segment 7")
        );

        let kv: MilvusError = MetaError::Kv(MetastoreError::backend("txn", "down")).into();
        assert_eq!(kv.code(), ErrorCode::IO_FAILED);

        let corrupt = MetaError::Corrupt {
            key: "k".into(),
            reason: "bad".into(),
        };
        assert_eq!(
            MilvusError::from(corrupt).code(),
            ErrorCode::SERVICE_INTERNAL
        );
    }
}
