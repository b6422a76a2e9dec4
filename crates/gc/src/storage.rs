//! [`GcStorage`]: the object-storage operations GC needs, so tests can inject failures.

use async_trait::async_trait;
use futures::TryStreamExt;
use milvus_storage::{ChunkManager, ObjectInfo, StorageResult};

/// What GC does to object storage. Paths are full Milvus paths (see `milvus-storage`).
#[async_trait]
pub trait GcStorage: Send + Sync {
    /// The root every GC prefix is built under (`minio.rootPath` / `localStorage.path`).
    fn root_path(&self) -> &str;

    /// Every entry under `prefix` (a string prefix). Recursive: files only. Not recursive: one
    /// level, directories end with `/` and have `is_dir`.
    async fn list(&self, prefix: &str, recursive: bool) -> StorageResult<Vec<ObjectInfo>>;

    /// Deletes the files (missing ones count as deleted); every path is tried even when some fail.
    async fn remove_files(&self, paths: &[String]) -> StorageResult<()>;
}

#[async_trait]
impl GcStorage for ChunkManager {
    fn root_path(&self) -> &str {
        ChunkManager::root_path(self)
    }

    async fn list(&self, prefix: &str, recursive: bool) -> StorageResult<Vec<ObjectInfo>> {
        self.list_with_prefix(prefix, recursive).try_collect().await
    }

    async fn remove_files(&self, paths: &[String]) -> StorageResult<()> {
        self.multi_remove(paths).await
    }
}
