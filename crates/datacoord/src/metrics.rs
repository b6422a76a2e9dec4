//! Prometheus metrics under the names 2.3.5 exports (namespace `milvus`, subsystem `datacoord`).
//!
//! Only metrics whose source exists in this port are registered; a metric that would always read
//! zero is worse than none.

use prometheus::{GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

fn datacoord_opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
        .namespace("milvus")
        .subsystem("datacoord")
}

/// The metrics of one datacoord process, in their own registry (plus process metrics).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `milvus_num_node{node_id, role_name}`: +1 after Register.
    pub num_node: IntGaugeVec,
    /// `milvus_datacoord_datanode_num`
    pub datanode_num: IntGauge,
    /// `milvus_datacoord_index_node_num`
    pub index_node_num: IntGauge,
    /// `milvus_datacoord_segment_num{segment_state}`: refreshed from meta at each scrape.
    pub segment_num: IntGaugeVec,
    /// `milvus_datacoord_collection_num`: collections with segments in meta, at each scrape.
    pub collection_num: IntGauge,
    /// `milvus_datacoord_stored_rows_count`: rows of segments this process took to Flushed (2.3.5
    /// also adds the Flushed rows found at load; that would materialise every cold segment).
    pub stored_rows_count: IntCounter,
    /// `milvus_datacoord_consume_datanode_tt_lag_ms{node_id, channel_name}` (physical channel).
    pub datanode_tt_lag_ms: GaugeVec,
    /// `milvus_datacoord_channel_checkpoint_unix_seconds{node_id, channel_name}` (vchannel).
    pub channel_checkpoint_unix_seconds: GaugeVec,
    /// `milvus_datacoord_watched_dml_chanel_num{node_id}` (2.3.5's spelling) per datanode.
    pub watched_dml_channel_num: IntGaugeVec,
    /// `milvus_datacoord_index_req_count{status}`: CreateIndex calls (total, success, fail).
    pub index_req_count: IntCounterVec,
    /// `milvus_datacoord_index_task_count{collection_id, index_task_status}`: segment-index
    /// records not marked deleted, by state, refreshed from index meta at each scrape.
    pub index_task_count: IntGaugeVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let num_node = IntGaugeVec::new(
            Opts::new("num_node", "number of nodes and coordinates").namespace("milvus"),
            &["node_id", "role_name"],
        )
        .expect("valid metric");
        let datanode_num = IntGauge::with_opts(
            Opts::new("datanode_num", "number of data nodes")
                .namespace("milvus")
                .subsystem("datacoord"),
        )
        .expect("valid metric");
        let index_node_num = IntGauge::with_opts(
            Opts::new(
                "index_node_num",
                "number of IndexNodes managed by IndexCoord",
            )
            .namespace("milvus")
            .subsystem("datacoord"),
        )
        .expect("valid metric");
        let segment_num = IntGaugeVec::new(
            datacoord_opts("segment_num", "number of segments"),
            &["segment_state"],
        )
        .expect("valid metric");
        let collection_num =
            IntGauge::with_opts(datacoord_opts("collection_num", "number of collections"))
                .expect("valid metric");
        let stored_rows_count = IntCounter::with_opts(datacoord_opts(
            "stored_rows_count",
            "count of all stored rows ever",
        ))
        .expect("valid metric");
        let datanode_tt_lag_ms = GaugeVec::new(
            datacoord_opts(
                "consume_datanode_tt_lag_ms",
                "now time minus tt per physical channel",
            ),
            &["node_id", "channel_name"],
        )
        .expect("valid metric");
        let channel_checkpoint_unix_seconds = GaugeVec::new(
            datacoord_opts(
                "channel_checkpoint_unix_seconds",
                "channel checkpoint timestamp in unix seconds",
            ),
            &["node_id", "channel_name"],
        )
        .expect("valid metric");
        let watched_dml_channel_num = IntGaugeVec::new(
            datacoord_opts(
                "watched_dml_chanel_num",
                "the num of dml channel watched by datanode",
            ),
            &["node_id"],
        )
        .expect("valid metric");
        let index_req_count = IntCounterVec::new(
            datacoord_opts("index_req_count", "number of building index requests "),
            &["status"],
        )
        .expect("valid metric");
        let index_task_count = IntGaugeVec::new(
            datacoord_opts("index_task_count", "number of index tasks of each type"),
            &["collection_id", "index_task_status"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(num_node.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(datanode_num.clone()),
            Box::new(index_node_num.clone()),
            Box::new(segment_num.clone()),
            Box::new(collection_num.clone()),
            Box::new(stored_rows_count.clone()),
            Box::new(datanode_tt_lag_ms.clone()),
            Box::new(channel_checkpoint_unix_seconds.clone()),
            Box::new(watched_dml_channel_num.clone()),
            Box::new(index_req_count.clone()),
            Box::new(index_task_count.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric registered once");
        }
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process collector registered once");
        Self {
            registry,
            num_node,
            datanode_num,
            index_node_num,
            segment_num,
            collection_num,
            stored_rows_count,
            datanode_tt_lag_ms,
            channel_checkpoint_unix_seconds,
            watched_dml_channel_num,
            index_req_count,
            index_task_count,
        }
    }

    /// The registry `/metrics` gathers.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
