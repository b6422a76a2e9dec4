//! The component RPCs, answered by the [`Server`] itself (they report on the process: state,
//! configuration, topology, health), also while StandBy where 2.3.5 does.

use milvus_proto::common::KeyValuePair;
use milvus_types::{MilvusError, MilvusResult, StateCode};
use tracing::warn;

use crate::monitor::Monitor;
use crate::server::{ROLE, Server};
use crate::system_info::{
    BaseComponentInfos, ConnTopology, DataClusterTopology, DataCoordConfiguration, DataCoordInfos,
    DataCoordTopology, DeployMetrics, SYSTEM_INFO_METRICS, component_name, parse_metric_type,
};

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
    pub async fn get_metrics(&self, request: &str) -> MetricsAnswer {
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

    async fn system_info(&self, request: &str) -> DataCoordTopology {
        let name = component_name(ROLE, self.server_id());
        let monitor = self.monitor();
        let (connected_data_nodes, connected_index_nodes) = match monitor {
            Some(monitor) => monitor.connected_nodes(request).await,
            None => (Vec::new(), Vec::new()),
        };
        DataCoordTopology {
            cluster: DataClusterTopology {
                self_infos: self.self_infos(&name),
                connected_data_nodes,
                connected_index_nodes,
            },
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
            // None before meta is loaded (StandBy).
            quota_metrics: Some(
                self.monitor()
                    .map(Monitor::quota_metrics)
                    .unwrap_or_default(),
            ),
        }
    }

    /// `CheckHealth`: Ok(reasons) — empty when every DataNode answers Healthy.
    pub async fn check_health(&self) -> MilvusResult<Vec<String>> {
        self.check_healthy()?;
        let Some(monitor) = self.monitor() else {
            return Ok(Vec::new());
        };
        Ok(monitor.unhealthy_datanodes().await)
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
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_795_704_461, 5);
        assert_eq!(format_go_time(t), "2026-11-26 14:47:41.000000005 +0000 UTC");
        assert_eq!(
            format_go_time(std::time::UNIX_EPOCH),
            "1970-01-01 00:00:00.000000000 +0000 UTC"
        );
    }
}
