//! The chunk manager: one handle over the configured backend, speaking full Milvus paths.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use tracing::info;

use crate::config::{StorageConfig, StorageType};
use crate::error::{StorageError, StorageResult};
use crate::local::LocalBackend;
use crate::remote::RemoteBackend;

/// How many paths `remove_with_prefix` hands to one bulk delete (S3's `DeleteObjects` limit).
const REMOVE_BATCH: usize = 1000;

/// One entry of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Full path as Milvus uses it (local: filesystem path; remote: key in the bucket).
    /// Directories (non-recursive listings only) end with `/`.
    pub path: String,
    /// Size in bytes; 0 for directories.
    pub size: u64,
    /// Last modification time; `None` for remote directories (common prefixes have none).
    pub last_modified: Option<SystemTime>,
    /// True for a directory / common prefix.
    pub is_dir: bool,
}

/// Reads and writes segment files (binlogs, index files) on local disk or S3-compatible
/// storage. Cheap to clone; clones share one connection pool.
#[derive(Clone, Debug)]
pub struct ChunkManager {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root_path: String,
    storage_type: StorageType,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Local(LocalBackend),
    Remote(RemoteBackend),
}

impl ChunkManager {
    /// Connects to the configured storage. For remote storage this checks that the bucket is
    /// reachable with the given credentials and creates it when missing, as DataCoord does.
    pub async fn new(config: &StorageConfig) -> StorageResult<Self> {
        let root_path = config.effective_root_path();
        let backend = match config.storage_type {
            StorageType::Local => Backend::Local(LocalBackend),
            StorageType::Minio | StorageType::Remote => {
                Backend::Remote(RemoteBackend::connect(config).await?)
            }
        };
        info!(
            storage_type = %config.storage_type,
            bucket = %config.bucket_name,
            root_path = %root_path,
            "chunk manager ready"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                root_path,
                storage_type: config.storage_type,
                backend,
            }),
        })
    }

    /// The prefix of every path this storage holds: `files` (remote, no leading slash, no
    /// bucket) or the cleaned `localStorage.path` (local).
    pub fn root_path(&self) -> &str {
        &self.inner.root_path
    }

    /// Which backend is in use.
    pub fn storage_type(&self) -> StorageType {
        self.inner.storage_type
    }

    /// The whole content of a file; [`StorageError::NotFound`] when it does not exist.
    pub async fn read(&self, path: &str) -> StorageResult<Bytes> {
        match &self.inner.backend {
            Backend::Local(local) => local.read(path).await,
            Backend::Remote(remote) => remote.read(path).await,
        }
    }

    /// Creates or replaces a file atomically (readers see the old or the new content).
    pub async fn write(&self, path: &str, data: impl Into<Bytes>) -> StorageResult<()> {
        let data = data.into();
        match &self.inner.backend {
            Backend::Local(local) => local.write(path, data).await,
            Backend::Remote(remote) => remote.write(path, data).await,
        }
    }

    /// Whether the file exists (local storage: any filesystem entry).
    pub async fn exists(&self, path: &str) -> StorageResult<bool> {
        match &self.inner.backend {
            Backend::Local(local) => local.exists(path).await,
            Backend::Remote(remote) => remote.exists(path).await,
        }
    }

    /// Size in bytes; [`StorageError::NotFound`] when the file does not exist.
    pub async fn size(&self, path: &str) -> StorageResult<u64> {
        match &self.inner.backend {
            Backend::Local(local) => local.size(path).await,
            Backend::Remote(remote) => remote.size(path).await,
        }
    }

    /// Deletes one file. Deleting a missing file succeeds (S3 semantics; GC relies on it).
    pub async fn remove(&self, path: &str) -> StorageResult<()> {
        match &self.inner.backend {
            Backend::Local(local) => local.remove(path).await,
            Backend::Remote(remote) => remote.remove(path).await,
        }
    }

    /// Deletes many files (remote: bulk `DeleteObjects`, 1000 keys per request). Missing files
    /// are fine; other failures are reported together as [`StorageError::PartialRemove`] after
    /// every path was tried.
    pub async fn multi_remove(&self, paths: &[String]) -> StorageResult<()> {
        if paths.is_empty() {
            return Ok(());
        }
        match &self.inner.backend {
            Backend::Local(local) => local.multi_remove(paths).await,
            Backend::Remote(remote) => remote.multi_remove(paths).await,
        }
    }

    /// Deletes every file whose path starts with `prefix` (a string prefix: `a/1` also covers
    /// `a/10/x`; end it with `/` to mean one directory). An empty prefix is refused.
    pub async fn remove_with_prefix(&self, prefix: &str) -> StorageResult<()> {
        if prefix.is_empty() {
            return Err(StorageError::InvalidPath {
                path: String::new(),
                reason: "empty prefix is not allowed for remove".to_string(),
            });
        }
        let mut batches = self
            .list_with_prefix(prefix, true)
            .map_ok(|info| info.path)
            .try_chunks(REMOVE_BATCH);
        while let Some(batch) = batches.next().await {
            let paths = batch.map_err(|e| e.1)?;
            self.multi_remove(&paths).await?;
        }
        Ok(())
    }

    /// Streams the entries whose path starts with `prefix` (a string prefix, as Go's
    /// `ListWithPrefix`). `recursive`: every file below, no directories. Not recursive: one
    /// level, files plus directories (ending with `/`, `is_dir` set).
    pub fn list_with_prefix(
        &self,
        prefix: &str,
        recursive: bool,
    ) -> BoxStream<'static, StorageResult<ObjectInfo>> {
        match &self.inner.backend {
            Backend::Local(local) => local.list_with_prefix(prefix, recursive),
            Backend::Remote(remote) => remote.list_with_prefix(prefix, recursive),
        }
    }
}

/// Folds the failures of a bulk remove into one result.
pub(crate) fn combine_failures(mut failures: Vec<StorageError>, total: usize) -> StorageResult<()> {
    if failures.is_empty() {
        return Ok(());
    }
    let failed = failures.len();
    let first = failures.swap_remove(0);
    Err(StorageError::PartialRemove {
        failed,
        total,
        first: Box::new(first),
    })
}
