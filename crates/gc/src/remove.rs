//! Deleting a list of files with bounded concurrency (`dataCoord.gc.removeConcurrent`).

use futures::future::join_all;
use milvus_storage::StorageError;

use crate::storage::GcStorage;

/// What a [`remove_in_slices`] did.
#[derive(Debug, Default)]
pub(crate) struct Removal {
    /// Paths deleted (or already missing).
    pub(crate) removed: usize,
    /// Paths whose deletion failed.
    pub(crate) failed: usize,
    /// The first failure, for the log.
    pub(crate) first_error: Option<StorageError>,
}

/// Deletes `paths` as at most `concurrency` bulk removes running at once (one slice each:
/// a bulk `DeleteObjects` on S3, one file after another on local disk). Missing files count
/// as deleted; every path is tried.
pub(crate) async fn remove_in_slices(
    storage: &dyn GcStorage,
    paths: &[String],
    concurrency: usize,
) -> Removal {
    let mut removal = Removal::default();
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
