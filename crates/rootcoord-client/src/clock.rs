//! RootCoord's clock without a round trip per reading.
//!
//! Allocation expiry stamps (AssignSegmentID) only need RootCoord's physical clock, not a unique
//! TSO: 2.3.5 asks RootCoord for a fresh timestamp on every allocation, which puts one RPC on
//! the hottest path. [`EstimatedClock`] fetches a real timestamp at most every `refresh` and
//! adds the locally elapsed monotonic time to it, so the estimate tracks RootCoord's clock (no
//! cross-host skew) and never goes backwards.

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use milvus_types::{MilvusResult, Timestamp, UniqueId, compose_ts, parse_ts};

use crate::Allocator;

struct Reading {
    physical_ms: u64,
    at: Instant,
    last_handed_out: Timestamp,
}

/// An [`Allocator`] whose timestamps are estimates of RootCoord's clock (IDs pass through).
/// Use it only where a timestamp is a point in time, never where it must be unique (Flush's
/// `flush_ts` must stay a real TSO).
pub struct EstimatedClock {
    inner: Arc<dyn Allocator>,
    refresh: Duration,
    reading: Mutex<Option<Reading>>,
    /// One refresh in flight at a time; the others use the previous reading meanwhile.
    refreshing: tokio::sync::Mutex<()>,
}

impl EstimatedClock {
    /// Wraps `inner`; a real timestamp is fetched when the last one is older than `refresh`.
    pub fn new(inner: Arc<dyn Allocator>, refresh: Duration) -> Self {
        Self {
            inner,
            refresh,
            reading: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The current estimate, if a reading no older than `refresh` exists.
    fn estimate(&self, fresh_only: bool) -> Option<Timestamp> {
        let mut reading = self.reading.lock().unwrap_or_else(|e| e.into_inner());
        let reading = reading.as_mut()?;
        let elapsed = reading.at.elapsed();
        if fresh_only && elapsed >= self.refresh {
            return None;
        }
        let ts = compose_ts(reading.physical_ms + elapsed.as_millis() as u64, 0)
            .max(reading.last_handed_out);
        reading.last_handed_out = ts;
        Some(ts)
    }
}

#[async_trait]
impl Allocator for EstimatedClock {
    async fn alloc_id(&self) -> MilvusResult<UniqueId> {
        self.inner.alloc_id().await
    }

    async fn alloc_n(&self, count: u32) -> MilvusResult<Range<UniqueId>> {
        self.inner.alloc_n(count).await
    }

    async fn alloc_timestamp(&self) -> MilvusResult<Timestamp> {
        if let Some(ts) = self.estimate(true) {
            return Ok(ts);
        }
        let _guard = match self.refreshing.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // Someone is refreshing: a slightly stale reading beats waiting for it.
                if let Some(ts) = self.estimate(false) {
                    return Ok(ts);
                }
                self.refreshing.lock().await
            }
        };
        if let Some(ts) = self.estimate(true) {
            return Ok(ts);
        }
        let ts = self.inner.alloc_timestamp().await?;
        let (physical_ms, _) = parse_ts(ts);
        let mut reading = self.reading.lock().unwrap_or_else(|e| e.into_inner());
        let last = reading.as_ref().map(|r| r.last_handed_out).unwrap_or(0);
        *reading = Some(Reading {
            physical_ms,
            at: Instant::now(),
            last_handed_out: ts.max(last),
        });
        Ok(ts.max(last))
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::FakeAllocator;

    #[tokio::test]
    async fn one_rootcoord_call_per_refresh_and_never_backwards() {
        let fake = Arc::new(FakeAllocator::default());
        let clock = EstimatedClock::new(fake.clone(), Duration::from_secs(3600));
        let first = clock.alloc_timestamp().await.unwrap();
        let mut last = first;
        for _ in 0..100 {
            let ts = clock.alloc_timestamp().await.unwrap();
            assert!(ts >= last, "estimate went backwards");
            last = ts;
        }
        assert_eq!(fake.call_count(), 1);
        // The estimate follows the clock: after 20 ms it is at least 20 ms further.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let later = clock.alloc_timestamp().await.unwrap();
        assert!(parse_ts(later).0 >= parse_ts(first).0 + 20);
        assert_eq!(fake.call_count(), 1);
        assert_eq!(clock.alloc_id().await.unwrap(), 1);
        assert_eq!(fake.call_count(), 2);
    }

    #[tokio::test]
    async fn stale_reading_is_refreshed_and_errors_pass_through() {
        let fake = Arc::new(FakeAllocator::default());
        let clock = EstimatedClock::new(fake.clone(), Duration::ZERO);
        clock.alloc_timestamp().await.unwrap();
        clock.alloc_timestamp().await.unwrap();
        assert_eq!(fake.call_count(), 2);
        fake.fail_next(
            1,
            milvus_types::MilvusError::service_not_ready("rootcoord", 1, "Abnormal").to_status(),
        );
        assert!(clock.alloc_timestamp().await.is_err());
    }
}
