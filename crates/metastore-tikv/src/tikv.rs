//! TiKV backend on the transactional API of tikv-client.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use milvus_metastore::{
    DEFAULT_MAX_TXN_OPS, DEFAULT_REQUEST_TIMEOUT, MetaKv, MetastoreError, MetastoreResult, Page,
    WriteBatch,
};
use tikv_client::{CheckLevel, Transaction, TransactionClient, TransactionOptions};

/// What Go's TiKV layer stores in place of an empty value (TiKV's Go client refuses empty
/// values). Read back as empty; writing it literally is refused so it stays unambiguous.
pub const EMPTY_VALUE_SENTINEL: &[u8] = b"__milvus_reserved_empty_tikv_value_DO_NOT_USE";

/// Attempts of a transaction that lost an optimistic write conflict. Blind writes and CAS
/// (which re-reads) are safe to rerun: a conflicting prewrite never committed.
const CONFLICT_ATTEMPTS: usize = 8;

/// Largest gRPC response accepted (Go's clients allow up to `math.MaxInt32`).
const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

/// Keys fetched per scan request while collecting the keys of a prefix removal.
const REMOVAL_SCAN_BATCH: u32 = 1024;

/// A [`MetaKv`] on TiKV: optimistic transactions for writes and CAS, snapshot scans for reads.
/// Keys are used as given; wrap it in [`milvus_metastore::RootedKv`] for a root path.
#[derive(Clone)]
pub struct TikvKv {
    client: TransactionClient,
    request_timeout: Duration,
    max_txn_ops: usize,
}

impl std::fmt::Debug for TikvKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TikvKv")
            .field("request_timeout", &self.request_timeout)
            .field("max_txn_ops", &self.max_txn_ops)
            .finish_non_exhaustive()
    }
}

impl TikvKv {
    /// Connects to the PD endpoints of a TiKV cluster.
    pub async fn connect(pd_endpoints: Vec<String>) -> MetastoreResult<Self> {
        // tikv-client caps responses at 4 MiB by default, too small for a full page of large
        // segment records.
        let config =
            tikv_client::Config::default().with_grpc_max_decoding_message_size(MAX_RESPONSE_BYTES);
        let client = TransactionClient::new_with_config(pd_endpoints, config)
            .await
            .map_err(|err| MetastoreError::backend("connect", err))?;
        Ok(Self::new(client))
    }

    /// Uses `client` with a [`DEFAULT_REQUEST_TIMEOUT`] per operation and
    /// [`DEFAULT_MAX_TXN_OPS`] operations per transaction (the catalog's chunk size; TiKV itself
    /// limits transactions by size, not count).
    pub fn new(client: TransactionClient) -> Self {
        Self {
            client,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
        }
    }

    /// Sets the timeout of each operation, retries included.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the per-transaction operation limit.
    pub fn with_max_txn_ops(mut self, max_txn_ops: usize) -> Self {
        assert!(max_txn_ops > 0, "max_txn_ops must be positive");
        self.max_txn_ops = max_txn_ops;
        self
    }

    fn options() -> TransactionOptions {
        // A timed-out (cancelled) operation drops its transaction while active; an optimistic
        // transaction holds no locks before commit, so dropping it is harmless.
        TransactionOptions::new_optimistic().drop_check(CheckLevel::None)
    }

    async fn begin(&self) -> tikv_client::Result<Transaction> {
        self.client.begin_with_options(Self::options()).await
    }

    async fn snapshot(&self) -> tikv_client::Result<tikv_client::Snapshot> {
        let timestamp = self.client.current_timestamp().await?;
        Ok(self.client.snapshot(timestamp, Self::options()))
    }

    async fn bounded<T>(
        &self,
        op: &'static str,
        work: impl Future<Output = tikv_client::Result<T>>,
    ) -> MetastoreResult<T> {
        let timeout = self.request_timeout;
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(MetastoreError::backend(op, err)),
            Err(_elapsed) => Err(MetastoreError::Timeout { op, timeout }),
        }
    }

    /// Runs `attempt` in fresh transactions until it does not lose a write conflict.
    async fn with_conflict_retry<T, F, Fut>(&self, mut attempt: F) -> tikv_client::Result<T>
    where
        F: FnMut(Transaction) -> Fut,
        Fut: Future<Output = tikv_client::Result<T>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            let txn = self.begin().await?;
            match attempt(txn).await {
                Err(err) if tries < CONFLICT_ATTEMPTS && is_write_conflict(&err) => {
                    tokio::time::sleep(Duration::from_millis(5 << tries.min(6))).await;
                }
                outcome => return outcome,
            }
        }
    }
}

fn is_write_conflict(err: &tikv_client::Error) -> bool {
    use tikv_client::Error;
    match err {
        Error::KeyError(key_error) => key_error.conflict.is_some(),
        Error::MultipleKeyErrors(errors) | Error::ExtractedErrors(errors) => {
            errors.iter().any(is_write_conflict)
        }
        _ => false,
    }
}

fn encode_value(value: Bytes) -> MetastoreResult<Vec<u8>> {
    if value.is_empty() {
        return Ok(EMPTY_VALUE_SENTINEL.to_vec());
    }
    if value == EMPTY_VALUE_SENTINEL {
        return Err(MetastoreError::InvalidRequest(
            "value is TiKV's reserved empty-value marker".to_string(),
        ));
    }
    Ok(value.to_vec())
}

fn decode_value(stored: Vec<u8>) -> Bytes {
    if stored == EMPTY_VALUE_SENTINEL {
        return Bytes::new();
    }
    Bytes::from(stored)
}

fn key_string(key: tikv_client::Key) -> MetastoreResult<String> {
    String::from_utf8(Vec::from(key)).map_err(|err| MetastoreError::backend("range", err))
}

/// `[start, end)` of a prefix, `end = None` meaning unbounded.
fn prefix_range(prefix: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return (prefix.as_bytes().to_vec(), Some(end));
        }
    }
    (prefix.as_bytes().to_vec(), None)
}

/// Deletes every key under `prefix` inside `txn` (seen at its start timestamp plus its own
/// buffered writes).
async fn delete_prefix(txn: &mut Transaction, prefix: &str) -> tikv_client::Result<()> {
    let (mut start, end) = prefix_range(prefix);
    loop {
        let keys: Vec<tikv_client::Key> = txn
            .scan_keys((start.clone(), end.clone()), REMOVAL_SCAN_BATCH)
            .await?
            .collect();
        let full_batch = keys.len() == REMOVAL_SCAN_BATCH as usize;
        let Some(last) = keys.last() else {
            return Ok(());
        };
        start = Vec::from(last.clone());
        start.push(0);
        for key in keys {
            txn.delete(key).await?;
        }
        if !full_batch {
            return Ok(());
        }
    }
}

#[async_trait]
impl MetaKv for TikvKv {
    fn max_txn_ops(&self) -> usize {
        self.max_txn_ops
    }

    async fn load(&self, key: &str) -> MetastoreResult<Option<Bytes>> {
        let key = key.as_bytes().to_vec();
        let stored = self
            .bounded("get", async {
                let mut snapshot = self.snapshot().await?;
                snapshot.get(key).await
            })
            .await?;
        Ok(stored.map(decode_value))
    }

    async fn load_prefix_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> MetastoreResult<Page> {
        if limit == 0 {
            return Err(MetastoreError::InvalidRequest(
                "page limit must be positive".to_string(),
            ));
        }
        let (prefix_start, end) = prefix_range(prefix);
        let start = match start_after {
            Some(after) if after.as_bytes() >= prefix_start.as_slice() => {
                let mut start = after.as_bytes().to_vec();
                start.push(0);
                start
            }
            _ => prefix_start,
        };
        if end.as_ref().is_some_and(|end| start >= *end) {
            return Ok(Page::default());
        }
        // One extra key tells whether more follow.
        let fetch = u32::try_from(limit.saturating_add(1)).unwrap_or(u32::MAX);
        let pairs: Vec<tikv_client::KvPair> = self
            .bounded("range", async {
                let mut snapshot = self.snapshot().await?;
                Ok(snapshot.scan((start, end), fetch).await?.collect())
            })
            .await?;
        let mut kvs = pairs
            .into_iter()
            .map(|pair| {
                let (key, value): (tikv_client::Key, tikv_client::Value) = pair.into();
                Ok((key_string(key)?, decode_value(value)))
            })
            .collect::<MetastoreResult<Vec<_>>>()?;
        let more = kvs.len() > limit;
        kvs.truncate(limit);
        Ok(Page { kvs, more })
    }

    async fn commit(&self, batch: WriteBatch) -> MetastoreResult<()> {
        batch.validate(self.max_txn_ops)?;
        if batch.is_empty() {
            return Ok(());
        }
        let saves = batch
            .saves
            .into_iter()
            .map(|(key, value)| Ok((key.into_bytes(), encode_value(value)?)))
            .collect::<MetastoreResult<Vec<_>>>()?;
        let removals = &batch.removals;
        let prefixes = &batch.prefix_removals;
        self.bounded(
            "txn",
            self.with_conflict_retry(|mut txn| {
                let saves = saves.clone();
                async move {
                    // Prefix deletes first: validation guarantees no saved key lies under them.
                    for prefix in prefixes {
                        delete_prefix(&mut txn, prefix).await?;
                    }
                    for key in removals {
                        txn.delete(key.as_bytes().to_vec()).await?;
                    }
                    for (key, value) in saves {
                        txn.put(key, value).await?;
                    }
                    txn.commit().await.map(|_| ())
                }
            }),
        )
        .await
    }

    async fn remove_with_prefix(&self, prefix: &str) -> MetastoreResult<()> {
        self.commit(WriteBatch {
            prefix_removals: vec![prefix.to_string()],
            ..WriteBatch::default()
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Bytes>,
        new: Bytes,
    ) -> MetastoreResult<bool> {
        if key.is_empty() {
            return Err(MetastoreError::InvalidRequest("empty key".to_string()));
        }
        let new = encode_value(new)?;
        let key = key.as_bytes().to_vec();
        let expected = &expected;
        self.bounded(
            "cas",
            self.with_conflict_retry(|mut txn| {
                let key = key.clone();
                let new = new.clone();
                async move {
                    let current = txn.get(key.clone()).await?.map(decode_value);
                    if current != *expected {
                        // Nothing buffered: the transaction ends without touching TiKV.
                        return Ok(false);
                    }
                    txn.put(key, new).await?;
                    txn.commit().await?;
                    Ok(true)
                }
            }),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_use_gos_marker() {
        assert_eq!(encode_value(Bytes::new()).unwrap(), EMPTY_VALUE_SENTINEL);
        assert_eq!(decode_value(EMPTY_VALUE_SENTINEL.to_vec()), Bytes::new());
        assert_eq!(decode_value(b"v".to_vec()), Bytes::from_static(b"v"));
        assert!(matches!(
            encode_value(Bytes::from_static(EMPTY_VALUE_SENTINEL)),
            Err(MetastoreError::InvalidRequest(_))
        ));
    }

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_range("a/"), (b"a/".to_vec(), Some(b"a0".to_vec())));
        assert_eq!(prefix_range(""), (Vec::new(), None));
    }
}
