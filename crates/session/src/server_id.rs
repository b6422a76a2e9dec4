//! ServerID allocation from the shared counter `{meta_root}/session/id` (FACTS §B.3).

use etcd_client::{Compare, CompareOp, Txn, TxnOp};

use crate::error::SessionError;
use crate::keys::server_id_key;

/// Creates the counter with "1" if it does not exist yet (Go's `checkIDExist`).
pub(crate) async fn ensure_server_id_counter(
    client: &etcd_client::Client,
    meta_root: &str,
) -> Result<(), SessionError> {
    let key = server_id_key(meta_root);
    let txn = Txn::new()
        .when([Compare::version(key.as_str(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(key.as_str(), "1", None)]);
    client
        .kv_client()
        .txn(txn)
        .await
        .map_err(SessionError::etcd("init ServerID counter"))?;
    Ok(())
}

/// Hands out the next ServerID: reads the counter `v`, then compare-and-swaps it to `v+1`;
/// `v` is ours. Concurrent allocators (Go or Rust) never receive the same ID.
pub async fn allocate_server_id(
    client: &etcd_client::Client,
    meta_root: &str,
) -> Result<i64, SessionError> {
    let key = server_id_key(meta_root);
    let mut kv = client.kv_client();
    ensure_server_id_counter(client, meta_root).await?;
    loop {
        let response = kv
            .get(key.as_str(), None)
            .await
            .map_err(SessionError::etcd("read ServerID counter"))?;
        let Some(entry) = response.kvs().first() else {
            // Someone deleted the counter; start it again like a fresh cluster would.
            tracing::warn!(key = %key, "ServerID counter missing, re-initialising");
            ensure_server_id_counter(client, meta_root).await?;
            continue;
        };
        let text = String::from_utf8_lossy(entry.value()).into_owned();
        let current: i64 = text
            .trim()
            .parse()
            .map_err(|_| SessionError::BadServerIdCounter {
                key: key.clone(),
                value: text.clone(),
            })?;
        let txn = Txn::new()
            .when([Compare::value(
                key.as_str(),
                CompareOp::Equal,
                text.as_str(),
            )])
            .and_then([TxnOp::put(key.as_str(), (current + 1).to_string(), None)]);
        let swapped = kv
            .txn(txn)
            .await
            .map_err(SessionError::etcd("advance ServerID counter"))?
            .succeeded();
        if swapped {
            tracing::debug!(server_id = current, "allocated ServerID");
            return Ok(current);
        }
    }
}
