//! Bulk insert as the server runs it: `datacoord_import::ImportService` reaches the DataNodes
//! and the channel assignment through [`ImportCluster`], and the segments through
//! [`ImportCore`] (the meta, and the data path's SaveBinlogPaths logic). The cleaner of failed
//! imports reads RootCoord's task records through [`RootCoordImportTasks`] and expires segments
//! through [`ManagedImports`].

use std::sync::Arc;

use async_trait::async_trait;
use datacoord_cluster::BUFFER_NODE;
use datacoord_import::{FailedImport, ImportNodes, ImportSegments, ImportTasks, ImportingSegments};
use datacoord_meta::Meta;
use datacoord_segments::SegmentManager;
use milvus_metastore::MetaKv;
use milvus_proto::common::{ImportState, Status};
use milvus_proto::data::{
    AddImportSegmentRequest, AddImportSegmentResponse, ImportTaskInfo, ImportTaskRequest,
    SaveBinlogPathsRequest, SegmentInfo,
};
use milvus_types::{MilvusResult, NodeId, SegmentId};
use prost::Message;
use tracing::warn;

use crate::channels::Channels;
use crate::datanodes::DataNodes;
use crate::datapath::DataPath;

/// The registered DataNodes and who watches which channel.
pub(crate) struct ImportCluster {
    pub(crate) datanodes: Arc<dyn DataNodes>,
    pub(crate) channels: Arc<dyn Channels>,
}

#[async_trait]
impl ImportNodes for ImportCluster {
    fn nodes(&self) -> Vec<NodeId> {
        self.datanodes.nodes()
    }

    fn channel_node(&self, channel: &str) -> Option<NodeId> {
        self.channels
            .assignments()
            .into_iter()
            .find(|(node, channels)| *node != BUFFER_NODE && channels.iter().any(|c| c == channel))
            .map(|(node, _)| node)
    }

    async fn import(&self, node: NodeId, req: ImportTaskRequest) -> MilvusResult<Status> {
        self.datanodes.import(node, req).await
    }

    async fn add_import_segment(
        &self,
        node: NodeId,
        req: AddImportSegmentRequest,
    ) -> MilvusResult<AddImportSegmentResponse> {
        self.datanodes.add_import_segment(node, req).await
    }
}

/// The segments: read from the meta, binlogs saved by the data path (so imported binlogs get
/// the same checks and row-count rule as every other SaveBinlogPaths).
pub(crate) struct ImportCore {
    pub(crate) meta: Arc<Meta>,
    pub(crate) data_path: Arc<DataPath>,
}

#[async_trait]
impl ImportSegments for ImportCore {
    fn segment(&self, id: SegmentId) -> Option<Arc<SegmentInfo>> {
        self.meta.segment(id)
    }

    async fn save_binlog_paths(&self, req: SaveBinlogPathsRequest) -> MilvusResult<()> {
        debug_assert!(
            req.importing,
            "import saves skip the channel check only when importing"
        );
        self.data_path.save_binlog_paths(req).await
    }

    async fn unset_is_importing(&self, id: SegmentId) -> MilvusResult<()> {
        Ok(self.meta.unset_is_importing(id).await?)
    }
}

/// RootCoord's import task records, `{metaRoot}/importtask/{taskID}` (rootCoord.importTaskSubPath),
/// in the same meta store as ours.
pub(crate) struct RootCoordImportTasks {
    /// The meta store rooted at `{metaRoot}`.
    pub(crate) kv: Arc<dyn MetaKv>,
}

const IMPORT_TASK_PREFIX: &str = "importtask/";

#[async_trait]
impl ImportTasks for RootCoordImportTasks {
    async fn failed(&self) -> MilvusResult<Vec<FailedImport>> {
        let records = self.kv.load_all_with_prefix(IMPORT_TASK_PREFIX).await?;
        let mut failed = Vec::new();
        for (key, value) in records {
            let task = match ImportTaskInfo::decode(value.as_ref()) {
                Ok(task) => task,
                Err(err) => {
                    warn!(key, error = %err, "undecodable import task record skipped");
                    continue;
                }
            };
            let state = task.state.unwrap_or_default();
            let code =
                ImportState::try_from(state.state_code).unwrap_or(ImportState::ImportPending);
            if matches!(
                code,
                ImportState::ImportFailed | ImportState::ImportFailedAndCleaned
            ) {
                failed.push(FailedImport {
                    task_id: task.id,
                    segments: state.segments,
                });
            }
        }
        Ok(failed)
    }
}

/// The segment manager's Importing segments.
pub(crate) struct ManagedImports(pub(crate) Arc<SegmentManager>);

impl ImportingSegments for ManagedImports {
    fn any(&self) -> bool {
        self.0.has_importing()
    }

    fn abandon(&self, task_id: i64, segments: &[SegmentId]) -> Vec<SegmentId> {
        self.0.abandon_import(task_id, segments)
    }
}
