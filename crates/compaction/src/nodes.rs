//! The DataNode side as compaction sees it ([`CompactionNodes`]), and one bounded call to a node.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use milvus_proto::common::Status;
use milvus_proto::data::{CompactionPlan, CompactionStateResponse, SyncSegmentsRequest};
use milvus_types::{ErrorCode, MilvusError, MilvusResult, NodeId};

/// The registered DataNodes and the three RPCs compaction uses. The server implements it over
/// its session-discovered clients; calls need no timeout of their own (the engine bounds each
/// with `dataCoord.compaction.rpcTimeout`), and an unregistered node answers
/// [`node_not_registered`].
#[async_trait]
pub trait CompactionNodes: Send + Sync {
    /// Registered DataNodes.
    fn nodes(&self) -> Vec<NodeId>;
    /// The node watching `channel` now, if any (not the unassigned buffer).
    fn channel_node(&self, channel: &str) -> Option<NodeId>;
    /// `Compaction(plan)`.
    async fn compaction(&self, node: NodeId, plan: CompactionPlan) -> MilvusResult<Status>;
    /// `GetCompactionState`.
    async fn get_compaction_state(&self, node: NodeId) -> MilvusResult<CompactionStateResponse>;
    /// `SyncSegments`.
    async fn sync_segments(&self, node: NodeId, req: SyncSegmentsRequest) -> MilvusResult<Status>;
}

/// The error a [`CompactionNodes`] call returns for a node that is not registered
/// (`node not found[node=ID]`, code 901).
pub fn node_not_registered(node: NodeId) -> MilvusError {
    MilvusError::new(ErrorCode::NODE_NOT_FOUND).with_field("node", node)
}

/// A DataNode answer that carries a status.
pub(crate) trait Answer {
    fn status(&self) -> Option<&Status>;
}

impl Answer for Status {
    fn status(&self) -> Option<&Status> {
        Some(self)
    }
}

impl Answer for CompactionStateResponse {
    fn status(&self) -> Option<&Status> {
        self.status.as_ref()
    }
}

/// Runs one node call under `timeout`; a non-success status becomes the error it carries.
pub(crate) async fn bounded<T: Answer>(
    timeout: Duration,
    call: impl Future<Output = MilvusResult<T>>,
) -> MilvusResult<T> {
    let answer = tokio::time::timeout(timeout, call).await.map_err(|_| {
        MilvusError::new(ErrorCode::TIMEOUT).with_desc(format!("no answer within {timeout:?}"))
    })??;
    // A missing status reads as success, as Go's getters return the zero Status.
    if let Some(err) = answer.status().and_then(MilvusError::from_status) {
        return Err(err);
    }
    Ok(answer)
}
