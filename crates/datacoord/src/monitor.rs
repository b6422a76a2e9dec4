//! [`Monitor`]: what `/metrics`, GetMetrics and CheckHealth read from the running core — meta
//! figures and the node fan-out calls.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use datacoord_index::IndexMeta;
use datacoord_meta::Meta;
use milvus_proto::milvus::{GetMetricsRequest, GetMetricsResponse};
use milvus_types::{ErrorCode, MilvusError, MilvusResult, NodeId, StateCode};

use crate::channels::Channels;
use crate::datanodes::DataNodes;
use crate::indexnodes::IndexNodeSet;
use crate::metrics::Metrics;
use crate::system_info::{BaseComponentInfos, DataCoordQuotaMetrics, NodeInfos};

/// How long a node gets to answer CheckHealth / GetMetrics fan-out calls.
const NODE_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The metrics and health glue over meta, channels and nodes.
pub(crate) struct Monitor {
    pub(crate) node_id: NodeId,
    pub(crate) meta: Arc<Meta>,
    pub(crate) index_meta: Arc<IndexMeta>,
    pub(crate) channels: Arc<dyn Channels>,
    pub(crate) datanodes: Arc<dyn DataNodes>,
    pub(crate) indexnodes: Arc<dyn IndexNodeSet>,
    pub(crate) metrics: Metrics,
}

impl Monitor {
    /// Refreshes the gauges derived from meta and the channel assignment (before a scrape).
    pub(crate) fn refresh_gauges(&self) {
        let metrics = &self.metrics;
        metrics.segment_num.reset();
        let mut collections = BTreeSet::new();
        for (collection_id, state, count) in self.meta.segment_counts() {
            collections.insert(collection_id);
            metrics
                .segment_num
                .with_label_values(&[state.as_str_name()])
                .add(count as i64);
        }
        metrics.collection_num.set(collections.len() as i64);
        metrics.watched_dml_channel_num.reset();
        for (node, channels) in self.channels.assignments() {
            if node != datacoord_cluster::BUFFER_NODE {
                metrics
                    .watched_dml_channel_num
                    .with_label_values(&[&node.to_string()])
                    .set(channels.len() as i64);
            }
        }
        let node_id = self.node_id.to_string();
        for (channel, checkpoint) in self.meta.channel_checkpoints() {
            let (physical_ms, _) = milvus_types::parse_ts(checkpoint.timestamp);
            metrics
                .channel_checkpoint_unix_seconds
                .with_label_values(&[&node_id, &channel])
                .set(physical_ms as f64 / 1000.0);
        }
        metrics.set_index_task_count(self.index_meta.all_segment_indexes());
    }

    /// What RootCoord's quota center weighs against `diskQuota` and `diskQuotaPerCollection`:
    /// the log bytes of healthy segments.
    pub(crate) fn quota_metrics(&self) -> DataCoordQuotaMetrics {
        let (total_binlog_size, collection_binlog_size) = self.meta.binlog_sizes();
        DataCoordQuotaMetrics {
            total_binlog_size,
            collection_binlog_size,
        }
    }

    /// The system-info answers of every DataNode and every IndexNode, in node order.
    pub(crate) async fn connected_nodes(&self, request: &str) -> (Vec<NodeInfos>, Vec<NodeInfos>) {
        let mut datanodes = Vec::new();
        for node_id in self.datanodes.nodes() {
            let call = self
                .datanodes
                .get_metrics(node_id, metrics_request(request));
            datanodes.push(node_infos(
                tokio::time::timeout(NODE_CALL_TIMEOUT, call).await,
            ));
        }
        let mut indexnodes = Vec::new();
        for (node_id, _) in self.indexnodes.nodes() {
            let call = self
                .indexnodes
                .get_metrics(node_id, metrics_request(request));
            indexnodes.push(node_infos(
                tokio::time::timeout(NODE_CALL_TIMEOUT, call).await,
            ));
        }
        (datanodes, indexnodes)
    }

    /// Why DataNodes are not healthy: one reason per node that does not answer Healthy.
    pub(crate) async fn unhealthy_datanodes(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        for node_id in self.datanodes.nodes() {
            if let Err(err) = self.datanode_healthy(node_id).await {
                reasons.push(err.to_string());
            }
        }
        reasons
    }

    async fn datanode_healthy(&self, node_id: NodeId) -> MilvusResult<()> {
        let call = self.datanodes.get_component_states(node_id);
        let states = tokio::time::timeout(NODE_CALL_TIMEOUT, call)
            .await
            .map_err(|_| MilvusError::new(ErrorCode::TIMEOUT))??;
        let code = states
            .state
            .map(|s| s.state_code)
            .unwrap_or(StateCode::Abnormal as i32);
        if code != StateCode::Healthy as i32 {
            let name = StateCode::try_from(code)
                .map(|c| c.as_str_name())
                .unwrap_or("Unknown");
            return Err(MilvusError::service_not_ready("DataNode", node_id, name));
        }
        Ok(())
    }
}

fn metrics_request(request: &str) -> GetMetricsRequest {
    GetMetricsRequest {
        base: None,
        request: request.to_string(),
    }
}

fn failed_node_infos(reason: String) -> NodeInfos {
    NodeInfos {
        base: BaseComponentInfos {
            has_error: true,
            error_reason: reason,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn node_infos(
    outcome: Result<MilvusResult<GetMetricsResponse>, tokio::time::error::Elapsed>,
) -> NodeInfos {
    let response = match outcome {
        Err(_) => return failed_node_infos("GetMetrics timed out".to_string()),
        Ok(Err(err)) => return failed_node_infos(err.to_string()),
        Ok(Ok(response)) => response,
    };
    if let Some(err) = response.status.as_ref().and_then(MilvusError::from_status) {
        let mut infos = failed_node_infos(err.to_string());
        infos.base.name = response.component_name;
        return infos;
    }
    match serde_json::from_str::<NodeInfos>(&response.response) {
        Ok(mut infos) => {
            infos.base.has_error = false;
            infos
        }
        Err(err) => {
            let mut infos = failed_node_infos(err.to_string());
            infos.base.name = response.component_name;
            infos
        }
    }
}
