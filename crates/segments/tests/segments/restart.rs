//! E.4: what a new manager takes over from the store.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use datacoord_segments::{ManualClock, MemorySegmentStore, SegmentManager};
use milvus_proto::common::SegmentState;
use milvus_rootcoord_client::FakeAllocator;
use milvus_types::{ErrorCode, MilvusError};

use crate::support::*;

#[tokio::test]
async fn growing_and_sealed_segments_are_managed_with_a_fresh_expiry_guard() {
    let mut sealed_with_expiry = stored_segment(11, SegmentState::Sealed, 5);
    sealed_with_expiry.last_expire_time = ts(T0 + 60_000);
    let mut old_growing = stored_segment(10, SegmentState::Growing, 7);
    old_growing.last_expire_time = ts(T0 - 60_000);
    let h = harness_with(
        vec![
            stored_segment(14, SegmentState::Flushed, 0),
            old_growing,
            stored_segment(13, SegmentState::Importing, 0),
            sealed_with_expiry,
            stored_segment(12, SegmentState::Sealed, 0),
            stored_segment(15, SegmentState::Dropped, 0),
        ],
        |_| {},
    )
    .await;
    assert_eq!(h.manager.managed_segments(), vec![10, 11, 12, 13]);
    let guard = ts(T0 + 2000);
    assert_eq!(h.manager.runtime(10).unwrap().last_expire, guard);
    assert_eq!(
        h.manager.runtime(11).unwrap().last_expire,
        ts(T0 + 60_000),
        "never lowered"
    );
    assert_eq!(h.manager.runtime(12).unwrap().last_expire, guard);
    assert_eq!(
        h.manager.runtime(13).unwrap().last_expire,
        ts(T0 + 900_000),
        "an Importing segment gets a whole import lifetime"
    );
    assert_eq!(h.manager.curr_rows(10), Some(7));
    assert_eq!(h.manager.runtime(10).unwrap().allocated_rows, 0);
}

#[tokio::test]
async fn reloaded_sealed_segment_waits_for_the_guard_before_flush() {
    let h = harness_with(vec![stored_segment(12, SegmentState::Sealed, 40)], |_| {}).await;
    assert!(
        h.manager
            .flushable_on_tick(CH, ts(T0 + 1999))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        h.manager
            .flushable_on_tick(CH, ts(T0 + 2000))
            .await
            .unwrap(),
        vec![12]
    );
}

#[tokio::test]
async fn reloaded_growing_segment_is_not_idle_sealed_on_the_first_tick() {
    // 100 rows: above the idle threshold (32), below capacity (236).
    let h = harness_with(vec![stored_segment(10, SegmentState::Growing, 100)], |_| {}).await;
    h.manager.flushable_on_tick(CH, ts(T0 + 100)).await.unwrap();
    assert_eq!(h.state(10), SegmentState::Growing);
    h.clock
        .advance(Duration::from_secs(600) + Duration::from_millis(1));
    h.manager.flushable_on_tick(CH, ts(T0 + 200)).await.unwrap();
    assert_eq!(h.state(10), SegmentState::Sealed);
}

/// Deliberate fix (2.3.5 does not reload Importing segments, so after a restart a dead import's
/// segments stay Importing forever and a live import's sealed segments are never flushed).
#[tokio::test]
async fn a_reloaded_importing_segment_is_dropped_once_a_whole_import_lifetime_passed() {
    let h = harness_with(vec![stored_segment(13, SegmentState::Importing, 0)], |_| {}).await;
    let guard_ms = T0 + 900_000;
    h.manager.flushable_on_tick(CH, ts(guard_ms)).await.unwrap();
    assert_eq!(
        h.state(13),
        SegmentState::Importing,
        "a live import may still finish"
    );
    h.manager
        .flushable_on_tick(CH, ts(guard_ms) + 1)
        .await
        .unwrap();
    assert_eq!(h.state(13), SegmentState::Dropped);
    assert!(h.manager.managed_segments().is_empty());
}

#[tokio::test]
async fn a_reloaded_importing_segment_sealed_by_import_flush_is_flushed() {
    let mut imported = stored_segment(13, SegmentState::Importing, 30);
    imported.is_importing = true;
    let h = harness_with(vec![imported], |_| {}).await;
    assert_eq!(
        h.manager
            .seal_all_segments(COLL, &[13], true)
            .await
            .unwrap(),
        vec![13]
    );
    assert_eq!(
        h.manager.flushable_on_tick(CH, ts(T0 + 10)).await.unwrap(),
        vec![13],
        "an importing segment does not wait for its allocation to expire"
    );
}

#[tokio::test]
async fn empty_store_needs_no_timestamp() {
    let h = harness().await;
    assert_eq!(h.allocator.call_count(), 0);
    assert!(h.manager.managed_segments().is_empty());
}

async fn start(
    allocator: Arc<FakeAllocator>,
    attempts: u32,
) -> milvus_types::MilvusResult<SegmentManager> {
    let store = Arc::new(MemorySegmentStore::new());
    store.insert(stored_segment(10, SegmentState::Growing, 0));
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1));
    let mut config = small_config(clock);
    config.alloc_latest_expire_attempt = attempts;
    SegmentManager::new(store, allocator, config).await
}

#[tokio::test]
async fn startup_timestamp_is_retried_then_fails_init() {
    let unavailable = MilvusError::service_unavailable("rootcoord not ready").to_status();

    let allocator = Arc::new(FakeAllocator::new(1));
    allocator.fail_next(1, unavailable.clone());
    let manager = start(allocator.clone(), 3)
        .await
        .expect("second attempt succeeds");
    assert_eq!(allocator.call_count(), 2);
    assert_eq!(manager.managed_segments(), vec![10]);

    let allocator = Arc::new(FakeAllocator::new(1));
    allocator.fail_next(2, unavailable);
    let err = start(allocator.clone(), 2).await.err().expect("init fails");
    assert_eq!(allocator.call_count(), 2);
    assert_eq!(err.code(), ErrorCode::SERVICE_UNAVAILABLE);
    assert!(
        err.to_string()
            .contains("global max expire ts is unavailable"),
        "{err}"
    );
}
