//! [`ImportService`]: the three bulk-insert RPCs RootCoord's import manager and the DataNodes
//! send (FACTS-index-compaction-gc §4).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use milvus_proto::common::{MsgBase, Status};
use milvus_proto::data::{
    AddImportSegmentRequest, AddImportSegmentResponse, ImportTaskRequest, ImportTaskResponse,
    SaveImportSegmentRequest,
};
use milvus_types::{ErrorCode, MilvusError, MilvusResult, NodeId, SegmentId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::ports::{ImportNodes, ImportSegments};
use crate::validate;

/// How long a relayed DataNode `Import` may run (2.3.5's `importTimeout`): the DataNode answers
/// only when the whole task is done.
pub const IMPORT_TIMEOUT: Duration = Duration::from_secs(3 * 60 * 60);

/// Bound on `AddImportSegment` (2.3.5 has none). The DataNode retries finding the channel's flow
/// graph and its latest position for up to about 90 s before it answers.
pub const ADD_IMPORT_SEGMENT_TIMEOUT: Duration = Duration::from_secs(120);

/// Import, SaveImportSegment and UnsetIsImportingState. Relayed imports run on the tracker it
/// is given and stop when its token is cancelled, so a shutdown leaves none behind.
pub struct ImportService {
    node_id: NodeId,
    nodes: Arc<dyn ImportNodes>,
    segments: Arc<dyn ImportSegments>,
    relays: TaskTracker,
    shutdown: CancellationToken,
    /// Segments whose SaveImportSegment is running (a retry must not append its logs twice).
    saving: Mutex<BTreeSet<SegmentId>>,
    /// On local storage, the directory import files must lie under.
    local_root: Option<String>,
}

impl ImportService {
    /// `node_id` is our ServerID (`source_id` of what we send); relays run on `relays` until
    /// `shutdown` is cancelled.
    pub fn new(
        node_id: NodeId,
        nodes: Arc<dyn ImportNodes>,
        segments: Arc<dyn ImportSegments>,
        relays: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            node_id,
            nodes,
            segments,
            relays,
            shutdown,
            saving: Mutex::new(BTreeSet::new()),
            local_root: None,
        }
    }

    /// Local storage: a DataNode opens import files as plain paths, so only files under `root`
    /// (the cluster's storage directory) are accepted. Without it (S3), files are object names
    /// of the bucket and only `..` components are refused.
    pub fn local_sources_under(mut self, root: impl Into<String>) -> Self {
        self.local_root = Some(root.into());
        self
    }

    /// Import: picks a random registered DataNode that is not in `working_nodes`, relays the
    /// task to it in the background and answers its ID at once. A malformed request is refused
    /// (`ParameterInvalid`) and never relayed; no DataNode, or none free, is `NodeLack`.
    pub fn import(&self, req: ImportTaskRequest) -> MilvusResult<ImportTaskResponse> {
        let task = validate::import_task(&req, self.local_root.as_deref())?;
        let (task_id, collection_id) = (task.task_id, task.collection_id);
        info!(task_id, collection_id, partition_id = task.partition_id, files = task.files.len(), working_nodes = ?req.working_nodes, "receive import request");
        let nodes = self.nodes.nodes();
        if nodes.is_empty() {
            warn!(task_id, collection_id, "import refused: no DataNode");
            return Err(MilvusError::new(ErrorCode::NODE_LACK).wrap("no live DataNode"));
        }
        let free: Vec<NodeId> = nodes
            .iter()
            .copied()
            .filter(|node| !req.working_nodes.contains(node))
            .collect();
        if free.is_empty() {
            info!(task_id, collection_id, nodes = ?nodes, "import refused: every DataNode is importing");
            return Err(MilvusError::new(ErrorCode::NODE_LACK).wrap("no available DataNode"));
        }
        let node = free[rand::random_range(0..free.len())];
        info!(
            task_id,
            collection_id,
            node_id = node,
            "import task relayed"
        );
        self.relay(node, task_id, collection_id, req);
        Ok(ImportTaskResponse {
            status: Some(Status::default()),
            datanode_id: node,
        })
    }

    fn relay(&self, node: NodeId, task_id: i64, collection_id: i64, req: ImportTaskRequest) {
        let nodes = self.nodes.clone();
        let shutdown = self.shutdown.clone();
        self.relays.spawn(async move {
            let call = tokio::time::timeout(IMPORT_TIMEOUT, nodes.import(node, req));
            let answer = tokio::select! {
                // The DataNode keeps running the task (it detaches it from our call).
                _ = shutdown.cancelled() => {
                    info!(task_id, collection_id, node_id = node, "import relay stopped by shutdown");
                    return;
                }
                answer = call => answer,
            };
            match answer {
                Err(_) => {
                    warn!(task_id, collection_id, node_id = node, "import on datanode timed out")
                }
                Ok(Err(err)) => {
                    warn!(task_id, collection_id, node_id = node, error = %err, "import on datanode failed")
                }
                Ok(Ok(status)) => match MilvusError::from_status(&status) {
                    Some(err) => {
                        warn!(task_id, collection_id, node_id = node, error = %err, "import on datanode failed")
                    }
                    None => info!(task_id, collection_id, node_id = node, "import on datanode done"),
                },
            }
        });
    }

    /// SaveImportSegment: the DataNode watching the segment's channel adds it to its flow graph
    /// (`AddImportSegment`), then the binlogs are saved with the channel position it answered;
    /// the segment stays Importing. A retry whose logs are already saved succeeds without a
    /// second write.
    pub async fn save_import_segment(&self, mut req: SaveImportSegmentRequest) -> MilvusResult<()> {
        validate::save_import_segment(&req)?;
        let Some(mut save) = req.save_binlog_path_req.take() else {
            return Err(MilvusError::parameter_invalid(
                "a save_binlog_path_req",
                "none",
            ));
        };
        let segment_id = req.segment_id;
        let Some(_saving) = SavingGuard::claim(&self.saving, segment_id) else {
            return Err(MilvusError::service_unavailable(&format!(
                "segment {segment_id} is being saved by an earlier request"
            )));
        };
        info!(
            collection_id = req.collection_id,
            partition_id = req.partition_id,
            segment_id,
            channel = %req.channel_name,
            rows = req.row_num,
            "receive save import segment request"
        );
        let segment = self
            .segments
            .segment(segment_id)
            .ok_or_else(|| MilvusError::segment_not_found(segment_id))?;
        validate::import_segment(&segment, &req)?;
        let node = self.nodes.channel_node(&req.channel_name).ok_or_else(|| {
            MilvusError::channel_not_found(&req.channel_name)
                .wrap("no DataNode watches this channel")
        })?;

        let add = AddImportSegmentRequest {
            base: Some(MsgBase {
                timestamp: req.base.as_ref().map(|b| b.timestamp).unwrap_or_default(),
                source_id: self.node_id,
                ..Default::default()
            }),
            segment_id,
            channel_name: req.channel_name.clone(),
            collection_id: req.collection_id,
            partition_id: req.partition_id,
            row_num: req.row_num,
            stats_log: save.field2_statslog_paths.clone(),
        };
        let added = self.add_import_segment(node, add).await?;

        if validate::already_saved(segment_id, &segment.binlogs, &save.field2_binlog_paths)? {
            info!(segment_id, node_id = node, "import segment already saved");
            return Ok(());
        }
        if added.channel_pos.is_empty() {
            warn!(segment_id, node_id = node, channel = %req.channel_name, "datanode answered no channel position");
        }
        if let Some(position) = save
            .start_positions
            .first_mut()
            .and_then(|entry| entry.start_position.as_mut())
        {
            position.msg_id = added.channel_pos;
        }
        save.importing = true;
        self.segments
            .save_binlog_paths(save)
            .await
            .map_err(|e| e.wrap("save import segment binlogs"))?;
        info!(segment_id, node_id = node, "import segment saved");
        Ok(())
    }

    async fn add_import_segment(
        &self,
        node: NodeId,
        req: AddImportSegmentRequest,
    ) -> MilvusResult<AddImportSegmentResponse> {
        let segment_id = req.segment_id;
        let answer = tokio::time::timeout(
            ADD_IMPORT_SEGMENT_TIMEOUT,
            self.nodes.add_import_segment(node, req),
        )
        .await
        .map_err(|_| MilvusError::new(ErrorCode::TIMEOUT).with_desc("AddImportSegment"))?
        .and_then(
            |resp| match resp.status.as_ref().and_then(MilvusError::from_status) {
                Some(err) => Err(err),
                None => Ok(resp),
            },
        );
        answer.map_err(|err| {
            warn!(segment_id, node_id = node, error = %err, "add import segment failed");
            err.wrap(format!("AddImportSegment on datanode {node}"))
        })
    }

    /// UnsetIsImportingState: clears `is_importing` on every segment; the error of the last one
    /// that failed is returned (the others are still cleared).
    pub async fn unset_is_importing_state(&self, segment_ids: &[SegmentId]) -> MilvusResult<()> {
        info!(segments = ?segment_ids, "unset is importing state");
        let mut last_error = None;
        for &segment_id in segment_ids {
            if let Err(err) = self.segments.unset_is_importing(segment_id).await {
                warn!(segment_id, error = %err, "unset is importing failed");
                last_error = Some(err);
            }
        }
        last_error.map_or(Ok(()), Err)
    }
}

/// Holds a segment in the `saving` set until dropped.
struct SavingGuard<'a> {
    saving: &'a Mutex<BTreeSet<SegmentId>>,
    segment_id: SegmentId,
}

impl<'a> SavingGuard<'a> {
    fn claim(saving: &'a Mutex<BTreeSet<SegmentId>>, segment_id: SegmentId) -> Option<Self> {
        let claimed = saving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(segment_id);
        claimed.then_some(Self { saving, segment_id })
    }
}

impl Drop for SavingGuard<'_> {
    fn drop(&mut self) {
        self.saving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.segment_id);
    }
}
