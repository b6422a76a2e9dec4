//! The DataNodes as the core calls them ([`DataNodes`]), implemented over the session-discovered
//! clients; and the FlushSegments / FlushChannels requests the data path sends through it.
//! Import and AddImportSegment are bounded by `datacoord-import`, which sends them.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use milvus_proto::common::{MsgBase, MsgType, Status};
use milvus_proto::data::{
    AddImportSegmentRequest, AddImportSegmentResponse, FlushChannelsRequest, FlushSegmentsRequest,
    ImportTaskRequest,
};
use milvus_proto::milvus::{
    ComponentStates, GetComponentStatesRequest, GetMetricsRequest, GetMetricsResponse,
};
use milvus_types::{CollectionId, ErrorCode, MilvusError, MilvusResult, NodeId, SegmentId};
use tracing::{info, warn};

use crate::clients::{DataNodeClient, answer};
use crate::nodes::NodeManager;

/// 2.3.5's `flushTimeout` for FlushSegments.
const FLUSH_SEGMENTS_TIMEOUT: Duration = Duration::from_secs(15);
/// FlushChannels has no timeout of its own in 2.3.5 beyond the caller's; bound it anyway.
const FLUSH_CHANNELS_TIMEOUT: Duration = Duration::from_secs(15);

/// The registered DataNodes and the RPCs the core sends them. Answers come back as the node
/// sent them (a failure status is not an `Err`); the caller bounds each call. A node that is not
/// registered answers `NODE_NOT_FOUND`, an unreachable one `SERVICE_UNAVAILABLE`, and a node
/// without the method `SERVICE_UNIMPLEMENTED`.
#[async_trait]
pub trait DataNodes: Send + Sync {
    /// ServerIDs of the registered DataNodes, ascending.
    fn nodes(&self) -> Vec<NodeId>;
    /// `FlushSegments`.
    async fn flush_segments(&self, node: NodeId, req: FlushSegmentsRequest)
    -> MilvusResult<Status>;
    /// `FlushChannels`.
    async fn flush_channels(&self, node: NodeId, req: FlushChannelsRequest)
    -> MilvusResult<Status>;
    /// `GetMetrics`.
    async fn get_metrics(
        &self,
        node: NodeId,
        req: GetMetricsRequest,
    ) -> MilvusResult<GetMetricsResponse>;
    /// `GetComponentStates`.
    async fn get_component_states(&self, node: NodeId) -> MilvusResult<ComponentStates>;
    /// `Import`: the node runs a whole bulk-insert task before it answers.
    async fn import(&self, node: NodeId, req: ImportTaskRequest) -> MilvusResult<Status>;
    /// `AddImportSegment`.
    async fn add_import_segment(
        &self,
        node: NodeId,
        req: AddImportSegmentRequest,
    ) -> MilvusResult<AddImportSegmentResponse>;
}

#[async_trait]
impl DataNodes for NodeManager<DataNodeClient> {
    fn nodes(&self) -> Vec<NodeId> {
        self.node_ids()
    }

    async fn flush_segments(
        &self,
        node: NodeId,
        req: FlushSegmentsRequest,
    ) -> MilvusResult<Status> {
        let mut client = self.client(node).await?;
        answer(client.flush_segments(req).await)
    }

    async fn flush_channels(
        &self,
        node: NodeId,
        req: FlushChannelsRequest,
    ) -> MilvusResult<Status> {
        let mut client = self.client(node).await?;
        answer(client.flush_channels(req).await)
    }

    async fn get_metrics(
        &self,
        node: NodeId,
        req: GetMetricsRequest,
    ) -> MilvusResult<GetMetricsResponse> {
        let mut client = self.client(node).await?;
        answer(client.get_metrics(req).await)
    }

    async fn get_component_states(&self, node: NodeId) -> MilvusResult<ComponentStates> {
        let mut client = self.client(node).await?;
        answer(
            client
                .get_component_states(GetComponentStatesRequest {})
                .await,
        )
    }

    async fn import(&self, node: NodeId, req: ImportTaskRequest) -> MilvusResult<Status> {
        let mut client = self.client(node).await?;
        answer(client.import(req).await)
    }

    async fn add_import_segment(
        &self,
        node: NodeId,
        req: AddImportSegmentRequest,
    ) -> MilvusResult<AddImportSegmentResponse> {
        let mut client = self.client(node).await?;
        answer(client.add_import_segment(req).await)
    }
}

fn base(msg_type: MsgType, source: NodeId, target: NodeId) -> Option<MsgBase> {
    Some(MsgBase {
        msg_type: msg_type as i32,
        source_id: source,
        target_id: target,
        ..Default::default()
    })
}

/// Runs a call that answers a bare status under `timeout`; a failure status becomes the error.
async fn bounded(
    what: &'static str,
    timeout: Duration,
    call: impl Future<Output = MilvusResult<Status>>,
) -> MilvusResult<()> {
    let status = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| MilvusError::new(ErrorCode::TIMEOUT).with_desc(what))??;
    match MilvusError::from_status(&status) {
        Some(err) => Err(err.wrap(what)),
        None => Ok(()),
    }
}

/// Asks a datanode to flush sealed segments of one channel (errors are the caller's to log).
pub(crate) async fn flush_segments(
    nodes: &dyn DataNodes,
    datacoord_id: NodeId,
    node: NodeId,
    collection_id: CollectionId,
    channel: &str,
    segment_ids: Vec<SegmentId>,
) -> MilvusResult<()> {
    let request = FlushSegmentsRequest {
        base: base(MsgType::Flush, datacoord_id, node),
        db_id: 0,
        collection_id,
        segment_i_ds: segment_ids.clone(),
        channel_name: channel.to_string(),
    };
    bounded(
        "FlushSegments",
        FLUSH_SEGMENTS_TIMEOUT,
        nodes.flush_segments(node, request),
    )
    .await?;
    info!(node_id = node, collection_id, channel, segments = ?segment_ids, "flush segments sent");
    Ok(())
}

/// Asks a datanode to flush everything of `channels` up to `flush_ts`.
pub(crate) async fn flush_channels(
    nodes: &dyn DataNodes,
    datacoord_id: NodeId,
    node: NodeId,
    flush_ts: u64,
    channels: Vec<String>,
) -> MilvusResult<()> {
    let request = FlushChannelsRequest {
        base: base(MsgType::Flush, datacoord_id, node),
        flush_ts,
        channels,
    };
    let result = bounded(
        "FlushChannels",
        FLUSH_CHANNELS_TIMEOUT,
        nodes.flush_channels(node, request),
    )
    .await;
    if let Err(err) = &result {
        warn!(node_id = node, error = %err, "flush channels failed");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeDataNodes;

    #[tokio::test]
    async fn flush_segments_sends_the_segments_of_one_channel() {
        let nodes = FakeDataNodes::new();
        nodes.add_node(7);
        flush_segments(&nodes, 1, 7, 100, "ch_0", vec![11, 12])
            .await
            .unwrap();
        let sent = nodes.flush_segments_calls();
        assert_eq!(sent.len(), 1);
        let (node, request) = &sent[0];
        assert_eq!(*node, 7);
        assert_eq!(request.collection_id, 100);
        assert_eq!(request.channel_name, "ch_0");
        assert_eq!(request.segment_i_ds, vec![11, 12]);
        let base = request.base.as_ref().unwrap();
        assert_eq!(
            (base.msg_type, base.source_id, base.target_id),
            (MsgType::Flush as i32, 1, 7)
        );
    }

    #[tokio::test]
    async fn a_failure_status_or_an_unknown_node_is_an_error() {
        let nodes = FakeDataNodes::new();
        nodes.add_node(7);
        nodes.fail_next_flush_channels(7, 1);
        let err = flush_channels(&nodes, 1, 7, 5, vec!["ch_0".into()])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("FlushChannels"), "{err}");
        flush_channels(&nodes, 1, 7, 5, vec!["ch_0".into()])
            .await
            .unwrap();
        let err = flush_segments(&nodes, 1, 8, 100, "ch_0", vec![11])
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::NODE_NOT_FOUND);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_node_times_out() {
        let nodes = FakeDataNodes::new();
        nodes.add_node(7);
        nodes.set_hung(7, true);
        let err = flush_segments(&nodes, 1, 7, 100, "ch_0", vec![11])
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::TIMEOUT);
    }
}
