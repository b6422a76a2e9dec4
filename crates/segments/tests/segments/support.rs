//! Shared setup: a manager over `MemorySegmentStore`, `FakeAllocator` and a `ManualClock`, with
//! timestamps under test control.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use datacoord_segments::{
    ManualClock, MemorySegmentStore, SegmentConfig, SegmentManager, sample_schema,
};
use milvus_config::DataCoordConfig;
use milvus_proto::common::SegmentState;
use milvus_proto::data::SegmentInfo;
use milvus_proto::schema::CollectionSchema;
use milvus_rootcoord_client::{Allocator, FakeAllocator};
use milvus_types::{MilvusError, MilvusResult, SegmentId, Timestamp, UniqueId, compose_ts};

/// Physical ms of the first controlled timestamp: far ahead of the wall clock, so the fake
/// allocator hands out exactly what `set_tso` asks for.
pub const T0: u64 = 4_000_000_000_000;
pub const COLL: i64 = 1;
pub const PART: i64 = 10;
pub const CH: &str = "by-dev-rootcoord-dml_0_1v0";
pub const OTHER_CH: &str = "by-dev-rootcoord-dml_1_1v1";
/// Rows per segment with [`small_config`] and [`schema`] (32-byte rows in a 32 KiB budget).
pub const MAX_ROWS: i64 = 1024;

/// 32-byte rows.
pub fn schema() -> CollectionSchema {
    sample_schema(2)
}

/// Defaults scaled so that a segment holds [`MAX_ROWS`] rows; the idle threshold keeps 2.3.5's
/// 16/512 ratio (more than 32 rows).
pub fn small_config(clock: Arc<ManualClock>) -> SegmentConfig {
    let max_size_mb = (MAX_ROWS as f64 * 32.0) / (1024.0 * 1024.0);
    SegmentConfig {
        max_size_mb,
        min_size_from_idle_to_sealed_mb: max_size_mb * 16.0 / 512.0,
        clock,
        ..SegmentConfig::from_config(&DataCoordConfig::default())
    }
}

pub fn ts(physical_ms: u64) -> Timestamp {
    compose_ts(physical_ms, 0)
}

pub struct Harness {
    pub store: Arc<MemorySegmentStore>,
    pub allocator: Arc<FakeAllocator>,
    pub clock: Arc<ManualClock>,
    pub manager: SegmentManager,
}

impl Harness {
    /// Makes the next allocator timestamp exactly `ts(physical_ms)`.
    pub fn set_tso(&self, physical_ms: u64) {
        self.allocator.advance_timestamp_to(ts(physical_ms));
    }

    pub fn stored(&self, id: SegmentId) -> Arc<SegmentInfo> {
        self.store
            .all()
            .into_iter()
            .find(|s| s.id == id)
            .expect("segment stored")
    }

    pub fn state(&self, id: SegmentId) -> SegmentState {
        datacoord_segments::state_of(&self.stored(id))
    }
}

pub async fn harness() -> Harness {
    harness_with(Vec::new(), |_| {}).await
}

/// A manager started over `segments` already in the store; `tune` adjusts the config.
pub async fn harness_with(
    segments: Vec<SegmentInfo>,
    tune: impl FnOnce(&mut SegmentConfig),
) -> Harness {
    let store = Arc::new(MemorySegmentStore::new());
    for seg in segments {
        store.insert(seg);
    }
    let allocator = Arc::new(FakeAllocator::new(1000));
    allocator.advance_timestamp_to(ts(T0));
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let mut config = small_config(clock.clone());
    tune(&mut config);
    let manager = SegmentManager::new(store.clone(), allocator.clone(), config)
        .await
        .expect("manager starts");
    Harness {
        store,
        allocator,
        clock,
        manager,
    }
}

/// A stored segment of COLL/PART/CH.
pub fn stored_segment(id: SegmentId, state: SegmentState, num_of_rows: i64) -> SegmentInfo {
    SegmentInfo {
        id,
        collection_id: COLL,
        partition_id: PART,
        insert_channel: CH.to_string(),
        num_of_rows,
        state: state as i32,
        max_row_num: MAX_ROWS,
        ..Default::default()
    }
}

/// An allocator whose `alloc_id` fails the next N times; timestamps come from a FakeAllocator.
pub struct FailingIds {
    pub inner: FakeAllocator,
    pub failures: AtomicUsize,
}

#[async_trait]
impl Allocator for FailingIds {
    async fn alloc_id(&self) -> MilvusResult<UniqueId> {
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(MilvusError::service_unavailable("injected id failure"));
        }
        self.inner.alloc_id().await
    }

    async fn alloc_n(&self, count: u32) -> MilvusResult<Range<UniqueId>> {
        self.inner.alloc_n(count).await
    }

    async fn alloc_timestamp(&self) -> MilvusResult<Timestamp> {
        self.inner.alloc_timestamp().await
    }
}
