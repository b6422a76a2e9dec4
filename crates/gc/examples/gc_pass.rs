//! One scan pass over N objects (default 100000) on local storage, half of them referenced
//! by segment meta, half orphans: prints the pass's time and the process's peak RSS during
//! it (VmHWM, reset just before the pass).
//!
//! ```sh
//! cargo run --release -p datacoord-gc --example gc_pass -- 100000
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use datacoord_gc::testing::PendingSet;
use datacoord_gc::{GcConfig, GcStep, ScanStep};
use datacoord_meta::testing::flushed_segment;
use datacoord_meta::{Catalog, Meta, with_full_paths};
use milvus_config::DataCoordConfig;
use milvus_metastore::MemoryKv;
use milvus_proto::data::SegmentInfo;
use milvus_storage::{ChunkManager, StorageConfig};

const COLL: i64 = 444;
const PART: i64 = 555;
const CHANNEL: &str = "by-dev-rootcoord-dml_0_444v0";
/// `flushed_segment(.., 2)`: 2 insert logs on 3 fields, 2 stats logs, 1 delete log.
const FILES_PER_SEGMENT: usize = 9;

fn paths(seg: &SegmentInfo) -> impl Iterator<Item = &str> {
    [&seg.binlogs, &seg.statslogs, &seg.deltalogs]
        .into_iter()
        .flatten()
        .flat_map(|field| &field.binlogs)
        .map(|binlog| binlog.log_path.as_str())
}

fn plant(seg: &SegmentInfo) {
    for path in paths(seg) {
        let path = std::path::Path::new(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, b"binlog").expect("write");
    }
}

/// A `/proc/self/status` field in kB.
fn proc_status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let objects: usize = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("object count"))
        .unwrap_or(100_000);
    let segments = objects.div_ceil(FILES_PER_SEGMENT);
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = ChunkManager::new(&StorageConfig::local(format!(
        "{}/data/",
        dir.path().display()
    )))
    .await
    .expect("local storage");
    let root = storage.root_path().to_string();
    let meta = Arc::new(
        Meta::load(Catalog::new(Arc::new(MemoryKv::new())))
            .await
            .expect("meta"),
    );

    let started = Instant::now();
    let (mut referenced, mut orphans) = (0, 0);
    for n in 0..segments as i64 {
        let seg = flushed_segment((COLL, PART, 1_000_000 + n), CHANNEL, &root, 10 * n, 2);
        plant(&seg);
        if n % 2 == 0 {
            meta.add_segment(seg.clone()).await.expect("add segment");
            let stored = meta.segment(seg.id).expect("stored");
            referenced += paths(&with_full_paths(&stored, &root)).count();
        } else {
            orphans += paths(&seg).count();
        }
    }
    println!(
        "planted {} objects ({referenced} referenced by {} segments, {orphans} orphans) in {:?}",
        referenced + orphans,
        segments.div_ceil(2),
        started.elapsed()
    );

    let config = GcConfig {
        missing_tolerance: Duration::ZERO,
        ..GcConfig::from_config(&DataCoordConfig::default())
    };
    let scan = ScanStep::new(
        meta,
        Arc::new(PendingSet::new()),
        Arc::new(storage),
        &config,
    );
    let rss_before = proc_status_kb("VmRSS:");
    // Resets VmHWM to the current RSS (Linux ≥ 4.0), so the peak below is the pass's.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let started = Instant::now();
    let report = scan.run().await;
    let elapsed = started.elapsed();
    let peak = proc_status_kb("VmHWM:");
    println!(
        "scan pass: {elapsed:?}, {} removed, {} failures; RSS before {} MB, peak during pass {} MB{}",
        report.files_removed,
        report.failures,
        rss_before / 1024,
        peak / 1024,
        if reset {
            ""
        } else {
            " (VmHWM not reset: peak of the whole process)"
        }
    );
    assert_eq!(report.files_removed, orphans, "every orphan removed");
}
