//! [`GcStorage`]: the object-storage operations GC needs, so tests can inject failures.

use async_trait::async_trait;
use futures::stream::BoxStream;
use milvus_storage::{ChunkManager, ObjectInfo, StorageResult};

/// What GC does to object storage. Paths are full Milvus paths (see `milvus-storage`).
#[async_trait]
pub trait GcStorage: Send + Sync {
    /// The root every GC prefix is built under (`minio.rootPath` / `localStorage.path`).
    fn root_path(&self) -> &str;

    /// Streams every entry under `prefix` (a string prefix), page by page as the backend
    /// lists. Recursive: files only. Not recursive: one level, directories end with `/` and
    /// have `is_dir`. Callers that must stay within bounded memory consume it as it comes.
    fn list(&self, prefix: &str, recursive: bool) -> BoxStream<'static, StorageResult<ObjectInfo>>;

    /// Deletes the files (missing ones count as deleted); every path is tried even when some
    /// fail, and the failures come back together (`StorageError::PartialRemove`).
    async fn remove_files(&self, paths: &[String]) -> StorageResult<()>;
}

#[async_trait]
impl GcStorage for ChunkManager {
    fn root_path(&self) -> &str {
        ChunkManager::root_path(self)
    }

    fn list(&self, prefix: &str, recursive: bool) -> BoxStream<'static, StorageResult<ObjectInfo>> {
        self.list_with_prefix(prefix, recursive)
    }

    async fn remove_files(&self, paths: &[String]) -> StorageResult<()> {
        self.multi_remove(paths).await
    }
}
