//! The one error type of the builder and its Milvus status.

use datacoord_index::IndexError;
use milvus_types::{ErrorCode, MilvusError};

/// Result of a builder operation.
pub type BuilderResult<T> = Result<T, BuilderError>;

/// Why creating segment-index tasks failed. IndexNode failures never surface here: the
/// scheduler turns them into task-state changes and logs them.
#[derive(Debug, thiserror::Error)]
pub enum BuilderError {
    /// Index metadata could not be read or written.
    #[error(transparent)]
    Meta(#[from] IndexError),
    /// RootCoord did not hand out a build ID.
    #[error("cannot allocate a build ID: {0}")]
    Allocator(MilvusError),
}

impl BuilderError {
    /// The Milvus code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Meta(err) => err.code(),
            Self::Allocator(err) => err.code(),
        }
    }
}

impl From<BuilderError> for MilvusError {
    fn from(err: BuilderError) -> Self {
        match err {
            BuilderError::Meta(meta) => meta.into(),
            BuilderError::Allocator(peer) => peer,
        }
    }
}
