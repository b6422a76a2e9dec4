//! The "session lost" signal, and the task that watches the session's own key.
//!
//! The session is lost when its lease cannot be kept alive (see `keepalive.rs`) or when its key
//! disappears (deleted by an operator, by `milvus stop`, or by a new holder revoking our lease).
//! The owner decides what to do; a 2.3.5 coordinator with `TriggerKill` stops and exits.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use etcd_client::{EventType, WatchOptions};
use tokio_util::sync::CancellationToken;

use crate::error::SessionError;
use crate::retry::retry;

/// Fires once when the session is lost. Cheap to clone; every clone sees the same signal.
#[derive(Clone, Debug, Default)]
pub struct Liveness {
    token: CancellationToken,
    reason: Arc<OnceLock<String>>,
}

impl Liveness {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// True once the session is lost.
    pub fn is_lost(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes when the session is lost (immediately if it already is).
    pub async fn lost(&self) {
        self.token.cancelled().await;
    }

    /// Why the session was lost, once it is.
    pub fn reason(&self) -> Option<String> {
        self.reason.get().cloned()
    }

    /// The underlying token, e.g. to make it the parent of the owner's own tokens.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Marks the session lost; only the first reason is kept.
    pub(crate) fn fire(&self, reason: impl Into<String>) {
        let reason = reason.into();
        if self.reason.set(reason.clone()).is_ok() {
            tracing::error!(reason = %reason, "session lost");
        }
        self.token.cancel();
    }
}

/// Everything the own-key watch needs, owned so it can run as a task.
pub(crate) struct OwnKeyWatch {
    pub client: etcd_client::Client,
    pub key: String,
    pub lease_id: i64,
    pub retry_times: u32,
    pub shutdown: CancellationToken,
    pub liveness: Liveness,
}

impl OwnKeyWatch {
    /// Reads the key and returns the revision to watch from, or why the session is lost.
    async fn check_key(&self) -> Result<Result<i64, String>, SessionError> {
        let mut kv = self.client.kv_client();
        let response = kv
            .get(self.key.as_str(), None)
            .await
            .map_err(SessionError::etcd("read own session key"))?;
        let revision = response.header().map_or(0, |header| header.revision());
        Ok(match response.kvs().first() {
            None => Err("session key is gone".to_owned()),
            Some(entry) if entry.lease() != self.lease_id => Err(format!(
                "session key now belongs to lease {}",
                entry.lease()
            )),
            Some(_) => Ok(revision + 1),
        })
    }

    /// Runs until shutdown or until the session is lost. A compacted or broken watch is not a
    /// loss by itself: the key is re-read (so a deletion during the gap is still noticed) and
    /// watched again.
    pub async fn run(self) {
        loop {
            let checked = retry(
                self.retry_times,
                &self.shutdown,
                "read own session key",
                || self.check_key(),
            )
            .await;
            let start_revision = match checked {
                Ok(Ok(revision)) => revision,
                Ok(Err(reason)) => return self.liveness.fire(reason),
                Err(SessionError::Cancelled) => return,
                Err(err) => {
                    return self
                        .liveness
                        .fire(format!("cannot read session key: {err}"));
                }
            };
            let options = WatchOptions::new().with_start_revision(start_revision);
            let mut stream = match self
                .client
                .watch_client()
                .watch(self.key.as_str(), Some(options))
                .await
            {
                Ok(stream) => stream,
                Err(err) => {
                    tracing::warn!(key = %self.key, error = %err, "cannot watch session key, retrying");
                    if self.pause().await {
                        return;
                    }
                    continue;
                }
            };
            loop {
                let message = tokio::select! {
                    () = self.shutdown.cancelled() => return,
                    () = self.liveness.lost() => return,
                    message = stream.message() => message,
                };
                match message {
                    Ok(Some(response))
                        if response.canceled() || response.compact_revision() > 0 =>
                    {
                        tracing::warn!(key = %self.key, compact_revision = response.compact_revision(),
                            "session key watch cancelled, re-reading");
                        break;
                    }
                    Ok(Some(response)) => {
                        let deleted = response
                            .events()
                            .iter()
                            .any(|event| event.event_type() == EventType::Delete);
                        if deleted {
                            return self.liveness.fire("session key deleted");
                        }
                    }
                    Ok(None) | Err(_) => {
                        tracing::warn!(key = %self.key, "session key watch broken, re-reading");
                        break;
                    }
                }
            }
            if self.pause().await {
                return;
            }
        }
    }

    /// Short pause before re-watching; true when the task should end instead.
    async fn pause(&self) -> bool {
        tokio::select! {
            () = self.shutdown.cancelled() => true,
            () = self.liveness.lost() => true,
            () = tokio::time::sleep(Duration::from_millis(100)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_reason_wins_and_all_clones_see_it() {
        let liveness = Liveness::new();
        let clone = liveness.clone();
        assert!(!clone.is_lost());
        liveness.fire("first");
        liveness.fire("second");
        clone.lost().await;
        assert!(clone.is_lost());
        assert_eq!(clone.reason().as_deref(), Some("first"));
    }
}
