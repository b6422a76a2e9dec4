//! Bulk insert through the core (FACTS-index-compaction-gc §4): Import relayed to a DataNode,
//! AssignSegmentID(isImport), SaveImportSegment, Flush(isImport), the time-tick flush,
//! UnsetIsImportingState; and a DataCoord restart in the middle.

use datacoord::testing::TestCore;
use datacoord_meta::LogKind;
use datacoord_meta::testing::sent_logs;
use milvus_proto::common::{ImportState, MsgBase, SegmentState, SegmentStats};
use milvus_proto::data::{
    AssignSegmentIdRequest, FlushRequest, ImportTask, ImportTaskInfo, ImportTaskRequest,
    ImportTaskState, ReportDataNodeTtMsgsRequest, SaveBinlogPathsRequest, SaveImportSegmentRequest,
    SegmentIdRequest, SegmentStartPosition,
};
use milvus_proto::msg::{DataNodeTtMsg, MsgPosition};
use milvus_types::{ErrorCode, NodeId, SegmentId, compose_ts};
use prost::Message;

use crate::support::{
    self, CHANNEL, COLLECTION, DATANODE, PARTITION, PK_FIELD, VECTOR_FIELD, until,
};

const IMPORT_NODE: NodeId = 8;
const ROWS: i64 = 30;

/// An import of one file under the core's (local) storage directory, where imports may read.
fn import_request(core: &TestCore, working_nodes: Vec<NodeId>) -> ImportTaskRequest {
    ImportTaskRequest {
        base: None,
        import_task: Some(ImportTask {
            collection_id: COLLECTION,
            partition_id: PARTITION,
            channel_names: vec![CHANNEL.to_string()],
            task_id: 900,
            files: vec![format!("{}/import/rows.json", core.storage_root())],
            ..Default::default()
        }),
        working_nodes,
    }
}

/// AssignSegmentID(isImport) as the importing DataNode sends it: a new Importing segment.
async fn assign_import(core: &TestCore) -> SegmentId {
    let assignments = core
        .data_path()
        .assign_segment_id(AssignSegmentIdRequest {
            node_id: IMPORT_NODE,
            peer_role: "datanode".to_string(),
            segment_id_requests: vec![SegmentIdRequest {
                count: ROWS as u32,
                channel_name: CHANNEL.to_string(),
                collection_id: COLLECTION,
                partition_id: PARTITION,
                is_import: true,
                import_task_id: 900,
            }],
        })
        .await
        .expect("AssignSegmentID");
    assert_eq!(assignments.len(), 1, "{assignments:?}");
    assignments[0].seg_id
}

/// SaveImportSegment as the importing DataNode sends it once the segment's binlogs are written.
fn save_import(core: &TestCore, segment: SegmentId, log_id: i64) -> SaveImportSegmentRequest {
    let root = core.storage_root();
    let ids = (COLLECTION, PARTITION, segment);
    let base = MsgBase {
        timestamp: 4242,
        source_id: IMPORT_NODE,
        ..Default::default()
    };
    SaveImportSegmentRequest {
        base: Some(base.clone()),
        segment_id: segment,
        channel_name: CHANNEL.to_string(),
        collection_id: COLLECTION,
        partition_id: PARTITION,
        row_num: ROWS,
        save_binlog_path_req: Some(SaveBinlogPathsRequest {
            base: Some(base),
            segment_id: segment,
            collection_id: COLLECTION,
            field2_binlog_paths: [0, 1, PK_FIELD, VECTOR_FIELD]
                .iter()
                .map(|field| sent_logs(LogKind::Insert, &root, ids, *field, &[log_id], ROWS))
                .collect(),
            field2_statslog_paths: vec![sent_logs(
                LogKind::Stats,
                &root,
                ids,
                PK_FIELD,
                &[log_id],
                ROWS,
            )],
            start_positions: vec![SegmentStartPosition {
                start_position: Some(MsgPosition {
                    channel_name: CHANNEL.to_string(),
                    timestamp: 4242,
                    ..Default::default()
                }),
                segment_id: segment,
            }],
            importing: true,
            ..Default::default()
        }),
        dml_position_id: Vec::new(),
    }
}

fn import_flush(segment: SegmentId) -> FlushRequest {
    FlushRequest {
        collection_id: COLLECTION,
        segment_i_ds: vec![segment],
        is_import: true,
        ..Default::default()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// DATANODE's time tick on CHANNEL, `ahead_ms` past the wall clock.
fn tick(ahead_ms: u64, stats: &[(SegmentId, i64)]) -> ReportDataNodeTtMsgsRequest {
    ReportDataNodeTtMsgsRequest {
        base: None,
        msgs: vec![DataNodeTtMsg {
            base: Some(MsgBase {
                source_id: DATANODE,
                ..Default::default()
            }),
            channel_name: CHANNEL.to_string(),
            timestamp: compose_ts(now_ms() + ahead_ms, 0),
            segments_stats: stats
                .iter()
                .map(|&(segment_id, num_rows)| SegmentStats {
                    segment_id,
                    num_rows,
                })
                .collect(),
        }],
    }
}

fn state_of(core: &TestCore, segment: SegmentId) -> SegmentState {
    core.meta.segment(segment).expect("segment in meta").state()
}

async fn import_core() -> TestCore {
    let core = support::core().await;
    core.datanodes.add_node(IMPORT_NODE);
    core.datanodes.set_channel_pos(b"latest-pos");
    core
}

#[tokio::test(start_paused = true)]
async fn import_goes_to_a_free_datanode_and_stop_ends_the_relay() {
    let core = import_core().await;
    core.datanodes.hold_imports(true);
    let answer = core
        .services()
        .import()
        .import(import_request(&core, vec![DATANODE]))
        .unwrap();
    assert_eq!(answer.datanode_id, IMPORT_NODE);
    until("Import relayed", || {
        !core.datanodes.import_calls().is_empty()
    })
    .await;
    let (node, relayed) = &core.datanodes.import_calls()[0];
    assert_eq!(
        (*node, relayed),
        (IMPORT_NODE, &import_request(&core, vec![DATANODE]))
    );
    // The DataNode never answers: stop must cancel the relay, not wait 3 h for it (the paused
    // clock would jump there if the relay were still awaited).
    let stopping = tokio::time::Instant::now();
    core.stop().await;
    assert!(stopping.elapsed() < datacoord_import::IMPORT_TIMEOUT / 2);
}

#[tokio::test]
async fn a_malformed_import_never_reaches_a_datanode() {
    let core = import_core().await;
    let mut no_task = import_request(&core, vec![]);
    no_task.import_task = None;
    let err = core.services().import().import(no_task).unwrap_err();
    let status = err.to_status();
    assert_eq!((status.code, status.error_code), (1100, 5), "{err}");
    let mut no_files = import_request(&core, vec![]);
    no_files.import_task.as_mut().unwrap().files.clear();
    assert!(core.services().import().import(no_files).is_err());
    // Local storage: a DataNode would open any path it is given.
    for file in [
        "/etc/shadow".to_string(),
        format!("{}/../../etc/passwd", core.storage_root()),
    ] {
        let mut outside = import_request(&core, vec![]);
        outside.import_task.as_mut().unwrap().files = vec![file.clone()];
        let err = core.services().import().import(outside).unwrap_err();
        assert_eq!(err.code(), ErrorCode::PARAMETER_INVALID, "{file}: {err}");
    }
    let err = core
        .services()
        .import()
        .import(import_request(&core, vec![DATANODE, IMPORT_NODE]))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NODE_LACK);
    core.stop().await;
    assert!(core.datanodes.import_calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_imported_segment_is_saved_sealed_flushed_and_released() {
    let core = import_core().await;
    core.start();
    let segment = assign_import(&core).await;
    let seg = core.meta.segment(segment).unwrap();
    assert_eq!(seg.state(), SegmentState::Importing);
    assert!(seg.is_importing);

    core.services()
        .import()
        .save_import_segment(save_import(&core, segment, 1))
        .await
        .unwrap();
    let added = core.datanodes.add_import_segment_calls();
    assert_eq!(added.len(), 1);
    let (node, add) = &added[0];
    assert_eq!(*node, DATANODE, "the node watching the channel");
    let base = add.base.clone().unwrap();
    assert_eq!(
        (base.timestamp, base.source_id),
        (4242, datacoord::testing::TEST_NODE_ID)
    );
    assert_eq!(
        (add.segment_id, add.row_num, add.partition_id),
        (segment, ROWS, PARTITION)
    );
    assert_eq!(add.stats_log.len(), 1);
    let seg = core.meta.segment(segment).unwrap();
    assert_eq!(seg.state(), SegmentState::Importing);
    assert_eq!(seg.num_of_rows, ROWS);
    assert_eq!(
        seg.start_position.as_ref().unwrap().msg_id,
        b"latest-pos".to_vec()
    );
    assert_eq!(core.meta.collection_row_count(COLLECTION), ROWS);

    // Importing segments are not sealed by a normal Flush, only by the import one.
    core.data_path()
        .flush(FlushRequest {
            collection_id: COLLECTION,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(state_of(&core, segment), SegmentState::Importing);
    let flushed = core.data_path().flush(import_flush(segment)).await.unwrap();
    assert_eq!(flushed.segment_i_ds, vec![segment]);
    assert_eq!(state_of(&core, segment), SegmentState::Sealed);

    core.data_path()
        .report_datanode_tt_msgs(tick(1000, &[]))
        .await
        .unwrap();
    until("FlushSegments sent", || {
        core.datanodes
            .flush_segments_calls()
            .iter()
            .any(|(_, r)| r.segment_i_ds == vec![segment])
    })
    .await;
    let mut last_sync = support::synced(&core, segment, 2, 0, 5000, true);
    last_sync.field2_binlog_paths.clear();
    last_sync.field2_statslog_paths.clear();
    core.data_path().save_binlog_paths(last_sync).await.unwrap();
    until("segment Flushed", || {
        state_of(&core, segment) == SegmentState::Flushed
    })
    .await;

    core.services()
        .import()
        .unset_is_importing_state(&[segment])
        .await
        .unwrap();
    assert!(!core.meta.segment(segment).unwrap().is_importing);
    assert_eq!(core.meta.segment(segment).unwrap().num_of_rows, ROWS);
    // What is stored says the same (a reload equals memory).
    let core = core.restart().await;
    let reloaded = core.meta.segment(segment).unwrap();
    assert!(!reloaded.is_importing);
    assert_eq!(reloaded.num_of_rows, ROWS);
    core.stop().await;
}

#[tokio::test(start_paused = true)]
async fn save_import_segment_needs_a_datanode_on_the_channel() {
    let core = import_core().await;
    let segment = assign_import(&core).await;
    core.channels.assign(CHANNEL, None);
    let err = core
        .services()
        .import()
        .save_import_segment(save_import(&core, segment, 1))
        .await
        .unwrap_err();
    let status = err.to_status();
    assert_eq!(status.code, 500, "{err}");
    assert_eq!(
        status.reason,
        format!("no DataNode watches this channel: channel not found[channel={CHANNEL}]")
    );
    assert!(core.datanodes.add_import_segment_calls().is_empty());
    assert!(core.meta.segment(segment).unwrap().binlogs.is_empty());
}

/// Acceptance of issue 10: a DataCoord restart in the middle of an import. A live import
/// completes without counting its rows twice; a dead one's segment does not stay Importing.
#[tokio::test(start_paused = true)]
async fn a_restart_during_an_import_neither_doubles_rows_nor_leaves_importing_segments() {
    let core = import_core().await;
    let live = assign_import(&core).await;
    let dead = assign_import(&core).await;
    core.services()
        .import()
        .save_import_segment(save_import(&core, live, 1))
        .await
        .unwrap();

    let core = core.restart().await;
    core.start();
    // The DataNode did not hear our answer and retries after the restart.
    core.services()
        .import()
        .save_import_segment(save_import(&core, live, 1))
        .await
        .unwrap();
    assert_eq!(
        core.meta.segment(live).unwrap().num_of_rows,
        ROWS,
        "rows counted once"
    );
    assert_eq!(core.meta.collection_row_count(COLLECTION), ROWS);

    // The import goes on: sealed by the import flush, flushed by the time-tick path.
    core.data_path().flush(import_flush(live)).await.unwrap();
    core.data_path()
        .report_datanode_tt_msgs(tick(1000, &[]))
        .await
        .unwrap();
    until("FlushSegments of the live import", || {
        core.datanodes
            .flush_segments_calls()
            .iter()
            .any(|(_, r)| r.segment_i_ds == vec![live])
    })
    .await;
    // Within an import lifetime after the restart the other import might still be alive.
    assert_eq!(state_of(&core, dead), SegmentState::Importing);

    core.data_path()
        .report_datanode_tt_msgs(tick(3_600_000, &[]))
        .await
        .unwrap();
    assert_eq!(state_of(&core, dead), SegmentState::Dropped);
    assert_eq!(state_of(&core, live), SegmentState::Sealed);
    core.stop().await;
}

/// RootCoord records the task as failed (the DataNode reported it there, not to us): the
/// segment it had allocated is dropped at the channel's next tick instead of staying Importing
/// (2.3.5 keeps it, and its logs, for ever). A task still running is left alone.
#[tokio::test(start_paused = true)]
async fn a_failed_import_task_leaves_no_importing_segment() {
    let core = import_core().await;
    core.start();
    let segment = assign_import(&core).await;
    let record = |state: ImportState| ImportTaskInfo {
        id: 900,
        collection_id: COLLECTION,
        state: Some(ImportTaskState {
            state_code: state as i32,
            error_message: "bad row 1100".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let core = &core;
    let tick_for = |seconds: u64| async move {
        for _ in 0..seconds {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            core.data_path()
                .report_datanode_tt_msgs(tick(1000, &[]))
                .await
                .unwrap();
        }
    };
    core.kv
        .save(
            "importtask/900",
            record(ImportState::ImportStarted).encode_to_vec().into(),
        )
        .await
        .unwrap();
    tick_for(30).await;
    assert_eq!(
        state_of(core, segment),
        SegmentState::Importing,
        "a running import was dropped"
    );

    core.kv
        .save(
            "importtask/900",
            record(ImportState::ImportFailed).encode_to_vec().into(),
        )
        .await
        .unwrap();
    tick_for(30).await;
    assert_eq!(state_of(core, segment), SegmentState::Dropped);
    core.stop().await;
}
