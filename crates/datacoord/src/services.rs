//! The RPCs this port answers today, as core methods the gRPC adapters call.

use std::sync::Arc;
use std::time::Duration;

use milvus_proto::common::KeyValuePair;
use milvus_proto::milvus::{GetComponentStatesRequest, GetMetricsRequest};
use milvus_types::{ErrorCode, MilvusError, MilvusResult, StateCode};
use tracing::warn;

use crate::server::{ROLE, Server};
use crate::system_info::{
    BaseComponentInfos, ConnTopology, DataClusterTopology, DataCoordConfiguration, DataCoordInfos,
    DataCoordQuotaMetrics, DataCoordTopology, DeployMetrics, NodeInfos, SYSTEM_INFO_METRICS,
    component_name, parse_metric_type,
};

/// How long a node gets to answer CheckHealth / GetMetrics fan-out calls.
const NODE_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A GetMetrics answer: the component name is set even on some failures, as in 2.3.5.
pub struct MetricsAnswer {
    /// The JSON topology, or why there is none.
    pub result: MilvusResult<String>,
    /// `datacoord<id>`, or empty.
    pub component_name: String,
}

impl Server {
    /// `GetTimeTickChannel`: the datanode time-tick channel name (always answers).
    pub fn time_tick_channel(&self) -> String {
        self.config().common.channels.datacoord_timetick.clone()
    }

    /// `GetStatisticsChannel`: a legacy API that 2.3.5 always fails with ChannelNotFound.
    pub fn statistics_channel(&self) -> MilvusResult<String> {
        Err(MilvusError::channel_not_found("no statistics channel"))
    }

    /// `GetSegmentInfoChannel`: the segment-info channel name (always answers).
    pub fn segment_info_channel(&self) -> String {
        self.config().common.channels.datacoord_segment_info.clone()
    }

    /// `ShowConfigurations`: the `datacoord.*` and global keys containing `pattern`.
    pub fn show_configurations(&self, pattern: &str) -> MilvusResult<Vec<KeyValuePair>> {
        self.check_healthy()?;
        Ok(self
            .loaded_config()
            .map
            .component_entries(ROLE, pattern)
            .into_iter()
            .map(|(key, value)| KeyValuePair { key, value })
            .collect())
    }

    /// `GetMetrics`: only `system_info` exists; answered when Healthy or StandBy.
    pub async fn get_metrics(self: &Arc<Self>, request: &str) -> MetricsAnswer {
        let code = self.state_code();
        if !matches!(code, StateCode::Healthy | StateCode::StandBy) {
            let err = MilvusError::service_not_ready(ROLE, self.server_id(), code.as_str_name());
            return MetricsAnswer {
                result: Err(err),
                component_name: String::new(),
            };
        }
        let name = component_name(ROLE, self.server_id());
        let metric_type = match parse_metric_type(request) {
            Ok(metric_type) => metric_type,
            Err(reason) => {
                warn!(request, %reason, "GetMetrics: bad request");
                return MetricsAnswer {
                    result: Err(MilvusError::unexpected(reason)),
                    component_name: name,
                };
            }
        };
        if metric_type != SYSTEM_INFO_METRICS {
            return MetricsAnswer {
                result: Err(MilvusError::metric_not_found(&metric_type)),
                component_name: name,
            };
        }
        let topology = self.system_info(request).await;
        let result = serde_json::to_string(&topology).map_err(MilvusError::unexpected);
        MetricsAnswer {
            result,
            component_name: name,
        }
    }

    async fn system_info(self: &Arc<Self>, request: &str) -> DataCoordTopology {
        let name = component_name(ROLE, self.server_id());
        let mut cluster = DataClusterTopology {
            self_infos: self.self_infos(&name),
            connected_data_nodes: Vec::new(),
            connected_index_nodes: Vec::new(),
        };
        if let Some(active) = self.active.get() {
            for node_id in active.datanodes.node_ids() {
                let infos = match active.datanodes.client(node_id).await {
                    Ok(mut client) => {
                        let call = client.get_metrics(metrics_request(request));
                        node_infos(tokio::time::timeout(NODE_CALL_TIMEOUT, call).await)
                    }
                    Err(err) => failed_node_infos(err.to_string()),
                };
                cluster.connected_data_nodes.push(infos);
            }
            for node_id in active.indexnodes.node_ids() {
                let infos = match active.indexnodes.client(node_id).await {
                    Ok(mut client) => {
                        let call = client.get_metrics(metrics_request(request));
                        node_infos(tokio::time::timeout(NODE_CALL_TIMEOUT, call).await)
                    }
                    Err(err) => failed_node_infos(err.to_string()),
                };
                cluster.connected_index_nodes.push(infos);
            }
        }
        DataCoordTopology {
            cluster,
            connections: ConnTopology {
                name,
                connected_components: Vec::new(),
            },
        }
    }

    fn self_infos(&self, name: &str) -> DataCoordInfos {
        let created = format_go_time(self.created_time);
        DataCoordInfos {
            base: BaseComponentInfos {
                has_error: false,
                error_reason: String::new(),
                name: name.to_string(),
                hardware_infos: self.hardware.sample(&self.address()),
                system_info: DeployMetrics::from_env(),
                created_time: created.clone(),
                updated_time: created,
                component_type: ROLE.to_string(),
                id: self.server_id(),
            },
            system_configurations: DataCoordConfiguration {
                segment_max_size: self.config().datacoord.segment.max_size_mb,
            },
            quota_metrics: Some(self.quota_metrics()),
        }
    }

    /// What RootCoord's quota center weighs against `diskQuota` and `diskQuotaPerCollection`:
    /// the log bytes of healthy segments (none before meta is loaded).
    fn quota_metrics(&self) -> DataCoordQuotaMetrics {
        let Some(active) = self.active.get() else {
            return DataCoordQuotaMetrics::default();
        };
        let (total_binlog_size, collection_binlog_size) = active.meta.binlog_sizes();
        DataCoordQuotaMetrics {
            total_binlog_size,
            collection_binlog_size,
        }
    }

    /// `CheckHealth`: Ok(reasons) — empty when every DataNode answers Healthy.
    pub async fn check_health(&self) -> MilvusResult<Vec<String>> {
        self.check_healthy()?;
        let Some(active) = self.active.get() else {
            return Ok(Vec::new());
        };
        let mut reasons = Vec::new();
        for node_id in active.datanodes.node_ids() {
            let outcome = async {
                let mut client = active.datanodes.client(node_id).await?;
                let call = client.get_component_states(GetComponentStatesRequest {});
                let states = tokio::time::timeout(NODE_CALL_TIMEOUT, call)
                    .await
                    .map_err(|_| MilvusError::new(ErrorCode::TIMEOUT))?
                    .map_err(|status| MilvusError::unexpected(status.message()))?
                    .into_inner();
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
            .await;
            if let Err(err) = outcome {
                reasons.push(err.to_string());
            }
        }
        Ok(reasons)
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
    outcome: Result<
        Result<tonic::Response<milvus_proto::milvus::GetMetricsResponse>, tonic::Status>,
        tokio::time::error::Elapsed,
    >,
) -> NodeInfos {
    let response = match outcome {
        Err(_) => return failed_node_infos("GetMetrics timed out".to_string()),
        Ok(Err(status)) => return failed_node_infos(status.message().to_string()),
        Ok(Ok(response)) => response.into_inner(),
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

/// Go's `time.Time.String()` layout, e.g. `2026-11-26 14:47:41.123456789 +0000 UTC`.
fn format_go_time(time: std::time::SystemTime) -> String {
    let since_epoch = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since_epoch.as_secs() as i64;
    let nanos = since_epoch.subsec_nanos();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{nanos:09} +0000 UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_layout() {
        let t = std::time::UNIX_EPOCH + Duration::new(1_795_704_461, 5);
        assert_eq!(format_go_time(t), "2026-11-26 14:47:41.000000005 +0000 UTC");
        assert_eq!(
            format_go_time(std::time::UNIX_EPOCH),
            "1970-01-01 00:00:00.000000000 +0000 UTC"
        );
    }
}
