//! Local-filesystem backend: paths are plain filesystem paths (absolute under
//! `localStorage.path` in practice), prefixes are string prefixes as in Go's local chunk manager.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};

use crate::chunk_manager::ObjectInfo;
use crate::error::{StorageError, StorageResult};

/// Makes temporary file names unique within the process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
pub(crate) struct LocalBackend;

impl LocalBackend {
    pub(crate) async fn read(&self, path: &str) -> StorageResult<Bytes> {
        let data = tokio::fs::read(path)
            .await
            .map_err(|e| StorageError::from_io("read", path, e))?;
        Ok(Bytes::from(data))
    }

    /// Writes through a temporary sibling and a rename, so readers and the GC never see a
    /// half-written file.
    pub(crate) async fn write(&self, path: &str, data: Bytes) -> StorageResult<()> {
        let target = Path::new(path);
        let (Some(parent), Some(file_name)) = (target.parent(), target.file_name()) else {
            return Err(StorageError::InvalidPath {
                path: path.to_string(),
                reason: "not a file path".to_string(),
            });
        };
        if !parent.as_os_str().is_empty() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| StorageError::from_io("create directory for", path, e))?;
        }
        let temp_name = format!(
            ".{}.tmp.{}.{}",
            file_name.to_string_lossy(),
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let temp_path = parent.join(temp_name);
        if let Err(e) = tokio::fs::write(&temp_path, &data).await {
            let _ = tokio::fs::remove_file(&temp_path).await;
            return Err(StorageError::from_io("write", path, e));
        }
        if let Err(e) = tokio::fs::rename(&temp_path, target).await {
            let _ = tokio::fs::remove_file(&temp_path).await;
            return Err(StorageError::from_io("write", path, e));
        }
        Ok(())
    }

    /// Any filesystem entry counts, directories included (as Go's `os.Stat` check).
    pub(crate) async fn exists(&self, path: &str) -> StorageResult<bool> {
        match tokio::fs::metadata(path).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StorageError::from_io("stat", path, e)),
        }
    }

    pub(crate) async fn size(&self, path: &str) -> StorageResult<u64> {
        let metadata = tokio::fs::metadata(path)
            .await
            .map_err(|e| StorageError::from_io("stat", path, e))?;
        Ok(metadata.len())
    }

    /// Removes one file; a missing file is fine. Directories are refused rather than deleted
    /// recursively (Go would `RemoveAll`), so a wrong path cannot wipe a tree.
    pub(crate) async fn remove(&self, path: &str) -> StorageResult<()> {
        match tokio::fs::remove_file(path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::from_io("remove", path, e)),
        }
    }

    pub(crate) async fn multi_remove(&self, paths: &[String]) -> StorageResult<()> {
        let mut failures: Vec<StorageError> = Vec::new();
        for path in paths {
            if let Err(e) = self.remove(path).await {
                failures.push(e);
            }
        }
        crate::chunk_manager::combine_failures(failures, paths.len())
    }

    /// Streams entries whose path starts with `prefix` (a string prefix, not a directory).
    /// Recursive: files only, depth-first in name order. Not recursive: the files and
    /// directories of the prefix's directory whose name continues the prefix; directories end
    /// with `/` and have `is_dir`.
    pub(crate) fn list_with_prefix(
        &self,
        prefix: &str,
        recursive: bool,
    ) -> BoxStream<'static, StorageResult<ObjectInfo>> {
        let (dir, dir_with_slash) = match prefix.rfind('/') {
            Some(0) => ("/".to_string(), "/".to_string()),
            Some(index) => (prefix[..index].to_string(), prefix[..=index].to_string()),
            // A bare name lists the working directory and yields bare names, like Go's walk of ".".
            None => (".".to_string(), String::new()),
        };
        let walk = Walk {
            prefix: prefix.to_string(),
            recursive,
            start: Some((dir, dir_with_slash)),
            stack: Vec::new(),
        };
        stream::try_unfold(walk, Walk::next).boxed()
    }
}

/// Depth-first walk state. `stack` holds entries still to visit, popped from the end; each
/// directory's entries are pushed in reverse name order so they come out sorted, and a
/// subdirectory's entries are pushed on top of its remaining siblings (the order of Go's
/// `filepath.Walk`).
struct Walk {
    prefix: String,
    recursive: bool,
    /// The directory of the prefix and its path with a trailing `/`, until it is read.
    start: Option<(String, String)>,
    stack: Vec<Entry>,
}

struct Entry {
    path: String,
    is_dir: bool,
    size: u64,
    modified: Option<SystemTime>,
}

impl Walk {
    async fn next(mut self) -> StorageResult<Option<(ObjectInfo, Self)>> {
        if let Some((dir, dir_with_slash)) = self.start.take() {
            self.stack = read_dir_reversed(dir, dir_with_slash).await?;
        }
        while let Some(entry) = self.stack.pop() {
            if !entry.is_dir {
                if entry.path.starts_with(&self.prefix) {
                    let info = ObjectInfo {
                        path: entry.path,
                        size: entry.size,
                        last_modified: entry.modified,
                        is_dir: false,
                    };
                    return Ok(Some((info, self)));
                }
                continue;
            }
            let child_prefix = format!("{}/", entry.path);
            if !child_prefix.starts_with(&self.prefix) && !self.prefix.starts_with(&child_prefix) {
                continue;
            }
            if self.recursive {
                let children = read_dir_reversed(entry.path, child_prefix).await?;
                self.stack.extend(children);
                continue;
            }
            if child_prefix.starts_with(&self.prefix) {
                let info = ObjectInfo {
                    path: child_prefix,
                    size: 0,
                    last_modified: entry.modified,
                    is_dir: true,
                };
                return Ok(Some((info, self)));
            }
        }
        Ok(None)
    }
}

/// Reads one directory on the blocking pool; entries come back reversed by name. A directory
/// that does not exist is empty.
async fn read_dir_reversed(dir: String, dir_with_slash: String) -> StorageResult<Vec<Entry>> {
    let task = tokio::task::spawn_blocking(move || -> StorageResult<Vec<Entry>> {
        let reader = match std::fs::read_dir(&dir) {
            Ok(reader) => reader,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(StorageError::from_io("list", &dir, e)),
        };
        let mut entries = Vec::new();
        for item in reader {
            let item = item.map_err(|e| StorageError::from_io("list", &dir, e))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let path = format!("{dir_with_slash}{name}");
            // Symlinked directories are not followed (as Go's walk); files are stat'ed through
            // links so size and time are the target's.
            let file_type = item
                .file_type()
                .map_err(|e| StorageError::from_io("list", &path, e))?;
            if file_type.is_dir() {
                let modified = item.metadata().ok().and_then(|m| m.modified().ok());
                entries.push(Entry {
                    path,
                    is_dir: true,
                    size: 0,
                    modified,
                });
                continue;
            }
            match std::fs::metadata(&path) {
                Ok(metadata) => entries.push(Entry {
                    path,
                    is_dir: false,
                    size: metadata.len(),
                    modified: metadata.modified().ok(),
                }),
                // Removed between read_dir and stat: it is simply gone.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::from_io("stat", &path, e)),
            }
        }
        entries.sort_by(|a, b| b.path.cmp(&a.path));
        Ok(entries)
    });
    task.await.map_err(|e| StorageError::Io {
        op: "list",
        path: String::new(),
        source: std::io::Error::other(e),
    })?
}
