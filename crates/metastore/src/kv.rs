//! The metadata key-value trait and the types its methods exchange.

use std::collections::HashSet;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use crate::error::{MetastoreError, MetastoreResult};

/// Keys per range request of a prefix walk (Go's `WalkWithPrefix` pagination in DataCoord).
pub const DEFAULT_PAGE_SIZE: usize = 2000;

/// Operations per transaction: etcd's default `--max-txn-ops`, and the chunk size DataCoord's
/// catalog uses for multi-key writes.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

/// One page of a prefix walk, in ascending byte order of keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// Keys (as the store names them) and values.
    pub kvs: Vec<(String, Bytes)>,
    /// Whether keys after the last one of this page match the prefix.
    pub more: bool,
}

/// The writes of one transaction: puts, single-key deletes and prefix deletes.
///
/// Each entry is one operation towards [`MetaKv::max_txn_ops`] (a prefix delete counts once,
/// however many keys it removes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// Keys to put and their values.
    pub saves: Vec<(String, Bytes)>,
    /// Keys to delete (a missing key is not an error).
    pub removals: Vec<String>,
    /// Prefixes whose every key is deleted, matched literally.
    pub prefix_removals: Vec<String>,
}

impl WriteBatch {
    /// Number of operations the batch sends.
    pub fn op_count(&self) -> usize {
        self.saves.len() + self.removals.len() + self.prefix_removals.len()
    }

    /// Whether the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.op_count() == 0
    }

    /// Checks what every backend must reject before sending anything: more than `max_ops`
    /// operations, an empty key or prefix, a key saved twice, and a saved key that the same
    /// batch also deletes (etcd refuses such transactions; the other backends follow it so the
    /// behaviour does not depend on the backend).
    pub fn validate(&self, max_ops: usize) -> MetastoreResult<()> {
        let ops = self.op_count();
        if ops > max_ops {
            return Err(MetastoreError::TxnTooLarge {
                ops,
                limit: max_ops,
            });
        }
        let invalid = |what: String| Err(MetastoreError::InvalidRequest(what));
        let mut saved = HashSet::with_capacity(self.saves.len());
        for (key, _) in &self.saves {
            if key.is_empty() {
                return invalid("empty key in saves".to_string());
            }
            if !saved.insert(key.as_str()) {
                return invalid(format!("key {key:?} saved twice in one transaction"));
            }
        }
        for key in &self.removals {
            if key.is_empty() {
                return invalid("empty key in removals".to_string());
            }
            if saved.contains(key.as_str()) {
                return invalid(format!(
                    "key {key:?} both saved and removed in one transaction"
                ));
            }
        }
        for prefix in &self.prefix_removals {
            if prefix.is_empty() {
                return invalid("empty prefix in prefix removals".to_string());
            }
            if let Some(key) = saved.iter().find(|key| key.starts_with(prefix.as_str())) {
                return invalid(format!(
                    "key {key:?} saved and removed by prefix {prefix:?} in one transaction"
                ));
            }
        }
        Ok(())
    }
}

/// Transactional key-value store holding Milvus metadata (etcd, TiKV, or memory for tests).
///
/// # Keys and prefixes
/// Keys are non-empty strings compared as bytes. A prefix matches every key that starts with
/// it **literally**: `a/1` also matches `a/10`. Callers that mean a directory pass a trailing
/// `/` (`a/1/`). Go's etcd layer joins paths with `path.Join`, which drops a trailing slash;
/// this crate never rewrites keys or prefixes.
///
/// # Values
/// Values are arbitrary bytes; an empty value is legal and reads back as empty (Go stores empty
/// `FieldBinlog` values).
///
/// # Atomicity
/// - `commit` and the `multi_*` methods are **one transaction**: all of their operations become
///   visible together or none does. A batch of more than [`MetaKv::max_txn_ops`] operations is
///   rejected with [`MetastoreError::TxnTooLarge`] and nothing is written.
/// - `multi_save_batched` / `multi_remove_batched` split at `max_txn_ops`: **each chunk is
///   atomic, the whole batch is not**. If a later chunk fails, earlier chunks stay written.
///   Callers needing all-or-nothing keep their batch within the limit (DataCoord's meta layer
///   groups the keys of one segment into one transaction).
/// - `remove_with_prefix` deletes one range; it is atomic on etcd and memory, and on TiKV as
///   long as the range fits in one TiKV transaction.
/// - A prefix walk (`load_prefix`) sends one request per page; it is **not** a snapshot:
///   writes between pages may or may not be seen, but every key present for the whole walk is
///   returned exactly once, in order.
///
/// # Timeouts
/// Backends bound every request; a write that fails with [`MetastoreError::Timeout`] (or a
/// lost connection) may have been applied. See [`MetastoreError::maybe_applied`].
#[async_trait]
pub trait MetaKv: Send + Sync {
    /// Most operations one transaction may hold.
    fn max_txn_ops(&self) -> usize;

    /// The value of `key`, `None` if absent.
    async fn load(&self, key: &str) -> MetastoreResult<Option<Bytes>>;

    /// Up to `limit` (> 0) keys starting with `prefix`, in ascending order, beginning after
    /// `start_after` (exclusive) or at the first key of the prefix when `None`.
    async fn load_prefix_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> MetastoreResult<Page>;

    /// Applies `batch` in one transaction, after [`WriteBatch::validate`] with
    /// [`MetaKv::max_txn_ops`]. Callers normally use the `multi_*` methods.
    async fn commit(&self, batch: WriteBatch) -> MetastoreResult<()>;

    /// Deletes every key that starts with `prefix` (non-empty, matched literally).
    async fn remove_with_prefix(&self, prefix: &str) -> MetastoreResult<()>;

    /// Sets `key` to `new` if its current value equals `expected` (`None`: the key must not
    /// exist). Returns whether the swap happened; among concurrent swaps with the same
    /// expectation exactly one wins.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Bytes>,
        new: Bytes,
    ) -> MetastoreResult<bool>;

    /// Puts `kvs` in one transaction.
    async fn multi_save(&self, kvs: Vec<(String, Bytes)>) -> MetastoreResult<()> {
        self.commit(WriteBatch {
            saves: kvs,
            ..WriteBatch::default()
        })
        .await
    }

    /// Deletes `keys` in one transaction.
    async fn multi_remove(&self, keys: Vec<String>) -> MetastoreResult<()> {
        self.commit(WriteBatch {
            removals: keys,
            ..WriteBatch::default()
        })
        .await
    }

    /// Puts `saves` and deletes `removals` in one transaction.
    async fn multi_save_and_remove(
        &self,
        saves: Vec<(String, Bytes)>,
        removals: Vec<String>,
    ) -> MetastoreResult<()> {
        self.commit(WriteBatch {
            saves,
            removals,
            prefix_removals: Vec::new(),
        })
        .await
    }

    /// Puts `saves` and deletes every key under each of `prefixes` in one transaction.
    async fn multi_save_and_remove_with_prefix(
        &self,
        saves: Vec<(String, Bytes)>,
        prefixes: Vec<String>,
    ) -> MetastoreResult<()> {
        self.commit(WriteBatch {
            saves,
            removals: Vec::new(),
            prefix_removals: prefixes,
        })
        .await
    }

    /// Puts one key.
    async fn save(&self, key: &str, value: Bytes) -> MetastoreResult<()> {
        self.multi_save(vec![(key.to_string(), value)]).await
    }

    /// Deletes one key (absent is fine).
    async fn remove(&self, key: &str) -> MetastoreResult<()> {
        self.multi_remove(vec![key.to_string()]).await
    }

    /// Walks every key under `prefix` in order, one page of up to `page_size` keys per request
    /// ([`DEFAULT_PAGE_SIZE`] matches Go), so large prefixes never sit in one response.
    fn load_prefix<'a>(
        &'a self,
        prefix: &'a str,
        page_size: usize,
    ) -> BoxStream<'a, MetastoreResult<Vec<(String, Bytes)>>> {
        // State: `None` once the walk is over, else the key the next page starts after.
        let first: Option<Option<String>> = Some(None);
        stream::try_unfold(first, move |cursor| async move {
            let Some(start_after) = cursor else {
                return Ok(None);
            };
            let page = self
                .load_prefix_page(prefix, start_after.as_deref(), page_size)
                .await?;
            let next = match (page.more, page.kvs.last()) {
                (false, _) => None,
                (true, Some((last_key, _))) => Some(Some(last_key.clone())),
                (true, None) => {
                    return Err(MetastoreError::backend(
                        "range",
                        "empty page reported more keys",
                    ));
                }
            };
            if page.kvs.is_empty() {
                return Ok(None);
            }
            Ok(Some((page.kvs, next)))
        })
        .boxed()
    }

    /// Every key under `prefix`, collected; for prefixes known to be small.
    async fn load_all_with_prefix(&self, prefix: &str) -> MetastoreResult<Vec<(String, Bytes)>> {
        let pages: Vec<_> = self
            .load_prefix(prefix, DEFAULT_PAGE_SIZE)
            .try_collect()
            .await?;
        Ok(pages.into_iter().flatten().collect())
    }

    /// Puts `kvs` in as many transactions of at most [`MetaKv::max_txn_ops`] as needed, in
    /// order. Each chunk is atomic, the whole batch is not.
    async fn multi_save_batched(&self, kvs: Vec<(String, Bytes)>) -> MetastoreResult<()> {
        let chunk_size = self.max_txn_ops().max(1);
        let mut rest = kvs.into_iter();
        loop {
            let chunk: Vec<_> = rest.by_ref().take(chunk_size).collect();
            if chunk.is_empty() {
                return Ok(());
            }
            self.multi_save(chunk).await?;
        }
    }

    /// Deletes `keys` in as many transactions of at most [`MetaKv::max_txn_ops`] as needed.
    /// Each chunk is atomic, the whole batch is not.
    async fn multi_remove_batched(&self, keys: Vec<String>) -> MetastoreResult<()> {
        let chunk_size = self.max_txn_ops().max(1);
        let mut rest = keys.into_iter();
        loop {
            let chunk: Vec<_> = rest.by_ref().take(chunk_size).collect();
            if chunk.is_empty() {
                return Ok(());
            }
            self.multi_remove(chunk).await?;
        }
    }
}

/// The first key a page may return: the prefix itself, or just after `start_after` when that
/// lies beyond the prefix's start.
pub(crate) fn page_start(prefix: &str, start_after: Option<&str>) -> String {
    match start_after {
        Some(after) if after >= prefix => {
            let mut start = String::with_capacity(after.len() + 1);
            start.push_str(after);
            // The smallest key greater than `after`.
            start.push('\0');
            start
        }
        _ => prefix.to_string(),
    }
}

/// The exclusive end of the key range of `prefix`: the prefix with its last byte below 0xff
/// incremented; `None` when no such byte exists (every key from the start matches).
pub(crate) fn prefix_range_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Rejects a zero page limit, which etcd would read as "no limit".
pub(crate) fn check_page_limit(limit: usize) -> MetastoreResult<()> {
    if limit == 0 {
        return Err(MetastoreError::InvalidRequest(
            "page limit must be positive".to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn save(key: &str) -> (String, Bytes) {
        (key.to_string(), Bytes::from_static(b"v"))
    }

    #[test]
    fn validate_rejects_conflicts() {
        let limit = 10;
        let over = WriteBatch {
            saves: (0..6).map(|i| save(&format!("k{i}"))).collect(),
            removals: (0..5).map(|i| format!("r{i}")).collect(),
            ..WriteBatch::default()
        };
        assert!(matches!(
            over.validate(limit),
            Err(MetastoreError::TxnTooLarge { ops: 11, limit: 10 })
        ));

        let twice = WriteBatch {
            saves: vec![save("a"), save("a")],
            ..WriteBatch::default()
        };
        assert!(matches!(
            twice.validate(limit),
            Err(MetastoreError::InvalidRequest(_))
        ));

        let saved_and_removed = WriteBatch {
            saves: vec![save("a")],
            removals: vec!["a".into()],
            ..WriteBatch::default()
        };
        assert!(saved_and_removed.validate(limit).is_err());

        let under_removed_prefix = WriteBatch {
            saves: vec![save("a/10")],
            prefix_removals: vec!["a/1".into()],
            ..WriteBatch::default()
        };
        assert!(under_removed_prefix.validate(limit).is_err());

        let empty_prefix = WriteBatch {
            prefix_removals: vec![String::new()],
            ..WriteBatch::default()
        };
        assert!(empty_prefix.validate(limit).is_err());

        let fine = WriteBatch {
            saves: vec![save("a/10")],
            removals: vec!["a/2".into(), "a/2".into()],
            prefix_removals: vec!["a/1/".into()],
        };
        assert!(fine.validate(limit).is_ok());
    }

    #[test]
    fn range_helpers() {
        assert_eq!(prefix_range_end(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(prefix_range_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_range_end(b"\xff\xff"), None);
        assert_eq!(prefix_range_end(b""), None);

        assert_eq!(page_start("a/", None), "a/");
        assert_eq!(page_start("a/", Some("a/5")), "a/5\0");
        // A cursor before the prefix must not widen the range.
        assert_eq!(page_start("b/", Some("a/5")), "b/");
    }
}
