//! Compaction wired into the core: flushed segments reach the engine, a manual compaction runs
//! on the DataNode watching the channel, and its result goes through the flush-complete path to
//! the index builder.

use std::time::Duration;

use datacoord::testing::TestCore;
use datacoord_compaction::testing::result_for;
use milvus_config::DataCoordConfig;
use milvus_proto::common::{CompactionState, KeyValuePair, SegmentState};
use milvus_proto::index::{CreateIndexRequest, DescribeIndexRequest};
use milvus_types::SegmentId;

use crate::support::{self, CHANNEL, COLLECTION, DATANODE, VECTOR_FIELD, assign, synced, until};

/// The segment ID the fake DataNode gives its result.
const RESULT_SEGMENT: SegmentId = 900_000;

fn config(auto: bool) -> DataCoordConfig {
    let mut config = DataCoordConfig::default();
    config.datacoord.compaction.enable_auto_compaction = auto;
    // No index needs to be built on the sources for them to be candidates.
    config.datacoord.compaction.index_based_compaction = false;
    config.datacoord.compaction.check_interval = Duration::from_secs(1);
    config
}

async fn core(auto: bool) -> TestCore {
    let core = support::core_with(config(auto)).await;
    core.compaction_nodes.add_node(DATANODE);
    core.compaction_nodes.watch_channel(CHANNEL, DATANODE);
    core.start();
    core
}

/// `count` small Flushed segments of 10 rows each.
async fn flushed_segments(core: &TestCore, count: usize) -> Vec<SegmentId> {
    let mut ids = Vec::new();
    for n in 0..count {
        let segment = assign(core, 10).await;
        core.data_path()
            .save_binlog_paths(synced(core, segment, n as i64 + 1, 10, 5 + n as u64, true))
            .await
            .unwrap();
        until("segment flushed", || {
            core.meta
                .segment(segment)
                .is_some_and(|s| s.state() == SegmentState::Flushed)
        })
        .await;
        ids.push(segment);
    }
    ids
}

fn index_request() -> CreateIndexRequest {
    let pair = |key: &str, value: &str| KeyValuePair {
        key: key.to_string(),
        value: value.to_string(),
    };
    CreateIndexRequest {
        collection_id: COLLECTION,
        field_id: VECTOR_FIELD,
        index_name: "vec_index".to_string(),
        type_params: vec![pair("dim", "8")],
        index_params: vec![
            pair("index_type", "IVF_FLAT"),
            pair("metric_type", "L2"),
            pair("nlist", "16"),
        ],
        timestamp: 1,
        is_auto_index: false,
        user_index_params: Vec::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_manual_compaction_goes_from_plan_to_an_indexed_result() {
    let core = core(false).await;
    core.indexes().create_index(index_request()).await.unwrap();
    let index_id = core
        .indexes()
        .describe_index(&DescribeIndexRequest {
            collection_id: COLLECTION,
            index_name: String::new(),
            timestamp: 0,
        })
        .unwrap()[0]
        .index_id;
    let sources = flushed_segments(&core, 3).await;

    let answer = core
        .compaction()
        .manual_compaction(COLLECTION)
        .await
        .unwrap();
    let compaction_id = answer.compaction_id;
    until("plan sent to the channel's datanode", || {
        !core.compaction_nodes.received().is_empty()
    })
    .await;
    let (node, plan) = core.compaction_nodes.received()[0].clone();
    assert_eq!(node, DATANODE);
    assert_eq!(plan.channel, CHANNEL);
    let mut planned: Vec<SegmentId> = plan.segment_binlogs.iter().map(|s| s.segment_id).collect();
    planned.sort_unstable();
    assert_eq!(planned, sources);
    let state = core.compaction().compaction_state(compaction_id).unwrap();
    assert_eq!(state.state, CompactionState::Executing as i32);

    let result = result_for(&plan, &core.storage_root(), RESULT_SEGMENT);
    assert!(core.compaction_nodes.complete(plan.plan_id, result));
    // Committed, synced, then Flushing → Flushed by the flush loop, which tells the builder.
    until("result indexed", || {
        core.index_meta
            .segment_index_of(RESULT_SEGMENT, index_id)
            .is_some()
    })
    .await;
    let child = core.meta.segment(RESULT_SEGMENT).unwrap();
    assert_eq!(child.state(), SegmentState::Flushed);
    assert_eq!(child.num_of_rows, 30);
    assert_eq!(child.compaction_from, plan_order(&plan));
    for source in &sources {
        let source = core.meta.segment(*source).unwrap();
        assert_eq!(source.state(), SegmentState::Dropped);
        assert!(source.compacted);
    }
    assert_eq!(core.compaction_nodes.synced().len(), 1);
    until("task completed", || {
        core.compaction()
            .compaction_state(compaction_id)
            .unwrap()
            .completed_plan_no
            == 1
    })
    .await;
    let plans = core
        .compaction()
        .compaction_state_with_plans(compaction_id)
        .unwrap();
    assert_eq!(plans.state, CompactionState::Completed as i32);
    assert_eq!(plans.merge_infos.len(), 1);
    assert_eq!(plans.merge_infos[0].target, RESULT_SEGMENT);
    core.stop().await;
}

fn plan_order(plan: &milvus_proto::data::CompactionPlan) -> Vec<SegmentId> {
    plan.segment_binlogs.iter().map(|s| s.segment_id).collect()
}

#[tokio::test(start_paused = true)]
async fn flushed_segments_trigger_compaction_without_a_manual_call() {
    let core = core(true).await;
    let sources = flushed_segments(&core, 3).await;
    until("flush-triggered plan sent", || {
        !core.compaction_nodes.received().is_empty()
    })
    .await;
    let (_, plan) = core.compaction_nodes.received()[0].clone();
    let mut planned = plan_order(&plan);
    planned.sort_unstable();
    assert_eq!(planned, sources);
    core.stop().await;
}

#[tokio::test(start_paused = true)]
async fn auto_compaction_off_plans_nothing_on_flush() {
    let core = core(false).await;
    flushed_segments(&core, 3).await;
    // Long enough for a flush signal to be handled and its plan sent.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(core.compaction_nodes.received().is_empty());
    core.stop().await;
}

#[tokio::test]
async fn compaction_disabled_answers_service_unavailable() {
    let mut config = config(true);
    config.datacoord.enable_compaction = false;
    let core = support::core_with(config).await;
    let err = core
        .compaction()
        .manual_compaction(COLLECTION)
        .await
        .unwrap_err();
    assert_eq!(err.code(), milvus_types::ErrorCode::SERVICE_UNAVAILABLE);
    assert!(core.compaction().compaction_state(0).is_err());
}

#[tokio::test]
async fn manual_compaction_needs_a_real_collection_id() {
    let core = support::core().await;
    for collection_id in [0, -1, i64::MIN] {
        let err = core
            .compaction()
            .manual_compaction(collection_id)
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            milvus_types::ErrorCode::PARAMETER_INVALID,
            "{collection_id}: {err}"
        );
    }
}
