//! The scan consumes its listing as it comes: however many objects the bucket holds, only a
//! bounded number are listed and not yet dealt with at any moment.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use datacoord_gc::testing::PendingSet;
use datacoord_gc::{GcConfig, GcStep, GcStorage, ScanStep};
use datacoord_meta::{Catalog, Meta};
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use milvus_config::DataCoordConfig;
use milvus_metastore::MemoryKv;
use milvus_storage::{ObjectInfo, StorageResult, insert_log_path};

/// A bucket of `objects` old orphan insert logs, generated as they are listed. Tracks how
/// many were listed and not yet removed.
struct GeneratedBucket {
    root: String,
    objects: usize,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    listed: AtomicUsize,
    removed: AtomicUsize,
    peak_in_flight: AtomicUsize,
}

#[async_trait]
impl GcStorage for GeneratedBucket {
    fn root_path(&self) -> &str {
        &self.root
    }

    fn list(
        &self,
        prefix: &str,
        _recursive: bool,
    ) -> BoxStream<'static, StorageResult<ObjectInfo>> {
        if prefix != format!("{}/insert_log/", self.root) {
            return stream::empty().boxed();
        }
        let root = self.root.clone();
        let counters = self.counters.clone();
        stream::iter(0..self.objects)
            .map(move |n| {
                let listed = counters.listed.fetch_add(1, Ordering::SeqCst) + 1;
                let in_flight = listed - counters.removed.load(Ordering::SeqCst);
                counters
                    .peak_in_flight
                    .fetch_max(in_flight, Ordering::SeqCst);
                let n = n as i64;
                Ok(ObjectInfo {
                    path: insert_log_path(&root, 1, 2, 1000 + n / 8, 100 + n % 8, n),
                    size: 1,
                    last_modified: Some(UNIX_EPOCH + Duration::from_secs(1_000_000)),
                    is_dir: false,
                })
            })
            .boxed()
    }

    async fn remove_files(&self, paths: &[String]) -> StorageResult<()> {
        self.counters
            .removed
            .fetch_add(paths.len(), Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_memory_is_bounded_whatever_the_object_count() {
    const OBJECTS: usize = 100_000;
    // The scan judges 1000 objects at a time; a listing collected first would peak at all.
    const BOUND: usize = 2_000;
    let meta = Meta::load(Catalog::new(Arc::new(MemoryKv::new())))
        .await
        .expect("load meta");
    let counters = Arc::new(Counters::default());
    let bucket = GeneratedBucket {
        root: "files".to_string(),
        objects: OBJECTS,
        counters: counters.clone(),
    };
    let scan = ScanStep::new(
        Arc::new(meta),
        Arc::new(PendingSet::new()),
        Arc::new(bucket),
        &GcConfig::from_config(&DataCoordConfig::default()),
    );

    let report = scan.run().await;

    assert_eq!(report.files_removed, OBJECTS);
    assert_eq!(counters.removed.load(Ordering::SeqCst), OBJECTS);
    let peak = counters.peak_in_flight.load(Ordering::SeqCst);
    assert!(
        peak <= BOUND,
        "{peak} objects listed and not yet dealt with"
    );
}
