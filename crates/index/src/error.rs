//! The one error type of index metadata and its Milvus status.

use milvus_metastore::MetastoreError;
use milvus_types::{ErrorCode, MilvusError};

use crate::model::BuildId;

/// Result of an index metadata operation.
pub type IndexResult<T> = Result<T, IndexError>;

/// Why an index operation failed. Converted to a Milvus status by `From<IndexError> for
/// MilvusError` (the codes and texts are those of 2.3.5, FACTS §1.3, §1.11, §5.2).
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// No live index matches the requested name ("" = any).
    #[error("index not found[indexName={0}]")]
    NotFound(String),
    /// More than one live index matches where one is needed.
    #[error("index duplicates[indexName={0}]")]
    Duplicate(String),
    /// The index type cannot be built here (DISKANN without a disk-enabled IndexNode).
    #[error("index type not supported[indexType={0}]")]
    NotSupported(String),
    /// CreateIndex: the name is taken by an index on another field or with other parameters.
    #[error("CreateIndex failed: at most one distinct index is allowed per field")]
    DistinctIndexExists,
    /// CreateIndex: the field already has an index under another name.
    #[error("CreateIndex failed: creating multiple indexes on same field is not supported")]
    FieldAlreadyIndexed,
    /// CreateIndex: the field, index type or a build parameter is not valid (params.rs).
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// No segment-index record with this build ID.
    #[error("segment index not found: build {0}")]
    BuildNotFound(BuildId),
    /// A stored key or value cannot be read.
    #[error("corrupt index metadata at {key}: {reason}")]
    Corrupt {
        /// The key (relative to the meta root).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A peer (RootCoord: ID allocation, collection schema) failed; its status is kept.
    #[error("{0}")]
    Peer(MilvusError),
    /// The metadata store failed.
    #[error(transparent)]
    Kv(#[from] MetastoreError),
    /// A write task ended without an answer.
    #[error("index metadata write task failed: {0}")]
    Internal(String),
}

impl IndexError {
    /// The Milvus code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound(_) => ErrorCode::INDEX_NOT_FOUND,
            Self::Duplicate(_) => ErrorCode::INDEX_DUPLICATE,
            Self::NotSupported(_) => ErrorCode::INDEX_NOT_SUPPORTED,
            Self::DistinctIndexExists | Self::FieldAlreadyIndexed => ErrorCode::UNEXPECTED,
            Self::InvalidParameter(_) => ErrorCode::PARAMETER_INVALID,
            Self::BuildNotFound(_) | Self::Corrupt { .. } | Self::Internal(_) => {
                ErrorCode::SERVICE_INTERNAL
            }
            Self::Peer(err) => err.code(),
            Self::Kv(err) => err.code(),
        }
    }
}

impl From<IndexError> for MilvusError {
    fn from(err: IndexError) -> Self {
        match err {
            IndexError::NotFound(name) => {
                MilvusError::new(ErrorCode::INDEX_NOT_FOUND).with_field("indexName", name)
            }
            IndexError::Duplicate(name) => {
                MilvusError::new(ErrorCode::INDEX_DUPLICATE).with_field("indexName", name)
            }
            IndexError::NotSupported(index_type) => {
                MilvusError::new(ErrorCode::INDEX_NOT_SUPPORTED).with_field("indexType", index_type)
            }
            // 2.3.5 returns these as plain errors: code 65535 with the text.
            IndexError::DistinctIndexExists | IndexError::FieldAlreadyIndexed => {
                MilvusError::unexpected(&err)
            }
            IndexError::InvalidParameter(reason) => {
                MilvusError::new(ErrorCode::PARAMETER_INVALID).with_desc(reason)
            }
            IndexError::Peer(peer) => peer,
            IndexError::Kv(kv) => kv.into(),
            IndexError::BuildNotFound(_) | IndexError::Corrupt { .. } | IndexError::Internal(_) => {
                MilvusError::internal(&err)
            }
        }
    }
}
