//! A backend wrapper that confines every key under a root path.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{MetastoreError, MetastoreResult};
use crate::kv::{MetaKv, Page, WriteBatch};

/// Puts every key under `root/` of an inner store and strips that part from returned keys, so
/// callers use relative keys (`datacoord-meta/s/1/2/3`) while the store holds Milvus's full
/// paths (`by-dev/meta/datacoord-meta/s/1/2/3`, i.e. `etcd.rootPath/etcd.metaSubPath/key`).
///
/// The root is joined with a single `/` and keys are otherwise untouched; Go's `path.Join`
/// gives the same full keys for the clean relative keys Milvus uses. Two roots never see each
/// other's keys, even when one is a string prefix of the other (`r/a` vs `r/ab`). An empty
/// relative prefix means the whole root, so `remove_with_prefix("")` clears it.
#[derive(Clone)]
pub struct RootedKv {
    inner: Arc<dyn MetaKv>,
    /// The root followed by `/`, or empty for no root.
    root_slash: String,
}

impl std::fmt::Debug for RootedKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootedKv")
            .field("root", &self.root())
            .finish_non_exhaustive()
    }
}

impl RootedKv {
    /// Roots `inner` at `root` (trailing `/` ignored; an empty root leaves keys unchanged).
    pub fn new(inner: Arc<dyn MetaKv>, root: &str) -> Self {
        let trimmed = root.trim_end_matches('/');
        let root_slash = if trimmed.is_empty() {
            String::new()
        } else {
            format!("{trimmed}/")
        };
        Self { inner, root_slash }
    }

    /// The root, without the trailing `/`.
    pub fn root(&self) -> &str {
        self.root_slash.strip_suffix('/').unwrap_or("")
    }

    fn full(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.root_slash.len() + key.len());
        full.push_str(&self.root_slash);
        full.push_str(key);
        full
    }

    /// A relative key must be non-empty: the bare root is not a key of this view.
    fn full_key(&self, key: &str) -> MetastoreResult<String> {
        if key.is_empty() {
            return Err(MetastoreError::InvalidRequest("empty key".to_string()));
        }
        Ok(self.full(key))
    }

    fn relative(&self, full_key: String) -> MetastoreResult<String> {
        match full_key.strip_prefix(self.root_slash.as_str()) {
            Some(relative) => Ok(relative.to_string()),
            None => Err(MetastoreError::backend(
                "range",
                format!("key {full_key:?} lies outside root {:?}", self.root()),
            )),
        }
    }
}

#[async_trait]
impl MetaKv for RootedKv {
    fn max_txn_ops(&self) -> usize {
        self.inner.max_txn_ops()
    }

    async fn load(&self, key: &str) -> MetastoreResult<Option<Bytes>> {
        self.inner.load(&self.full_key(key)?).await
    }

    async fn load_prefix_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> MetastoreResult<Page> {
        let full_start_after = start_after.map(|key| self.full(key));
        let page = self
            .inner
            .load_prefix_page(&self.full(prefix), full_start_after.as_deref(), limit)
            .await?;
        let kvs = page
            .kvs
            .into_iter()
            .map(|(key, value)| Ok((self.relative(key)?, value)))
            .collect::<MetastoreResult<Vec<_>>>()?;
        Ok(Page {
            kvs,
            more: page.more,
        })
    }

    async fn commit(&self, batch: WriteBatch) -> MetastoreResult<()> {
        // Rooting would turn an empty key or prefix into a valid-looking one (the root itself,
        // or the whole root), so reject those here. Every other rule survives rooting (same op
        // count, same duplicates and overlaps) and is left to the inner store.
        let has_empty = batch.saves.iter().any(|(key, _)| key.is_empty())
            || batch.removals.iter().any(String::is_empty)
            || batch.prefix_removals.iter().any(String::is_empty);
        if has_empty && !self.root_slash.is_empty() {
            return Err(MetastoreError::InvalidRequest(
                "empty key or prefix in a rooted batch".to_string(),
            ));
        }
        let rooted = WriteBatch {
            saves: batch
                .saves
                .into_iter()
                .map(|(key, value)| (self.full(&key), value))
                .collect(),
            removals: batch.removals.iter().map(|key| self.full(key)).collect(),
            prefix_removals: batch
                .prefix_removals
                .iter()
                .map(|prefix| self.full(prefix))
                .collect(),
        };
        self.inner.commit(rooted).await
    }

    async fn remove_with_prefix(&self, prefix: &str) -> MetastoreResult<()> {
        // An empty relative prefix is the whole root; without a root it stays empty and the
        // inner store rejects it.
        self.inner.remove_with_prefix(&self.full(prefix)).await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Bytes>,
        new: Bytes,
    ) -> MetastoreResult<bool> {
        self.inner
            .compare_and_swap(&self.full_key(key)?, expected, new)
            .await
    }
}
