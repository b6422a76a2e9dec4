//! E.5: AssignSegmentID allocation (policy V1), import allocation, failures.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use datacoord_segments::{ManualClock, MemorySegmentStore, SegmentManager};
use milvus_proto::common::SegmentState;
use milvus_rootcoord_client::FakeAllocator;
use milvus_types::{ErrorCode, MilvusError};

use crate::support::*;

#[tokio::test]
async fn first_allocation_opens_a_persisted_growing_segment() {
    let h = harness().await;
    h.set_tso(T0 + 5);
    let allocations = h
        .manager
        .alloc_segment(COLL, PART, CH, 100, &schema())
        .await
        .unwrap();
    assert_eq!(allocations.len(), 1);
    let a = &allocations[0];
    assert_eq!(
        (a.num_of_rows, a.collection_id, a.partition_id),
        (100, COLL, PART)
    );
    assert_eq!(a.channel, CH);
    assert_eq!(a.expire_time, ts(T0 + 5 + 2000));

    let seg = h.stored(a.segment_id);
    assert_eq!(h.state(a.segment_id), SegmentState::Growing);
    assert_eq!((seg.collection_id, seg.partition_id), (COLL, PART));
    assert_eq!(seg.insert_channel, CH);
    assert_eq!(
        (seg.num_of_rows, seg.max_row_num, seg.last_expire_time),
        (0, MAX_ROWS, 0)
    );
    assert!(!seg.is_importing);
    assert_eq!(h.manager.managed_segments(), vec![a.segment_id]);
    let runtime = h.manager.runtime(a.segment_id).unwrap();
    assert_eq!(
        (runtime.allocated_rows, runtime.last_expire),
        (100, a.expire_time)
    );
}

#[tokio::test]
async fn expiry_keeps_the_logical_part_of_the_tso() {
    let h = harness().await;
    h.allocator.advance_timestamp_to(compose(T0 + 9, 42));
    let a = h
        .manager
        .alloc_segment(COLL, PART, CH, 1, &schema())
        .await
        .unwrap();
    assert_eq!(a[0].expire_time, compose(T0 + 9 + 2000, 42));
}

fn compose(ms: u64, logical: u64) -> u64 {
    milvus_types::compose_ts(ms, logical)
}

#[tokio::test]
async fn remainder_goes_to_the_first_growing_segment_with_room() {
    // 10 is nearly full by its persisted rows; 11 and 12 both fit, 11 comes first.
    let h = harness_with(
        vec![
            stored_segment(10, SegmentState::Growing, MAX_ROWS - 24),
            stored_segment(11, SegmentState::Growing, 0),
            stored_segment(12, SegmentState::Growing, 0),
        ],
        |_| {},
    )
    .await;
    let first = h
        .manager
        .alloc_segment(COLL, PART, CH, 50, &schema())
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].segment_id, 11);

    // Free space counts persisted rows and live allocations, not the datanode's count.
    h.manager.update_segment_stats(&[(11, 500)]);
    let fill = h
        .manager
        .alloc_segment(COLL, PART, CH, MAX_ROWS - 50, &schema())
        .await
        .unwrap();
    assert_eq!(fill[0].segment_id, 11);
    let next = h
        .manager
        .alloc_segment(COLL, PART, CH, 25, &schema())
        .await
        .unwrap();
    assert_eq!(next[0].segment_id, 12, "10 has only 24 free rows");
    let small = h
        .manager
        .alloc_segment(COLL, PART, CH, 24, &schema())
        .await
        .unwrap();
    assert_eq!(small[0].segment_id, 10);
    assert_eq!(h.store.all().len(), 3, "no segment was opened");
}

#[tokio::test]
async fn only_growing_segments_of_the_same_collection_partition_and_channel_are_candidates() {
    let mut other_part = stored_segment(20, SegmentState::Growing, 0);
    other_part.partition_id = PART + 1;
    let mut other_channel = stored_segment(21, SegmentState::Growing, 0);
    other_channel.insert_channel = OTHER_CH.to_string();
    let mut other_coll = stored_segment(22, SegmentState::Growing, 0);
    other_coll.collection_id = COLL + 1;
    let sealed = stored_segment(23, SegmentState::Sealed, 0);
    let h = harness_with(vec![other_part, other_channel, other_coll, sealed], |_| {}).await;

    let a = h
        .manager
        .alloc_segment(COLL, PART, CH, 10, &schema())
        .await
        .unwrap();
    assert_eq!(a.len(), 1);
    assert!(a[0].segment_id >= 1000, "a new segment was opened: {a:?}");
    assert_eq!(h.store.all().len(), 5);
}

#[tokio::test]
async fn requests_of_max_rows_or_more_open_full_segments() {
    let h = harness_with(vec![stored_segment(10, SegmentState::Growing, 0)], |_| {}).await;
    let a = h
        .manager
        .alloc_segment(COLL, PART, CH, 2 * MAX_ROWS + 5, &schema())
        .await
        .unwrap();
    let shape: Vec<(bool, i64)> = a
        .iter()
        .map(|x| (x.segment_id == 10, x.num_of_rows))
        .collect();
    assert_eq!(shape, vec![(false, MAX_ROWS), (false, MAX_ROWS), (true, 5)]);
    assert_ne!(a[0].segment_id, a[1].segment_id);
    for new in &a[..2] {
        assert_eq!(h.state(new.segment_id), SegmentState::Growing);
        assert_eq!(
            h.manager.runtime(new.segment_id).unwrap().allocated_rows,
            MAX_ROWS
        );
    }

    let exact = h
        .manager
        .alloc_segment(COLL, PART, CH, MAX_ROWS, &schema())
        .await
        .unwrap();
    assert_eq!(exact.len(), 1);
    assert_ne!(exact[0].segment_id, 10);
}

#[tokio::test]
async fn without_candidates_the_remainder_opens_one_more_segment() {
    let h = harness().await;
    let a = h
        .manager
        .alloc_segment(COLL, PART, CH, MAX_ROWS + 1, &schema())
        .await
        .unwrap();
    let rows: Vec<i64> = a.iter().map(|x| x.num_of_rows).collect();
    assert_eq!(rows, vec![MAX_ROWS, 1]);
    assert_eq!(h.manager.managed_segments().len(), 2);
}

#[tokio::test]
async fn zero_rows_allocate_nothing_and_negative_rows_are_rejected() {
    let h = harness().await;
    let calls = h.allocator.call_count();
    assert!(
        h.manager
            .alloc_segment(COLL, PART, CH, 0, &schema())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(h.allocator.call_count(), calls);
    let err = h
        .manager
        .alloc_segment(COLL, PART, CH, -1, &schema())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::PARAMETER_INVALID);
    assert!(h.store.all().is_empty());
}

#[tokio::test]
async fn invalid_schema_fails_before_touching_rootcoord() {
    let h = harness().await;
    let calls = h.allocator.call_count();
    let err = h
        .manager
        .alloc_segment(COLL, PART, CH, 10, &Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::PARAMETER_INVALID);
    assert_eq!(h.allocator.call_count(), calls);
}

#[tokio::test]
async fn import_allocation_opens_an_importing_segment_for_the_import_lifetime() {
    let h = harness().await;
    h.set_tso(T0 + 100);
    let a = h
        .manager
        .alloc_import_segment(COLL, PART, CH, 5 * MAX_ROWS, 77, &schema())
        .await
        .unwrap();
    assert_eq!(a.num_of_rows, 5 * MAX_ROWS, "import rows are not capped");
    assert_eq!(a.expire_time, ts(T0 + 100 + 900_000));
    let seg = h.stored(a.segment_id);
    assert_eq!(h.state(a.segment_id), SegmentState::Importing);
    assert!(seg.is_importing);
    assert_eq!(seg.max_row_num, MAX_ROWS);
    assert!(h.manager.managed_segments().contains(&a.segment_id));
    assert_eq!(
        h.manager.runtime(a.segment_id).unwrap().last_expire,
        a.expire_time
    );
}

#[tokio::test]
async fn normal_inserts_never_land_in_an_import_segment() {
    let h = harness().await;
    let import = h
        .manager
        .alloc_import_segment(COLL, PART, CH, 10, 77, &schema())
        .await
        .unwrap();
    let normal = h
        .manager
        .alloc_segment(COLL, PART, CH, 10, &schema())
        .await
        .unwrap();
    assert_ne!(normal[0].segment_id, import.segment_id);
    assert_eq!(h.state(normal[0].segment_id), SegmentState::Growing);
}

#[tokio::test]
async fn timestamp_failure_fails_the_allocation_and_persists_nothing() {
    let h = harness().await;
    h.allocator.fail_next(
        1,
        MilvusError::service_unavailable("rootcoord down").to_status(),
    );
    let err = h
        .manager
        .alloc_segment(COLL, PART, CH, 10, &schema())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SERVICE_UNAVAILABLE);
    assert!(h.store.all().is_empty());
    assert!(h.manager.managed_segments().is_empty());

    h.allocator.fail_next(
        1,
        MilvusError::service_unavailable("rootcoord down").to_status(),
    );
    assert!(
        h.manager
            .alloc_import_segment(COLL, PART, CH, 10, 1, &schema())
            .await
            .is_err()
    );
    assert!(h.store.all().is_empty());
}

#[tokio::test]
async fn id_failure_fails_the_allocation_and_persists_nothing() {
    let store = Arc::new(MemorySegmentStore::new());
    let allocator = Arc::new(FailingIds {
        inner: FakeAllocator::new(1),
        failures: AtomicUsize::new(1),
    });
    let clock = ManualClock::new(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1));
    let manager = SegmentManager::new(store.clone(), allocator, small_config(clock))
        .await
        .unwrap();
    let err = manager
        .alloc_segment(COLL, PART, CH, 10, &schema())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SERVICE_UNAVAILABLE);
    assert!(store.all().is_empty());
    assert!(manager.managed_segments().is_empty());
    // The next call works: nothing half-done was left behind.
    let a = manager
        .alloc_segment(COLL, PART, CH, 10, &schema())
        .await
        .unwrap();
    assert_eq!(manager.managed_segments(), vec![a[0].segment_id]);
}

#[tokio::test]
async fn store_failure_leaves_the_segment_unmanaged() {
    let h = harness().await;
    h.store.fail_next_writes(1);
    let err = h
        .manager
        .alloc_segment(COLL, PART, CH, 10, &schema())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::IO_FAILED);
    assert!(h.store.all().is_empty());
    assert!(h.manager.managed_segments().is_empty());
}

/// A failed import task: its segments (allocated for it, or reported by RootCoord after a
/// restart) are dropped on the next tick instead of 15 minutes later; other imports are untouched.
#[tokio::test]
async fn an_abandoned_import_is_dropped_on_the_next_tick() {
    let h = harness().await;
    h.set_tso(T0 + 100);
    let failed = h
        .manager
        .alloc_import_segment(COLL, PART, CH, 10, 77, &schema())
        .await
        .unwrap();
    let live = h
        .manager
        .alloc_import_segment(COLL, PART, CH, 10, 78, &schema())
        .await
        .unwrap();
    assert!(h.manager.has_importing());
    assert_eq!(h.manager.abandon_import(77, &[]), vec![failed.segment_id]);
    assert!(
        h.manager.abandon_import(77, &[]).is_empty(),
        "expired only once"
    );
    h.manager.flushable_on_tick(CH, ts(T0 + 200)).await.unwrap();
    assert_eq!(h.state(failed.segment_id), SegmentState::Dropped);
    assert_eq!(h.state(live.segment_id), SegmentState::Importing);

    // Listed by ID (the task is unknown to this manager, e.g. after a restart).
    assert_eq!(
        h.manager.abandon_import(999, &[live.segment_id]),
        vec![live.segment_id]
    );
    h.manager.flushable_on_tick(CH, ts(T0 + 300)).await.unwrap();
    assert_eq!(h.state(live.segment_id), SegmentState::Dropped);
    assert!(!h.manager.has_importing());
}
