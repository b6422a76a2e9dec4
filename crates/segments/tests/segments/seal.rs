//! E.7 seal policies on a tick, and E.11 sealing by the Flush RPC.

use std::time::Duration;

use milvus_proto::common::SegmentState;
use milvus_proto::data::{Binlog, FieldBinlog};
use milvus_types::{ErrorCode, SegmentId};

use crate::support::*;

fn statslogs(files_per_field: &[usize]) -> Vec<FieldBinlog> {
    files_per_field
        .iter()
        .enumerate()
        .map(|(field, files)| FieldBinlog {
            field_id: 100 + field as i64,
            binlogs: (0..*files)
                .map(|i| Binlog {
                    log_id: i as i64 + 1,
                    ..Default::default()
                })
                .collect(),
        })
        .collect()
}

/// A new Growing segment (a full-size request always opens one) whose allocation was made at
/// T0 + 1000, so it expires at T0 + 3000.
async fn growing(h: &Harness) -> SegmentId {
    h.set_tso(T0 + 1000);
    let allocations = h
        .manager
        .alloc_segment(COLL, PART, CH, MAX_ROWS, &schema())
        .await
        .unwrap();
    assert_eq!(allocations.len(), 1);
    allocations[0].segment_id
}

#[tokio::test]
async fn statslog_file_count_seals_at_the_limit() {
    let mut at_limit = stored_segment(10, SegmentState::Growing, 0);
    at_limit.statslogs = statslogs(&[16, 16]);
    let mut below = stored_segment(11, SegmentState::Growing, 0);
    below.statslogs = statslogs(&[16, 15]);
    // Insert binlogs do not count.
    below.binlogs = statslogs(&[40]);
    let h = harness_with(vec![at_limit, below], |_| {}).await;
    h.manager.flushable_on_tick(CH, ts(T0 + 100)).await.unwrap();
    assert_eq!(h.state(10), SegmentState::Sealed);
    assert_eq!(h.state(11), SegmentState::Growing);
}

#[tokio::test]
async fn lifetime_counts_from_the_last_allocation_expiry() {
    let h = harness_with(Vec::new(), |c| c.max_life = Duration::from_secs(10)).await;
    let id = growing(&h).await;
    // Rows keep the sealed segment from being dropped as empty in the same tick.
    h.manager.update_segment_stats(&[(id, 10)]);
    let last_expire_ms = T0 + 3000;
    h.manager
        .flushable_on_tick(CH, ts(last_expire_ms + 9_999))
        .await
        .unwrap();
    assert_eq!(h.state(id), SegmentState::Growing);
    h.manager
        .flushable_on_tick(CH, ts(last_expire_ms + 10_000))
        .await
        .unwrap();
    assert_eq!(h.state(id), SegmentState::Sealed);
}

#[tokio::test]
async fn capacity_seals_at_the_seal_proportion_of_current_rows() {
    let h = harness().await;
    let id = growing(&h).await;
    // 0.23 × 1024 = 235.52
    h.manager.update_segment_stats(&[(id, 235)]);
    h.manager
        .flushable_on_tick(CH, ts(T0 + 1100))
        .await
        .unwrap();
    assert_eq!(h.state(id), SegmentState::Growing);
    h.manager.update_segment_stats(&[(id, 236)]);
    h.manager
        .flushable_on_tick(CH, ts(T0 + 1200))
        .await
        .unwrap();
    assert_eq!(h.state(id), SegmentState::Sealed);
}

#[tokio::test]
async fn idle_seals_after_max_idle_time_only_above_the_size_threshold() {
    let h = harness().await;
    let busy = growing(&h).await;
    let small = growing(&h).await;
    let new_small = h
        .manager
        .alloc_segment(COLL, PART, OTHER_CH, 1, &schema())
        .await
        .unwrap();
    assert_ne!(busy, small);
    // Threshold: 16/512 × 1024 = 32 rows (strictly more needed).
    h.manager.update_segment_stats(&[(busy, 33), (small, 32)]);
    h.clock.advance(Duration::from_secs(600));
    h.manager
        .flushable_on_tick(CH, ts(T0 + 1100))
        .await
        .unwrap();
    assert_eq!(
        h.state(busy),
        SegmentState::Growing,
        "idle must exceed max_idle_time"
    );
    h.clock.advance(Duration::from_millis(1));
    h.manager
        .flushable_on_tick(CH, ts(T0 + 1200))
        .await
        .unwrap();
    assert_eq!(h.state(busy), SegmentState::Sealed);
    assert_eq!(h.state(small), SegmentState::Growing);
    assert_eq!(h.state(new_small[0].segment_id), SegmentState::Growing);
}

#[tokio::test]
async fn fresh_writes_reset_the_idle_clock() {
    let h = harness().await;
    let id = growing(&h).await;
    h.manager.update_segment_stats(&[(id, 100)]);
    h.clock.advance(Duration::from_secs(500));
    h.manager.update_segment_stats(&[(id, 101)]);
    h.clock.advance(Duration::from_secs(500));
    h.manager
        .flushable_on_tick(CH, ts(T0 + 1100))
        .await
        .unwrap();
    assert_eq!(h.state(id), SegmentState::Growing);
    // A report that does not grow the count is no write.
    h.manager.update_segment_stats(&[(id, 101)]);
    h.clock.advance(Duration::from_secs(101));
    h.manager
        .flushable_on_tick(CH, ts(T0 + 1200))
        .await
        .unwrap();
    assert_eq!(h.state(id), SegmentState::Sealed);
}

#[tokio::test]
async fn policies_only_look_at_the_ticking_channel() {
    let h = harness().await;
    let id = growing(&h).await;
    h.manager.update_segment_stats(&[(id, MAX_ROWS)]);
    h.manager
        .flushable_on_tick(OTHER_CH, ts(T0 + 1100))
        .await
        .unwrap();
    assert_eq!(h.state(id), SegmentState::Growing);
    h.manager
        .flushable_on_tick(CH, ts(T0 + 1100))
        .await
        .unwrap();
    assert_eq!(h.state(id), SegmentState::Sealed);
}

#[tokio::test]
async fn seal_error_fails_the_tick() {
    let h = harness().await;
    let id = growing(&h).await;
    h.manager.update_segment_stats(&[(id, MAX_ROWS)]);
    h.store.fail_next_writes(1);
    let err = h
        .manager
        .flushable_on_tick(CH, ts(T0 + 1100))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::IO_FAILED);
    assert_eq!(h.state(id), SegmentState::Growing);
}

#[tokio::test]
async fn flush_seals_growing_segments_of_the_collection() {
    let mut other_coll = stored_segment(12, SegmentState::Growing, 0);
    other_coll.collection_id = COLL + 1;
    let h = harness_with(
        vec![
            stored_segment(10, SegmentState::Growing, 0),
            stored_segment(11, SegmentState::Sealed, 0),
            other_coll,
            stored_segment(13, SegmentState::Flushing, 0),
        ],
        |_| {},
    )
    .await;
    let import = h
        .manager
        .alloc_import_segment(COLL, PART, CH, 10, 1, &schema())
        .await
        .unwrap()
        .segment_id;

    let sealed = h.manager.seal_all_segments(COLL, &[], false).await.unwrap();
    assert_eq!(sealed, vec![10, 11]);
    assert_eq!(h.state(10), SegmentState::Sealed);
    assert_eq!(h.state(12), SegmentState::Growing);
    assert_eq!(h.state(import), SegmentState::Importing);

    let again = h.manager.seal_all_segments(COLL, &[], false).await.unwrap();
    assert_eq!(again, vec![10, 11], "idempotent");
}

#[tokio::test]
async fn import_flush_seals_importing_segments_but_not_growing_ones() {
    let h = harness_with(vec![stored_segment(10, SegmentState::Growing, 0)], |_| {}).await;
    let import = h
        .manager
        .alloc_import_segment(COLL, PART, CH, 10, 1, &schema())
        .await
        .unwrap()
        .segment_id;
    let sealed = h.manager.seal_all_segments(COLL, &[], true).await.unwrap();
    assert_eq!(sealed, vec![import]);
    assert_eq!(h.state(import), SegmentState::Sealed);
    assert_eq!(h.state(10), SegmentState::Growing);
}

#[tokio::test]
async fn flush_with_ids_seals_only_those_even_if_unmanaged() {
    let h = harness_with(
        vec![
            stored_segment(10, SegmentState::Growing, 0),
            stored_segment(11, SegmentState::Growing, 0),
        ],
        |_| {},
    )
    .await;
    // An Importing segment from before a restart is not managed but can be sealed by ID.
    h.store
        .insert(stored_segment(30, SegmentState::Importing, 0));
    let sealed = h
        .manager
        .seal_all_segments(COLL, &[11, 30, 99], true)
        .await
        .unwrap();
    assert_eq!(sealed, vec![30]);
    let sealed = h
        .manager
        .seal_all_segments(COLL, &[11, 99], false)
        .await
        .unwrap();
    assert_eq!(sealed, vec![11]);
    assert_eq!(h.state(10), SegmentState::Growing);
}

#[tokio::test]
async fn flush_stops_at_the_first_store_error() {
    let h = harness_with(
        vec![
            stored_segment(10, SegmentState::Growing, 0),
            stored_segment(11, SegmentState::Growing, 0),
        ],
        |_| {},
    )
    .await;
    h.store.fail_next_writes(1);
    let err = h
        .manager
        .seal_all_segments(COLL, &[], false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::IO_FAILED);
    assert_eq!(h.state(10), SegmentState::Growing);
    assert_eq!(h.state(11), SegmentState::Growing);
}
