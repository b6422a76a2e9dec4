//! E.8–E.10: allocation expiry, cleanup, flush selection and the flush gap; stats; drops.

use std::time::Duration;

use datacoord_segments::Clock;
use milvus_proto::common::SegmentState;
use milvus_types::SegmentId;

use crate::support::*;

/// A segment with `rows` allocated at T0 + 1000 (expiring at T0 + 3000), then sealed by Flush.
async fn sealed(h: &Harness, rows: i64) -> SegmentId {
    h.set_tso(T0 + 1000);
    let id = h
        .manager
        .alloc_segment(COLL, PART, CH, rows, &schema())
        .await
        .unwrap()[0]
        .segment_id;
    assert_eq!(
        h.manager
            .seal_all_segments(COLL, &[id], false)
            .await
            .unwrap(),
        vec![id]
    );
    id
}

#[tokio::test]
async fn sealed_segment_is_flushable_once_its_allocations_expired() {
    let h = harness().await;
    let id = sealed(&h, 100).await;
    h.manager.update_segment_stats(&[(id, 100)]);
    let before = h
        .manager
        .flushable_on_tick(CH, ts(T0 + 2999))
        .await
        .unwrap();
    assert!(before.is_empty(), "a proxy may still write until T0 + 3000");
    let at = h
        .manager
        .flushable_on_tick(CH, ts(T0 + 3000))
        .await
        .unwrap();
    assert_eq!(at, vec![id]);
    assert_eq!(
        h.manager.runtime(id).unwrap().last_flush_time,
        h.clock.now()
    );
    assert!(
        h.manager
            .flushable_on_tick(OTHER_CH, ts(T0 + 3000))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn flush_requests_are_two_seconds_apart() {
    let h = harness().await;
    let id = sealed(&h, 100).await;
    h.manager.update_segment_stats(&[(id, 100)]);
    assert_eq!(
        h.manager
            .flushable_on_tick(CH, ts(T0 + 3000))
            .await
            .unwrap(),
        vec![id]
    );
    assert!(
        h.manager
            .flushable_on_tick(CH, ts(T0 + 3500))
            .await
            .unwrap()
            .is_empty()
    );
    h.clock.advance(Duration::from_millis(1999));
    assert!(
        h.manager
            .flushable_on_tick(CH, ts(T0 + 4000))
            .await
            .unwrap()
            .is_empty()
    );
    h.clock.advance(Duration::from_millis(1));
    assert_eq!(
        h.manager
            .flushable_on_tick(CH, ts(T0 + 4500))
            .await
            .unwrap(),
        vec![id]
    );
}

#[tokio::test]
async fn empty_sealed_segment_is_dropped_when_its_allocations_expired() {
    let h = harness().await;
    let id = sealed(&h, 100).await;
    assert!(
        h.manager
            .flushable_on_tick(CH, ts(T0 + 2999))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(h.state(id), SegmentState::Sealed);
    assert!(h.manager.managed_segments().contains(&id));

    assert!(
        h.manager
            .flushable_on_tick(CH, ts(T0 + 3000))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(h.state(id), SegmentState::Dropped);
    assert!(h.manager.managed_segments().is_empty());
}

#[tokio::test]
async fn failed_cleanup_drop_is_retried_on_the_next_tick() {
    let h = harness().await;
    let id = sealed(&h, 100).await;
    h.store.fail_next_writes(1);
    h.manager
        .flushable_on_tick(CH, ts(T0 + 3000))
        .await
        .unwrap();
    assert_eq!(h.state(id), SegmentState::Sealed);
    assert_eq!(h.manager.managed_segments(), vec![id]);
    h.manager
        .flushable_on_tick(CH, ts(T0 + 3500))
        .await
        .unwrap();
    assert_eq!(h.state(id), SegmentState::Dropped);
    assert!(h.manager.managed_segments().is_empty());
}

#[tokio::test]
async fn stale_import_segment_is_dropped_after_its_expiry() {
    let h = harness().await;
    h.set_tso(T0);
    let import = h
        .manager
        .alloc_import_segment(COLL, PART, CH, 10, 5, &schema())
        .await
        .unwrap();
    let expiry_ms = T0 + 900_000;
    h.manager
        .flushable_on_tick(CH, ts(expiry_ms))
        .await
        .unwrap();
    assert_eq!(h.state(import.segment_id), SegmentState::Importing);
    h.manager
        .flushable_on_tick(CH, ts(expiry_ms) + 1)
        .await
        .unwrap();
    assert_eq!(h.state(import.segment_id), SegmentState::Dropped);
    assert!(h.manager.managed_segments().is_empty());
}

#[tokio::test]
async fn sealed_import_segment_is_flushable_before_expiry_and_without_rows() {
    let h = harness().await;
    h.set_tso(T0);
    let id = h
        .manager
        .alloc_import_segment(COLL, PART, CH, 10, 5, &schema())
        .await
        .unwrap()
        .segment_id;
    h.manager.seal_all_segments(COLL, &[], true).await.unwrap();
    assert_eq!(
        h.manager.flushable_on_tick(CH, ts(T0 + 10)).await.unwrap(),
        vec![id]
    );
}

#[tokio::test]
async fn expired_allocations_free_their_rows_for_first_fit() {
    let h = harness().await;
    h.set_tso(T0);
    let first = h
        .manager
        .alloc_segment(COLL, PART, CH, 600, &schema())
        .await
        .unwrap()[0]
        .segment_id;
    h.set_tso(T0 + 100);
    let second = h
        .manager
        .alloc_segment(COLL, PART, CH, 600, &schema())
        .await
        .unwrap()[0]
        .segment_id;
    assert_ne!(first, second, "424 free rows cannot take 600");

    h.manager
        .flushable_on_tick(OTHER_CH, ts(T0 + 2000))
        .await
        .unwrap();
    assert_eq!(
        h.manager.runtime(first).unwrap().allocated_rows,
        600,
        "other channel"
    );

    h.manager
        .flushable_on_tick(CH, ts(T0 + 2000))
        .await
        .unwrap();
    assert_eq!(h.manager.runtime(first).unwrap().allocated_rows, 0);
    assert_eq!(h.manager.runtime(second).unwrap().allocated_rows, 600);

    h.set_tso(T0 + 2100);
    let third = h
        .manager
        .alloc_segment(COLL, PART, CH, 600, &schema())
        .await
        .unwrap();
    assert_eq!(third[0].segment_id, first);
    assert_eq!(h.manager.runtime(first).unwrap().last_expire, ts(T0 + 4100));
}

#[tokio::test]
async fn stats_only_raise_rows_of_managed_unflushed_segments() {
    let h = harness_with(
        vec![
            stored_segment(10, SegmentState::Growing, 50),
            stored_segment(11, SegmentState::Sealed, 0),
        ],
        |_| {},
    )
    .await;
    assert_eq!(
        h.manager.curr_rows(10),
        Some(50),
        "starts at the persisted count"
    );
    let written_at_start = h.manager.runtime(10).unwrap().last_written_time;
    h.clock.advance(Duration::from_secs(5));
    h.manager.update_segment_stats(&[(10, 40), (99, 7)]);
    assert_eq!(h.manager.curr_rows(10), Some(50), "never lowered");
    assert_eq!(
        h.manager.runtime(10).unwrap().last_written_time,
        written_at_start
    );
    h.manager.update_segment_stats(&[(10, 70)]);
    assert_eq!(h.manager.curr_rows(10), Some(70));
    assert_eq!(
        h.manager.runtime(10).unwrap().last_written_time,
        Some(h.clock.now())
    );
    assert_eq!(h.manager.curr_rows(99), None);

    // Flushing (SaveBinlogPaths raced ahead of drop_segment): ignored.
    h.store
        .modify(11, |s| s.state = SegmentState::Flushing as i32);
    h.manager.update_segment_stats(&[(11, 30)]);
    assert_eq!(h.manager.curr_rows(11), Some(0));
}

#[tokio::test]
async fn dropping_stops_managing() {
    let on_other = |id| {
        let mut seg = stored_segment(id, SegmentState::Growing, 0);
        seg.insert_channel = OTHER_CH.to_string();
        seg
    };
    let h = harness_with(
        vec![
            stored_segment(10, SegmentState::Growing, 0),
            stored_segment(11, SegmentState::Sealed, 0),
            on_other(12),
            on_other(13),
        ],
        |_| {},
    )
    .await;
    h.manager.drop_segment(10);
    assert_eq!(h.manager.managed_segments(), vec![11, 12, 13]);
    assert_eq!(h.manager.curr_rows(10), None);

    // A segment dropped in meta by someone else is forgotten along with the channel's.
    h.store
        .modify(13, |s| s.state = SegmentState::Dropped as i32);
    h.manager.drop_segments_of_channel(CH);
    assert_eq!(h.manager.managed_segments(), vec![12]);
    let a = h
        .manager
        .alloc_segment(COLL, PART, OTHER_CH, 5, &schema())
        .await
        .unwrap();
    assert_eq!(a[0].segment_id, 12);
}
