//! Local-filesystem backend: paths are plain filesystem paths (absolute under
//! `localStorage.path` in practice), prefixes are string prefixes as in Go's local chunk manager.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

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
    ///
    /// One blocking task per listing walks the tree with `std::fs` and hands entries to the
    /// stream through a bounded channel. A task per directory cost more than reading the
    /// directory on the binlog layout (many directories of a few files each); the channel keeps
    /// memory bounded however large the tree. The walk starts on the first poll and stops when
    /// the stream is dropped; while the consumer lags it waits, holding one blocking thread.
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
            dir,
            dir_with_slash,
        };
        stream::unfold(Listing::NotStarted(walk), Listing::next).boxed()
    }
}

/// Entries buffered between the walker and the stream: the walker reads ahead while the
/// consumer handles a batch (GC deletes 1000 at a time), and no more than this is held.
const LIST_CHANNEL_CAPACITY: usize = 1000;

type EntrySender = mpsc::Sender<StorageResult<ObjectInfo>>;

/// The stream side of a listing.
enum Listing {
    /// Not polled yet: building a listing needs no runtime and costs no thread.
    NotStarted(Walk),
    Running {
        entries: mpsc::Receiver<StorageResult<ObjectInfo>>,
        walker: JoinHandle<()>,
    },
    Finished,
}

impl Listing {
    async fn next(self) -> Option<(StorageResult<ObjectInfo>, Self)> {
        let (mut entries, walker) = match self {
            Listing::NotStarted(walk) => {
                let (sender, entries) = mpsc::channel(LIST_CHANNEL_CAPACITY);
                let walker = tokio::task::spawn_blocking(move || walk.run(&sender));
                (entries, walker)
            }
            Listing::Running { entries, walker } => (entries, walker),
            Listing::Finished => return None,
        };
        if let Some(entry) = entries.recv().await {
            return Some((entry, Listing::Running { entries, walker }));
        }
        // The walker is gone. If it panicked the listing is incomplete, and saying nothing would
        // pass for an empty rest.
        match walker.await {
            Ok(()) => None,
            Err(e) => {
                let err = StorageError::Io {
                    op: "list",
                    path: String::new(),
                    source: std::io::Error::other(e),
                };
                Some((Err(err), Listing::Finished))
            }
        }
    }
}

/// A depth-first walk, run on the blocking pool.
struct Walk {
    prefix: String,
    recursive: bool,
    /// The directory of the prefix, and the string its entries' paths start with.
    dir: String,
    dir_with_slash: String,
}

/// A directory entry whose path continues the prefix.
struct Entry {
    path: String,
    is_dir: bool,
    size: u64,
    modified: Option<SystemTime>,
}

impl Walk {
    /// Sends the entries, then the error that ended the walk if any (the stream ends after it).
    fn run(self, sender: &EntrySender) {
        if let Err(e) = self.walk(sender) {
            let _ = sender.blocking_send(Err(e));
        }
    }

    /// `stack` holds entries still to visit, popped from the end; each directory's entries are
    /// pushed in reverse name order so they come out sorted, and a subdirectory's entries are
    /// pushed on top of its remaining siblings (the order of Go's `filepath.Walk`). It holds
    /// only the unvisited siblings along the current path. Returns `Ok` early once the stream
    /// is dropped.
    fn walk(&self, sender: &EntrySender) -> StorageResult<()> {
        let mut stack = self.read_dir(&self.dir, &self.dir_with_slash)?;
        while let Some(entry) = stack.pop() {
            let info = if entry.is_dir {
                let dir_with_slash = format!("{}/", entry.path);
                if self.recursive {
                    stack.extend(self.read_dir(&entry.path, &dir_with_slash)?);
                    continue;
                }
                ObjectInfo {
                    path: dir_with_slash,
                    size: 0,
                    last_modified: entry.modified,
                    is_dir: true,
                }
            } else {
                ObjectInfo {
                    path: entry.path,
                    size: entry.size,
                    last_modified: entry.modified,
                    is_dir: false,
                }
            };
            if sender.blocking_send(Ok(info)).is_err() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Reads one directory: the entries whose path continues the prefix, reversed by name. A
    /// directory that does not exist (or no longer does) is empty. Files cost one stat each
    /// (size and time); directories one only when a non-recursive listing returns them.
    fn read_dir(&self, dir: &str, dir_with_slash: &str) -> StorageResult<Vec<Entry>> {
        let reader = match std::fs::read_dir(dir) {
            Ok(reader) => reader,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(StorageError::from_io("list", dir, e)),
        };
        let mut entries = Vec::new();
        for item in reader {
            let item = item.map_err(|e| StorageError::from_io("list", dir, e))?;
            let path = format!("{dir_with_slash}{}", item.file_name().to_string_lossy());
            // The walk starts at the prefix's last `/`, so an entry there is wanted (a file to
            // return, a directory to enter or return) exactly when its path continues the
            // prefix, and everything below a wanted directory continues it too.
            if !path.starts_with(&self.prefix) {
                continue;
            }
            // From the directory entry itself on Linux, no stat. Symlinked directories are not
            // followed (as Go's walk).
            let file_type = item
                .file_type()
                .map_err(|e| StorageError::from_io("list", &path, e))?;
            if file_type.is_dir() {
                let modified = if self.recursive {
                    None
                } else {
                    item.metadata().ok().and_then(|m| m.modified().ok())
                };
                entries.push(Entry {
                    path,
                    is_dir: true,
                    size: 0,
                    modified,
                });
                continue;
            }
            // `DirEntry::metadata` stats relative to the open directory (no path lookup) but
            // does not follow links; a link is stat'ed through so size and time are the target's.
            let metadata = if file_type.is_symlink() {
                std::fs::metadata(&path)
            } else {
                item.metadata()
            };
            match metadata {
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
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// Creates the files (content: their own relative path) in the given order.
    fn plant(root: &Path, files: &[&str]) {
        for file in files {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, file).unwrap();
        }
    }

    async fn list(prefix: &str, recursive: bool) -> Vec<StorageResult<ObjectInfo>> {
        LocalBackend
            .list_with_prefix(prefix, recursive)
            .collect()
            .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listings_come_depth_first_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        plant(dir.path(), &["d/b", "d/a0/z", "d/a.txt", "d/a/y", "d/a/x"]);

        let recursive: Vec<String> = list(&format!("{root}/d/"), true)
            .await
            .into_iter()
            .map(|entry| entry.unwrap().path)
            .collect();
        // Not the global path order, which puts `a.txt` before `a/x`.
        let expected = ["d/a/x", "d/a/y", "d/a.txt", "d/a0/z", "d/b"];
        assert_eq!(recursive, expected.map(|p| format!("{root}/{p}")));

        let one_level: Vec<(String, bool, bool)> = list(&format!("{root}/d/"), false)
            .await
            .into_iter()
            .map(|entry| entry.unwrap())
            .map(|info| (info.path, info.is_dir, info.last_modified.is_some()))
            .collect();
        let expected = [
            ("d/a/", true),
            ("d/a.txt", false),
            ("d/a0/", true),
            ("d/b", false),
        ];
        assert_eq!(
            one_level,
            expected.map(|(p, is_dir)| (format!("{root}/{p}"), is_dir, true))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn symlinked_files_report_their_target() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        plant(dir.path(), &["d/target-file"]);
        symlink("target-file", dir.path().join("d/link")).unwrap();

        let entries = list(&format!("{root}/d/link"), true).await;
        let [Ok(link)] = &entries[..] else {
            panic!("{entries:?}");
        };
        assert_eq!(link.size, "d/target-file".len() as u64);
    }

    /// `d/a/file`, then `d/b/loop`, a symlink to itself that cannot be stat'ed.
    fn tree_failing_after_one_file() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        plant(dir.path(), &["d/a/file"]);
        std::fs::create_dir(dir.path().join("d/b")).unwrap();
        symlink("loop", dir.path().join("d/b/loop")).unwrap();
        dir
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listing_ends_with_the_error_that_stopped_it() {
        let dir = tree_failing_after_one_file();
        let root = dir.path().display().to_string();
        let entries = list(&format!("{root}/d/"), true).await;
        let [Ok(file), Err(err)] = &entries[..] else {
            panic!("{entries:?}");
        };
        assert_eq!(file.path, format!("{root}/d/a/file"));
        assert!(
            matches!(err, StorageError::Io { op: "stat", path, .. } if *path == format!("{root}/d/b/loop")),
            "{err}"
        );
    }

    #[test]
    fn the_walker_stops_once_the_stream_is_gone() {
        let dir = tree_failing_after_one_file();
        let walk = || Walk {
            prefix: format!("{}/d/", dir.path().display()),
            recursive: true,
            dir: format!("{}/d", dir.path().display()),
            dir_with_slash: format!("{}/d/", dir.path().display()),
        };
        // Walked to the end, the tree fails at `d/b/loop`...
        let (sender, _entries) = mpsc::channel(10);
        assert!(walk().walk(&sender).is_err());
        // ... but with nobody listening the walker returns at the first entry.
        let (sender, entries) = mpsc::channel(10);
        drop(entries);
        assert!(walk().walk(&sender).is_ok());
    }
}
