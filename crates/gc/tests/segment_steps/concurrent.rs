//! GC runs back to back while meta and storage change underneath it: datanodes flushing
//! segments, compactions writing their output and committing, segments being dropped, and
//! stray files appearing. Both tolerances are zero, so nothing but the rules protects a file.
//! Afterwards every file meta references exists, and nothing else is left.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use datacoord_gc::testing::StorageFixture;
use datacoord_gc::{GcConfig, GcStats, Stage};
use datacoord_index::FinishedTask;
use datacoord_meta::testing::segment;
use datacoord_meta::{
    BinlogUpdate, CommitOutcome, CompactionCommit, CompactionSource, with_full_paths,
};
use milvus_config::DataCoordConfig;
use milvus_metastore::MetaKv;
use milvus_proto::common::{IndexState, SegmentState};
use milvus_proto::data::SegmentInfo;
use milvus_storage::{delta_log_path, insert_log_path, stats_log_path};
use tokio::sync::watch;

use crate::support::{CHANNEL, COLL, Env, PART, VECTOR_FIELD, log_paths, run, step};

const FLUSHES_PER_PARTITION: usize = 40;
const COMPACTIONS_PER_PARTITION: usize = 12;
const DROPS: usize = 15;
const STRAY_FILES: usize = 40;

/// A small deterministic generator (xorshift), so each run picks the same way.
struct Picks(u64);

impl Picks {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }
}

fn flushed_in(env: &Env, part: Option<i64>) -> Vec<Arc<SegmentInfo>> {
    env.meta
        .segments_of_collection(COLL)
        .into_iter()
        .filter(|seg| seg.state() == SegmentState::Flushed)
        .filter(|seg| part.is_none_or(|part| seg.partition_id == part))
        .collect()
}

/// A datanode: a Growing segment, SaveBinlogPaths with its logs, the files, then Flushed.
/// The files are written *after* meta names them: any GC judging with a view of meta older
/// than its listing would delete them.
async fn flusher(env: Arc<Env>, part: i64, mut gc_runs: watch::Receiver<GcStats>) {
    let mut picks = Picks(0x85eb_ca6b + part as u64);
    for _ in 0..FLUSHES_PER_PARTITION {
        let id = env.fresh_id();
        let logs = env.segment_in(part, id);
        let growing = segment(id, COLL, part, CHANNEL, SegmentState::Growing);
        env.meta.add_segment(growing).await.expect("assign");
        // Spread the flushes over the runs, landing at various points of them.
        let next = gc_runs.borrow().runs + 1;
        gc_runs
            .wait_for(|stats| stats.runs >= next)
            .await
            .expect("gc loop alive");
        tokio::time::sleep(Duration::from_millis(picks.next(40) as u64)).await;
        env.meta
            .save_binlog_paths(BinlogUpdate {
                segment_id: id,
                flushed: true,
                binlogs: logs.binlogs.clone(),
                statslogs: logs.statslogs.clone(),
                deltalogs: logs.deltalogs.clone(),
                ..BinlogUpdate::default()
            })
            .await
            .expect("save binlog paths");
        tokio::task::yield_now().await;
        env.fx.write_all(&log_paths(&logs)).await;
        env.meta
            .set_state(id, SegmentState::Flushed)
            .await
            .expect("flushed");
    }
}

/// A compaction engine: persists the task (pending), lets the datanode write the result,
/// commits it, indexes the result, then finishes the task. Sources may be dropped meanwhile
/// (the commit is then refused and the output left as orphans).
async fn compactor(
    env: Arc<Env>,
    part: i64,
    index_id: i64,
    committed: Arc<AtomicUsize>,
    mut gc_runs: watch::Receiver<GcStats>,
) {
    let mut picks = Picks(0x9e37_79b9 + part as u64);
    let (mut plan_id, mut waits) = (0, 0);
    while plan_id < COMPACTIONS_PER_PARTITION {
        let mut candidates = flushed_in(&env, Some(part));
        if candidates.len() < 2 {
            waits += 1;
            assert!(
                waits < 10_000,
                "partition {part} never had two Flushed segments"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        plan_id += 1;
        let first = candidates.swap_remove(picks.next(candidates.len()));
        let second = candidates.swap_remove(picks.next(candidates.len()));
        env.pending.insert(COLL, part);
        let result_id = env.fresh_id();
        let output = env.segment_in(part, result_id);
        env.fx.write_all(&log_paths(&output)).await;
        // The datanode takes its time: a whole GC run sees the output before the commit.
        let seen = gc_runs.borrow().runs + 2;
        gc_runs
            .wait_for(|stats| stats.runs >= seen)
            .await
            .expect("gc loop alive");
        let source = |seg: &SegmentInfo| CompactionSource {
            segment_id: seg.id,
            plan_deltalog_ids: seg
                .deltalogs
                .iter()
                .flat_map(|field| field.binlogs.iter().map(|binlog| binlog.log_id))
                .collect(),
        };
        let commit = CompactionCommit {
            plan_id: plan_id as i64,
            sources: vec![source(&first), source(&second)],
            segment_id: result_id,
            num_of_rows: output.num_of_rows,
            binlogs: output.binlogs.clone(),
            statslogs: output.statslogs.clone(),
            deltalogs: output.deltalogs.clone(),
            copied_deltalogs: Vec::new(),
            start_time: 1,
        };
        match env.meta.complete_compaction(commit).await.expect("commit") {
            CommitOutcome::Committed(_) => {
                committed.fetch_add(1, Ordering::SeqCst);
                index_result(&env, result_id, index_id).await;
                // As the flush path: Flushing → Flushed, after which it may be compacted again.
                env.meta
                    .set_state(result_id, SegmentState::Flushed)
                    .await
                    .expect("flushed");
            }
            // A source was dropped meanwhile: the output is left as orphans for the scan.
            CommitOutcome::Refused(_) => {}
        }
        env.pending.remove(COLL, part);
    }
}

/// A Finished build of the vector index on the result (skipped if it is already gone).
async fn index_result(env: &Env, seg_id: i64, index_id: i64) {
    let Some(seg) = env.meta.segment(seg_id) else {
        return;
    };
    let build_id = env.fresh_id();
    if env
        .index_meta
        .add_segment_index(&seg, index_id, build_id)
        .await
        .is_err()
    {
        return;
    }
    let finished = FinishedTask {
        state: IndexState::Finished,
        index_file_keys: Vec::new(),
        fail_reason: String::new(),
        serialized_size: 0,
        current_index_version: 1,
    };
    // GC may remove the record of a segment dropped meanwhile: then there is nothing to finish.
    let _ = env.index_meta.finish_task(build_id, finished).await;
}

/// Drops Flushed segments (dropped_at 0: collectable at once).
async fn dropper(env: Arc<Env>) {
    let mut picks = Picks(0x2545_f491);
    for _ in 0..DROPS {
        let flushed = flushed_in(&env, None);
        if let Some(seg) = (!flushed.is_empty()).then(|| &flushed[picks.next(flushed.len())]) {
            env.meta
                .set_state(seg.id, SegmentState::Dropped)
                .await
                .expect("drop");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Files no segment will ever name.
async fn strays(env: Arc<Env>) -> Vec<String> {
    let mut written = Vec::new();
    for n in 0..STRAY_FILES as i64 {
        let seg = 9_000_000 + n;
        let paths = vec![
            insert_log_path(&env.root, COLL, PART + 2, seg, 100, n),
            stats_log_path(&env.root, COLL, PART + 2, seg, 100, n),
            delta_log_path(&env.root, COLL, PART + 2, seg, n),
        ];
        env.fx.write_all(&paths).await;
        written.extend(paths);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    written
}

fn referenced(env: &Env) -> BTreeSet<String> {
    env.meta
        .segments_of_collection(COLL)
        .iter()
        .flat_map(|seg| log_paths(&with_full_paths(seg, &env.root)))
        .collect()
}

pub async fn gc_under_concurrent_writes_never_loses_a_referenced_file(kv: Arc<dyn MetaKv>) {
    let config = GcConfig {
        missing_tolerance: Duration::ZERO,
        drop_tolerance: Duration::ZERO,
        remove_concurrent: 4,
        ..GcConfig::from_config(&DataCoordConfig::default())
    };
    let fx = StorageFixture::local().await.expect("temp dir");
    let env = Arc::new(Env::new(kv, fx, config).await);
    let index_id = env.create_index(VECTOR_FIELD).await;
    let gc = env.collector();

    let writing = Arc::new(AtomicBool::new(true));
    let gc_task = tokio::spawn({
        let writing = writing.clone();
        let gc = gc.clone();
        async move {
            let (mut runs, mut collected, mut removed) = (0, 0, 0);
            while writing.load(Ordering::SeqCst) {
                let report = run(&gc).await;
                runs += 1;
                collected += step(&report, Stage::ClearEtcd).records_removed;
                removed += step(&report, Stage::Scan).files_removed;
                tokio::task::yield_now().await;
            }
            (runs, collected, removed)
        }
    });
    let committed = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for part in [PART, PART + 1] {
        writers.push(tokio::spawn(flusher(env.clone(), part, gc.subscribe())));
        writers.push(tokio::spawn(compactor(
            env.clone(),
            part,
            index_id,
            committed.clone(),
            gc.subscribe(),
        )));
    }
    writers.push(tokio::spawn(dropper(env.clone())));
    let strays = tokio::spawn(strays(env.clone()));
    for writer in writers {
        writer.await.expect("writer");
    }
    let strays = strays.await.expect("strays");
    writing.store(false, Ordering::SeqCst);
    let (runs, collected_during, removed_during) = gc_task.await.expect("gc loop");

    // Work really overlapped: GC ran, collected segments and deleted files while writes went on.
    assert!(runs >= 2, "only {runs} runs during the writes");
    assert!(
        collected_during > 0,
        "no segment collected during the writes"
    );
    assert!(removed_during > 0, "no orphan removed during the writes");
    assert!(
        committed.load(Ordering::SeqCst) > 0,
        "no compaction committed"
    );

    let after_writes = referenced(&env);
    for path in &after_writes {
        assert!(env.exists(path).await, "referenced file lost: {path}");
    }

    // Once everything settled, storage holds exactly what meta references.
    run(&gc).await;
    let settled = referenced(&env);
    let stored: BTreeSet<String> = env.fx.all_files().await.into_iter().collect();
    assert_eq!(
        stored.difference(&settled).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "unreferenced files left"
    );
    assert_eq!(
        settled.difference(&stored).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "referenced files lost"
    );
    assert!(env.none_exist(&strays).await);
}
