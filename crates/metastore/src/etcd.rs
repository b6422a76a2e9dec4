//! etcd backend (etcd v3 API; tested against etcd 3.4).

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, KvClient, SortOrder, SortTarget, Txn,
    TxnOp,
};

use crate::error::{MetastoreError, MetastoreResult};
use crate::kv::{
    DEFAULT_MAX_TXN_OPS, MetaKv, Page, WriteBatch, check_page_limit, page_start, prefix_range_end,
};

/// Per-request timeout: Milvus's `etcd.requestTimeout` default of 10000 ms.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(10_000);

/// Largest response accepted, as Go's etcd client (`math.MaxInt32`).
const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

/// A [`MetaKv`] on etcd. Keys are used as given; wrap it in [`crate::RootedKv`] for Milvus's
/// `rootPath/metaSubPath`.
#[derive(Clone)]
pub struct EtcdKv {
    client: Client,
    request_timeout: Duration,
    max_txn_ops: usize,
}

impl std::fmt::Debug for EtcdKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdKv")
            .field("request_timeout", &self.request_timeout)
            .field("max_txn_ops", &self.max_txn_ops)
            .finish_non_exhaustive()
    }
}

impl EtcdKv {
    /// Uses `client` with a [`DEFAULT_REQUEST_TIMEOUT`] per request and etcd's default limit of
    /// [`DEFAULT_MAX_TXN_OPS`] operations per transaction.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
        }
    }

    /// Sets the timeout of each request (`etcd.requestTimeout`).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the per-transaction limit; it must not exceed the server's `--max-txn-ops`.
    pub fn with_max_txn_ops(mut self, max_txn_ops: usize) -> Self {
        assert!(max_txn_ops > 0, "max_txn_ops must be positive");
        self.max_txn_ops = max_txn_ops;
        self
    }

    fn kv_client(&self) -> KvClient {
        // Cheap: clones a handle on the shared gRPC channel. tonic's default 4 MiB response cap
        // is too small for a page of 2000 segment records; Go's client accepts up to 2 GiB.
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// Runs one request under the timeout and maps its error.
    async fn request<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> MetastoreResult<T> {
        let timeout = self.request_timeout;
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => Err(map_error(op, timeout, err)),
            Err(_elapsed) => Err(MetastoreError::Timeout { op, timeout }),
        }
    }

    async fn txn(&self, op: &'static str, txn: Txn) -> MetastoreResult<bool> {
        let mut kv = self.kv_client();
        let response = self.request(op, kv.txn(txn)).await?;
        Ok(response.succeeded())
    }
}

fn map_error(op: &'static str, timeout: Duration, err: etcd_client::Error) -> MetastoreError {
    match &err {
        etcd_client::Error::GRpcStatus(status)
            if status.code() == tonic::Code::DeadlineExceeded =>
        {
            MetastoreError::Timeout { op, timeout }
        }
        _ => MetastoreError::backend(op, err),
    }
}

fn into_entry(kv: etcd_client::KeyValue) -> MetastoreResult<(String, Bytes)> {
    let (key, value) = kv.into_key_value();
    let key = String::from_utf8(key).map_err(|err| MetastoreError::backend("range", err))?;
    Ok((key, Bytes::from(value)))
}

#[async_trait]
impl MetaKv for EtcdKv {
    fn max_txn_ops(&self) -> usize {
        self.max_txn_ops
    }

    async fn load(&self, key: &str) -> MetastoreResult<Option<Bytes>> {
        let mut kv = self.kv_client();
        let mut response = self.request("get", kv.get(key, None)).await?;
        match response.take_kvs().into_iter().next() {
            Some(found) => Ok(Some(Bytes::from(found.into_key_value().1))),
            None => Ok(None),
        }
    }

    async fn load_prefix_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> MetastoreResult<Page> {
        check_page_limit(limit)?;
        let start = page_start(prefix, start_after);
        // "\0" as range end means "to the end of the keyspace" in etcd.
        let end = prefix_range_end(prefix.as_bytes()).unwrap_or_else(|| vec![0]);
        if end != [0] && start.as_bytes() >= end.as_slice() {
            return Ok(Page::default());
        }
        let options = GetOptions::new()
            .with_range(end)
            .with_limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .with_sort(SortTarget::Key, SortOrder::Ascend);
        let mut kv = self.kv_client();
        let mut response = self.request("range", kv.get(start, Some(options))).await?;
        let more = response.more();
        let kvs = response
            .take_kvs()
            .into_iter()
            .map(into_entry)
            .collect::<MetastoreResult<Vec<_>>>()?;
        Ok(Page { kvs, more })
    }

    async fn commit(&self, batch: WriteBatch) -> MetastoreResult<()> {
        batch.validate(self.max_txn_ops)?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut ops = Vec::with_capacity(batch.op_count());
        for (key, value) in batch.saves {
            ops.push(TxnOp::put(key, value.to_vec(), None));
        }
        for key in batch.removals {
            ops.push(TxnOp::delete(key, None));
        }
        for prefix in batch.prefix_removals {
            ops.push(TxnOp::delete(
                prefix,
                Some(DeleteOptions::new().with_prefix()),
            ));
        }
        // No compare: the transaction always takes the success branch.
        self.txn("txn", Txn::new().and_then(ops)).await?;
        Ok(())
    }

    async fn remove_with_prefix(&self, prefix: &str) -> MetastoreResult<()> {
        if prefix.is_empty() {
            return Err(MetastoreError::InvalidRequest(
                "empty prefix would remove every key".to_string(),
            ));
        }
        let mut kv = self.kv_client();
        let options = DeleteOptions::new().with_prefix();
        self.request("delete_prefix", kv.delete(prefix, Some(options)))
            .await?;
        Ok(())
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
        let compare = match expected {
            // A key that never existed or was deleted has create_revision 0.
            None => Compare::create_revision(key, CompareOp::Equal, 0),
            // etcd fails a value compare on a missing key, so `Some(empty)` needs the key.
            Some(value) => Compare::value(key, CompareOp::Equal, value.to_vec()),
        };
        let txn =
            Txn::new()
                .when(vec![compare])
                .and_then(vec![TxnOp::put(key, new.to_vec(), None)]);
        self.txn("cas", txn).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that accepts connections and never answers: every request must end in a
    /// `Timeout` (the "maybe applied" outcome), not hang or look like a definite failure.
    #[tokio::test]
    async fn silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let client = Client::connect([address.to_string()], None).await.unwrap();
        let kv = EtcdKv::new(client).with_request_timeout(Duration::from_millis(200));

        let write = kv.save("k", Bytes::from_static(b"v")).await.unwrap_err();
        assert!(write.is_timeout() && write.maybe_applied(), "{write:?}");
        let read = kv.load("k").await.unwrap_err();
        assert!(read.is_timeout(), "{read:?}");
        let cas = kv
            .compare_and_swap("k", None, Bytes::new())
            .await
            .unwrap_err();
        assert!(cas.is_timeout(), "{cas:?}");
        holder.abort();
    }
}
