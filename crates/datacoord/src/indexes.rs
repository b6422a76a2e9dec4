//! The index RPCs (served on both the DataCoord and the IndexCoord service): health check,
//! `index_req_count`, and the calls into [`IndexMeta`], which owns the logic.

use std::sync::Arc;
use std::time::Duration;

use crate::datanodes::transport_error;
use async_trait::async_trait;
use datacoord_index::{CreateIndexEnv, IndexMeta};
use datacoord_index_builder::IndexNodes;
use milvus_proto::common::Status;
use milvus_proto::index::{
    CreateIndexRequest, CreateJobRequest, DescribeIndexRequest, DropIndexRequest, DropJobsRequest,
    GetIndexBuildProgressRequest, GetIndexBuildProgressResponse, GetIndexInfoRequest,
    GetIndexInfoResponse, GetIndexStateRequest, GetIndexStateResponse, GetIndexStatisticsRequest,
    GetJobStatsRequest, GetJobStatsResponse, GetSegmentIndexStateRequest,
    GetSegmentIndexStateResponse, IndexInfo, QueryJobsRequest, QueryJobsResponse,
};
use milvus_proto::schema::CollectionSchema;
use milvus_rootcoord_client::Broker;
use milvus_types::{CollectionId, MilvusError, MilvusResult, NodeId};
use tracing::{info, warn};

use crate::clients::IndexNodeClient;
use crate::nodes::NodeManager;
use crate::server::Server;

/// How long an IndexNode gets to answer GetJobStats when CreateIndex asks about disks.
const JOB_STATS_TIMEOUT: Duration = Duration::from_secs(5);

/// What CreateIndex asks of the rest of the coordinator: schemas from RootCoord, disks from
/// the IndexNodes.
struct Env<'a> {
    broker: &'a Arc<dyn Broker>,
    indexnodes: &'a Arc<NodeManager<IndexNodeClient>>,
}

#[async_trait]
impl CreateIndexEnv for Env<'_> {
    async fn collection_schema(&self, coll: CollectionId) -> MilvusResult<CollectionSchema> {
        let described = self.broker.describe_collection_internal(coll).await?;
        Ok(described.schema.unwrap_or_default())
    }

    async fn disk_index_supported(&self) -> bool {
        let asks = self
            .indexnodes
            .node_ids()
            .into_iter()
            .map(|node_id| async move {
                let mut client = self.indexnodes.client(node_id).await.ok()?;
                let answer = tokio::time::timeout(
                    JOB_STATS_TIMEOUT,
                    client.get_job_stats(GetJobStatsRequest {}),
                )
                .await
                .ok()?
                .ok()?
                .into_inner();
                let ok = answer
                    .status
                    .as_ref()
                    .is_none_or(|s| s.code == 0 && s.error_code == 0);
                Some(ok && answer.enable_disk)
            });
        let answers = futures::future::join_all(asks).await;
        answers.into_iter().any(|answer| answer == Some(true))
    }
}

/// The builder's view of the IndexNodes: the session-discovered clients.
pub(crate) struct IndexNodeSet(pub(crate) Arc<NodeManager<IndexNodeClient>>);

impl IndexNodeSet {
    async fn client(&self, node: NodeId) -> MilvusResult<IndexNodeClient> {
        // NodeManager answers NODE_NOT_FOUND for an unknown node: the builder's "node gone".
        self.0.client(node).await
    }
}

#[async_trait]
impl IndexNodes for IndexNodeSet {
    fn nodes(&self) -> Vec<(NodeId, bool)> {
        self.0.node_states()
    }

    async fn get_job_stats(&self, node: NodeId) -> MilvusResult<GetJobStatsResponse> {
        let mut client = self.client(node).await?;
        let answer = client.get_job_stats(GetJobStatsRequest {}).await;
        answer
            .map(tonic::Response::into_inner)
            .map_err(transport_error)
    }

    async fn create_job(&self, node: NodeId, req: CreateJobRequest) -> MilvusResult<Status> {
        let mut client = self.client(node).await?;
        let answer = client.create_job(req).await;
        answer
            .map(tonic::Response::into_inner)
            .map_err(transport_error)
    }

    async fn query_jobs(
        &self,
        node: NodeId,
        req: QueryJobsRequest,
    ) -> MilvusResult<QueryJobsResponse> {
        let mut client = self.client(node).await?;
        let answer = client.query_jobs(req).await;
        answer
            .map(tonic::Response::into_inner)
            .map_err(transport_error)
    }

    async fn drop_jobs(&self, node: NodeId, req: DropJobsRequest) -> MilvusResult<Status> {
        let mut client = self.client(node).await?;
        let answer = client.drop_jobs(req).await;
        answer
            .map(tonic::Response::into_inner)
            .map_err(transport_error)
    }
}

impl Server {
    fn index_meta(&self) -> MilvusResult<&Arc<IndexMeta>> {
        Ok(&self.healthy()?.index_meta)
    }

    /// CreateIndex: stores the index (or refreshes an identical one) and wakes the builder.
    pub async fn create_index(&self, req: CreateIndexRequest) -> MilvusResult<()> {
        let active = self.healthy()?;
        let requests = &self.metrics.index_req_count;
        requests.with_label_values(&["total"]).inc();
        let collection_id = req.collection_id;
        let field_id = req.field_id;
        let name = req.index_name.clone();
        info!(collection_id, field_id, index_name = %name, "receive CreateIndex request");
        let env = Env {
            broker: &active.broker,
            indexnodes: &active.indexnodes,
        };
        match active
            .index_meta
            .create_index(req, active.allocator.as_ref(), &env)
            .await
        {
            Ok(index_id) => {
                requests.with_label_values(&["success"]).inc();
                info!(collection_id, field_id, index_id, index_name = %name, "CreateIndex successfully");
                active.index_builder.on_index_created(collection_id);
                Ok(())
            }
            Err(err) => {
                requests.with_label_values(&["fail"]).inc();
                warn!(collection_id, field_id, index_name = %name, error = %err, "CreateIndex failed");
                Err(err.into())
            }
        }
    }

    /// DescribeIndex: the matching live indexes with their build statistics.
    pub fn describe_index(&self, req: &DescribeIndexRequest) -> MilvusResult<Vec<IndexInfo>> {
        let active = self.healthy()?;
        active
            .index_meta
            .describe_index(active.meta.as_ref(), req)
            .map_err(|err| {
                warn!(collection_id = req.collection_id, index_name = %req.index_name, error = %err, "DescribeIndex failed");
                err.into()
            })
    }

    /// GetIndexStatistics: as DescribeIndex, counting every built segment.
    pub fn get_index_statistics(
        &self,
        req: &GetIndexStatisticsRequest,
    ) -> MilvusResult<Vec<IndexInfo>> {
        let active = self.healthy()?;
        Ok(active
            .index_meta
            .get_index_statistics(active.meta.as_ref(), req)?)
    }

    /// GetIndexState: the state of the one matching index.
    pub fn get_index_state(
        &self,
        req: &GetIndexStateRequest,
    ) -> MilvusResult<GetIndexStateResponse> {
        let active = self.healthy()?;
        Ok(active
            .index_meta
            .get_index_state(active.meta.as_ref(), req)?)
    }

    /// GetSegmentIndexState: per requested segment, its build state.
    pub fn get_segment_index_state(
        &self,
        req: &GetSegmentIndexStateRequest,
    ) -> MilvusResult<GetSegmentIndexStateResponse> {
        let active = self.healthy()?;
        Ok(active
            .index_meta
            .get_segment_index_state(active.meta.as_ref(), req)?)
    }

    /// GetIndexBuildProgress: indexed, total and pending rows of the one matching index.
    pub fn get_index_build_progress(
        &self,
        req: &GetIndexBuildProgressRequest,
    ) -> MilvusResult<GetIndexBuildProgressResponse> {
        let active = self.healthy()?;
        Ok(active
            .index_meta
            .get_index_build_progress(active.meta.as_ref(), req)?)
    }

    /// GetIndexInfos: the index files of the requested segments, for QueryCoord's loading.
    pub fn get_index_infos(&self, req: &GetIndexInfoRequest) -> MilvusResult<GetIndexInfoResponse> {
        let active = self.healthy()?;
        Ok(active.index_meta.get_index_infos(
            active.meta.as_ref(),
            req,
            active.chunk_manager.root_path(),
        ))
    }

    /// DropIndex: marks the matching indexes deleted; GC removes records and files later.
    pub async fn drop_index(&self, req: &DropIndexRequest) -> MilvusResult<()> {
        let index_meta = self.index_meta()?;
        let dropped = index_meta.drop_index(req).await.map_err(|err| {
            warn!(collection_id = req.collection_id, index_name = %req.index_name, error = %err, "DropIndex failed");
            MilvusError::from(err)
        })?;
        info!(collection_id = req.collection_id, index_name = %req.index_name, index_ids = ?dropped, "DropIndex successfully");
        Ok(())
    }
}
