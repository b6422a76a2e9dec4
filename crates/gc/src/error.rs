//! [`GcError`]: what the public GC calls can fail with, and its Milvus code.

use datacoord_index::IndexError;
use milvus_storage::StorageError;
use milvus_types::{ErrorCode, MilvusError};

/// Errors of the garbage collector's public calls. Step failures are logged and retried on
/// the next run rather than returned; these surface only from the control API and helpers.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// `dataCoord.enableGarbageCollection` is false (Resume refuses, as 2.3.5 does).
    #[error("garbage collection not enabled")]
    Disabled,
    /// Object storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Index metadata failed.
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// Result with a [`GcError`].
pub type GcResult<T> = Result<T, GcError>;

impl From<GcError> for MilvusError {
    fn from(err: GcError) -> Self {
        match err {
            // 2.3.5: "service unavailable: garbage collection not enabled".
            GcError::Disabled => MilvusError::new(ErrorCode::SERVICE_UNAVAILABLE)
                .with_desc("garbage collection not enabled"),
            GcError::Storage(storage) => storage.into(),
            GcError::Index(index) => index.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_is_service_unavailable_with_the_2_3_5_text() {
        let status = MilvusError::from(GcError::Disabled).to_status();
        assert_eq!(status.code, ErrorCode::SERVICE_UNAVAILABLE.0);
        assert_eq!(
            status.reason,
            "service unavailable: garbage collection not enabled"
        );
    }
}
