//! The crate's error type and its Milvus code.

use milvus_types::{ErrorCode, MilvusError};

/// Why a segment-manager operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The schema gives no usable row size (E.6); allocation is impossible.
    #[error("invalid schema for segment sizing: {0}")]
    InvalidSchema(String),
    /// A negative row count was requested.
    #[error("invalid row count {0}")]
    InvalidRowCount(i64),
    /// RootCoord's allocator failed (ID or timestamp).
    #[error("allocator: {0}")]
    Allocator(MilvusError),
    /// The persistent segment store failed.
    #[error("segment store: {0}")]
    Store(MilvusError),
    /// No startup timestamp after every attempt; the manager cannot guard old allocations.
    #[error("global max expire ts is unavailable for segment manager: {0}")]
    LastExpireUnavailable(MilvusError),
}

impl From<SegmentError> for MilvusError {
    fn from(err: SegmentError) -> Self {
        match err {
            SegmentError::InvalidSchema(reason) => {
                MilvusError::new(ErrorCode::PARAMETER_INVALID).with_desc(reason)
            }
            SegmentError::InvalidRowCount(rows) => {
                MilvusError::parameter_invalid("row count >= 0", rows)
            }
            // Peers' errors keep their own code so callers can tell a retriable one.
            SegmentError::Allocator(inner) | SegmentError::Store(inner) => inner,
            SegmentError::LastExpireUnavailable(inner) => {
                inner.wrap("global max expire ts is unavailable for segment manager")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_cause() {
        let schema: MilvusError = SegmentError::InvalidSchema("zero size".into()).into();
        assert_eq!(schema.code(), ErrorCode::PARAMETER_INVALID);
        let peer = MilvusError::new(ErrorCode::SERVICE_UNAVAILABLE);
        let passed: MilvusError = SegmentError::Allocator(peer.clone()).into();
        assert_eq!(passed, peer);
        let wrapped: MilvusError = SegmentError::LastExpireUnavailable(peer).into();
        assert_eq!(wrapped.code(), ErrorCode::SERVICE_UNAVAILABLE);
        assert!(!wrapped.is_retriable());
    }
}
