//! `DataPath`: allocation → binlogs → Flush → Flushed → recovery, time ticks, FlushChannels
//! retries and fallback, segment-state admin, and the error statuses of bad input.

use datacoord_cluster::BUFFER_NODE;
use datacoord_meta::testing::position;
use milvus_proto::common::{KeyDataPair, MsgBase, SegmentState, SegmentStats};
use milvus_proto::data::{
    AssignSegmentIdRequest, Binlog, DropVirtualChannelRequest, DropVirtualChannelSegment,
    FieldBinlog, FlushRequest, GetFlushStateRequest, GetRecoveryInfoRequestV2,
    GetSegmentInfoRequest, ReportDataNodeTtMsgsRequest, SegmentIdRequest,
    UpdateChannelCheckpointRequest, WatchChannelsRequest,
};
use milvus_proto::msg::DataNodeTtMsg;
use milvus_types::{ErrorCode, NodeId, SegmentId, compose_ts};

use crate::support::{
    self, CHANNEL, COLLECTION, DATANODE, PARTITION, PK_FIELD, VECTOR_FIELD, assign, synced, until,
};

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
    let (ch_a, ch_b, ch_c) = (
        "by-dev-rootcoord-dml_1_100v1",
        "by-dev-rootcoord-dml_2_100v2",
        "by-dev-rootcoord-dml_3_100v3",
    );
    let request = WatchChannelsRequest {
        collection_id: COLLECTION,
        channel_names: vec![ch_a.to_string(), ch_b.to_string()],
        create_timestamp: 77,
        schema: Some(support::schema()),
        ..Default::default()
    };
    core.data_path()
        .watch_channels(request.clone())
        .await
        .unwrap();
    let watched = core.channels.watched();
    let names: Vec<&str> = watched.iter().map(|spec| spec.name.as_str()).collect();
    assert_eq!(names, [ch_a, ch_b]);
    assert!(watched.iter().all(|spec| spec.create_timestamp == 77));
    // Buffered channels match no DataNode.
    assert_eq!(core.channels.node_of(ch_a), None);

    core.channels.fail_next_watch(1);
    let err = core
        .data_path()
        .watch_channels(WatchChannelsRequest {
            channel_names: vec![ch_c.to_string()],
            ..request
        })
        .await
        .unwrap_err();
    assert!(
        err.to_status()
            .reason
            .contains(&format!("watch channel {ch_c}")),
        "{err}"
    );
    assert_eq!(core.channels.watched().len(), 2);
}

/// Nothing a datanode would dereference or subscribe to wrongly reaches a watch info.
#[tokio::test]
async fn watch_channels_rejects_what_a_datanode_cannot_watch() {
    let core = support::core().await;
    let good = WatchChannelsRequest {
        collection_id: COLLECTION,
        channel_names: vec![CHANNEL.to_string()],
        start_positions: vec![KeyDataPair {
            key: "by-dev-rootcoord-dml_0".to_string(),
            data: vec![1],
        }],
        schema: Some(support::schema()),
        create_timestamp: 1,
    };
    let no_pk = {
        let mut schema = support::schema();
        schema.fields[0].is_primary_key = false;
        schema
    };
    let cases = [
        (
            "no schema",
            WatchChannelsRequest {
                schema: None,
                ..good.clone()
            },
        ),
        (
            "schema without primary key",
            WatchChannelsRequest {
                schema: Some(no_pk),
                ..good.clone()
            },
        ),
        (
            "no channels",
            WatchChannelsRequest {
                channel_names: vec![],
                ..good.clone()
            },
        ),
        (
            "empty name",
            WatchChannelsRequest {
                channel_names: vec![String::new()],
                ..good.clone()
            },
        ),
        (
            "traversal name",
            WatchChannelsRequest {
                channel_names: vec!["../../etc/passwd_100v0".to_string()],
                ..good.clone()
            },
        ),
        (
            "other collection's channel",
            WatchChannelsRequest {
                channel_names: vec!["by-dev-rootcoord-dml_0_101v0".to_string()],
                ..good.clone()
            },
        ),
        (
            "collection 0",
            WatchChannelsRequest {
                collection_id: 0,
                ..good.clone()
            },
        ),
        (
            "negative collection",
            WatchChannelsRequest {
                collection_id: -100,
                ..good.clone()
            },
        ),
        (
            "duplicate channel",
            WatchChannelsRequest {
                channel_names: vec![CHANNEL.to_string(), CHANNEL.to_string()],
                ..good.clone()
            },
        ),
        (
            "position of another channel",
            WatchChannelsRequest {
                start_positions: vec![KeyDataPair {
                    key: "by-dev-rootcoord-dml_9".to_string(),
                    data: vec![1],
                }],
                ..good.clone()
            },
        ),
    ];
    for (what, request) in cases {
        let err = core.data_path().watch_channels(request).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::PARAMETER_INVALID, "{what}: {err}");
    }
    assert!(
        core.channels.watched().is_empty(),
        "{:?}",
        core.channels.watched()
    );
    core.data_path().watch_channels(good).await.unwrap();
    assert_eq!(core.channels.watched().len(), 1);
}

#[tokio::test]
async fn assign_segment_id_rejects_channels_of_other_collections() {
    let core = support::core().await;
    for channel in ["by-dev-rootcoord-dml_0_999v0", "../../etc/passwd", ""] {
        let err = core
            .data_path()
            .assign_segment_id(AssignSegmentIdRequest {
                node_id: 0,
                peer_role: "proxy".to_string(),
                segment_id_requests: vec![SegmentIdRequest {
                    count: 10,
                    channel_name: channel.to_string(),
                    collection_id: COLLECTION,
                    partition_id: PARTITION,
                    is_import: false,
                    import_task_id: 0,
                }],
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::PARAMETER_INVALID, "{channel}: {err}");
    }
    assert!(core.channels.watched().is_empty());
    assert!(core.meta.segments_of_collection(COLLECTION).is_empty());
}

/// Logs are stored as IDs and rebuilt under the root: a path anywhere else would have
/// querynodes read, and GC delete, a file the datanode never wrote.
#[tokio::test]
async fn save_binlog_paths_rejects_foreign_paths_and_requests() {
    let core = support::core().await;
    let segment = assign(&core, 10).await;
    let data_path = core.data_path();
    let root = core.storage_root();
    let own = format!("{root}/insert_log/{COLLECTION}/{PARTITION}/{segment}/{PK_FIELD}/5");
    let with_path = |path: &str| {
        let mut request = synced(&core, segment, 1, 10, 5, false);
        request.field2_binlog_paths[2].binlogs[0].log_path = path.to_string();
        request
    };
    data_path.save_binlog_paths(with_path(&own)).await.unwrap();
    let stored = core.meta.segment(segment).unwrap();

    let mut requests = vec![
        (
            "traversal",
            with_path(&format!(
                "../../../tmp/x/insert_log/{COLLECTION}/{PARTITION}/{segment}/{PK_FIELD}/6"
            )),
        ),
        (
            "absolute",
            with_path(&format!(
                "/etc/insert_log/{COLLECTION}/{PARTITION}/{segment}/{PK_FIELD}/6"
            )),
        ),
        (
            "other segment",
            with_path(&format!(
                "{root}/insert_log/{COLLECTION}/{PARTITION}/{}/{PK_FIELD}/6",
                segment + 1
            )),
        ),
        (
            "other field",
            with_path(&format!(
                "{root}/insert_log/{COLLECTION}/{PARTITION}/{segment}/{VECTOR_FIELD}/6"
            )),
        ),
    ];
    let mut delta = synced(&core, segment, 1, 10, 5, false);
    delta.deltalogs = vec![FieldBinlog {
        field_id: 0,
        binlogs: vec![Binlog {
            log_path: "/etc/7".to_string(),
            ..Default::default()
        }],
    }];
    requests.push(("absolute delta", delta));
    let mut stats = synced(&core, segment, 1, 10, 5, false);
    stats.field2_statslog_paths[0].binlogs[0].log_path = format!(
        "{root}/stats_log/{COLLECTION}/{PARTITION}/{}/{PK_FIELD}/1",
        segment + 1
    );
    requests.push(("stats of another segment", stats));
    let mut no_channel = synced(&core, segment, 1, 10, 5, true);
    no_channel.channel.clear();
    no_channel.dropped = true;
    requests.push(("no channel", no_channel));
    let mut other_collection = synced(&core, segment, 1, 10, 5, false);
    other_collection.collection_id = COLLECTION + 1;
    requests.push(("other collection", other_collection));
    let mut foreign_start = synced(&core, segment, 1, 10, 5, false);
    let other = datacoord_meta::testing::flushed_segment(
        (COLLECTION, PARTITION, segment + 50),
        "by-dev-rootcoord-dml_1_100v1",
        &root,
        10,
        1,
    );
    core.meta.add_segment(other).await.unwrap();
    foreign_start.start_positions[0].segment_id = segment + 50;
    requests.push(("start position of another channel", foreign_start));

    for (what, request) in requests {
        let err = data_path.save_binlog_paths(request).await.unwrap_err();
        assert!(
            matches!(
                err.code(),
                ErrorCode::PARAMETER_INVALID | ErrorCode::CHANNEL_NOT_FOUND
            ),
            "{what}: {err}"
        );
    }
    assert_eq!(
        core.meta.segment(segment).unwrap(),
        stored,
        "a refused request changed the segment"
    );
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

#[tokio::test]
async fn drop_virtual_channel_rejects_segments_of_other_channels() {
    let core = support::core().await;
    let root = core.storage_root();
    let other_channel = "by-dev-rootcoord-dml_1_100v1";
    let other = datacoord_meta::testing::flushed_segment(
        (COLLECTION, PARTITION, 77),
        other_channel,
        &root,
        10,
        1,
    );
    core.meta.add_segment(other).await.unwrap();
    let segment = assign(&core, 10).await;
    let request = |reported: DropVirtualChannelSegment| DropVirtualChannelRequest {
        base: Some(MsgBase {
            source_id: DATANODE,
            ..Default::default()
        }),
        channel_name: CHANNEL.to_string(),
        segments: vec![reported],
    };
    let foreign = DropVirtualChannelSegment {
        segment_id: 77,
        ..Default::default()
    };
    let outside = DropVirtualChannelSegment {
        segment_id: segment,
        deltalogs: vec![FieldBinlog {
            field_id: 0,
            binlogs: vec![Binlog {
                log_path: "../../../etc/9".to_string(),
                ..Default::default()
            }],
        }],
        ..Default::default()
    };
    for reported in [foreign, outside] {
        let err = core
            .data_path()
            .drop_virtual_channel(request(reported))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::PARAMETER_INVALID, "{err}");
    }
    assert_eq!(state_of(&core, 77), SegmentState::Flushed);
    assert_eq!(state_of(&core, segment), SegmentState::Growing);
    assert!(core.channels.released().is_empty());
}
