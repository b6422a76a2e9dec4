//! [`Indexes`]: the index RPCs (served on both the DataCoord and the IndexCoord service), with
//! `index_req_count`; [`IndexMeta`] owns their logic and the index builder hears of new indexes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datacoord_index::{CreateIndexEnv, IndexMeta};
use datacoord_index_builder::{IndexBuilder, IndexNodes};
use datacoord_meta::Meta;
use milvus_proto::index::{
    CreateIndexRequest, DescribeIndexRequest, DropIndexRequest, GetIndexBuildProgressRequest,
    GetIndexBuildProgressResponse, GetIndexInfoRequest, GetIndexInfoResponse, GetIndexStateRequest,
    GetIndexStateResponse, GetIndexStatisticsRequest, GetSegmentIndexStateRequest,
    GetSegmentIndexStateResponse, IndexInfo,
};
use milvus_proto::schema::CollectionSchema;
use milvus_rootcoord_client::{Allocator, Broker};
use milvus_types::{CollectionId, MilvusError, MilvusResult};
use prometheus::IntCounterVec;
use tracing::{info, warn};

/// How long an IndexNode gets to answer GetJobStats when CreateIndex asks about disks.
const JOB_STATS_TIMEOUT: Duration = Duration::from_secs(5);

/// What CreateIndex asks of the rest of the coordinator: schemas from RootCoord, disks from
/// the IndexNodes.
struct Env<'a> {
    broker: &'a dyn Broker,
    indexnodes: &'a dyn IndexNodes,
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
            .nodes()
            .into_iter()
            .map(|(node_id, _)| async move {
                let call = self.indexnodes.get_job_stats(node_id);
                let answer = tokio::time::timeout(JOB_STATS_TIMEOUT, call)
                    .await
                    .ok()?
                    .ok()?;
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

/// CreateIndex, DescribeIndex, GetIndexState, GetSegmentIndexState, GetIndexInfos,
/// GetIndexStatistics, GetIndexBuildProgress and DropIndex.
pub struct Indexes {
    pub(crate) meta: Arc<Meta>,
    pub(crate) index_meta: Arc<IndexMeta>,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) allocator: Arc<dyn Allocator>,
    pub(crate) indexnodes: Arc<dyn IndexNodes>,
    pub(crate) index_builder: Arc<IndexBuilder>,
    /// The chunk manager's root, under which index files are answered in full.
    pub(crate) storage_root: String,
    /// `milvus_datacoord_index_req_count`.
    pub(crate) requests: IntCounterVec,
}

impl Indexes {
    /// CreateIndex: stores the index (or refreshes an identical one) and wakes the builder.
    pub async fn create_index(&self, req: CreateIndexRequest) -> MilvusResult<()> {
        let requests = &self.requests;
        requests.with_label_values(&["total"]).inc();
        let collection_id = req.collection_id;
        let field_id = req.field_id;
        let name = req.index_name.clone();
        info!(collection_id, field_id, index_name = %name, "receive CreateIndex request");
        let env = Env {
            broker: self.broker.as_ref(),
            indexnodes: self.indexnodes.as_ref(),
        };
        match self
            .index_meta
            .create_index(req, self.allocator.as_ref(), &env)
            .await
        {
            Ok(index_id) => {
                requests.with_label_values(&["success"]).inc();
                info!(collection_id, field_id, index_id, index_name = %name, "CreateIndex successfully");
                self.index_builder.on_index_created(collection_id);
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
        self
            .index_meta
            .describe_index(self.meta.as_ref(), req)
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
        Ok(self
            .index_meta
            .get_index_statistics(self.meta.as_ref(), req)?)
    }

    /// GetIndexState: the state of the one matching index.
    pub fn get_index_state(
        &self,
        req: &GetIndexStateRequest,
    ) -> MilvusResult<GetIndexStateResponse> {
        Ok(self.index_meta.get_index_state(self.meta.as_ref(), req)?)
    }

    /// GetSegmentIndexState: per requested segment, its build state.
    pub fn get_segment_index_state(
        &self,
        req: &GetSegmentIndexStateRequest,
    ) -> MilvusResult<GetSegmentIndexStateResponse> {
        Ok(self
            .index_meta
            .get_segment_index_state(self.meta.as_ref(), req)?)
    }

    /// GetIndexBuildProgress: indexed, total and pending rows of the one matching index.
    pub fn get_index_build_progress(
        &self,
        req: &GetIndexBuildProgressRequest,
    ) -> MilvusResult<GetIndexBuildProgressResponse> {
        Ok(self
            .index_meta
            .get_index_build_progress(self.meta.as_ref(), req)?)
    }

    /// GetIndexInfos: the index files of the requested segments, for QueryCoord's loading.
    pub fn get_index_infos(&self, req: &GetIndexInfoRequest) -> MilvusResult<GetIndexInfoResponse> {
        Ok(self
            .index_meta
            .get_index_infos(self.meta.as_ref(), req, &self.storage_root))
    }

    /// DropIndex: marks the matching indexes deleted; GC removes records and files later.
    pub async fn drop_index(&self, req: &DropIndexRequest) -> MilvusResult<()> {
        let dropped = self.index_meta.drop_index(req).await.map_err(|err| {
            warn!(collection_id = req.collection_id, index_name = %req.index_name, error = %err, "DropIndex failed");
            MilvusError::from(err)
        })?;
        info!(collection_id = req.collection_id, index_name = %req.index_name, index_ids = ?dropped, "DropIndex successfully");
        Ok(())
    }
}
