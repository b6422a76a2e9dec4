//! The crate's error type and how each failure becomes a Milvus error.

use milvus_types::{ErrorCode, MilvusError};

/// Why a RootCoord call (or the lookup of RootCoord) failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RootCoordError {
    /// RootCoord answered with a non-success `Status` (kept as the peer reported it).
    #[error("{0}")]
    Status(MilvusError),
    /// RootCoord does not serve this RPC (gRPC `UNIMPLEMENTED`); never retried.
    #[error("service unimplemented: {0}")]
    Unimplemented(String),
    /// No RootCoord could be found (no `session/rootcoord`, etcd failure, ...).
    #[error("failed to resolve rootcoord: {0}")]
    Resolve(String),
    /// Dialling the resolved address failed or took longer than the dial timeout.
    #[error("failed to connect to rootcoord at {address}: {reason}")]
    Connect {
        /// The address that was dialled.
        address: String,
        /// What the transport reported.
        reason: String,
    },
    /// The RPC failed at the gRPC level (connection lost, server-side interceptor, ...).
    #[error("rootcoord rpc {rpc} failed: {code:?}: {message}")]
    Transport {
        /// RPC name, e.g. `AllocID`.
        rpc: &'static str,
        /// gRPC status code.
        code: tonic::Code,
        /// gRPC status message.
        message: String,
    },
    /// RootCoord belongs to another cluster (`cross cluster routing`) on every attempt.
    #[error("service unavailable: {0}")]
    CrossClusterRouting(String),
    /// The per-call deadline passed before a usable answer arrived.
    #[error("context deadline exceeded: {}", timeout_detail(rpc, last_error.as_deref()))]
    Timeout {
        /// RPC name.
        rpc: &'static str,
        /// The error of the last failed attempt, if any attempt failed before the deadline.
        last_error: Option<String>,
    },
    /// The client configuration cannot be used (e.g. a cluster name that is not valid metadata).
    #[error("invalid rootcoord client config: {0}")]
    InvalidConfig(String),
}

impl RootCoordError {
    /// The Milvus code a Go peer would see for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Status(err) => err.code(),
            Self::Unimplemented(_) => ErrorCode::SERVICE_UNIMPLEMENTED,
            Self::CrossClusterRouting(_) => ErrorCode::SERVICE_UNAVAILABLE,
            Self::Timeout { .. } => ErrorCode::TIMEOUT,
            Self::InvalidConfig(_) => ErrorCode::PARAMETER_INVALID,
            // Go reports transport and discovery failures as plain (non-merr) errors.
            Self::Resolve(_) | Self::Connect { .. } | Self::Transport { .. } => {
                ErrorCode::UNEXPECTED
            }
        }
    }

    /// Whether a caller could sensibly try again later (only RootCoord's own retriable statuses and
    /// the cross-cluster case, which Go turns into the retriable `service unavailable`).
    pub fn is_retriable(&self) -> bool {
        self.to_milvus().is_retriable()
    }

    /// A gRPC `CANCELLED` / `DEADLINE_EXCEEDED` (what a server answers when the propagated
    /// `grpc-timeout` runs out).
    pub(crate) fn is_deadline_transport_error(&self) -> bool {
        matches!(
            self,
            Self::Transport {
                code: tonic::Code::Cancelled | tonic::Code::DeadlineExceeded,
                ..
            }
        )
    }

    /// Converts to the Milvus error that ends up in a `commonpb.Status`.
    pub fn to_milvus(&self) -> MilvusError {
        match self {
            Self::Status(err) => err.clone(),
            Self::Unimplemented(desc) => {
                MilvusError::new(ErrorCode::SERVICE_UNIMPLEMENTED).with_desc(desc)
            }
            Self::CrossClusterRouting(_) => MilvusError::new(ErrorCode::SERVICE_UNAVAILABLE),
            Self::Timeout { rpc, last_error } => MilvusError::new(ErrorCode::TIMEOUT)
                .with_desc(timeout_detail(rpc, last_error.as_deref())),
            Self::InvalidConfig(reason) => {
                MilvusError::new(ErrorCode::PARAMETER_INVALID).with_desc(reason)
            }
            Self::Resolve(_) | Self::Connect { .. } | Self::Transport { .. } => {
                MilvusError::unexpected(self)
            }
        }
    }
}

fn timeout_detail(rpc: &str, last_error: Option<&str>) -> String {
    match last_error {
        Some(err) => format!("rootcoord rpc {rpc} (last error: {err})"),
        None => format!("rootcoord rpc {rpc}"),
    }
}

impl From<RootCoordError> for MilvusError {
    fn from(err: RootCoordError) -> Self {
        err.to_milvus()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use milvus_types::Status;

    #[test]
    fn status_errors_keep_code_and_retriable_flag() {
        let status = Status {
            code: 1,
            error_code: 56,
            retriable: true,
            reason: "service not ready".into(),
            ..Default::default()
        };
        let err = RootCoordError::Status(MilvusError::from_status(&status).expect("error"));
        assert_eq!(err.code(), ErrorCode::SERVICE_NOT_READY);
        assert!(err.is_retriable());
        assert_eq!(err.to_milvus().to_status().code, 1);
    }

    #[test]
    fn transport_level_failures_map_like_go() {
        let unimplemented = RootCoordError::Unimplemented("AllocID".into());
        assert_eq!(unimplemented.to_milvus().code(), ErrorCode(10));
        assert!(!unimplemented.is_retriable());
        let cross = RootCoordError::CrossClusterRouting("x".into());
        assert_eq!(cross.to_milvus().code(), ErrorCode::SERVICE_UNAVAILABLE);
        assert!(cross.is_retriable());
        let timeout = RootCoordError::Timeout {
            rpc: "AllocID",
            last_error: None,
        };
        assert_eq!(timeout.to_milvus().code(), ErrorCode::TIMEOUT);
        let transport = RootCoordError::Transport {
            rpc: "AllocID",
            code: tonic::Code::Unavailable,
            message: "connection refused".into(),
        };
        assert_eq!(transport.to_milvus().code(), ErrorCode::UNEXPECTED);
        assert!(transport.to_string().contains("connection refused"));
    }
}
