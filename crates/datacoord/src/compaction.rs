//! Compaction as the server runs it: the engine of `datacoord-compaction` reaches DataNodes
//! through [`DataNodeCompaction`], hears flushed segments as a [`FlushListener`], tells GC which
//! partitions a task may still write to ([`PendingTasks`]), and answers the three compaction
//! RPCs through [`CompactionService`].

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use datacoord_cluster::ChannelManager;
use datacoord_compaction::{CompactionEngine, CompactionNodes};
use datacoord_gc::PendingCompactions;
use milvus_proto::common::{MsgBase, MsgType, Status};
use milvus_proto::data::{
    CompactionPlan, CompactionStateRequest, CompactionStateResponse, SyncSegmentsRequest,
};
use milvus_proto::milvus::{
    GetCompactionPlansResponse, GetCompactionStateResponse, ManualCompactionResponse,
};
use milvus_types::{CollectionId, MilvusError, MilvusResult, NodeId, PartitionId};

use crate::clients::{DataNodeClient, answer};
use crate::flush::{FlushListener, FlushedSegment};
use crate::nodes::NodeManager;

/// The DataNodes as compaction reaches them: the session-discovered clients, and the channel
/// manager for who watches a plan's channel.
pub(crate) struct DataNodeCompaction {
    /// Our ServerID, the `source_id` of GetCompactionState.
    pub(crate) node_id: NodeId,
    pub(crate) nodes: Arc<NodeManager<DataNodeClient>>,
    pub(crate) channels: Arc<ChannelManager>,
}

#[async_trait]
impl CompactionNodes for DataNodeCompaction {
    fn nodes(&self) -> Vec<NodeId> {
        self.nodes.node_ids()
    }

    fn channel_node(&self, channel: &str) -> Option<NodeId> {
        self.channels.node_of(channel)
    }

    async fn compaction(&self, node: NodeId, plan: CompactionPlan) -> MilvusResult<Status> {
        let mut client = self.nodes.client(node).await?;
        answer(client.compaction(plan).await)
    }

    async fn get_compaction_state(&self, node: NodeId) -> MilvusResult<CompactionStateResponse> {
        let mut client = self.nodes.client(node).await?;
        // 2.3.5 sends this message type for the poll.
        let request = CompactionStateRequest {
            base: Some(MsgBase {
                msg_type: MsgType::GetSystemConfigs as i32,
                source_id: self.node_id,
                ..Default::default()
            }),
        };
        answer(client.get_compaction_state(request).await)
    }

    async fn sync_segments(&self, node: NodeId, req: SyncSegmentsRequest) -> MilvusResult<Status> {
        let mut client = self.nodes.client(node).await?;
        answer(client.sync_segments(req).await)
    }
}

/// The flush-triggered signal: every segment that reaches Flushed is a candidate (the engine
/// queues it and drops it when its queue is full, as 2.3.5 does).
pub(crate) struct FlushSignals(pub(crate) Arc<CompactionEngine>);

impl FlushListener for FlushSignals {
    fn segment_flushed(&self, segment: &FlushedSegment) {
        self.0.on_segment_flushed(
            segment.collection_id,
            segment.partition_id,
            segment.segment_id,
            &segment.channel,
        );
    }
}

/// GC's view of the persisted, unfinished compaction tasks.
pub(crate) struct PendingTasks(pub(crate) Arc<CompactionEngine>);

impl PendingCompactions for PendingTasks {
    fn unfinished_partitions(&self) -> BTreeSet<(CollectionId, PartitionId)> {
        self.0.unfinished_partitions()
    }
}

/// ManualCompaction, GetCompactionState and GetCompactionStateWithPlans over the engine.
pub struct CompactionService {
    pub(crate) engine: Arc<CompactionEngine>,
}

impl CompactionService {
    /// ManualCompaction: plans the collection now; `compactionPlanCount` stays 0 as in 2.3.5.
    /// A collection ID ≤ 0 is refused (PARAMETER_INVALID; 2.3.5 compacts every collection for 0).
    pub async fn manual_compaction(
        &self,
        collection_id: CollectionId,
    ) -> MilvusResult<ManualCompactionResponse> {
        // The engine reads 0 as "every collection" (as 2.3.5 does); a proxy always names one,
        // so a request without a real ID must not compact the whole cluster.
        if collection_id <= 0 {
            return Err(MilvusError::parameter_invalid(
                "a collection ID > 0",
                collection_id,
            ));
        }
        let compaction_id = self.engine.manual_compaction(collection_id).await?;
        Ok(ManualCompactionResponse {
            status: Some(Status::default()),
            compaction_id,
            compaction_plan_count: 0,
        })
    }

    /// GetCompactionState.
    pub fn compaction_state(&self, compaction_id: i64) -> MilvusResult<GetCompactionStateResponse> {
        self.engine.compaction_state(compaction_id)
    }

    /// GetCompactionStateWithPlans.
    pub fn compaction_state_with_plans(
        &self,
        compaction_id: i64,
    ) -> MilvusResult<GetCompactionPlansResponse> {
        self.engine.compaction_state_with_plans(compaction_id)
    }
}
