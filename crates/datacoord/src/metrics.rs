//! Prometheus metrics under the names 2.3.5 exports (namespace `milvus`, subsystem `datacoord`).
//!
//! Only metrics whose source exists in this port are registered; a metric that would always read
//! zero is worse than none.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use datacoord_index::SegmentIndex;
use milvus_proto::common::IndexState;
use prometheus::{
    GaugeVec, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

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
    /// `milvus_datacoord_compacted_segment_size`: bytes of each committed compaction result.
    pub compacted_segment_size: Histogram,
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
        let compacted_segment_size =
            Histogram::with_opts(datacoord_compaction::compacted_segment_size_opts())
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
            Box::new(compacted_segment_size.clone()),
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
            compacted_segment_size,
        }
    }

    /// The registry `/metrics` gathers.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Sets `index_task_count` from the segment-index records. Every collection with a record not
    /// marked deleted gets all four states, zeros included, as 2.3.5 reports them; states other
    /// than those four count for no label but still make the collection appear.
    pub fn set_index_task_count<B: Borrow<SegmentIndex>>(
        &self,
        builds: impl IntoIterator<Item = B>,
    ) {
        let mut counts: BTreeMap<i64, [i64; 4]> = BTreeMap::new();
        for build in builds {
            let build = build.borrow();
            if build.deleted {
                continue;
            }
            let states = counts.entry(build.collection_id).or_default();
            let slot = match build.state {
                IndexState::Unissued => 0,
                IndexState::InProgress => 1,
                IndexState::Finished => 2,
                IndexState::Failed => 3,
                _ => continue,
            };
            states[slot] += 1;
        }
        self.index_task_count.reset();
        for (collection_id, states) in counts {
            let collection = collection_id.to_string();
            for (label, count) in INDEX_TASK_LABELS.into_iter().zip(states) {
                self.index_task_count
                    .with_label_values(&[&collection, label])
                    .set(count);
            }
        }
    }
}

/// 2.3.5's `index_task_status` label values, in the order `set_index_task_count` counts them.
const INDEX_TASK_LABELS: [&str; 4] = ["unissued", "in-progress", "finished", "failed"];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(collection_id: i64, build_id: i64, state: IndexState, deleted: bool) -> SegmentIndex {
        SegmentIndex {
            collection_id,
            build_id,
            segment_id: build_id,
            state,
            deleted,
            ..SegmentIndex::default()
        }
    }

    fn gauge(metrics: &Metrics, collection: &str, status: &str) -> Option<i64> {
        metrics
            .registry()
            .gather()
            .into_iter()
            .find(|family| family.name() == "milvus_datacoord_index_task_count")?
            .get_metric()
            .iter()
            .find(|metric| {
                let labels: Vec<_> = metric
                    .get_label()
                    .iter()
                    .map(|label| (label.name(), label.value()))
                    .collect();
                labels.contains(&("collection_id", collection))
                    && labels.contains(&("index_task_status", status))
            })
            .map(|metric| metric.get_gauge().get_value() as i64)
    }

    #[test]
    fn index_task_count_labels_every_state() {
        let metrics = Metrics::new();
        metrics.set_index_task_count([
            build(7, 1, IndexState::Unissued, false),
            build(7, 2, IndexState::InProgress, false),
            build(7, 3, IndexState::InProgress, false),
            build(7, 4, IndexState::Finished, false),
            build(7, 5, IndexState::Failed, false),
            build(7, 6, IndexState::Finished, true),
            build(8, 7, IndexState::Retry, false),
            build(9, 8, IndexState::Finished, true),
        ]);
        let expected = [
            ("7", "unissued", Some(1)),
            ("7", "in-progress", Some(2)),
            ("7", "finished", Some(1)),
            ("7", "failed", Some(1)),
            // A collection whose only record is in another state still shows zeros.
            ("8", "unissued", Some(0)),
            ("8", "in-progress", Some(0)),
            ("8", "finished", Some(0)),
            ("8", "failed", Some(0)),
            // Deleted records count for nothing, not even the collection.
            ("9", "finished", None),
        ];
        for (collection, status, count) in expected {
            assert_eq!(
                gauge(&metrics, collection, status),
                count,
                "collection {collection} {status}"
            );
        }

        // A refresh replaces the label sets: collection 7 is gone once it has no records.
        metrics.set_index_task_count([build(8, 7, IndexState::Finished, false)]);
        assert_eq!(gauge(&metrics, "7", "failed"), None);
        assert_eq!(gauge(&metrics, "8", "finished"), Some(1));
    }
}
