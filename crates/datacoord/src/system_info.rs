//! The JSON topology `GetMetrics(system_info)` returns, with 2.3.5's field names.
//!
//! RootCoord's quota center and the proxy's system-info API parse it; field names and nesting
//! (BaseComponentInfos flattened into each node's infos) must match Go's encoding.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// `metricsinfo.SystemInfoMetrics`
pub const SYSTEM_INFO_METRICS: &str = "system_info";

/// Reads `metric_type` from a GetMetrics request string (a JSON object).
pub fn parse_metric_type(request: &str) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_str(request).map_err(|e| format!("failed to decode the request: {e}"))?;
    match value.get("metric_type") {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("metric_type is not a string: {other}")),
        None => Err("metric_type not found in request".to_string()),
    }
}

/// `role + id`, e.g. `datacoord5`.
pub fn component_name(role: &str, node_id: i64) -> String {
    format!("{role}{node_id}")
}

/// `metricsinfo.HardwareMetrics`
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct HardwareMetrics {
    pub ip: String,
    pub cpu_core_count: i64,
    pub cpu_core_usage: f64,
    pub memory: u64,
    pub memory_usage: u64,
    pub disk: u64,
    pub disk_usage: u64,
}

/// `metricsinfo.DeployMetrics`, filled from the same environment variables as Go.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DeployMetrics {
    pub system_version: String,
    pub deploy_mode: String,
    pub build_version: String,
    pub build_time: String,
    pub used_go_version: String,
}

impl DeployMetrics {
    /// As Go's `FillDeployMetricsWithEnv`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        Self {
            system_version: var("MILVUS_GIT_COMMIT"),
            deploy_mode: var("DEPLOY_MODE"),
            build_version: var("MILVUS_GIT_BUILD_TAGS"),
            build_time: var("MILVUS_BUILD_TIME"),
            used_go_version: var("MILVUS_USED_GO_VERSION"),
        }
    }
}

/// `metricsinfo.BaseComponentInfos` (embedded, so flattened).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct BaseComponentInfos {
    pub has_error: bool,
    pub error_reason: String,
    pub name: String,
    pub hardware_infos: HardwareMetrics,
    pub system_info: DeployMetrics,
    pub created_time: String,
    pub updated_time: String,
    #[serde(rename = "type")]
    pub component_type: String,
    pub id: i64,
}

/// `metricsinfo.DataCoordQuotaMetrics` (Go has no json tags here: field names as-is).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DataCoordQuotaMetrics {
    #[serde(rename = "TotalBinlogSize")]
    pub total_binlog_size: i64,
    #[serde(rename = "CollectionBinlogSize")]
    pub collection_binlog_size: BTreeMap<i64, i64>,
}

/// `metricsinfo.DataCoordConfiguration`
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DataCoordConfiguration {
    pub segment_max_size: f64,
}

/// `metricsinfo.DataCoordInfos`
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DataCoordInfos {
    #[serde(flatten)]
    pub base: BaseComponentInfos,
    pub system_configurations: DataCoordConfiguration,
    pub quota_metrics: Option<DataCoordQuotaMetrics>,
}

/// A DataNode's or IndexNode's infos as reported by the node itself; kept as raw JSON beyond the
/// base fields so whatever the node sends is passed through untouched.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeInfos {
    #[serde(flatten)]
    pub base: BaseComponentInfos,
    #[serde(flatten)]
    pub rest: BTreeMap<String, serde_json::Value>,
}

/// `metricsinfo.DataClusterTopology`
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DataClusterTopology {
    #[serde(rename = "self")]
    pub self_infos: DataCoordInfos,
    pub connected_data_nodes: Vec<NodeInfos>,
    pub connected_index_nodes: Vec<NodeInfos>,
}

/// `metricsinfo.ConnTopology`
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ConnTopology {
    pub name: String,
    pub connected_components: Vec<serde_json::Value>,
}

/// `metricsinfo.DataCoordTopology`, the whole `response` string.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DataCoordTopology {
    pub cluster: DataClusterTopology,
    pub connections: ConnTopology,
}

/// Host figures for `hardware_infos`.
pub struct HardwareProbe {
    last_cpu: Mutex<Option<(u64, u64)>>,
}

/// 2.3.5 reports these fixed figures for disk; kept so consumers see the same shape of data.
const REPORTED_DISK: u64 = 100 * 1024 * 1024;
const REPORTED_DISK_USAGE: u64 = 2 * 1024 * 1024;

impl HardwareProbe {
    pub fn new() -> Self {
        Self {
            last_cpu: Mutex::new(None),
        }
    }

    /// Samples the host now. CPU usage is the busy share since the previous sample (since boot on
    /// the first one), in percent, like gopsutil's `cpu.Percent(0)`.
    pub fn sample(&self, ip: &str) -> HardwareMetrics {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib = |field: &str| -> u64 {
            meminfo
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        let total = kib("MemTotal:");
        let used = total.saturating_sub(kib("MemAvailable:"));
        HardwareMetrics {
            ip: ip.to_string(),
            cpu_core_count: std::thread::available_parallelism()
                .map(|n| n.get() as i64)
                .unwrap_or(1),
            cpu_core_usage: self.cpu_usage(),
            memory: total,
            memory_usage: used,
            disk: REPORTED_DISK,
            disk_usage: REPORTED_DISK_USAGE,
        }
    }

    fn cpu_usage(&self) -> f64 {
        let Some((busy, total)) = read_proc_stat() else {
            return 0.0;
        };
        let mut last = self.last_cpu.lock().unwrap_or_else(|e| e.into_inner());
        let (prev_busy, prev_total) = last.replace((busy, total)).unwrap_or((0, 0));
        let d_total = total.saturating_sub(prev_total);
        if d_total == 0 {
            return 0.0;
        }
        busy.saturating_sub(prev_busy) as f64 * 100.0 / d_total as f64
    }
}

impl Default for HardwareProbe {
    fn default() -> Self {
        Self::new()
    }
}

/// (busy jiffies, total jiffies) of the aggregate `cpu` line.
fn read_proc_stat() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_type_is_read_from_the_request_json() {
        assert_eq!(
            parse_metric_type(r#"{"metric_type":"system_info"}"#).unwrap(),
            "system_info"
        );
        assert!(
            parse_metric_type("not json")
                .unwrap_err()
                .contains("failed to decode")
        );
        assert!(parse_metric_type("{}").unwrap_err().contains("not found"));
    }

    #[test]
    fn topology_json_uses_go_field_names() {
        let mut topology = DataCoordTopology::default();
        topology.cluster.self_infos.base.name = component_name("datacoord", 5);
        topology.cluster.self_infos.base.component_type = "datacoord".into();
        topology.cluster.self_infos.quota_metrics = Some(DataCoordQuotaMetrics {
            total_binlog_size: 10,
            collection_binlog_size: BTreeMap::from([(1, 10)]),
        });
        let json: serde_json::Value = serde_json::to_value(&topology).unwrap();
        let self_infos = &json["cluster"]["self"];
        assert_eq!(self_infos["name"], "datacoord5");
        assert_eq!(self_infos["type"], "datacoord");
        assert!(self_infos["hardware_infos"]["cpu_core_count"].is_number());
        assert_eq!(self_infos["quota_metrics"]["TotalBinlogSize"], 10);
        assert_eq!(self_infos["quota_metrics"]["CollectionBinlogSize"]["1"], 10);
        assert!(json["cluster"]["connected_data_nodes"].is_array());
        assert!(json["connections"]["connected_components"].is_array());
    }

    #[test]
    fn node_infos_pass_unknown_fields_through() {
        let raw = r#"{"has_error":false,"error_reason":"","name":"datanode3","hardware_infos":{"ip":"a","cpu_core_count":2,"cpu_core_usage":0.5,"memory":1,"memory_usage":1,"disk":1,"disk_usage":1},"system_info":{"system_version":"","deploy_mode":"","build_version":"","build_time":"","used_go_version":""},"created_time":"","updated_time":"","type":"datanode","id":3,"system_configurations":{"flush_insert_buffer_size":16777216},"quota_metrics":null}"#;
        let infos: NodeInfos = serde_json::from_str(raw).unwrap();
        assert_eq!(infos.base.id, 3);
        let back = serde_json::to_value(&infos).unwrap();
        assert_eq!(
            back["system_configurations"]["flush_insert_buffer_size"],
            16777216
        );
    }

    #[test]
    fn hardware_probe_reads_this_host() {
        let probe = HardwareProbe::new();
        let hw = probe.sample("127.0.0.1:13333");
        assert!(hw.memory > 0 && hw.memory >= hw.memory_usage);
        assert!(hw.cpu_core_count >= 1);
        assert!((0.0..=100.0).contains(&hw.cpu_core_usage));
    }
}
