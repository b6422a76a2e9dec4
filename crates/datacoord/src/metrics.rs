//! Prometheus metrics under the names 2.3.5 exports (namespace `milvus`, subsystem `datacoord`).
//!
//! Only metrics whose source exists in this port are registered; a metric that would always read
//! zero is worse than none.

use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};

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
        for collector in [
            Box::new(num_node.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(datanode_num.clone()),
            Box::new(index_node_num.clone()),
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
