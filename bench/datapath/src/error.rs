use milvus_types::{ErrorCode, MilvusError};

/// What can stop a benchmark tool before it measures anything.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A command-line value or a synthetic-data spec that cannot work.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An etcd request failed.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// The DataCoord session in etcd is missing or unreadable.
    #[error("datacoord session at {key}: {reason}")]
    Session {
        /// The session key read.
        key: String,
        /// Why it could not be used.
        reason: String,
    },
    /// The DataCoord address could not be dialled.
    #[error("connect to {address}: {source}")]
    Connect {
        /// `host:port` dialled.
        address: String,
        /// The transport error.
        source: tonic::transport::Error,
    },
}

/// Result with a [`BenchError`].
pub type BenchResult<T> = Result<T, BenchError>;

impl From<BenchError> for MilvusError {
    fn from(err: BenchError) -> Self {
        let code = match &err {
            BenchError::InvalidArgument(_) => ErrorCode::PARAMETER_INVALID,
            BenchError::Etcd(_) => ErrorCode::IO_FAILED,
            BenchError::Session { .. } => ErrorCode::NODE_NOT_FOUND,
            BenchError::Connect { .. } => ErrorCode::SERVICE_UNAVAILABLE,
        };
        MilvusError::new(code).with_desc(err)
    }
}
