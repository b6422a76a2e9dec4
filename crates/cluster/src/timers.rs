//! Per-channel answer deadlines (Go's `channelStateTimer`), as a table the event loop polls.
//!
//! One timer per channel name, whatever the node: writing ToWatch/ToRelease for a real node
//! (re)starts it, a datanode's progress rewrite pushes it back by a full timeout, an answer stops
//! it, and expiry turns into a watch/release timeout ack.

use std::collections::HashMap;
use std::time::Duration;

use milvus_types::NodeId;
use tokio::time::Instant;

/// What the datanode was asked to do when the timer started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerKind {
    Watch,
    Release,
}

/// An expired timer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Expired {
    pub(crate) channel: String,
    pub(crate) node: NodeId,
    pub(crate) kind: TimerKind,
}

#[derive(Clone, Debug)]
struct Entry {
    node: NodeId,
    kind: TimerKind,
    deadline: Instant,
}

/// The running timers.
#[derive(Debug)]
pub(crate) struct Timers {
    timeout: Duration,
    entries: HashMap<String, Entry>,
}

impl Timers {
    /// Timers of `timeout`; zero disables them (every `start` is refused).
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            entries: HashMap::new(),
        }
    }

    /// (Re)starts the channel's timer; false when timers are disabled.
    pub(crate) fn start(&mut self, channel: &str, node: NodeId, kind: TimerKind) -> bool {
        if self.timeout.is_zero() {
            return false;
        }
        let deadline = Instant::now() + self.timeout;
        self.entries.insert(
            channel.to_string(),
            Entry {
                node,
                kind,
                deadline,
            },
        );
        true
    }

    /// The node a running timer waits on.
    pub(crate) fn node_of(&self, channel: &str) -> Option<NodeId> {
        self.entries.get(channel).map(|entry| entry.node)
    }

    /// Stops the channel's timer; whether one was running.
    pub(crate) fn stop(&mut self, channel: &str) -> bool {
        self.entries.remove(channel).is_some()
    }

    /// Pushes a running timer's deadline to a full timeout from now; whether one was running.
    pub(crate) fn reset(&mut self, channel: &str) -> bool {
        let timeout = self.timeout;
        match self.entries.get_mut(channel) {
            Some(entry) => {
                entry.deadline = Instant::now() + timeout;
                true
            }
            None => false,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.entries.values().map(|entry| entry.deadline).min()
    }

    /// Removes and returns the timers expired at `now`, earliest first.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Vec<Expired> {
        let mut expired: Vec<(Instant, Expired)> = Vec::new();
        self.entries.retain(|channel, entry| {
            if entry.deadline > now {
                return true;
            }
            expired.push((
                entry.deadline,
                Expired {
                    channel: channel.clone(),
                    node: entry.node,
                    kind: entry.kind,
                },
            ));
            false
        });
        expired.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.channel.cmp(&b.1.channel)));
        expired.into_iter().map(|(_, timer)| timer).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn start_reset_stop_expire() {
        let mut timers = Timers::new(Duration::from_secs(10));
        assert!(timers.start("a", 1, TimerKind::Watch));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(timers.start("b", 2, TimerKind::Release));
        assert_eq!(timers.node_of("b"), Some(2));

        tokio::time::advance(Duration::from_secs(7)).await;
        // "a" is due (11 s), "b" is not (7 s).
        let expired = timers.take_expired(Instant::now());
        assert_eq!(
            expired,
            vec![Expired {
                channel: "a".into(),
                node: 1,
                kind: TimerKind::Watch
            }]
        );
        assert!(timers.take_expired(Instant::now()).is_empty());

        // A progress rewrite pushes "b" back by a full timeout.
        assert!(timers.reset("b"));
        assert!(!timers.reset("a"));
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(timers.take_expired(Instant::now()).is_empty());
        assert_eq!(
            timers.next_deadline(),
            Some(Instant::now() + Duration::from_secs(1))
        );

        assert!(timers.stop("b"));
        assert!(!timers.stop("b"));
        assert!(timers.is_empty());
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn zero_timeout_disables() {
        let mut timers = Timers::new(Duration::ZERO);
        assert!(!timers.start("a", 1, TimerKind::Watch));
        assert!(timers.is_empty());
    }
}
