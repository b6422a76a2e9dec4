//! RootCoord's clock without a round trip per reading.
//!
//! Allocation expiry stamps (AssignSegmentID) only need RootCoord's physical clock, not a unique
//! TSO: 2.3.5 asks RootCoord for a fresh timestamp on every allocation, which puts one RPC on
//! the hottest path. [`EstimatedClock`] fetches a real timestamp at most every `refresh` and
//! adds the locally elapsed monotonic time to it, so the estimate tracks RootCoord's clock (no
//! cross-host skew) and never goes backwards.
//!
//! A reading is only as good as RootCoord's clock at that instant. Right after RootCoord resumes
//! from a pause (a long GC, a stopped process, a VM freeze), it hands out timestamps from before
//! the pause until its clock ticker runs; an estimate built on such a reading stays behind for a
//! whole refresh, and every expiry stamped from it is already past for a proxy that got a fresh
//! TSO: the proxy fails the insert ("failRemainRequest"). A reading that lags the local wall
//! clock by more than [`MAX_TRUSTED_LAG`] is therefore used once and not kept, which falls back to
//! 2.3.5's one-RPC-per-allocation until RootCoord's clock is current again (or for good, when the
//! hosts' clocks really disagree by that much).

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use milvus_types::{MilvusResult, Timestamp, UniqueId, compose_ts, parse_ts};
use tracing::{info, warn};

use crate::Allocator;

/// How far behind the local wall clock a reading may be and still be kept: well under the 2 s
/// `dataCoord.segment.assignmentExpiration`, well over NTP-synchronised hosts' skew.
pub const MAX_TRUSTED_LAG: Duration = Duration::from_millis(500);

struct Reading {
    physical_ms: u64,
    at: Instant,
}

/// An [`Allocator`] whose timestamps are estimates of RootCoord's clock (IDs pass through).
/// Use it only where a timestamp is a point in time, never where it must be unique (Flush's
/// `flush_ts` must stay a real TSO).
#[derive(Default)]
struct Clock {
    /// The last reading that was trusted; none while RootCoord's clock lags.
    reading: Option<Reading>,
    last_handed_out: Timestamp,
    lagging: bool,
}

pub struct EstimatedClock {
    inner: Arc<dyn Allocator>,
    refresh: Duration,
    clock: Mutex<Clock>,
    /// One refresh in flight at a time; the others use the previous reading meanwhile.
    refreshing: tokio::sync::Mutex<()>,
}

impl EstimatedClock {
    /// Wraps `inner`; a real timestamp is fetched when the last one is older than `refresh`.
    pub fn new(inner: Arc<dyn Allocator>, refresh: Duration) -> Self {
        Self {
            inner,
            refresh,
            clock: Mutex::new(Clock::default()),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The current estimate, if a reading no older than `refresh` exists.
    fn estimate(&self, fresh_only: bool) -> Option<Timestamp> {
        let mut clock = self.lock();
        let reading = clock.reading.as_ref()?;
        let elapsed = reading.at.elapsed();
        if fresh_only && elapsed >= self.refresh {
            return None;
        }
        let ts = compose_ts(reading.physical_ms + elapsed.as_millis() as u64, 0)
            .max(clock.last_handed_out);
        clock.last_handed_out = ts;
        Some(ts)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Clock> {
        self.clock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `ts` as the new reading unless it lags the local wall clock too far; returns what
    /// to hand out (never below an earlier answer).
    fn record(&self, ts: Timestamp) -> Timestamp {
        let (physical_ms, _) = parse_ts(ts);
        let lag_ms = wall_clock_ms().saturating_sub(physical_ms);
        let mut clock = self.lock();
        if lag_ms > MAX_TRUSTED_LAG.as_millis() as u64 {
            clock.reading = None;
            if !clock.lagging {
                warn!(
                    lag_ms,
                    "RootCoord's clock lags the local one; reading it on every allocation until it catches up"
                );
            }
            clock.lagging = true;
        } else {
            clock.reading = Some(Reading {
                physical_ms,
                at: Instant::now(),
            });
            if clock.lagging {
                info!(lag_ms, "RootCoord's clock caught up; estimating it again");
            }
            clock.lagging = false;
        }
        let ts = ts.max(clock.last_handed_out);
        clock.last_handed_out = ts;
        ts
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
        Ok(self.record(ts))
    }
}

fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
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

    /// RootCoord right after a pause: its timestamps are seconds old until its ticker runs.
    struct PausedRootCoord {
        lag_ms: std::sync::atomic::AtomicU64,
        calls: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl Allocator for PausedRootCoord {
        async fn alloc_id(&self) -> MilvusResult<UniqueId> {
            Ok(1)
        }
        async fn alloc_n(&self, count: u32) -> MilvusResult<Range<UniqueId>> {
            Ok(1..1 + i64::from(count))
        }
        async fn alloc_timestamp(&self) -> MilvusResult<Timestamp> {
            use std::sync::atomic::Ordering::SeqCst;
            self.calls.fetch_add(1, SeqCst);
            Ok(compose_ts(wall_clock_ms() - self.lag_ms.load(SeqCst), 0))
        }
    }

    #[tokio::test]
    async fn a_lagging_reading_is_not_kept_until_rootcoord_catches_up() {
        use std::sync::atomic::Ordering::SeqCst;
        let rootcoord = Arc::new(PausedRootCoord {
            lag_ms: 8_000.into(),
            calls: 0.into(),
        });
        let clock = EstimatedClock::new(rootcoord.clone(), Duration::from_secs(3600));
        let stale = clock.alloc_timestamp().await.unwrap();
        clock.alloc_timestamp().await.unwrap();
        assert_eq!(
            rootcoord.calls.load(SeqCst),
            2,
            "a lagging reading was kept"
        );

        rootcoord.lag_ms.store(0, SeqCst);
        let current = clock.alloc_timestamp().await.unwrap();
        assert!(parse_ts(current).0 >= parse_ts(stale).0 + 8_000);
        for _ in 0..10 {
            assert!(clock.alloc_timestamp().await.unwrap() >= current);
        }
        assert_eq!(
            rootcoord.calls.load(SeqCst),
            3,
            "a current reading was not kept"
        );

        // Lagging again later never makes the clock go backwards.
        let clock = EstimatedClock::new(rootcoord.clone(), Duration::ZERO);
        let before = clock.alloc_timestamp().await.unwrap();
        rootcoord.lag_ms.store(8_000, SeqCst);
        assert!(clock.alloc_timestamp().await.unwrap() >= before);
    }
}
