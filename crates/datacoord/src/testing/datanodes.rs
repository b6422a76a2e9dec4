//! [`FakeDataNodes`]: in-memory DataNodes that record every call and fail, hang or lack
//! FlushChannels on demand; Import answers at once (or is held), AddImportSegment answers a
//! channel position.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use milvus_proto::common::Status;
use milvus_proto::data::{
    AddImportSegmentRequest, AddImportSegmentResponse, FlushChannelsRequest, FlushSegmentsRequest,
    ImportTaskRequest,
};
use milvus_proto::milvus::{ComponentInfo, ComponentStates, GetMetricsRequest, GetMetricsResponse};
use milvus_types::{ErrorCode, MilvusError, MilvusResult, NodeId, StateCode};

use crate::datanodes::DataNodes;

#[derive(Debug)]
struct FakeNode {
    state: StateCode,
    hung: bool,
    /// An older DataNode: FlushChannels answers gRPC UNIMPLEMENTED.
    no_flush_channels: bool,
    fail_flush_segments: usize,
    fail_flush_channels: usize,
    fail_add_import_segment: usize,
    metrics: String,
}

impl Default for FakeNode {
    fn default() -> Self {
        Self {
            state: StateCode::Healthy,
            hung: false,
            no_flush_channels: false,
            fail_flush_segments: 0,
            fail_flush_channels: 0,
            fail_add_import_segment: 0,
            metrics: String::new(),
        }
    }
}

#[derive(Debug, Default)]
struct Cluster {
    nodes: BTreeMap<NodeId, FakeNode>,
    flush_segments: Vec<(NodeId, FlushSegmentsRequest)>,
    flush_channels: Vec<(NodeId, FlushChannelsRequest)>,
    imports: Vec<(NodeId, ImportTaskRequest)>,
    add_import_segments: Vec<(NodeId, AddImportSegmentRequest)>,
    /// Import calls wait until this is set back to `false` (or the caller gives up).
    hold_imports: bool,
    channel_pos: Vec<u8>,
}

/// In-memory DataNodes. A registered node accepts every call and answers success unless told
/// otherwise; an unknown node answers `NODE_NOT_FOUND`; a hung node never answers.
#[derive(Debug, Default)]
pub struct FakeDataNodes {
    cluster: Mutex<Cluster>,
    /// Wakes held Import calls.
    imports_released: tokio::sync::Notify,
}

fn injected() -> Status {
    MilvusError::unexpected("injected DataNode failure").to_status()
}

fn not_registered(node: NodeId) -> MilvusError {
    MilvusError::new(ErrorCode::NODE_NOT_FOUND).with_field("node", node)
}

fn take_failure(counter: &mut usize) -> bool {
    if *counter == 0 {
        return false;
    }
    *counter -= 1;
    true
}

impl FakeDataNodes {
    /// No nodes.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_node<T>(&self, node: NodeId, change: impl FnOnce(&mut FakeNode) -> T) -> T {
        let mut cluster = self.lock();
        let held = cluster
            .nodes
            .get_mut(&node)
            .unwrap_or_else(|| panic!("fake DataNode {node} is not registered"));
        change(held)
    }

    /// Registers a healthy node.
    pub fn add_node(&self, node: NodeId) {
        self.lock().nodes.insert(node, FakeNode::default());
    }

    /// Unregisters a node.
    pub fn remove_node(&self, node: NodeId) {
        self.lock().nodes.remove(&node);
    }

    /// The state the node reports in GetComponentStates.
    pub fn set_state(&self, node: NodeId, state: StateCode) {
        self.with_node(node, |held| held.state = state);
    }

    /// A hung node accepts calls and never answers.
    pub fn set_hung(&self, node: NodeId, hung: bool) {
        self.with_node(node, |held| held.hung = hung);
    }

    /// Makes the node an older DataNode whose FlushChannels answers gRPC UNIMPLEMENTED.
    pub fn set_flush_channels_unimplemented(&self, node: NodeId) {
        self.with_node(node, |held| held.no_flush_channels = true);
    }

    /// The next `count` FlushSegments calls to `node` answer a failure status.
    pub fn fail_next_flush_segments(&self, node: NodeId, count: usize) {
        self.with_node(node, |held| held.fail_flush_segments = count);
    }

    /// The next `count` FlushChannels calls to `node` answer a failure status.
    pub fn fail_next_flush_channels(&self, node: NodeId, count: usize) {
        self.with_node(node, |held| held.fail_flush_channels = count);
    }

    /// The JSON the node answers GetMetrics with.
    pub fn set_metrics(&self, node: NodeId, json: &str) {
        self.with_node(node, |held| held.metrics = json.to_string());
    }

    /// The next `count` AddImportSegment calls to `node` answer a failure status.
    pub fn fail_next_add_import_segment(&self, node: NodeId, count: usize) {
        self.with_node(node, |held| held.fail_add_import_segment = count);
    }

    /// Import calls (to any node) do not answer while `hold` is set.
    pub fn hold_imports(&self, hold: bool) {
        self.lock().hold_imports = hold;
        if !hold {
            self.imports_released.notify_waiters();
        }
    }

    /// The channel position AddImportSegment answers.
    pub fn set_channel_pos(&self, pos: &[u8]) {
        self.lock().channel_pos = pos.to_vec();
    }

    /// Every Import call that reached a registered node, in order.
    pub fn import_calls(&self) -> Vec<(NodeId, ImportTaskRequest)> {
        self.lock().imports.clone()
    }

    /// Every AddImportSegment call that reached a registered node, in order (failed ones too).
    pub fn add_import_segment_calls(&self) -> Vec<(NodeId, AddImportSegmentRequest)> {
        self.lock().add_import_segments.clone()
    }

    /// Every FlushSegments call that reached a registered node, in order (failed ones too).
    pub fn flush_segments_calls(&self) -> Vec<(NodeId, FlushSegmentsRequest)> {
        self.lock().flush_segments.clone()
    }

    /// Every FlushChannels call that reached a registered node, in order (failed ones too).
    pub fn flush_channels_calls(&self) -> Vec<(NodeId, FlushChannelsRequest)> {
        self.lock().flush_channels.clone()
    }

    /// Waits forever if `node` is hung; errors if it is not registered.
    async fn reach(&self, node: NodeId) -> MilvusResult<()> {
        let hung = {
            let cluster = self.lock();
            cluster
                .nodes
                .get(&node)
                .ok_or_else(|| not_registered(node))?
                .hung
        };
        if hung {
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

#[async_trait]
impl DataNodes for FakeDataNodes {
    fn nodes(&self) -> Vec<NodeId> {
        self.lock().nodes.keys().copied().collect()
    }

    async fn flush_segments(
        &self,
        node: NodeId,
        req: FlushSegmentsRequest,
    ) -> MilvusResult<Status> {
        self.reach(node).await?;
        let mut cluster = self.lock();
        cluster.flush_segments.push((node, req));
        let held = cluster
            .nodes
            .get_mut(&node)
            .ok_or_else(|| not_registered(node))?;
        if take_failure(&mut held.fail_flush_segments) {
            return Ok(injected());
        }
        Ok(Status::default())
    }

    async fn flush_channels(
        &self,
        node: NodeId,
        req: FlushChannelsRequest,
    ) -> MilvusResult<Status> {
        self.reach(node).await?;
        let mut cluster = self.lock();
        cluster.flush_channels.push((node, req));
        let held = cluster
            .nodes
            .get_mut(&node)
            .ok_or_else(|| not_registered(node))?;
        if held.no_flush_channels {
            return Err(MilvusError::new(ErrorCode::SERVICE_UNIMPLEMENTED));
        }
        if take_failure(&mut held.fail_flush_channels) {
            return Ok(injected());
        }
        Ok(Status::default())
    }

    async fn get_metrics(
        &self,
        node: NodeId,
        _req: GetMetricsRequest,
    ) -> MilvusResult<GetMetricsResponse> {
        self.reach(node).await?;
        let cluster = self.lock();
        let held = cluster
            .nodes
            .get(&node)
            .ok_or_else(|| not_registered(node))?;
        Ok(GetMetricsResponse {
            status: Some(Status::default()),
            response: held.metrics.clone(),
            component_name: format!("datanode{node}"),
        })
    }

    async fn import(&self, node: NodeId, req: ImportTaskRequest) -> MilvusResult<Status> {
        self.reach(node).await?;
        self.lock().imports.push((node, req));
        loop {
            let released = self.imports_released.notified();
            if !self.lock().hold_imports {
                break;
            }
            released.await;
        }
        Ok(Status::default())
    }

    async fn add_import_segment(
        &self,
        node: NodeId,
        req: AddImportSegmentRequest,
    ) -> MilvusResult<AddImportSegmentResponse> {
        self.reach(node).await?;
        let mut cluster = self.lock();
        cluster.add_import_segments.push((node, req));
        let channel_pos = cluster.channel_pos.clone();
        let held = cluster
            .nodes
            .get_mut(&node)
            .ok_or_else(|| not_registered(node))?;
        if take_failure(&mut held.fail_add_import_segment) {
            return Ok(AddImportSegmentResponse {
                status: Some(injected()),
                channel_pos: Vec::new(),
            });
        }
        Ok(AddImportSegmentResponse {
            status: Some(Status::default()),
            channel_pos,
        })
    }

    async fn get_component_states(&self, node: NodeId) -> MilvusResult<ComponentStates> {
        self.reach(node).await?;
        let cluster = self.lock();
        let held = cluster
            .nodes
            .get(&node)
            .ok_or_else(|| not_registered(node))?;
        Ok(ComponentStates {
            state: Some(ComponentInfo {
                node_id: node,
                role: "datanode".to_string(),
                state_code: held.state as i32,
                extra_info: Vec::new(),
            }),
            subcomponent_states: Vec::new(),
            status: Some(Status::default()),
        })
    }
}
