use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// Latency percentiles of a set of calls, in milliseconds (nearest-rank percentiles).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest sample.
    pub max_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
}

impl LatencySummary {
    /// Summarises `samples` (sorted in place); `None` when there are none.
    pub fn from_samples(samples: &mut [Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let total: Duration = samples.iter().sum();
        let count = samples.len();
        Some(Self {
            count,
            p50_ms: millis(nearest_rank(samples, 50.0)),
            p99_ms: millis(nearest_rank(samples, 99.0)),
            max_ms: millis(samples[count - 1]),
            mean_ms: millis(total) / count as f64,
        })
    }
}

/// The smallest sample such that at least `percent`% of samples are ≤ it.
fn nearest_rank(sorted: &[Duration], percent: f64) -> Duration {
    debug_assert!(!sorted.is_empty());
    let rank = ((percent / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Failed calls grouped by their message, keeping at most a few distinct messages so that a
/// flood of unique reasons (e.g. with IDs in them) stays bounded.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ErrorTally {
    /// Count per distinct message (the first [`ErrorTally::DISTINCT`] messages seen).
    pub by_message: BTreeMap<String, u64>,
    /// Failures whose message was not kept.
    pub other: u64,
}

impl ErrorTally {
    /// How many distinct messages are kept.
    pub const DISTINCT: usize = 5;
    const MAX_MESSAGE_CHARS: usize = 200;

    /// Counts one failure.
    pub fn add(&mut self, message: &str) {
        let message: String = message.chars().take(Self::MAX_MESSAGE_CHARS).collect();
        if let Some(count) = self.by_message.get_mut(&message) {
            *count += 1;
        } else if self.by_message.len() < Self::DISTINCT {
            self.by_message.insert(message, 1);
        } else {
            self.other += 1;
        }
    }

    /// Adds another tally's counts.
    pub fn merge(&mut self, other: ErrorTally) {
        for (message, count) in other.by_message {
            if let Some(existing) = self.by_message.get_mut(&message) {
                *existing += count;
            } else if self.by_message.len() < Self::DISTINCT {
                self.by_message.insert(message, count);
            } else {
                self.other += count;
            }
        }
        self.other += other.other;
    }

    /// Total failures counted.
    pub fn total(&self) -> u64 {
        self.by_message.values().sum::<u64>() + self.other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: impl IntoIterator<Item = u64>) -> Vec<Duration> {
        values.into_iter().map(Duration::from_millis).collect()
    }

    #[test]
    fn percentiles_follow_nearest_rank() {
        // Shuffled 1..=200 ms: p50 is the 100th value, p99 the 198th.
        let mut samples = ms((1..=200).map(|i| (i * 73) % 200 + 1));
        let summary = LatencySummary::from_samples(&mut samples).expect("non-empty");
        assert_eq!(summary.count, 200);
        assert_eq!(summary.p50_ms, 100.0);
        assert_eq!(summary.p99_ms, 198.0);
        assert_eq!(summary.max_ms, 200.0);
        assert!((summary.mean_ms - 100.5).abs() < 1e-9);
    }

    #[test]
    fn one_sample_is_every_percentile() {
        let mut samples = ms([7]);
        let summary = LatencySummary::from_samples(&mut samples).expect("non-empty");
        assert_eq!((summary.p50_ms, summary.p99_ms), (7.0, 7.0));
    }

    #[test]
    fn no_samples_no_summary() {
        assert_eq!(LatencySummary::from_samples(&mut []), None);
    }

    #[test]
    fn tally_bounds_distinct_messages() {
        let mut tally = ErrorTally::default();
        for i in 0..10 {
            tally.add(&format!("reason {i}"));
        }
        tally.add("reason 0");
        assert_eq!(tally.by_message.len(), ErrorTally::DISTINCT);
        assert_eq!(tally.by_message["reason 0"], 2);
        assert_eq!(tally.other, 5);
        assert_eq!(tally.total(), 11);

        let mut merged = ErrorTally::default();
        merged.add("reason 0");
        merged.merge(tally);
        assert_eq!(merged.by_message["reason 0"], 3);
        assert_eq!(merged.total(), 12);
    }
}
