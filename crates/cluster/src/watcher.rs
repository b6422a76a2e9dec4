//! Following `{metaRoot}/{subpath}/` in etcd without losing a datanode answer.
//!
//! The watch starts right after a listing (at its revision + 1). A broken stream is reopened at
//! the revision after the last event seen; a compacted revision makes the watcher list the
//! prefix again and hand every record to the manager (records in an answer state are answers
//! not yet acted on), then watch from that listing. Go instead re-watches from the compact
//! revision or "now". A watch etcd cancels for another reason cannot be repaired: `lost` fires.

use etcd_client::{EventType, GetOptions, WatchOptions, WatchStream};
use milvus_types::Backoff;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::error::{ClusterError, ClusterResult};

/// Largest response accepted, as Go's etcd client.
const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;
/// Attempts to reopen the watch or re-list before giving up (backoff 200 ms doubling to 3 s,
/// about 80 s in all, like Go's retry defaults).
const RETRY_ATTEMPTS: u32 = 30;

/// What the watcher hands to the manager.
#[derive(Debug)]
pub(crate) enum WatchItem {
    /// A record was put; key relative to metaRoot.
    Put { key: String, value: Vec<u8> },
    /// The watch had to start over: every current record, keys relative to metaRoot.
    Relisted(Vec<(String, Vec<u8>)>),
}

/// Where the watch records live in etcd.
#[derive(Clone)]
pub(crate) struct WatchTarget {
    client: etcd_client::Client,
    /// metaRoot followed by `/`, or empty.
    root_slash: String,
    /// `{metaRoot}/{subpath}/`.
    full_prefix: String,
}

impl std::fmt::Debug for WatchTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchTarget")
            .field("full_prefix", &self.full_prefix)
            .finish_non_exhaustive()
    }
}

impl WatchTarget {
    pub(crate) fn new(client: etcd_client::Client, meta_root: &str, subpath: &str) -> Self {
        let root = meta_root.trim_end_matches('/');
        let root_slash = if root.is_empty() {
            String::new()
        } else {
            format!("{root}/")
        };
        let full_prefix = format!("{root_slash}{subpath}/");
        Self {
            client,
            root_slash,
            full_prefix,
        }
    }

    fn relative(&self, full_key: &[u8]) -> Option<String> {
        let full_key = std::str::from_utf8(full_key).ok()?;
        full_key
            .strip_prefix(self.root_slash.as_str())
            .map(str::to_string)
    }

    /// Every record (keys relative to metaRoot) and the revision of that snapshot.
    pub(crate) async fn list(&self) -> ClusterResult<(Vec<(String, Vec<u8>)>, i64)> {
        let mut kv = self
            .client
            .kv_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        let response = kv
            .get(
                self.full_prefix.as_str(),
                Some(GetOptions::new().with_prefix()),
            )
            .await
            .map_err(ClusterError::etcd("list channel watch records"))?;
        let revision = response.header().map_or(0, |header| header.revision());
        let records = response
            .kvs()
            .iter()
            .filter_map(|kv| Some((self.relative(kv.key())?, kv.value().to_vec())))
            .collect();
        Ok((records, revision))
    }

    async fn open(&self, revision: i64) -> ClusterResult<WatchStream> {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision);
        self.client
            .watch_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .watch(self.full_prefix.as_str(), Some(options))
            .await
            .map_err(ClusterError::etcd("watch channel watch records"))
    }

    /// Feeds `tx` until `token` is cancelled or the receiver is gone; fires `lost` when the
    /// watch cannot continue.
    pub(crate) async fn run(
        self,
        start_revision: i64,
        tx: mpsc::Sender<WatchItem>,
        token: CancellationToken,
        lost: CancellationToken,
    ) {
        let outcome = tokio::select! {
            () = token.cancelled() => Ok(()),
            outcome = self.follow(start_revision, &tx) => outcome,
        };
        match outcome {
            Ok(()) => info!(prefix = %self.full_prefix, "channel watch loop quit"),
            Err(err) => {
                error!(prefix = %self.full_prefix, error = %err, "channel watch lost, datacoord is not functional");
                lost.cancel();
            }
        }
    }

    /// Ok(()) only when the receiver is gone.
    async fn follow(&self, start_revision: i64, tx: &mpsc::Sender<WatchItem>) -> ClusterResult<()> {
        let mut next_revision = start_revision;
        loop {
            let mut stream = retry("open channel watch", || self.open(next_revision)).await?;
            loop {
                let message = match stream.message().await {
                    Ok(Some(message)) => message,
                    Ok(None) => {
                        warn!(prefix = %self.full_prefix, "channel watch closed, re-watching");
                        break;
                    }
                    Err(err) => {
                        warn!(prefix = %self.full_prefix, error = %err, "channel watch failed, re-watching");
                        break;
                    }
                };
                if message.compact_revision() > 0 {
                    warn!(prefix = %self.full_prefix, compact_revision = message.compact_revision(),
                        "channel watch compacted, re-listing");
                    let (records, revision) =
                        retry("re-list channel watch records", || self.list()).await?;
                    if tx.send(WatchItem::Relisted(records)).await.is_err() {
                        return Ok(());
                    }
                    next_revision = revision + 1;
                    break;
                }
                if message.canceled() {
                    return Err(ClusterError::WatchCancelled {
                        reason: message.cancel_reason().to_string(),
                    });
                }
                for event in message.events() {
                    let Some(kv) = event.kv() else { continue };
                    next_revision = next_revision.max(kv.mod_revision() + 1);
                    if event.event_type() != EventType::Put {
                        continue;
                    }
                    let Some(key) = self.relative(kv.key()) else {
                        continue;
                    };
                    let item = WatchItem::Put {
                        key,
                        value: kv.value().to_vec(),
                    };
                    if tx.send(item).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

async fn retry<T, F, Fut>(what: &'static str, op: F) -> ClusterResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ClusterResult<T>>,
{
    milvus_types::retry(Backoff::RETRY_DO, op, |err, attempt| {
        if attempt >= RETRY_ATTEMPTS {
            return false;
        }
        if attempt % 4 == 1 {
            warn!(what, attempt, error = %err, "retrying");
        }
        true
    })
    .await
}
