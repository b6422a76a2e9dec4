//! `DataPath`: allocation → binlogs → Flush → Flushed → recovery, time ticks, FlushChannels
//! retries and fallback, segment-state admin, and the error statuses of bad input.

use datacoord_cluster::BUFFER_NODE;
use datacoord_meta::testing::position;
use milvus_proto::common::{MsgBase, SegmentState, SegmentStats};
use milvus_proto::data::{
    DropVirtualChannelRequest, FlushRequest, GetFlushStateRequest, GetRecoveryInfoRequestV2,
    GetSegmentInfoRequest, ReportDataNodeTtMsgsRequest, UpdateChannelCheckpointRequest,
    WatchChannelsRequest,
};
use milvus_proto::msg::DataNodeTtMsg;
use milvus_types::{ErrorCode, NodeId, SegmentId, compose_ts};

use crate::support::{self, CHANNEL, COLLECTION, DATANODE, PARTITION, assign, synced, until};

fn flush_request() -> FlushRequest {
    FlushRequest {
        collection_id: COLLECTION,
        ..Default::default()
    }
}

fn state_of(core: &datacoord::testing::TestCore, segment: SegmentId) -> SegmentState {
    core.meta.segment(segment).expect("segment in meta").state()
}

#[tokio::test(start_paused = true)]
async fn a_segment_goes_from_allocation_to_recovery_info() {
    let core = support::core().await;
    core.start();
    let segment = assign(&core, 100).await;
    assert_eq!(core.channels.node_of(CHANNEL), Some(DATANODE));
    assert_eq!(state_of(&core, segment), SegmentState::Growing);

    let data_path = core.data_path();
    data_path
        .save_binlog_paths(synced(&core, segment, 1, 100, 50, false))
        .await
        .unwrap();
    let flushed = data_path.flush(flush_request()).await.unwrap();
    assert_eq!(flushed.segment_i_ds, vec![segment]);
    assert_eq!(state_of(&core, segment), SegmentState::Sealed);
    let sent = core.datanodes.flush_channels_calls();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, DATANODE);
    assert_eq!(sent[0].1.channels, vec![CHANNEL.to_string()]);
    assert_eq!(sent[0].1.flush_ts, flushed.flush_ts);
    assert!(flushed.flush_ts > 0);

    let flush_state = GetFlushStateRequest {
        segment_i_ds: vec![segment],
        flush_ts: flushed.flush_ts,
        collection_id: COLLECTION,
        ..Default::default()
    };
    assert!(!core.queries().get_flush_state(&flush_state).unwrap());

    // The DataNode flushes the segment: its last sync comes with `flushed`.
    data_path
        .save_binlog_paths(synced(&core, segment, 2, 100, 60, true))
        .await
        .unwrap();
    until("segment flushed", || {
        state_of(&core, segment) == SegmentState::Flushed
    })
    .await;
    data_path
        .update_channel_checkpoint(UpdateChannelCheckpointRequest {
            base: None,
            v_channel: CHANNEL.to_string(),
            position: Some(position(CHANNEL, flushed.flush_ts)),
        })
        .await
        .unwrap();
    assert!(core.queries().get_flush_state(&flush_state).unwrap());

    let recovery = core
        .queries()
        .get_recovery_info_v2(GetRecoveryInfoRequestV2 {
            base: None,
            collection_id: COLLECTION,
            partition_i_ds: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(recovery.channels.len(), 1);
    let channel = &recovery.channels[0];
    assert_eq!(channel.channel_name, CHANNEL);
    assert_eq!(channel.flushed_segment_ids, vec![segment]);
    assert!(channel.unflushed_segment_ids.is_empty());
    assert_eq!(
        channel.seek_position.as_ref().map(|p| p.timestamp),
        Some(flushed.flush_ts)
    );
    assert_eq!(recovery.segments.len(), 1);
    let info = &recovery.segments[0];
    assert_eq!(
        (info.id, info.collection_id, info.partition_id),
        (segment, COLLECTION, PARTITION)
    );
    // Two syncs of 100 rows each: the binlogs say more than the last checkpoint.
    assert_eq!(info.num_of_rows, 200);
    core.stop().await;
}

#[tokio::test(start_paused = true)]
async fn time_ticks_flush_sealed_segments_on_their_datanode() {
    let core = support::core().await;
    let segment = assign(&core, 10).await;
    core.data_path().flush(flush_request()).await.unwrap();
    let tick = |node: NodeId| {
        // Far past every allocation's expiry.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        ReportDataNodeTtMsgsRequest {
            base: None,
            msgs: vec![DataNodeTtMsg {
                base: Some(MsgBase {
                    source_id: node,
                    ..Default::default()
                }),
                channel_name: CHANNEL.to_string(),
                timestamp: compose_ts(now_ms + 3_600_000, 0),
                // An empty sealed segment would be dropped instead of flushed.
                segments_stats: vec![SegmentStats {
                    segment_id: segment,
                    num_rows: 10,
                }],
            }],
        }
    };
    // A node that does not watch the channel is ignored.
    core.data_path()
        .report_datanode_tt_msgs(tick(DATANODE + 1))
        .await
        .unwrap();
    core.data_path()
        .report_datanode_tt_msgs(tick(DATANODE))
        .await
        .unwrap();
    until("FlushSegments sent", || {
        !core.datanodes.flush_segments_calls().is_empty()
    })
    .await;
    let sent = core.datanodes.flush_segments_calls();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (node, request) = &sent[0];
    assert_eq!(*node, DATANODE);
    assert_eq!(request.segment_i_ds, vec![segment]);
    assert_eq!(request.channel_name, CHANNEL);
    assert_eq!(request.collection_id, COLLECTION);
    core.stop().await;
}

#[tokio::test(start_paused = true)]
async fn flush_retries_flush_channels_and_falls_back_without_it() {
    let core = support::core().await;
    assign(&core, 10).await;
    core.datanodes.fail_next_flush_channels(DATANODE, 2);
    let answer = core.data_path().flush(flush_request()).await.unwrap();
    assert!(answer.flush_ts > 0);
    assert_eq!(core.datanodes.flush_channels_calls().len(), 3);

    // A DataNode older than FlushChannels: the flush still succeeds, with flush_ts 0.
    core.datanodes.set_flush_channels_unimplemented(DATANODE);
    let answer = core.data_path().flush(flush_request()).await.unwrap();
    assert_eq!(answer.flush_ts, 0);
    assert_eq!(core.datanodes.flush_channels_calls().len(), 4);
}

#[tokio::test]
async fn save_binlog_paths_rejects_what_does_not_fit() {
    let core = support::core().await;
    let segment = assign(&core, 10).await;
    let data_path = core.data_path();

    let unknown = synced(&core, segment + 1000, 1, 10, 5, false);
    let err = data_path.save_binlog_paths(unknown).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::SEGMENT_NOT_FOUND, "{err}");

    let mut from_elsewhere = synced(&core, segment, 1, 10, 5, false);
    from_elsewhere.base.as_mut().unwrap().source_id = DATANODE + 1;
    let err = data_path
        .save_binlog_paths(from_elsewhere)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CHANNEL_NOT_FOUND, "{err}");
    assert!(core.meta.segment(segment).unwrap().binlogs.is_empty());

    let err = data_path
        .update_channel_checkpoint(UpdateChannelCheckpointRequest {
            base: None,
            v_channel: CHANNEL.to_string(),
            position: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::PARAMETER_INVALID, "{err}");
}

#[tokio::test]
async fn segment_states_are_persisted_and_checked() {
    let core = support::core().await;
    let segment = assign(&core, 10).await;
    let err = core
        .data_path()
        .set_segment_state(segment, 42)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::PARAMETER_INVALID, "{err}");
    core.data_path()
        .set_segment_state(segment, SegmentState::Flushed as i32)
        .await
        .unwrap();

    let core = core.restart().await;
    assert_eq!(state_of(&core, segment), SegmentState::Flushed);
    core.data_path()
        .mark_segments_dropped(&[segment])
        .await
        .unwrap();
    assert_eq!(state_of(&core, segment), SegmentState::Dropped);
    let err = core
        .queries()
        .get_segment_info(GetSegmentInfoRequest {
            base: None,
            segment_i_ds: vec![segment],
            include_un_healthy: false,
        })
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SEGMENT_NOT_FOUND, "{err}");
}

#[tokio::test]
async fn watch_channels_assigns_every_channel_and_stops_at_a_failure() {
    let core = support::core().await;
    core.channels.assign_new_to(None);
    let request = WatchChannelsRequest {
        collection_id: COLLECTION,
        channel_names: vec!["ch_a".to_string(), "ch_b".to_string()],
        create_timestamp: 77,
        ..Default::default()
    };
    core.data_path()
        .watch_channels(request.clone())
        .await
        .unwrap();
    let watched = core.channels.watched();
    let names: Vec<&str> = watched.iter().map(|spec| spec.name.as_str()).collect();
    assert_eq!(names, ["ch_a", "ch_b"]);
    assert!(watched.iter().all(|spec| spec.create_timestamp == 77));
    // Buffered channels match no DataNode.
    assert_eq!(core.channels.node_of("ch_a"), None);

    core.channels.fail_next_watch(1);
    let err = core
        .data_path()
        .watch_channels(WatchChannelsRequest {
            channel_names: vec!["ch_c".to_string()],
            ..request
        })
        .await
        .unwrap_err();
    assert!(
        err.to_status().reason.contains("watch channel ch_c"),
        "{err}"
    );
    assert_eq!(core.channels.watched().len(), 2);
}

#[tokio::test]
async fn drop_virtual_channel_drops_its_segments_and_releases_it() {
    let core = support::core().await;
    let segment = assign(&core, 10).await;
    let request = |node: NodeId| DropVirtualChannelRequest {
        base: Some(MsgBase {
            source_id: node,
            ..Default::default()
        }),
        channel_name: CHANNEL.to_string(),
        segments: Vec::new(),
    };
    let err = core
        .data_path()
        .drop_virtual_channel(request(BUFFER_NODE))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CHANNEL_NOT_FOUND, "{err}");
    core.data_path()
        .drop_virtual_channel(request(DATANODE))
        .await
        .unwrap();
    assert_eq!(state_of(&core, segment), SegmentState::Dropped);
    assert_eq!(
        core.channels.released(),
        vec![(DATANODE, CHANNEL.to_string())]
    );
}
