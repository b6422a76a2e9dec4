//! Retrying with exponential backoff, the shape of Go's `retry.Do`: the one loop every retried
//! call of the port goes through ([`retry`]), and its pause schedule ([`Backoff`]).

use std::future::Future;
use std::time::Duration;

/// The pauses between the attempts of a retried call: `initial`, doubling, capped at `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The pause after the first failure.
    pub initial: Duration,
    /// The longest pause.
    pub max: Duration,
}

impl Backoff {
    /// Go's `retry.Do` defaults: 200 ms, doubling, at most 3 s.
    pub const RETRY_DO: Backoff = Backoff {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(3),
    };

    /// The pause after each failure, in order, without end (the first is `initial` even above
    /// `max`, as the loops this replaced did).
    pub fn delays(self) -> impl Iterator<Item = Duration> {
        std::iter::successors(Some(self.initial), move |pause| {
            Some(pause.saturating_mul(2).min(self.max))
        })
    }
}

/// Runs `op` until it succeeds. After the `attempt`-th failure (counted from 1),
/// `again(&error, attempt)` decides: `true` waits the next [`Backoff`] pause and tries again,
/// `false` returns that error. `again` is also where callers log and count their attempts.
/// Dropping the future (e.g. in a `tokio::select!` with a cancellation token) stops it at once,
/// also in the middle of a pause.
pub async fn retry<T, E, Op, Fut>(
    backoff: Backoff,
    mut op: Op,
    mut again: impl FnMut(&E, u32) -> bool,
) -> Result<T, E>
where
    Op: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut pauses = backoff.delays();
    let mut attempt = 0;
    loop {
        let err = match op().await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        attempt += 1;
        if !again(&err, attempt) {
            return Err(err);
        }
        let pause = pauses.next().unwrap_or(backoff.max);
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::time::Instant;

    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap() {
        let pauses: Vec<u64> = Backoff::RETRY_DO
            .delays()
            .take(7)
            .map(|pause| pause.as_millis() as u64)
            .collect();
        assert_eq!(pauses, [200, 400, 800, 1600, 3000, 3000, 3000]);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_success_with_the_pauses_in_between() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let mut seen = Vec::new();
        let result: Result<u32, String> = retry(
            Backoff::RETRY_DO,
            || async {
                let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
                if call < 4 {
                    Err(format!("failure {call}"))
                } else {
                    Ok(call)
                }
            },
            |err, attempt| {
                seen.push((err.clone(), attempt));
                true
            },
        )
        .await;
        assert_eq!(result, Ok(4));
        assert_eq!(
            seen,
            [
                ("failure 1".to_string(), 1),
                ("failure 2".to_string(), 2),
                ("failure 3".to_string(), 3)
            ]
        );
        // 200 + 400 + 800 ms of pauses, on the paused clock.
        assert_eq!(start.elapsed(), Duration::from_millis(1400));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_when_told_and_returns_that_error() {
        let calls = AtomicU32::new(0);
        let result: Result<(), u32> = retry(
            Backoff::RETRY_DO,
            || async { Err(calls.fetch_add(1, Ordering::SeqCst) + 1) },
            |_, attempt| attempt < 3,
        )
        .await;
        assert_eq!(result, Err(3));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
