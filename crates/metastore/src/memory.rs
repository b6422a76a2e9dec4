//! In-process backend for tests and single-process tools.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{MetastoreError, MetastoreResult};
use crate::kv::{DEFAULT_MAX_TXN_OPS, MetaKv, Page, WriteBatch, check_page_limit, page_start};

/// A [`MetaKv`] in memory: a sorted map behind a lock, with the same limits and validation as
/// etcd so code tested against it behaves the same in production.
#[derive(Debug)]
pub struct MemoryKv {
    entries: RwLock<BTreeMap<String, Bytes>>,
    max_txn_ops: usize,
}

impl Default for MemoryKv {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryKv {
    /// An empty store with etcd's default limit of [`DEFAULT_MAX_TXN_OPS`] operations per
    /// transaction.
    pub fn new() -> Self {
        Self::with_max_txn_ops(DEFAULT_MAX_TXN_OPS)
    }

    /// An empty store with another per-transaction limit (e.g. small, to exercise splitting).
    pub fn with_max_txn_ops(max_txn_ops: usize) -> Self {
        assert!(max_txn_ops > 0, "max_txn_ops must be positive");
        Self {
            entries: RwLock::new(BTreeMap::new()),
            max_txn_ops,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Bytes>> {
        // No method panics while holding the lock, so a poisoned map is still consistent.
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Bytes>> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }
}

fn remove_prefix(entries: &mut BTreeMap<String, Bytes>, prefix: &str) {
    let doomed: Vec<String> = entries
        .range(prefix.to_string()..)
        .take_while(|(key, _)| key.starts_with(prefix))
        .map(|(key, _)| key.clone())
        .collect();
    for key in doomed {
        entries.remove(&key);
    }
}

#[async_trait]
impl MetaKv for MemoryKv {
    fn max_txn_ops(&self) -> usize {
        self.max_txn_ops
    }

    async fn load(&self, key: &str) -> MetastoreResult<Option<Bytes>> {
        Ok(self.read().get(key).cloned())
    }

    async fn load_prefix_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> MetastoreResult<Page> {
        check_page_limit(limit)?;
        let entries = self.read();
        let mut matching = entries
            .range(page_start(prefix, start_after)..)
            .take_while(|(key, _)| key.starts_with(prefix));
        let kvs: Vec<(String, Bytes)> = matching
            .by_ref()
            .take(limit)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let more = matching.next().is_some();
        Ok(Page { kvs, more })
    }

    async fn commit(&self, batch: WriteBatch) -> MetastoreResult<()> {
        batch.validate(self.max_txn_ops)?;
        // Validation guarantees no operation can fail below, so the batch applies as a whole.
        let mut entries = self.write();
        for key in &batch.removals {
            entries.remove(key);
        }
        for prefix in &batch.prefix_removals {
            remove_prefix(&mut entries, prefix);
        }
        for (key, value) in batch.saves {
            entries.insert(key, value);
        }
        Ok(())
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
        let mut entries = self.write();
        if entries.get(key) != expected.as_ref() {
            return Ok(false);
        }
        entries.insert(key.to_string(), new);
        Ok(true)
    }
}
