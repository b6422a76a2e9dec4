//! The IndexNodes as the core calls them ([`IndexNodeSet`]: the builder's [`IndexNodes`] plus
//! GetMetrics), implemented over the session-discovered clients.

use async_trait::async_trait;
use datacoord_index_builder::IndexNodes;
use milvus_proto::common::Status;
use milvus_proto::index::{
    CreateJobRequest, DropJobsRequest, GetJobStatsRequest, GetJobStatsResponse, QueryJobsRequest,
    QueryJobsResponse,
};
use milvus_proto::milvus::{GetMetricsRequest, GetMetricsResponse};
use milvus_types::{MilvusResult, NodeId};

use crate::clients::{IndexNodeClient, answer};
use crate::nodes::NodeManager;

/// The registered IndexNodes: what the index builder and CreateIndex call ([`IndexNodes`]), and
/// GetMetrics for the system-info fan-out. Answers come back as the node sent them; the caller
/// bounds each call.
#[async_trait]
pub(crate) trait IndexNodeSet: IndexNodes {
    /// `GetMetrics`.
    async fn get_metrics(
        &self,
        node: NodeId,
        req: GetMetricsRequest,
    ) -> MilvusResult<GetMetricsResponse>;
}

// NodeManager answers NODE_NOT_FOUND for an unknown node: the builder's "node gone".
#[async_trait]
impl IndexNodes for NodeManager<IndexNodeClient> {
    fn nodes(&self) -> Vec<(NodeId, bool)> {
        self.node_states()
    }

    async fn get_job_stats(&self, node: NodeId) -> MilvusResult<GetJobStatsResponse> {
        let mut client = self.client(node).await?;
        answer(client.get_job_stats(GetJobStatsRequest {}).await)
    }

    async fn create_job(&self, node: NodeId, req: CreateJobRequest) -> MilvusResult<Status> {
        let mut client = self.client(node).await?;
        answer(client.create_job(req).await)
    }

    async fn query_jobs(
        &self,
        node: NodeId,
        req: QueryJobsRequest,
    ) -> MilvusResult<QueryJobsResponse> {
        let mut client = self.client(node).await?;
        answer(client.query_jobs(req).await)
    }

    async fn drop_jobs(&self, node: NodeId, req: DropJobsRequest) -> MilvusResult<Status> {
        let mut client = self.client(node).await?;
        answer(client.drop_jobs(req).await)
    }
}

#[async_trait]
impl IndexNodeSet for NodeManager<IndexNodeClient> {
    async fn get_metrics(
        &self,
        node: NodeId,
        req: GetMetricsRequest,
    ) -> MilvusResult<GetMetricsResponse> {
        let mut client = self.client(node).await?;
        answer(client.get_metrics(req).await)
    }
}
