//! One collection with one channel on one DataNode, and the requests a DataNode sends.

use std::time::Duration;

use datacoord::testing::TestCore;
use datacoord_meta::LogKind;
use datacoord_meta::testing::{position, sent_logs};
use milvus_config::DataCoordConfig;
use milvus_proto::common::{KeyValuePair, MsgBase, MsgType};
use milvus_proto::data::{
    AssignSegmentIdRequest, CheckPoint, SaveBinlogPathsRequest, SegmentIdRequest,
    SegmentStartPosition,
};
use milvus_proto::milvus::DescribeCollectionResponse;
use milvus_proto::schema::{CollectionSchema, DataType, FieldSchema};
use milvus_types::{NodeId, SegmentId, Status};

pub const COLLECTION: i64 = 100;
pub const PARTITION: i64 = 10;
pub const DATANODE: NodeId = 7;
pub const CHANNEL: &str = "by-dev-rootcoord-dml_0_100v0";
pub const PK_FIELD: i64 = 100;
pub const VECTOR_FIELD: i64 = 101;

/// `pk` (Int64) and `vec` (FloatVector, dim 8).
pub fn schema() -> CollectionSchema {
    CollectionSchema {
        name: "coll".to_string(),
        fields: vec![
            FieldSchema {
                field_id: PK_FIELD,
                name: "pk".to_string(),
                is_primary_key: true,
                data_type: DataType::Int64 as i32,
                ..Default::default()
            },
            FieldSchema {
                field_id: VECTOR_FIELD,
                name: "vec".to_string(),
                data_type: DataType::FloatVector as i32,
                type_params: vec![KeyValuePair {
                    key: "dim".to_string(),
                    value: "8".to_string(),
                }],
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

/// A core whose RootCoord knows [`COLLECTION`] (database `default`, one vchannel
/// [`CHANNEL`]) and whose only DataNode [`DATANODE`] gets every new channel.
pub async fn core() -> TestCore {
    core_with(DataCoordConfig::default()).await
}

/// [`core`] with `config`.
pub async fn core_with(config: DataCoordConfig) -> TestCore {
    let core = TestCore::with_config(config).await;
    core.broker.add_collection_response(
        "default",
        DescribeCollectionResponse {
            status: Some(Status::default()),
            collection_id: COLLECTION,
            collection_name: "coll".to_string(),
            schema: Some(schema()),
            virtual_channel_names: vec![CHANNEL.to_string()],
            physical_channel_names: vec!["by-dev-rootcoord-dml_0".to_string()],
            db_name: "default".to_string(),
            ..Default::default()
        },
        vec![PARTITION],
    );
    core.datanodes.add_node(DATANODE);
    core.channels.assign_new_to(Some(DATANODE));
    core
}

/// AssignSegmentID for `count` rows of [`COLLECTION`]/[`PARTITION`] on [`CHANNEL`]: the
/// segment it went to.
pub async fn assign(core: &TestCore, count: u32) -> SegmentId {
    let assignments = core
        .data_path()
        .assign_segment_id(AssignSegmentIdRequest {
            node_id: 0,
            peer_role: "proxy".to_string(),
            segment_id_requests: vec![SegmentIdRequest {
                count,
                channel_name: CHANNEL.to_string(),
                collection_id: COLLECTION,
                partition_id: PARTITION,
                is_import: false,
                import_task_id: 0,
            }],
        })
        .await
        .expect("AssignSegmentID");
    assert_eq!(assignments.len(), 1, "{assignments:?}");
    assert_eq!(assignments[0].count, count);
    assignments[0].seg_id
}

/// What [`DATANODE`] sends after syncing `rows` rows of `segment` into one insert log per field
/// (log ID `log_id`), checkpointed at `ts`.
pub fn synced(
    core: &TestCore,
    segment: SegmentId,
    log_id: i64,
    rows: i64,
    ts: u64,
    flushed: bool,
) -> SaveBinlogPathsRequest {
    let root = core.storage_root();
    let ids = (COLLECTION, PARTITION, segment);
    SaveBinlogPathsRequest {
        base: Some(MsgBase {
            msg_type: MsgType::Flush as i32,
            source_id: DATANODE,
            ..Default::default()
        }),
        segment_id: segment,
        collection_id: COLLECTION,
        field2_binlog_paths: [0, 1, PK_FIELD, VECTOR_FIELD]
            .iter()
            .map(|field| sent_logs(LogKind::Insert, &root, ids, *field, &[log_id], rows))
            .collect(),
        check_points: vec![CheckPoint {
            segment_id: segment,
            position: Some(position(CHANNEL, ts)),
            num_of_rows: rows,
        }],
        start_positions: vec![SegmentStartPosition {
            start_position: Some(position(CHANNEL, 1)),
            segment_id: segment,
        }],
        flushed,
        field2_statslog_paths: vec![sent_logs(
            LogKind::Stats,
            &root,
            ids,
            PK_FIELD,
            &[log_id],
            rows,
        )],
        deltalogs: Vec::new(),
        dropped: false,
        importing: false,
        channel: CHANNEL.to_string(),
    }
}

/// Waits until `done` holds, polling on the paused test clock (30 s of it at most).
pub async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..30_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("{what}: never happened");
}
