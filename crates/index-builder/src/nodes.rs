//! The IndexNode side as the builder sees it ([`IndexNodes`]), and one bounded call to a node.

use std::future::Future;

use async_trait::async_trait;
use milvus_proto::common::Status;
use milvus_proto::index::{
    CreateJobRequest, DropJobsRequest, GetJobStatsResponse, QueryJobsRequest, QueryJobsResponse,
};
use milvus_types::{ErrorCode, MilvusError, MilvusResult, NodeId};

use crate::config::NODE_RPC_TIMEOUT;

/// The registered IndexNodes and their RPCs. The server implements it over its
/// session-discovered clients; calls need no timeout of their own (the builder bounds each
/// one), and a node that is not registered answers [`node_not_registered`].
#[async_trait]
pub trait IndexNodes: Send + Sync {
    /// Registered nodes and whether each is stopping (stopping nodes get no new tasks but are
    /// still polled and told to drop jobs).
    fn nodes(&self) -> Vec<(NodeId, bool)>;
    /// `GetJobStats`.
    async fn get_job_stats(&self, node: NodeId) -> MilvusResult<GetJobStatsResponse>;
    /// `CreateJob`.
    async fn create_job(&self, node: NodeId, req: CreateJobRequest) -> MilvusResult<Status>;
    /// `QueryJobs`.
    async fn query_jobs(
        &self,
        node: NodeId,
        req: QueryJobsRequest,
    ) -> MilvusResult<QueryJobsResponse>;
    /// `DropJobs`.
    async fn drop_jobs(&self, node: NodeId, req: DropJobsRequest) -> MilvusResult<Status>;
}

/// The error an [`IndexNodes`] call returns for a node that is not registered
/// (`node not found[node=ID]`, code 901); the builder treats it as "the node is gone".
pub fn node_not_registered(node: NodeId) -> MilvusError {
    MilvusError::new(ErrorCode::NODE_NOT_FOUND).with_field("node", node)
}

/// How one call to a node ended, when it did not succeed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The node is not registered (any more).
    Gone,
    /// No answer within [`NODE_RPC_TIMEOUT`].
    TimedOut,
    /// Transport error or a non-success status.
    Failed(MilvusError),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Gone => f.write_str("node not registered"),
            Self::TimedOut => write!(f, "no answer within {NODE_RPC_TIMEOUT:?}"),
            Self::Failed(err) => write!(f, "{err}"),
        }
    }
}

/// An IndexNode answer that carries a status.
pub(crate) trait Answer {
    fn status(&self) -> Option<&Status>;
}

impl Answer for Status {
    fn status(&self) -> Option<&Status> {
        Some(self)
    }
}

impl Answer for QueryJobsResponse {
    fn status(&self) -> Option<&Status> {
        self.status.as_ref()
    }
}

impl Answer for GetJobStatsResponse {
    fn status(&self) -> Option<&Status> {
        self.status.as_ref()
    }
}

/// Runs one node call under [`NODE_RPC_TIMEOUT`] and folds a non-success status into
/// [`CallError::Failed`].
pub(crate) async fn bounded<T: Answer>(
    call: impl Future<Output = MilvusResult<T>>,
) -> Result<T, CallError> {
    let answer = match tokio::time::timeout(NODE_RPC_TIMEOUT, call).await {
        Err(_) => return Err(CallError::TimedOut),
        Ok(Err(err)) if err.code() == ErrorCode::NODE_NOT_FOUND => return Err(CallError::Gone),
        Ok(Err(err)) => return Err(CallError::Failed(err)),
        Ok(Ok(answer)) => answer,
    };
    // A missing status reads as success, as Go's getters return the zero Status.
    if let Some(err) = answer.status().and_then(MilvusError::from_status) {
        return Err(CallError::Failed(err));
    }
    Ok(answer)
}
