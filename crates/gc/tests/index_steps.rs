//! The index steps (FACTS §3.4, §3.7) through one `GarbageCollector::run_once`, on every pair of
//! index-meta store (memory, etcd via `ETCD_ENDPOINTS`) and object storage (temp dir,
//! in-process S3 server, external S3 via `S3_TEST_ENDPOINT`).

use std::sync::Arc;

use datacoord_gc::testing::{FaultyStorage, SegmentSet, StorageFixture};
use datacoord_gc::{
    GarbageCollector, GcConfig, GcStorage, IndexGc, RunOutcome, RunReport, SegmentPresence, Stage,
};
use datacoord_index::testing::{assert_matches_store, create_request, segment};
use datacoord_index::{
    BuildId, FinishedTask, IndexCatalog, IndexMeta, field_index_key, segment_index_key,
};
use datacoord_meta::testing::{Fault, FaultyKv};
use datacoord_meta::{Catalog, Meta};
use milvus_config::DataCoordConfig;
use milvus_metastore::{MemoryKv, MetaKv};
use milvus_proto::common::{IndexState, SegmentState};
use milvus_rootcoord_client::FakeAllocator;
use milvus_storage::{index_file_path, insert_log_path, join_path};

const COLL: i64 = 10;
/// Partition of `datacoord_index::testing::segment`.
const PART: i64 = 2;

struct Env {
    meta: IndexMeta,
    segments: Arc<SegmentSet>,
    storage: Arc<FaultyStorage>,
    gc: GarbageCollector,
    kv: Arc<dyn MetaKv>,
    root: String,
}

async fn env(kv: Arc<dyn MetaKv>, fx: &StorageFixture, live_segments: &[i64]) -> Env {
    let meta = IndexMeta::load(IndexCatalog::new(kv.clone()))
        .await
        .expect("load index meta");
    let segments = Arc::new(SegmentSet::with(live_segments));
    let storage = Arc::new(FaultyStorage::new(Arc::new(fx.chunk_manager.clone())));
    let gc = collector(meta.clone(), segments.clone(), storage.clone());
    Env {
        meta,
        segments,
        storage,
        gc,
        kv,
        root: fx.root().to_string(),
    }
}

fn collector(
    meta: IndexMeta,
    segments: Arc<dyn SegmentPresence>,
    storage: Arc<dyn GcStorage>,
) -> GarbageCollector {
    let config = GcConfig {
        remove_concurrent: 4,
        ..GcConfig::from_config(&DataCoordConfig::default())
    };
    let index_gc = Arc::new(IndexGc::new(meta, segments, storage, &config));
    GarbageCollector::new(config, index_gc.steps())
}

async fn run(gc: &GarbageCollector) -> RunReport {
    match gc.run_once().await {
        RunOutcome::Ran(report) => report,
        other => panic!("expected a run, got {other:?}"),
    }
}

async fn create_index(meta: &IndexMeta, field: i64, name: &str) -> i64 {
    meta.create_index(
        create_request(COLL, field, name, "16", 5),
        &FakeAllocator::new(field * 1000),
        &datacoord_index::testing::env_with_fields([101, 102], []),
    )
    .await
    .expect("create index")
}

/// A build of `index_id` on segment `seg`, assigned `version` times, left in `state`
/// (Finished with `keys`).
async fn build(
    meta: &IndexMeta,
    seg: i64,
    index_id: i64,
    build_id: BuildId,
    version: i64,
    state: IndexState,
    keys: &[&str],
) {
    let info = segment(seg, COLL, SegmentState::Flushed, 3000, 1);
    meta.add_segment_index(&info, index_id, build_id)
        .await
        .expect("add segment index");
    for node in 0..version {
        meta.update_version(build_id, node + 1)
            .await
            .expect("assign");
    }
    match state {
        IndexState::Unissued => {}
        IndexState::InProgress => meta.build_index(build_id).await.expect("in progress"),
        _ => {
            let task = FinishedTask {
                state,
                index_file_keys: keys.iter().map(|key| key.to_string()).collect(),
                fail_reason: String::new(),
                serialized_size: 10,
                current_index_version: 1,
            };
            meta.finish_task(build_id, task).await.expect("finish");
        }
    }
    assert_eq!(
        meta.segment_index(build_id).expect("built").index_version,
        version
    );
}

/// `{root}/index_files/{build}/{version}/{PART}/{seg}/{key}` for each key.
fn files(root: &str, build_id: BuildId, version: i64, seg: i64, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .map(|key| index_file_path(root, build_id, version, PART, seg, key))
        .collect()
}

fn sorted(mut paths: Vec<String>) -> Vec<String> {
    paths.sort();
    paths
}

async fn key_exists(kv: &Arc<dyn MetaKv>, key: &str) -> bool {
    kv.load(key).await.expect("load").is_some()
}

async fn dropped_index_goes_with_its_records_and_files(kv: Arc<dyn MetaKv>, fx: &StorageFixture) {
    let e = env(kv, fx, &[77]).await;
    let dropped = create_index(&e.meta, 101, "dropped").await;
    let live = create_index(&e.meta, 102, "live").await;
    build(
        &e.meta,
        77,
        dropped,
        900,
        1,
        IndexState::Finished,
        &["IVF_FLAT"],
    )
    .await;
    build(&e.meta, 77, live, 901, 1, IndexState::Finished, &["HNSW"]).await;
    let dropped_files = files(&e.root, 900, 1, 77, &["IVF_FLAT"]);
    let live_files = files(&e.root, 901, 1, 77, &["HNSW"]);
    fx.write_all(&dropped_files).await;
    fx.write_all(&live_files).await;
    assert_eq!(
        e.meta
            .mark_indexes_deleted(COLL, &[dropped])
            .await
            .expect("drop"),
        1
    );

    let report = run(&e.gc).await;

    assert_eq!(
        report
            .step(Stage::RecycleUnusedIndexes)
            .expect("step")
            .records_removed,
        1
    );
    assert_eq!(
        report
            .step(Stage::RecycleUnusedSegmentIndexes)
            .expect("step")
            .records_removed,
        1
    );
    assert!(e.meta.index(COLL, dropped).is_none());
    assert!(e.meta.segment_index(900).is_none());
    assert!(!key_exists(&e.kv, &field_index_key(COLL, dropped)).await);
    assert!(!key_exists(&e.kv, &segment_index_key(COLL, PART, 77, 900)).await);
    assert!(e.meta.index(COLL, live).is_some());
    assert!(e.meta.segment_index(901).is_some());
    assert_eq!(fx.all_files().await, live_files);
    assert_eq!(report.total().failures, 0);
    assert_matches_store(&e.meta).await;
}

async fn dropped_segment_takes_its_segment_index_and_files(
    kv: Arc<dyn MetaKv>,
    fx: &StorageFixture,
) {
    let e = env(kv, fx, &[77, 78]).await;
    let index = create_index(&e.meta, 101, "vec").await;
    build(
        &e.meta,
        77,
        index,
        900,
        1,
        IndexState::Finished,
        &["IVF_FLAT"],
    )
    .await;
    build(
        &e.meta,
        78,
        index,
        901,
        2,
        IndexState::Finished,
        &["IVF_FLAT"],
    )
    .await;
    let kept = files(&e.root, 900, 1, 77, &["IVF_FLAT"]);
    fx.write_all(&kept).await;
    fx.write_all(&files(&e.root, 901, 2, 78, &["IVF_FLAT"]))
        .await;
    fx.write_all(&files(&e.root, 901, 1, 78, &["IVF_FLAT"]))
        .await;
    e.segments.remove(78);

    let report = run(&e.gc).await;

    assert_eq!(
        report
            .step(Stage::RecycleUnusedSegmentIndexes)
            .expect("step")
            .records_removed,
        1
    );
    assert!(e.meta.segment_index(901).is_none());
    assert!(!key_exists(&e.kv, &segment_index_key(COLL, PART, 78, 901)).await);
    assert!(e.meta.segment_index(900).is_some());
    assert!(e.meta.index(COLL, index).is_some());
    assert_eq!(fx.all_files().await, kept);
    assert_matches_store(&e.meta).await;
}

async fn segment_index_follows_real_segment_meta(kv: Arc<dyn MetaKv>, fx: &StorageFixture) {
    let segment_meta = Arc::new(
        Meta::load(Catalog::new(kv.clone()))
            .await
            .expect("load meta"),
    );
    let mut info = segment(77, COLL, SegmentState::Flushed, 0, 1);
    info.max_row_num = 1000;
    segment_meta.add_segment(info).await.expect("add segment");
    let meta = IndexMeta::load(IndexCatalog::new(kv.clone()))
        .await
        .expect("load index meta");
    let storage: Arc<dyn GcStorage> = Arc::new(fx.chunk_manager.clone());
    let gc = collector(meta.clone(), segment_meta.clone(), storage);
    let index = create_index(&meta, 101, "vec").await;
    build(
        &meta,
        77,
        index,
        900,
        1,
        IndexState::Finished,
        &["IVF_FLAT"],
    )
    .await;
    fx.write_all(&files(fx.root(), 900, 1, 77, &["IVF_FLAT"]))
        .await;

    // Dropped but not yet collected: still in segment meta, so its index stays.
    segment_meta
        .set_state(77, SegmentState::Dropped)
        .await
        .expect("drop");
    run(&gc).await;
    assert!(meta.segment_index(900).is_some());
    assert_eq!(fx.all_files().await.len(), 1);

    segment_meta
        .drop_segment(77)
        .await
        .expect("collect segment");
    run(&gc).await;
    assert!(meta.segment_index(900).is_none());
    assert!(fx.all_files().await.is_empty());
    assert_matches_store(&meta).await;
}

async fn orphan_build_dirs_are_deleted(kv: Arc<dyn MetaKv>, fx: &StorageFixture) {
    let e = env(kv, fx, &[77]).await;
    let index = create_index(&e.meta, 101, "vec").await;
    build(
        &e.meta,
        77,
        index,
        900,
        1,
        IndexState::Finished,
        &["IVF_FLAT"],
    )
    .await;
    let live = files(&e.root, 900, 1, 77, &["IVF_FLAT"]);
    fx.write_all(&live).await;
    // 90 is a string prefix of the live 900: its removal must not spill over.
    fx.write_all(&files(&e.root, 90, 1, 5, &["IVF_FLAT", "meta"]))
        .await;
    fx.write_all(&files(&e.root, 555, 3, 6, &["HNSW"])).await;

    let report = run(&e.gc).await;

    assert_eq!(fx.all_files().await, live);
    assert_eq!(
        report
            .step(Stage::RecycleUnusedIndexFiles)
            .expect("step")
            .files_removed,
        3
    );
    assert!(e.meta.segment_index(900).is_some());
}

async fn finished_build_keeps_only_its_current_files(kv: Arc<dyn MetaKv>, fx: &StorageFixture) {
    let e = env(kv, fx, &[77, 78]).await;
    let index = create_index(&e.meta, 101, "vec").await;
    build(
        &e.meta,
        77,
        index,
        900,
        2,
        IndexState::Finished,
        &["IVF_FLAT", "meta"],
    )
    .await;
    // A FLAT-like build: Finished without files, so anything under it is garbage.
    build(&e.meta, 78, index, 901, 1, IndexState::Finished, &[]).await;
    let current = files(&e.root, 900, 2, 77, &["IVF_FLAT", "meta"]);
    fx.write_all(&current).await;
    fx.write_all(&files(&e.root, 900, 1, 77, &["IVF_FLAT", "meta"]))
        .await;
    fx.write_all(&files(&e.root, 900, 2, 77, &["IVF_FLAT_partial"]))
        .await;
    fx.write_all(&files(&e.root, 901, 1, 78, &["left_over"]))
        .await;

    let report = run(&e.gc).await;

    // The records' own path builder agrees with the storage crate's.
    let record = e.meta.segment_index(900).expect("live");
    assert_eq!(sorted(record.file_paths(&e.root)), sorted(current.clone()));
    assert_eq!(fx.all_files().await, sorted(current));
    assert_eq!(
        report
            .step(Stage::RecycleUnusedIndexFiles)
            .expect("step")
            .files_removed,
        4
    );
    assert!(e.meta.segment_index(901).is_some());
}

async fn unfinished_builds_keep_their_files(kv: Arc<dyn MetaKv>, fx: &StorageFixture) {
    let e = env(kv, fx, &[77, 78, 79]).await;
    let index = create_index(&e.meta, 101, "vec").await;
    build(&e.meta, 77, index, 900, 0, IndexState::Unissued, &[]).await;
    build(&e.meta, 78, index, 901, 2, IndexState::InProgress, &[]).await;
    build(&e.meta, 79, index, 902, 1, IndexState::Failed, &[]).await;
    let mut all = Vec::new();
    all.extend(files(&e.root, 900, 0, 77, &["from_an_old_attempt"]));
    all.extend(files(&e.root, 901, 1, 78, &["IVF_FLAT"]));
    all.extend(files(&e.root, 901, 2, 78, &["IVF_FLAT_being_written"]));
    all.extend(files(&e.root, 902, 1, 79, &["partial"]));
    fx.write_all(&all).await;

    let report = run(&e.gc).await;

    assert_eq!(fx.all_files().await, sorted(all));
    assert_eq!(report.total().files_removed, 0);
    assert_eq!(report.total().failures, 0);
}

async fn only_build_directories_under_index_files_are_touched(
    kv: Arc<dyn MetaKv>,
    fx: &StorageFixture,
) {
    let e = env(kv, fx, &[77]).await;
    let index = create_index(&e.meta, 101, "vec").await;
    build(
        &e.meta,
        77,
        index,
        123,
        1,
        IndexState::Finished,
        &["IVF_FLAT"],
    )
    .await;
    let root = e.root.as_str();
    let kept = vec![
        index_file_path(root, 123, 1, PART, 77, "IVF_FLAT"),
        join_path(&[root, "index_files", "not-a-build", "x"]),
        join_path(&[root, "index_files", "12abc", "1", "y"]),
        join_path(&[root, "index_files_backup", "7", "x"]),
        join_path(&[root, "other", "index_files", "5", "x"]),
        insert_log_path(root, COLL, PART, 77, 100, 4),
        join_path(&[root, "stats_log", "10", "2", "77", "100", "5"]),
    ];
    // A stray object named like an orphan build right under `index_files/`: deleted alone,
    // without touching the directory of build 123 it is a string prefix of.
    let stray = join_path(&[root, "index_files", "12"]);
    fx.write_all(&kept).await;
    fx.write_all(std::slice::from_ref(&stray)).await;

    let report = run(&e.gc).await;

    assert_eq!(fx.all_files().await, sorted(kept));
    let sweep = report.step(Stage::RecycleUnusedIndexFiles).expect("step");
    assert_eq!((sweep.files_removed, sweep.skipped), (1, 2));
}

async fn storage_failure_is_retried_next_run(kv: Arc<dyn MetaKv>, fx: &StorageFixture) {
    let e = env(kv, fx, &[77, 78]).await;
    let dropped = create_index(&e.meta, 101, "dropped").await;
    let live = create_index(&e.meta, 102, "live").await;
    build(
        &e.meta,
        77,
        dropped,
        900,
        1,
        IndexState::Finished,
        &["IVF_FLAT"],
    )
    .await;
    build(&e.meta, 78, live, 901, 2, IndexState::Finished, &["HNSW"]).await;
    let current = files(&e.root, 901, 2, 78, &["HNSW"]);
    fx.write_all(&current).await;
    fx.write_all(&files(&e.root, 901, 1, 78, &["HNSW"])).await;
    fx.write_all(&files(&e.root, 900, 1, 77, &["IVF_FLAT"]))
        .await;
    fx.write_all(&files(&e.root, 555, 1, 9, &["orphan"])).await;
    e.meta
        .mark_indexes_deleted(COLL, &[dropped])
        .await
        .expect("drop");

    // Listing fails: the records go (nothing names the files any more), every file stays.
    e.storage.fail_lists(true);
    let report = run(&e.gc).await;
    assert!(report.total().failures >= 2, "{report:?}");
    assert!(e.meta.segment_index(900).is_none());
    assert_eq!(fx.all_files().await.len(), 4);

    // Deleting fails: still nothing lost, and the live build keeps its record.
    e.storage.fail_lists(false);
    e.storage.fail_removes(true);
    let report = run(&e.gc).await;
    assert_eq!(report.total().failures, 3, "{report:?}");
    assert!(e.storage.remove_calls() >= 3);
    assert_eq!(fx.all_files().await.len(), 4);
    assert!(e.meta.segment_index(901).is_some());

    e.storage.fail_removes(false);
    let report = run(&e.gc).await;
    assert_eq!(report.total().failures, 0);
    assert_eq!(fx.all_files().await, current);
    assert_matches_store(&e.meta).await;
}

async fn paused_gc_deletes_nothing_until_resumed(kv: Arc<dyn MetaKv>, fx: &StorageFixture) {
    let e = env(kv, fx, &[]).await;
    let orphan = files(&e.root, 555, 1, 9, &["orphan"]);
    fx.write_all(&orphan).await;

    e.gc.pause(std::time::Duration::from_secs(3600)).await;
    assert!(matches!(e.gc.run_once().await, RunOutcome::Paused { .. }));
    assert_eq!(fx.all_files().await, orphan);
    assert_eq!(e.gc.subscribe().borrow().paused_skips, 1);

    e.gc.resume().await.expect("resume");
    run(&e.gc).await;
    assert!(fx.all_files().await.is_empty());
}

/// Record first: when the segment-index record cannot be removed, its files stay too (the
/// record still names them); both go on the next run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_record_removal_keeps_the_record_and_its_files() {
    let faulty = Arc::new(FaultyKv::new(Arc::new(MemoryKv::new())));
    let fx = StorageFixture::local().await.expect("local storage");
    let e = env(faulty.clone(), &fx, &[77]).await;
    let index = create_index(&e.meta, 101, "vec").await;
    build(
        &e.meta,
        77,
        index,
        900,
        1,
        IndexState::Finished,
        &["IVF_FLAT"],
    )
    .await;
    let current = files(&e.root, 900, 1, 77, &["IVF_FLAT"]);
    fx.write_all(&current).await;
    e.segments.remove(77);

    faulty.fail_after(0, Fault::Rejected);
    let report = run(&e.gc).await;
    faulty.heal();
    assert_eq!(
        report
            .step(Stage::RecycleUnusedSegmentIndexes)
            .expect("step")
            .failures,
        1
    );
    assert!(e.meta.segment_index(900).is_some());
    assert_eq!(fx.all_files().await, current);
    assert_matches_store(&e.meta).await;

    let report = run(&e.gc).await;
    assert_eq!(report.total().failures, 0);
    assert!(e.meta.segment_index(900).is_none());
    assert!(fx.all_files().await.is_empty());
    assert_matches_store(&e.meta).await;
}

macro_rules! gc_cases {
    ($kv:path, $storage:path) => {
        gc_cases!(@each $kv, $storage;
            dropped_index_goes_with_its_records_and_files,
            dropped_segment_takes_its_segment_index_and_files,
            segment_index_follows_real_segment_meta,
            orphan_build_dirs_are_deleted,
            finished_build_keeps_only_its_current_files,
            unfinished_builds_keep_their_files,
            only_build_directories_under_index_files_are_touched,
            storage_failure_is_retried_next_run,
            paused_gc_deletes_nothing_until_resumed,
        );
    };
    (@each $kv:path, $storage:path; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(test_kv) = $kv().await else {
                    return;
                };
                let Some(fixture) = $storage().await else {
                    return;
                };
                super::$case(test_kv.kv.clone(), &fixture).await;
                fixture.cleanup().await;
                test_kv.cleanup().await;
            }
        )+
    };
}

mod memory_local {
    gc_cases!(
        milvus_metastore::testing::memory_test_kv,
        datacoord_gc::testing::StorageFixture::local
    );
}

mod memory_s3 {
    gc_cases!(
        milvus_metastore::testing::memory_test_kv,
        datacoord_gc::testing::StorageFixture::in_process_s3
    );
}

mod memory_external_s3 {
    gc_cases!(
        milvus_metastore::testing::memory_test_kv,
        datacoord_gc::testing::StorageFixture::external_s3
    );
}

mod etcd_local {
    gc_cases!(
        milvus_metastore::testing::etcd_test_kv,
        datacoord_gc::testing::StorageFixture::local
    );
}

mod etcd_s3 {
    gc_cases!(
        milvus_metastore::testing::etcd_test_kv,
        datacoord_gc::testing::StorageFixture::in_process_s3
    );
}

mod etcd_external_s3 {
    gc_cases!(
        milvus_metastore::testing::etcd_test_kv,
        datacoord_gc::testing::StorageFixture::external_s3
    );
}
