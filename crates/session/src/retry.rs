//! Retry with the backoff of Go's `retry.Do` (200 ms, doubling, capped at 3 s), cancellable.

use std::future::Future;

use milvus_types::Backoff;
use tokio_util::sync::CancellationToken;

use crate::error::SessionError;

/// Runs `op` up to `attempts` times (at least once), sleeping between failures. Returns the last
/// error, or `Cancelled` as soon as `cancel` fires.
pub(crate) async fn retry<T, F, Fut>(
    attempts: u32,
    cancel: &CancellationToken,
    what: &'static str,
    op: F,
) -> Result<T, SessionError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SessionError>>,
{
    let attempts = attempts.max(1);
    let retried = milvus_types::retry(Backoff::RETRY_DO, op, |err, attempt| {
        if matches!(err, SessionError::Cancelled) || attempt >= attempts {
            return false;
        }
        // Go logs every fourth failure to keep long outages readable.
        if attempt % 4 == 1 {
            tracing::warn!(what, attempt, error = %err, "retrying");
        }
        true
    });
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(SessionError::Cancelled),
        outcome = retried => outcome,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn failure() -> SessionError {
        SessionError::KeyTaken {
            key: "k".into(),
            attempts: 0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stops_after_attempts_and_returns_last_error() {
        let calls = AtomicU32::new(0);
        let cancel = CancellationToken::new();
        let result: Result<(), _> = retry(3, &cancel, "test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(failure())
        })
        .await;
        assert!(matches!(result, Err(SessionError::KeyTaken { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn returns_first_success() {
        let calls = AtomicU32::new(0);
        let cancel = CancellationToken::new();
        let result = retry(5, &cancel, "test", || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 2 { Err(failure()) } else { Ok(n) }
        })
        .await;
        assert_eq!(result.unwrap(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_ends_the_loop() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let result: Result<(), _> = retry(5, &cancel, "test", || async { Err(failure()) }).await;
        assert!(matches!(result, Err(SessionError::Cancelled)));
    }
}
