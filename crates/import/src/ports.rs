//! What bulk insert needs from the rest of DataCoord: the DataNodes it relays to
//! ([`ImportNodes`]) and the segment side of the core ([`ImportSegments`]).

use std::sync::Arc;

use async_trait::async_trait;
use milvus_proto::common::Status;
use milvus_proto::data::{
    AddImportSegmentRequest, AddImportSegmentResponse, ImportTaskRequest, SaveBinlogPathsRequest,
    SegmentInfo,
};
use milvus_types::{MilvusResult, NodeId, SegmentId};

/// The registered DataNodes and the channel assignment, as import reaches them. Answers come
/// back as the node sent them (a failure status is not an `Err`); transport failures and unknown
/// nodes are `Err`. The caller bounds each call.
#[async_trait]
pub trait ImportNodes: Send + Sync {
    /// ServerIDs of the registered DataNodes.
    fn nodes(&self) -> Vec<NodeId>;
    /// The DataNode that watches the DML vchannel `channel`, if any (the buffer is no node).
    fn channel_node(&self, channel: &str) -> Option<NodeId>;
    /// DataNode `Import`: runs the whole import task before it answers.
    async fn import(&self, node: NodeId, req: ImportTaskRequest) -> MilvusResult<Status>;
    /// DataNode `AddImportSegment`: the node adds the segment to its channel's flow graph and
    /// answers the channel's latest position.
    async fn add_import_segment(
        &self,
        node: NodeId,
        req: AddImportSegmentRequest,
    ) -> MilvusResult<AddImportSegmentResponse>;
}

/// The segment side of the core.
#[async_trait]
pub trait ImportSegments: Send + Sync {
    /// The segment in any state, or `None` if unknown.
    fn segment(&self, id: SegmentId) -> Option<Arc<SegmentInfo>>;
    /// The core's SaveBinlogPaths logic (FACTS-data-path E.12) for a request with `importing`
    /// set: no channel/node match, row count from the segment manager or the insert logs.
    async fn save_binlog_paths(&self, req: SaveBinlogPathsRequest) -> MilvusResult<()>;
    /// Clears `is_importing` (persisted for a healthy segment); unknown → `SegmentNotFound`.
    async fn unset_is_importing(&self, id: SegmentId) -> MilvusResult<()>;
}
