//! The calls DataCoord makes to datanodes on the data path.

use std::time::Duration;

use milvus_proto::common::{MsgBase, MsgType};
use milvus_proto::data::{FlushChannelsRequest, FlushSegmentsRequest};
use milvus_types::{CollectionId, ErrorCode, MilvusError, MilvusResult, NodeId, SegmentId};
use tracing::{info, warn};

use crate::clients::DataNodeClient;
use crate::nodes::NodeManager;

/// 2.3.5's `flushTimeout` for FlushSegments.
const FLUSH_SEGMENTS_TIMEOUT: Duration = Duration::from_secs(15);
/// FlushChannels has no timeout of its own in 2.3.5 beyond the caller's; bound it anyway.
const FLUSH_CHANNELS_TIMEOUT: Duration = Duration::from_secs(15);

fn base(msg_type: MsgType, source: NodeId, target: NodeId) -> Option<MsgBase> {
    Some(MsgBase {
        msg_type: msg_type as i32,
        source_id: source,
        target_id: target,
        ..Default::default()
    })
}

fn status_result(status: Option<milvus_proto::common::Status>, what: &str) -> MilvusResult<()> {
    match status.as_ref().and_then(MilvusError::from_status) {
        Some(err) => Err(err.wrap(what.to_string())),
        None => Ok(()),
    }
}

pub(crate) fn transport_error(err: tonic::Status) -> MilvusError {
    if err.code() == tonic::Code::Unimplemented {
        return MilvusError::new(ErrorCode::SERVICE_UNIMPLEMENTED).with_desc(err.message());
    }
    MilvusError::service_unavailable(&err.to_string())
}

async fn client(nodes: &NodeManager<DataNodeClient>, node: NodeId) -> MilvusResult<DataNodeClient> {
    nodes.client(node).await
}

/// Asks a datanode to flush sealed segments of one channel (errors are the caller's to log).
pub(crate) async fn flush_segments(
    nodes: &NodeManager<DataNodeClient>,
    datacoord_id: NodeId,
    node: NodeId,
    collection_id: CollectionId,
    channel: &str,
    segment_ids: Vec<SegmentId>,
) -> MilvusResult<()> {
    let mut client = client(nodes, node).await?;
    let request = FlushSegmentsRequest {
        base: base(MsgType::Flush, datacoord_id, node),
        db_id: 0,
        collection_id,
        segment_i_ds: segment_ids.clone(),
        channel_name: channel.to_string(),
    };
    let response = tokio::time::timeout(FLUSH_SEGMENTS_TIMEOUT, client.flush_segments(request))
        .await
        .map_err(|_| MilvusError::new(ErrorCode::TIMEOUT).with_desc("FlushSegments"))?
        .map_err(transport_error)?;
    status_result(Some(response.into_inner()), "FlushSegments")?;
    info!(node_id = node, collection_id, channel, segments = ?segment_ids, "flush segments sent");
    Ok(())
}

/// Asks a datanode to flush everything of `channels` up to `flush_ts`.
pub(crate) async fn flush_channels(
    nodes: &NodeManager<DataNodeClient>,
    datacoord_id: NodeId,
    node: NodeId,
    flush_ts: u64,
    channels: Vec<String>,
) -> MilvusResult<()> {
    let mut client = client(nodes, node).await?;
    let request = FlushChannelsRequest {
        base: base(MsgType::Flush, datacoord_id, node),
        flush_ts,
        channels,
    };
    let response = tokio::time::timeout(FLUSH_CHANNELS_TIMEOUT, client.flush_channels(request))
        .await
        .map_err(|_| MilvusError::new(ErrorCode::TIMEOUT).with_desc("FlushChannels"))?
        .map_err(transport_error)?;
    let result = status_result(Some(response.into_inner()), "FlushChannels");
    if let Err(err) = &result {
        warn!(node_id = node, error = %err, "flush channels failed");
    }
    result
}
