//! Builders shared by the tests.

use std::sync::Arc;

use datacoord_import::ImportService;
use datacoord_import::testing::{FakeImportNodes, FakeImportSegments};
use milvus_proto::common::MsgBase;
use milvus_proto::data::{
    Binlog, FieldBinlog, ImportTask, ImportTaskRequest, SaveBinlogPathsRequest,
    SaveImportSegmentRequest, SegmentStartPosition,
};
use milvus_proto::msg::MsgPosition;
use milvus_types::MilvusError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const OUR_ID: i64 = 1;
pub const COLL: i64 = 100;
pub const PART: i64 = 10;
pub const SEG: i64 = 500;
pub const CH: &str = "by-dev-rootcoord-dml_0_100v0";

pub struct Harness {
    pub service: ImportService,
    pub nodes: Arc<FakeImportNodes>,
    pub segments: Arc<FakeImportSegments>,
    pub relays: TaskTracker,
    pub shutdown: CancellationToken,
}

pub fn harness() -> Harness {
    let nodes = Arc::new(FakeImportNodes::new());
    let segments = Arc::new(FakeImportSegments::new());
    let relays = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let service = ImportService::new(
        OUR_ID,
        nodes.clone(),
        segments.clone(),
        relays.clone(),
        shutdown.clone(),
    );
    Harness {
        service,
        nodes,
        segments,
        relays,
        shutdown,
    }
}

impl Harness {
    /// Waits until every relay has ended (without cancelling them).
    pub async fn relays_done(&self) {
        self.relays.close();
        self.relays.wait().await;
        self.relays.reopen();
    }
}

pub fn import_request(working_nodes: Vec<i64>) -> ImportTaskRequest {
    ImportTaskRequest {
        base: None,
        import_task: Some(ImportTask {
            collection_id: COLL,
            partition_id: PART,
            channel_names: vec![CH.to_string()],
            task_id: 77,
            files: vec!["rows.json".to_string()],
            ..Default::default()
        }),
        working_nodes,
    }
}

pub fn insert_log(field_id: i64, log_id: i64) -> FieldBinlog {
    FieldBinlog {
        field_id,
        binlogs: vec![Binlog {
            entries_num: 3,
            log_path: format!("files/insert_log/{COLL}/{PART}/{SEG}/{field_id}/{log_id}"),
            ..Default::default()
        }],
    }
}

pub fn save_request() -> SaveImportSegmentRequest {
    SaveImportSegmentRequest {
        base: Some(MsgBase {
            timestamp: 4242,
            source_id: 9,
            ..Default::default()
        }),
        segment_id: SEG,
        channel_name: CH.to_string(),
        collection_id: COLL,
        partition_id: PART,
        row_num: 3,
        save_binlog_path_req: Some(SaveBinlogPathsRequest {
            segment_id: SEG,
            collection_id: COLL,
            field2_binlog_paths: vec![insert_log(0, 1), insert_log(100, 2)],
            field2_statslog_paths: vec![FieldBinlog {
                field_id: 0,
                binlogs: vec![Binlog {
                    log_path: format!("files/stats_log/{COLL}/{PART}/{SEG}/0/3"),
                    ..Default::default()
                }],
            }],
            start_positions: vec![SegmentStartPosition {
                start_position: Some(MsgPosition {
                    channel_name: CH.to_string(),
                    timestamp: 4242,
                    ..Default::default()
                }),
                segment_id: SEG,
            }],
            importing: true,
            ..Default::default()
        }),
        dml_position_id: Vec::new(),
    }
}

/// The legacy `error_code` and the text 2.3.5 peers read.
pub fn status_of(err: &MilvusError) -> (i32, i32, String) {
    let status = err.to_status();
    (status.code, status.error_code, status.reason)
}
