//! SaveImportSegment and UnsetIsImportingState.

use milvus_proto::common::SegmentState;
use milvus_proto::data::{Binlog, SaveImportSegmentRequest};
use milvus_types::ErrorCode;

use crate::support::*;

fn ready() -> Harness {
    let h = harness();
    h.nodes.add_node(7);
    h.nodes.watch(CH, 7);
    h.nodes.set_channel_pos(b"pos-1");
    h.segments.add_importing(SEG, COLL, PART, CH);
    h
}

#[tokio::test]
async fn the_watching_datanode_adds_the_segment_then_its_binlogs_are_saved() {
    let h = ready();
    h.service.save_import_segment(save_request()).await.unwrap();

    let added = h.nodes.add_segments();
    assert_eq!(added.len(), 1);
    let (node, add) = &added[0];
    assert_eq!(*node, 7);
    let base = add.base.clone().unwrap();
    assert_eq!((base.timestamp, base.source_id), (4242, OUR_ID));
    assert_eq!(
        (
            add.segment_id,
            add.channel_name.as_str(),
            add.collection_id,
            add.partition_id,
            add.row_num
        ),
        (SEG, CH, COLL, PART, 3)
    );
    let sent = save_request().save_binlog_path_req.unwrap();
    assert_eq!(add.stats_log, sent.field2_statslog_paths);

    let saves = h.segments.saves();
    assert_eq!(saves.len(), 1);
    let save = &saves[0];
    assert!(save.importing && !save.flushed && !save.dropped);
    let position = save.start_positions[0].start_position.clone().unwrap();
    assert_eq!(position.msg_id, b"pos-1".to_vec());
    assert_eq!(position.timestamp, 4242);
    assert_eq!(save.field2_binlog_paths, sent.field2_binlog_paths);
}

/// A DataNode that reads the source file in chunks writes one log per chunk and lists the
/// field once per chunk; 2.3.5 accepts that and so must we (a refusal fails every real-sized
/// import: the DataNode retries, gives up, and the task ends Failed).
#[tokio::test]
async fn a_field_listed_once_per_chunk_is_saved() {
    let h = ready();
    let mut req = save_request();
    let save = req.save_binlog_path_req.as_mut().unwrap();
    let mut next_chunk = save.field2_binlog_paths[1].clone();
    next_chunk.binlogs[0].log_path = format!("files/insert_log/{COLL}/{PART}/{SEG}/100/9");
    save.field2_binlog_paths.push(next_chunk);
    let sent = save.field2_binlog_paths.clone();
    h.service.save_import_segment(req).await.unwrap();
    let saves = h.segments.saves();
    assert_eq!(saves.len(), 1);
    assert_eq!(saves[0].field2_binlog_paths, sent);
}

#[tokio::test]
async fn a_malformed_request_reaches_neither_the_datanode_nor_the_meta() {
    let h = ready();
    let mut cases: Vec<(&str, SaveImportSegmentRequest)> = Vec::new();
    let mut edit = |what: &'static str, change: fn(&mut SaveImportSegmentRequest)| {
        let mut req = save_request();
        change(&mut req);
        cases.push((what, req));
    };
    edit("segment 0", |r| r.segment_id = 0);
    edit("collection 0", |r| r.collection_id = 0);
    edit("partition 0", |r| r.partition_id = 0);
    edit("no channel", |r| r.channel_name.clear());
    edit("negative rows", |r| r.row_num = -1);
    edit("no save request", |r| r.save_binlog_path_req = None);
    edit("other segment inside", |r| {
        r.save_binlog_path_req.as_mut().unwrap().segment_id = SEG + 1
    });
    edit("other collection inside", |r| {
        r.save_binlog_path_req.as_mut().unwrap().collection_id = COLL + 1
    });
    edit("other channel inside", |r| {
        r.save_binlog_path_req.as_mut().unwrap().channel = "other".into()
    });
    edit("flushed", |r| {
        r.save_binlog_path_req.as_mut().unwrap().flushed = true
    });
    edit("dropped", |r| {
        r.save_binlog_path_req.as_mut().unwrap().dropped = true
    });
    edit("no start position", |r| {
        r.save_binlog_path_req
            .as_mut()
            .unwrap()
            .start_positions
            .clear()
    });
    edit("start position without position", |r| {
        r.save_binlog_path_req.as_mut().unwrap().start_positions[0].start_position = None
    });
    edit("start position of another segment", |r| {
        let save = r.save_binlog_path_req.as_mut().unwrap();
        let mut other = save.start_positions[0].clone();
        other.segment_id = 9;
        save.start_positions.push(other);
    });
    edit("no insert logs", |r| {
        r.save_binlog_path_req
            .as_mut()
            .unwrap()
            .field2_binlog_paths
            .clear()
    });
    edit("a field without logs", |r| {
        r.save_binlog_path_req.as_mut().unwrap().field2_binlog_paths[0]
            .binlogs
            .clear()
    });
    edit("an unnamed log", |r| {
        r.save_binlog_path_req.as_mut().unwrap().field2_binlog_paths[0].binlogs[0] =
            Binlog::default()
    });
    edit("a path leaving the tree", |r| {
        r.save_binlog_path_req.as_mut().unwrap().field2_binlog_paths[0].binlogs[0].log_path =
            "files/../../etc/1".into()
    });
    edit("negative entries", |r| {
        r.save_binlog_path_req.as_mut().unwrap().field2_binlog_paths[0].binlogs[0].entries_num = -3
    });
    edit("an unnamed stats log", |r| {
        r.save_binlog_path_req
            .as_mut()
            .unwrap()
            .field2_statslog_paths[0]
            .binlogs[0] = Binlog::default()
    });
    for (what, req) in cases {
        let err = h.service.save_import_segment(req).await.unwrap_err();
        let (code, error_code, reason) = status_of(&err);
        assert_eq!((code, error_code), (1100, 5), "{what}: {reason}");
    }
    assert!(h.nodes.add_segments().is_empty(), "nothing relayed");
    assert!(h.segments.saves().is_empty(), "nothing saved");
}

#[tokio::test]
async fn the_segment_must_be_the_importing_one_the_request_names() {
    let h = ready();
    let mut unknown = save_request();
    unknown.segment_id = SEG + 1;
    unknown.save_binlog_path_req.as_mut().unwrap().segment_id = SEG + 1;
    unknown
        .save_binlog_path_req
        .as_mut()
        .unwrap()
        .start_positions[0]
        .segment_id = SEG + 1;
    let err = h.service.save_import_segment(unknown).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::SEGMENT_NOT_FOUND);

    let mut other_partition = save_request();
    other_partition.partition_id = PART + 1;
    let err = h
        .service
        .save_import_segment(other_partition)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::PARAMETER_INVALID, "{err}");

    let mut growing = (*h.segments_segment()).clone();
    growing.state = SegmentState::Growing as i32;
    growing.is_importing = false;
    h.segments.insert(growing);
    let err = h
        .service
        .save_import_segment(save_request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::PARAMETER_INVALID, "{err}");

    assert!(h.nodes.add_segments().is_empty());
    assert!(h.segments.saves().is_empty());
}

impl Harness {
    fn segments_segment(&self) -> std::sync::Arc<milvus_proto::data::SegmentInfo> {
        use datacoord_import::ImportSegments;
        self.segments.segment(SEG).unwrap()
    }
}

#[tokio::test]
async fn no_datanode_watching_the_channel_is_channel_not_found() {
    let h = harness();
    h.nodes.add_node(7);
    h.segments.add_importing(SEG, COLL, PART, CH);
    let err = h
        .service
        .save_import_segment(save_request())
        .await
        .unwrap_err();
    assert_eq!(
        status_of(&err),
        (
            500,
            1,
            format!("no DataNode watches this channel: channel not found[channel={CH}]")
        )
    );
    assert!(h.segments.saves().is_empty());
}

#[tokio::test]
async fn a_failed_add_import_segment_saves_nothing_and_a_retry_succeeds() {
    let h = ready();
    h.nodes.fail_next_add_segments(1);
    let err = h
        .service
        .save_import_segment(save_request())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("AddImportSegment"), "{err}");
    assert!(h.segments.saves().is_empty());
    h.service.save_import_segment(save_request()).await.unwrap();
    assert_eq!(h.segments.saves().len(), 1);
}

#[tokio::test]
async fn a_retry_after_the_save_landed_does_not_append_the_logs_twice() {
    let h = ready();
    h.service.save_import_segment(save_request()).await.unwrap();
    h.service.save_import_segment(save_request()).await.unwrap();
    assert_eq!(h.segments.saves().len(), 1, "saved once");
    assert_eq!(
        h.nodes.add_segments().len(),
        2,
        "the node is told again (it is idempotent)"
    );

    let mut other_logs = save_request();
    other_logs
        .save_binlog_path_req
        .as_mut()
        .unwrap()
        .field2_binlog_paths = vec![insert_log(0, 8), insert_log(100, 9)];
    let err = h.service.save_import_segment(other_logs).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::PARAMETER_INVALID, "{err}");
    assert_eq!(h.segments.saves().len(), 1);
}

#[tokio::test]
async fn unset_clears_every_segment_and_reports_the_last_failure() {
    let h = harness();
    h.segments.add_importing(1, COLL, PART, CH);
    h.segments.add_importing(2, COLL, PART, CH);
    let err = h
        .service
        .unset_is_importing_state(&[1, 98, 2, 99])
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SEGMENT_NOT_FOUND);
    assert!(err.to_string().contains("99"), "the last failure: {err}");
    use datacoord_import::ImportSegments;
    assert!(!h.segments.segment(1).unwrap().is_importing);
    assert!(!h.segments.segment(2).unwrap().is_importing);
    h.service.unset_is_importing_state(&[1, 2]).await.unwrap();
}
