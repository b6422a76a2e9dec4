//! `Queries`: GetSegmentInfo (includeUnHealthy, compacted parents), segment states, statistics,
//! flushed segments, GetFlushAllState and GcConfirm.

use datacoord::testing::TestCore;
use datacoord_meta::testing::{flushed_segment, position, segment};
use milvus_config::DataCoordConfig;
use milvus_proto::common::SegmentState;
use milvus_proto::data::{GetRecoveryInfoRequestV2, GetSegmentInfoRequest, WatchChannelsRequest};
use milvus_types::ErrorCode;

use crate::support::{self, CHANNEL, COLLECTION, PARTITION};

fn info_request(ids: &[i64], include_un_healthy: bool) -> GetSegmentInfoRequest {
    GetSegmentInfoRequest {
        base: None,
        segment_i_ds: ids.to_vec(),
        include_un_healthy,
    }
}

#[tokio::test]
async fn get_segment_info_shows_dropped_segments_only_when_asked() {
    let core = support::core().await;
    let root = core.storage_root();
    // 3 was compacted into 4: the parent is Dropped, the child has collected a delete since.
    let mut parent = flushed_segment((COLLECTION, PARTITION, 3), CHANNEL, &root, 10, 2);
    parent.set_state(SegmentState::Dropped);
    parent.deltalogs.clear();
    let mut child = flushed_segment((COLLECTION, PARTITION, 4), CHANNEL, &root, 20, 2);
    child.compaction_from = vec![3];
    child.dml_position = Some(position(CHANNEL, 900));
    core.meta.add_segment(parent).await.unwrap();
    core.meta.add_segment(child).await.unwrap();
    core.meta
        .update_channel_checkpoint(CHANNEL, position(CHANNEL, 950))
        .await
        .unwrap();

    let queries = core.queries();
    let err = queries
        .get_segment_info(info_request(&[4, 3], false))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SEGMENT_NOT_FOUND, "{err}");

    let answer = queries
        .get_segment_info(info_request(&[4, 3], true))
        .unwrap();
    let ids: Vec<i64> = answer.infos.iter().map(|info| info.id).collect();
    assert_eq!(ids, [4, 3]);
    let parent = &answer.infos[1];
    assert_eq!(parent.state(), SegmentState::Dropped);
    // The parent answers with its child's deletes and position, full paths under the root.
    assert_eq!(parent.deltalogs.len(), 1);
    let delete_log = &parent.deltalogs[0].binlogs[0].log_path;
    assert!(
        delete_log.starts_with(&root) && delete_log.contains("/delta_log/"),
        "{delete_log}"
    );
    assert_eq!(parent.dml_position.as_ref().map(|p| p.timestamp), Some(900));
    let insert_log = &parent.binlogs[0].binlogs[0].log_path;
    assert!(insert_log.starts_with(&root), "{insert_log}");
    assert_eq!(
        answer.channel_checkpoint.get(CHANNEL).map(|p| p.timestamp),
        Some(950)
    );
}

#[tokio::test]
async fn states_statistics_and_listings_follow_the_segment_states() {
    let core = support::core().await;
    let root = core.storage_root();
    core.meta
        .add_segment(flushed_segment(
            (COLLECTION, PARTITION, 5),
            CHANNEL,
            &root,
            1,
            3,
        ))
        .await
        .unwrap();
    core.meta
        .add_segment(segment(
            6,
            COLLECTION,
            PARTITION,
            CHANNEL,
            SegmentState::Growing,
        ))
        .await
        .unwrap();
    core.meta
        .add_segment(segment(
            7,
            COLLECTION,
            PARTITION + 1,
            CHANNEL,
            SegmentState::Dropped,
        ))
        .await
        .unwrap();
    let queries = core.queries();

    let states = queries.get_segment_states(&[5, 7, 99]).unwrap();
    let states: Vec<(i64, i32)> = states.iter().map(|s| (s.segment_id, s.state)).collect();
    assert_eq!(
        states,
        [
            (5, SegmentState::Flushed as i32),
            (7, SegmentState::NotExist as i32),
            (99, SegmentState::NotExist as i32),
        ]
    );

    let rows = queries.get_collection_statistics(COLLECTION).unwrap();
    assert_eq!(
        (rows[0].key.as_str(), rows[0].value.as_str()),
        ("row_count", "30")
    );
    let rows = queries
        .get_partition_statistics(COLLECTION, &[PARTITION + 1])
        .unwrap();
    assert_eq!(rows[0].value, "0");

    assert_eq!(
        queries.get_flushed_segments(COLLECTION, -1, false).unwrap(),
        [5]
    );
    let mut with_dropped = queries.get_flushed_segments(COLLECTION, -1, true).unwrap();
    with_dropped.sort();
    assert_eq!(with_dropped, [5, 7]);
    assert_eq!(
        queries
            .get_segments_by_states(COLLECTION, PARTITION, &[SegmentState::Growing as i32])
            .unwrap(),
        [6]
    );

    let (fields, paths) = queries.get_insert_binlog_paths(5).unwrap();
    assert_eq!(fields, [0, 1, 100]);
    assert!(paths.iter().all(|p| p.values.len() == 3));
    let err = queries.get_insert_binlog_paths(7).unwrap_err();
    assert_eq!(err.code(), ErrorCode::SEGMENT_NOT_FOUND, "{err}");

    assert!(!queries.gc_confirm(COLLECTION, -1).await.unwrap());
    assert!(queries.gc_confirm(COLLECTION + 1, -1).await.unwrap());
}

#[tokio::test]
async fn flush_all_state_checks_the_database_asked_for() {
    let core = support::core().await;
    let queries = core.queries();
    let err = queries.get_flush_all_state("nowhere", 1).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::DATABASE_NOT_FOUND, "{err}");
    assert!(!queries.get_flush_all_state("default", 1).await.unwrap());
    core.meta
        .update_channel_checkpoint(CHANNEL, position(CHANNEL, 5))
        .await
        .unwrap();
    assert!(queries.get_flush_all_state("default", 5).await.unwrap());
    assert!(!queries.get_flush_all_state("", 6).await.unwrap());
}

/// Segments 3 and 4 (Dropped) were compacted into 5 (Flushed, 30 rows, no index built).
async fn compacted_core(min_rows_to_index: i64) -> TestCore {
    let mut config = DataCoordConfig::default();
    config.indexcoord.min_segment_num_rows_to_enable_index = min_rows_to_index;
    let core = support::core_with(config).await;
    core.data_path()
        .watch_channels(WatchChannelsRequest {
            collection_id: COLLECTION,
            channel_names: vec![CHANNEL.to_string()],
            schema: Some(support::schema()),
            ..Default::default()
        })
        .await
        .unwrap();
    let root = core.storage_root();
    for parent in [3, 4] {
        let mut seg = flushed_segment((COLLECTION, PARTITION, parent), CHANNEL, &root, 10, 2);
        seg.set_state(SegmentState::Dropped);
        seg.dml_position = Some(position(CHANNEL, 100));
        core.meta.add_segment(seg).await.unwrap();
    }
    let mut child = flushed_segment((COLLECTION, PARTITION, 5), CHANNEL, &root, 20, 3);
    child.compaction_from = vec![3, 4];
    child.dml_position = Some(position(CHANNEL, 200));
    core.meta.add_segment(child).await.unwrap();
    core
}

#[tokio::test]
async fn recovery_loads_the_parents_of_an_unindexed_compaction_result() {
    let recovery_request = GetRecoveryInfoRequestV2 {
        base: None,
        collection_id: COLLECTION,
        partition_i_ds: Vec::new(),
    };
    // Below `minSegmentNumRowsToEnableIndex` a segment is never indexed: it is loaded as is.
    let core = compacted_core(1024).await;
    let recovery = core
        .queries()
        .get_recovery_info_v2(recovery_request.clone())
        .await
        .unwrap();
    let channel = &recovery.channels[0];
    assert_eq!(channel.flushed_segment_ids, [5]);
    assert_eq!(channel.dropped_segment_ids, [3, 4]);

    // Above it, the result waits for its index: QueryCoord loads the parents instead.
    let core = compacted_core(10).await;
    let recovery = core
        .queries()
        .get_recovery_info_v2(recovery_request)
        .await
        .unwrap();
    let channel = &recovery.channels[0];
    assert_eq!(channel.flushed_segment_ids, [3, 4]);
    assert!(channel.dropped_segment_ids.is_empty());
}
