//! Deleting a list of files with bounded concurrency (`dataCoord.gc.removeConcurrent`).

use futures::future::join_all;
use milvus_storage::{
    DELTA_LOG_DIR, INDEX_FILES_DIR, INSERT_LOG_DIR, STATS_LOG_DIR, StorageError, join_path,
};
use tracing::warn;

use crate::storage::GcStorage;

/// What a [`remove_in_slices`] did.
#[derive(Debug, Default)]
pub(crate) struct Removal {
    /// Paths deleted (or already missing).
    pub(crate) removed: usize,
    /// Paths whose deletion failed.
    pub(crate) failed: usize,
    /// Paths refused because they are not under one of GC's directories ([`is_deletable`]).
    pub(crate) refused: usize,
    /// The first failure, for the log.
    pub(crate) first_error: Option<StorageError>,
}

/// Whether GC may delete `path`: a file strictly below `{root}/insert_log/`, `stats_log/`,
/// `delta_log/` or `index_files/`, with no empty, `.` or `..` component. Paths come from
/// metadata that nodes reported; whatever slipped past the checks at the RPC entry, GC never
/// deletes anything else under (or outside) the root.
pub(crate) fn is_deletable(root: &str, path: &str) -> bool {
    [
        INSERT_LOG_DIR,
        STATS_LOG_DIR,
        DELTA_LOG_DIR,
        INDEX_FILES_DIR,
    ]
    .iter()
    .any(|dir| is_below(&join_path(&[root, dir]), path))
}

/// Whether `path` is a file strictly below directory `dir`, in clean form.
pub(crate) fn is_below(dir: &str, path: &str) -> bool {
    let Some(rest) = path.strip_prefix(dir).and_then(|rest| {
        if dir.is_empty() {
            Some(rest)
        } else {
            rest.strip_prefix('/')
        }
    }) else {
        return false;
    };
    !rest.is_empty() && rest.split('/').all(|part| !matches!(part, "" | "." | ".."))
}

/// Deletes `paths` as at most `concurrency` bulk removes running at once (one slice each:
/// a bulk `DeleteObjects` on S3, one file after another on local disk). Missing files count
/// as deleted; every path is tried. Paths GC must not touch ([`is_deletable`]) are refused
/// and logged, never deleted.
pub(crate) async fn remove_in_slices(
    storage: &dyn GcStorage,
    paths: &[String],
    concurrency: usize,
) -> Removal {
    let mut removal = Removal::default();
    let root = storage.root_path();
    let (allowed, refused): (Vec<&String>, Vec<&String>) =
        paths.iter().partition(|path| is_deletable(root, path));
    if !refused.is_empty() {
        warn!(root, refused = ?refused, "gc refused to delete paths outside its directories");
        removal.refused = refused.len();
    }
    let paths: Vec<String> = allowed.into_iter().cloned().collect();
    if paths.is_empty() {
        return removal;
    }
    let slice_len = paths.len().div_ceil(concurrency.max(1));
    let slices: Vec<&[String]> = paths.chunks(slice_len).collect();
    let results = join_all(slices.iter().map(|slice| storage.remove_files(slice))).await;
    for (slice, result) in slices.iter().zip(results) {
        let Err(err) = result else {
            removal.removed += slice.len();
            continue;
        };
        let failed = match &err {
            StorageError::PartialRemove { failed, .. } => (*failed).min(slice.len()),
            _ => slice.len(),
        };
        removal.failed += failed;
        removal.removed += slice.len() - failed;
        removal.first_error.get_or_insert(err);
    }
    removal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_below_gc_directories_are_deletable() {
        for (root, path) in [
            ("files", "files/insert_log/1/2/3/4/5"),
            ("files", "files/stats_log/1/2/3/4/1"),
            ("files", "files/delta_log/1/2/3/5"),
            ("files", "files/index_files/7/1/2/3/HNSW_1"),
            (
                "/var/lib/milvus/data/",
                "/var/lib/milvus/data/insert_log/1/2/3/4/5",
            ),
            ("", "insert_log/1/2/3/4/5"),
        ] {
            assert!(is_deletable(root, path), "{root} {path}");
        }
        for (root, path) in [
            ("files", "files/insert_log/../../etc/passwd"),
            ("files", "files/insert_log/1/./5"),
            ("files", "files/insert_log//5"),
            ("files", "files/insert_log/"),
            ("files", "files/insert_log"),
            ("files", "files/insert_logx/1"),
            ("files", "files/other/1/2/3"),
            ("files", "other/insert_log/1/2/3/4/5"),
            ("files", "/etc/passwd"),
            ("files", "../files/insert_log/1/2/3/4/5"),
            ("/data", "/data/../etc/insert_log/1"),
            ("/data", "/etc/passwd"),
            ("", "/insert_log/1"),
            ("", "etc/passwd"),
        ] {
            assert!(!is_deletable(root, path), "{root} {path}");
        }
    }
}
