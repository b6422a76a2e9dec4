//! Test doubles (feature `testing`): [`FakeImportNodes`], DataNodes that record what they are
//! sent, and [`FakeImportSegments`], segments in memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use milvus_proto::common::{SegmentState, Status};
use milvus_proto::data::{
    AddImportSegmentRequest, AddImportSegmentResponse, ImportTaskRequest, SaveBinlogPathsRequest,
    SegmentInfo,
};
use milvus_types::{ErrorCode, MilvusError, MilvusResult, NodeId, SegmentId};

use crate::ports::{ImportNodes, ImportSegments};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Default)]
struct Nodes {
    nodes: Vec<NodeId>,
    channels: BTreeMap<String, NodeId>,
    imports: Vec<(NodeId, ImportTaskRequest)>,
    finished_imports: usize,
    add_segments: Vec<(NodeId, AddImportSegmentRequest)>,
    hang_imports: bool,
    fail_add_segments: usize,
    channel_pos: Vec<u8>,
}

/// DataNodes in memory. `Import` answers success at once (or never, see
/// [`FakeImportNodes::hang_imports`]); `AddImportSegment` answers the position set by
/// [`FakeImportNodes::set_channel_pos`]. An unregistered node answers `NODE_NOT_FOUND`.
#[derive(Debug, Default)]
pub struct FakeImportNodes {
    state: Mutex<Nodes>,
}

impl FakeImportNodes {
    /// No nodes, no channels.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a DataNode.
    pub fn add_node(&self, node: NodeId) {
        lock(&self.state).nodes.push(node);
    }

    /// `node` watches `channel`.
    pub fn watch(&self, channel: &str, node: NodeId) {
        lock(&self.state).channels.insert(channel.to_string(), node);
    }

    /// Relayed `Import` calls never answer.
    pub fn hang_imports(&self) {
        lock(&self.state).hang_imports = true;
    }

    /// The next `count` `AddImportSegment` calls answer a failure status.
    pub fn fail_next_add_segments(&self, count: usize) {
        lock(&self.state).fail_add_segments = count;
    }

    /// The position `AddImportSegment` answers.
    pub fn set_channel_pos(&self, pos: &[u8]) {
        lock(&self.state).channel_pos = pos.to_vec();
    }

    /// Every `Import` call received, in order.
    pub fn imports(&self) -> Vec<(NodeId, ImportTaskRequest)> {
        lock(&self.state).imports.clone()
    }

    /// How many `Import` calls answered.
    pub fn finished_imports(&self) -> usize {
        lock(&self.state).finished_imports
    }

    /// Every `AddImportSegment` call received, in order.
    pub fn add_segments(&self) -> Vec<(NodeId, AddImportSegmentRequest)> {
        lock(&self.state).add_segments.clone()
    }
}

#[async_trait]
impl ImportNodes for FakeImportNodes {
    fn nodes(&self) -> Vec<NodeId> {
        lock(&self.state).nodes.clone()
    }

    fn channel_node(&self, channel: &str) -> Option<NodeId> {
        lock(&self.state).channels.get(channel).copied()
    }

    async fn import(&self, node: NodeId, req: ImportTaskRequest) -> MilvusResult<Status> {
        let hang = {
            let mut state = lock(&self.state);
            if !state.nodes.contains(&node) {
                return Err(MilvusError::new(ErrorCode::NODE_NOT_FOUND).with_field("node", node));
            }
            state.imports.push((node, req));
            state.hang_imports
        };
        if hang {
            std::future::pending::<()>().await;
        }
        lock(&self.state).finished_imports += 1;
        Ok(Status::default())
    }

    async fn add_import_segment(
        &self,
        node: NodeId,
        req: AddImportSegmentRequest,
    ) -> MilvusResult<AddImportSegmentResponse> {
        let mut state = lock(&self.state);
        if !state.nodes.contains(&node) {
            return Err(MilvusError::new(ErrorCode::NODE_NOT_FOUND).with_field("node", node));
        }
        state.add_segments.push((node, req));
        if state.fail_add_segments > 0 {
            state.fail_add_segments -= 1;
            return Ok(AddImportSegmentResponse {
                status: Some(
                    MilvusError::unexpected("channel not found in current DataNode").to_status(),
                ),
                channel_pos: Vec::new(),
            });
        }
        Ok(AddImportSegmentResponse {
            status: Some(Status::default()),
            channel_pos: state.channel_pos.clone(),
        })
    }
}

/// Segments in memory. `save_binlog_paths` appends the insert and stats logs as given and
/// records the request; `unset_is_importing` clears the flag of a known segment.
#[derive(Debug, Default)]
pub struct FakeImportSegments {
    segments: Mutex<BTreeMap<SegmentId, SegmentInfo>>,
    saves: Mutex<Vec<SaveBinlogPathsRequest>>,
}

impl FakeImportSegments {
    /// No segments.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores an Importing segment as AssignSegmentID(isImport) opens it.
    pub fn add_importing(
        &self,
        id: SegmentId,
        collection_id: i64,
        partition_id: i64,
        channel: &str,
    ) {
        self.insert(SegmentInfo {
            id,
            collection_id,
            partition_id,
            insert_channel: channel.to_string(),
            state: SegmentState::Importing as i32,
            is_importing: true,
            ..Default::default()
        });
    }

    /// Stores (or replaces) a segment.
    pub fn insert(&self, seg: SegmentInfo) {
        lock(&self.segments).insert(seg.id, seg);
    }

    /// Every SaveBinlogPaths request that was applied, in order.
    pub fn saves(&self) -> Vec<SaveBinlogPathsRequest> {
        lock(&self.saves).clone()
    }
}

#[async_trait]
impl ImportSegments for FakeImportSegments {
    fn segment(&self, id: SegmentId) -> Option<Arc<SegmentInfo>> {
        lock(&self.segments).get(&id).cloned().map(Arc::new)
    }

    async fn save_binlog_paths(&self, req: SaveBinlogPathsRequest) -> MilvusResult<()> {
        let mut segments = lock(&self.segments);
        let seg = segments
            .get_mut(&req.segment_id)
            .ok_or_else(|| MilvusError::segment_not_found(req.segment_id))?;
        seg.binlogs.extend(req.field2_binlog_paths.iter().cloned());
        seg.statslogs
            .extend(req.field2_statslog_paths.iter().cloned());
        lock(&self.saves).push(req);
        Ok(())
    }

    async fn unset_is_importing(&self, id: SegmentId) -> MilvusResult<()> {
        let mut segments = lock(&self.segments);
        let seg = segments
            .get_mut(&id)
            .ok_or_else(|| MilvusError::segment_not_found(id))?;
        seg.is_importing = false;
        Ok(())
    }
}
