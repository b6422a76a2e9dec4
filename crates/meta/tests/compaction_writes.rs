//! `Meta::complete_compaction` on the memory store and on a real etcd (`ETCD_ENDPOINTS`): what
//! a commit writes, what it refuses (writing nothing), the split path for wide results, and
//! re-runs after failures at every write converging without dropping a source before its
//! child is stored.

use std::sync::Arc;

use bytes::Bytes;
use datacoord_meta::testing::{
    Fault, FaultyKv, assert_matches_store, flushed_segment, position, segment, sent_logs,
};
use datacoord_meta::{
    Catalog, CommitOutcome, CommitRefusal, CompactionCommit, CompactionSource, LogKind, Meta,
    MetaError, late_deltalogs, segment_key, with_full_paths,
};
use milvus_metastore::{MemoryKv, MetaKv};
use milvus_proto::common::SegmentState;
use milvus_proto::data::{FieldBinlog, SegmentInfo};
use prost::Message;

const ROOT: &str = "files";
const COLL: i64 = 1;
const PART: i64 = 2;
const CHANNEL: &str = "ch";
const RESULT: i64 = 100;

async fn open(kv: &Arc<dyn MetaKv>) -> Meta {
    Meta::load(Catalog::new(kv.clone())).await.expect("load")
}

async fn dump(kv: &Arc<dyn MetaKv>) -> Vec<(String, Bytes)> {
    kv.load_all_with_prefix("datacoord-meta/")
        .await
        .expect("dump")
}

async fn stored(kv: &Arc<dyn MetaKv>, id: i64) -> Option<SegmentInfo> {
    let value = kv.load(&segment_key(COLL, PART, id)).await.expect("load")?;
    Some(SegmentInfo::decode(value).expect("decode"))
}

/// Flushed sources 1, 2, 3 (20, 30, 10 rows; one delete log each) with positions whose
/// smallest timestamps are on segment 2 (start) and 3 (dml).
async fn add_sources(meta: &Meta) -> Vec<SegmentInfo> {
    let mut added = Vec::new();
    for (id, logs, start_ts, dml_ts) in [(1, 2, 50, 90), (2, 3, 10, 80), (3, 1, 40, 70)] {
        let mut seg = flushed_segment((COLL, PART, id), CHANNEL, ROOT, id * 10, logs);
        seg.max_row_num = 4321;
        seg.start_position = Some(position(CHANNEL, start_ts));
        seg.dml_position = Some(position(CHANNEL, dml_ts));
        meta.add_segment(seg).await.expect("add source");
        added.push(SegmentInfo::clone(&meta.segment(id).expect("source")));
    }
    added
}

/// The commit of a DataNode result for `sources` (as the plan listed them, with full paths):
/// `rows` rows in one insert log per field 0, 1, 100 and one stats log, full paths.
fn commit_of(sources: &[SegmentInfo], rows: i64) -> CompactionCommit {
    let ids = (COLL, PART, RESULT);
    let logs = |kind, field| sent_logs(kind, ROOT, ids, field, &[9000 + field], rows);
    CompactionCommit {
        plan_id: 77,
        sources: sources
            .iter()
            .map(|seg| CompactionSource {
                segment_id: seg.id,
                plan_deltalog_ids: with_full_paths(seg, ROOT)
                    .deltalogs
                    .iter()
                    .flat_map(|field| field.binlogs.iter().map(|b| b.log_id))
                    .collect(),
            })
            .collect(),
        segment_id: RESULT,
        num_of_rows: rows,
        binlogs: if rows == 0 {
            Vec::new()
        } else {
            vec![
                logs(LogKind::Insert, 0),
                logs(LogKind::Insert, 1),
                logs(LogKind::Insert, 100),
            ]
        },
        statslogs: if rows == 0 {
            Vec::new()
        } else {
            vec![logs(LogKind::Stats, 100)]
        },
        deltalogs: Vec::new(),
        copied_deltalogs: Vec::new(),
        start_time: 123_456,
    }
}

fn committed(outcome: CommitOutcome) -> Arc<SegmentInfo> {
    match outcome {
        CommitOutcome::Committed(seg) => seg,
        CommitOutcome::Refused(refusal) => panic!("refused: {refusal}"),
    }
}

fn refused(outcome: CommitOutcome) -> CommitRefusal {
    match outcome {
        CommitOutcome::Refused(refusal) => refusal,
        CommitOutcome::Committed(seg) => panic!("committed {seg:?}"),
    }
}

fn log_ids(fields: &[FieldBinlog]) -> Vec<(i64, Vec<i64>)> {
    fields
        .iter()
        .map(|field| {
            (
                field.field_id,
                field.binlogs.iter().map(|b| b.log_id).collect(),
            )
        })
        .collect()
}

async fn commit_drops_sources_and_adds_the_result(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    let sources = add_sources(&meta).await;
    let child = committed(
        meta.complete_compaction(commit_of(&sources, 55))
            .await
            .expect("commit"),
    );
    assert_eq!(child.id, RESULT);
    assert_eq!(child.state(), SegmentState::Flushing);
    assert_eq!(
        (
            child.collection_id,
            child.partition_id,
            child.insert_channel.as_str()
        ),
        (COLL, PART, CHANNEL)
    );
    assert_eq!(child.num_of_rows, 55);
    assert_eq!(child.max_row_num, 4321);
    assert_eq!(child.last_expire_time, 123_456);
    assert!(child.created_by_compaction);
    assert_eq!(child.compaction_from, vec![1, 2, 3]);
    assert_eq!(child.start_position, Some(position(CHANNEL, 10)));
    assert_eq!(child.dml_position, Some(position(CHANNEL, 70)));
    assert_eq!(
        log_ids(&child.binlogs),
        vec![(0, vec![9000]), (1, vec![9001]), (100, vec![9100])]
    );
    assert!(
        child.binlogs[0].binlogs[0].log_path.is_empty(),
        "logID form"
    );
    assert_eq!(log_ids(&child.statslogs), vec![(100, vec![9100])]);
    for id in [1, 2, 3] {
        let source = meta.segment(id).expect("source kept");
        assert_eq!(source.state(), SegmentState::Dropped);
        assert!(source.compacted);
        assert!(source.dropped_at > 0);
        assert_eq!(
            stored(&kv, id).await.expect("stored").state(),
            SegmentState::Dropped
        );
        assert_eq!(meta.child_of(id).map(|c| c.id), Some(RESULT));
    }
    assert_eq!(stored(&kv, RESULT).await.expect("stored").num_of_rows, 55);
    assert_matches_store(&meta).await;
}

async fn zero_row_result_is_stored_dropped(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    let sources = add_sources(&meta).await;
    let child = committed(
        meta.complete_compaction(commit_of(&sources, 0))
            .await
            .expect("commit"),
    );
    assert_eq!(child.state(), SegmentState::Dropped);
    assert_eq!(child.num_of_rows, 0);
    assert_eq!(child.compaction_from, vec![1, 2, 3]);
    for id in [1, 2, 3] {
        assert_eq!(
            meta.segment(id).expect("source").state(),
            SegmentState::Dropped
        );
    }
    assert_matches_store(&meta).await;
}

async fn a_second_run_of_the_plan_changes_nothing(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    let sources = add_sources(&meta).await;
    let commit = commit_of(&sources, 55);
    let first = committed(
        meta.complete_compaction(commit.clone())
            .await
            .expect("commit"),
    );
    let before = dump(&kv).await;
    let again = committed(
        meta.complete_compaction(commit.clone())
            .await
            .expect("rerun"),
    );
    assert_eq!(again, first);
    assert_eq!(dump(&kv).await, before, "a re-run writes nothing new");
    // Also once the result moved on to Flushed (the flush path ran in between).
    meta.set_state(RESULT, SegmentState::Flushed)
        .await
        .expect("flushed");
    let later = committed(meta.complete_compaction(commit).await.expect("rerun"));
    assert_eq!(later.state(), SegmentState::Flushed);
    assert_matches_store(&meta).await;
}

async fn refusals_write_nothing(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    let sources = add_sources(&meta).await;
    // A segment of the same ID that is not this plan's result.
    meta.add_segment(segment(RESULT, COLL, PART, CHANNEL, SegmentState::Flushed))
        .await
        .expect("add");
    let before = dump(&kv).await;
    assert_eq!(
        refused(
            meta.complete_compaction(commit_of(&sources, 55))
                .await
                .expect("refusal")
        ),
        CommitRefusal::SegmentExists(RESULT)
    );
    meta.drop_segment(RESULT).await.expect("remove");
    let before_without = dump(&kv).await;
    assert_ne!(before, before_without);

    let mut missing = commit_of(&sources, 55);
    missing.sources.push(CompactionSource {
        segment_id: 404,
        plan_deltalog_ids: Vec::new(),
    });
    assert_eq!(
        refused(meta.complete_compaction(missing).await.expect("refusal")),
        CommitRefusal::SourceMissing(404)
    );
    let mut none = commit_of(&sources, 55);
    none.sources.clear();
    assert_eq!(
        refused(meta.complete_compaction(none).await.expect("refusal")),
        CommitRefusal::NoSources
    );
    // A source dropped meanwhile (its channel was dropped).
    meta.set_state(2, SegmentState::Dropped)
        .await
        .expect("drop source");
    let dropped_source = dump(&kv).await;
    assert_eq!(
        refused(
            meta.complete_compaction(commit_of(&sources, 55))
                .await
                .expect("refusal")
        ),
        CommitRefusal::SourceNotHealthy {
            segment_id: 2,
            state: SegmentState::Dropped
        }
    );
    assert_eq!(dump(&kv).await, dropped_source);
    assert!(meta.segment(RESULT).is_none());
    assert_eq!(
        meta.segment(1).expect("source").state(),
        SegmentState::Flushed
    );
    assert_matches_store(&meta).await;
}

async fn sources_compacted_by_another_plan_are_refused(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    let sources = add_sources(&meta).await;
    // Another coordinator (a Go takeover) compacted 1 and 2 into segment 500 meanwhile.
    let mut other = commit_of(&sources[..2], 50);
    other.segment_id = 500;
    other.binlogs = vec![sent_logs(
        LogKind::Insert,
        ROOT,
        (COLL, PART, 500),
        0,
        &[1],
        50,
    )];
    other.statslogs = Vec::new();
    committed(meta.complete_compaction(other).await.expect("other commit"));
    let before = dump(&kv).await;
    let refusal = refused(
        meta.complete_compaction(commit_of(&sources, 55))
            .await
            .expect("refusal"),
    );
    assert_eq!(
        refusal,
        CommitRefusal::SourceNotHealthy {
            segment_id: 1,
            state: SegmentState::Dropped
        }
    );
    assert!(!refusal.is_retriable());
    assert_eq!(dump(&kv).await, before);
    assert_eq!(
        meta.segment(3).expect("source").state(),
        SegmentState::Flushed
    );
    assert_matches_store(&meta).await;
}

async fn late_deltalogs_must_match_what_was_copied(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    let sources = add_sources(&meta).await;
    let commit = commit_of(&sources, 55);
    // Segment 2 gains a delete log after the plan was made.
    meta.save_binlog_paths(datacoord_meta::BinlogUpdate {
        segment_id: 2,
        deltalogs: vec![sent_logs(
            LogKind::Delta,
            ROOT,
            (COLL, PART, 2),
            0,
            &[4242],
            3,
        )],
        ..Default::default()
    })
    .await
    .expect("late delete");
    let source = meta.segment(2).expect("source");
    let late = late_deltalogs(&source, &commit.sources[1].plan_deltalog_ids);
    assert_eq!(log_ids(&late), vec![(0, vec![4242])]);

    let before = dump(&kv).await;
    let refusal = refused(
        meta.complete_compaction(commit.clone())
            .await
            .expect("refusal"),
    );
    assert_eq!(refusal, CommitRefusal::LateDeltalogsChanged);
    assert!(refusal.is_retriable());
    assert_eq!(dump(&kv).await, before);

    let mut with_copy = commit;
    with_copy.copied_deltalogs = late;
    let child = committed(meta.complete_compaction(with_copy).await.expect("commit"));
    assert_eq!(log_ids(&child.deltalogs), vec![(0, vec![4242])]);
    let full = with_full_paths(&child, ROOT);
    assert_eq!(
        full.deltalogs[0].binlogs[0].log_path,
        format!("{ROOT}/delta_log/{COLL}/{PART}/{RESULT}/4242")
    );
    assert_matches_store(&meta).await;
}

async fn result_logs_naming_another_segment_are_refused(kv: Arc<dyn MetaKv>) {
    let meta = open(&kv).await;
    let sources = add_sources(&meta).await;
    let before = dump(&kv).await;
    let mut commit = commit_of(&sources, 55);
    commit.binlogs[0] = sent_logs(LogKind::Insert, ROOT, (COLL, PART, 1), 0, &[1], 55);
    let err = meta.complete_compaction(commit).await.expect_err("invalid");
    assert!(
        matches!(
            err,
            MetaError::InvalidBinlog {
                segment_id: RESULT,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(dump(&kv).await, before);
    assert_matches_store(&meta).await;
}

mod memory {
    datacoord_meta::meta_store_cases!(milvus_metastore::testing::memory_test_kv;
        commit_drops_sources_and_adds_the_result,
        zero_row_result_is_stored_dropped,
        a_second_run_of_the_plan_changes_nothing,
        refusals_write_nothing,
        sources_compacted_by_another_plan_are_refused,
        late_deltalogs_must_match_what_was_copied,
        result_logs_naming_another_segment_are_refused,
    );
}

mod etcd {
    datacoord_meta::meta_store_cases!(milvus_metastore::testing::etcd_test_kv;
        commit_drops_sources_and_adds_the_result,
        zero_row_result_is_stored_dropped,
        a_second_run_of_the_plan_changes_nothing,
        refusals_write_nothing,
        sources_compacted_by_another_plan_are_refused,
        late_deltalogs_must_match_what_was_copied,
        result_logs_naming_another_segment_are_refused,
    );
}

/// Keys of one commit of [`commit_of`]: 3 insert + 1 stats log keys and the `s/` key of the
/// result, and the 3 source records.
const COMMIT_KEYS: usize = 8;

async fn faulty(max_txn_ops: usize) -> (Arc<FaultyKv>, Arc<dyn MetaKv>, Meta) {
    let faulty = Arc::new(FaultyKv::new(Arc::new(MemoryKv::with_max_txn_ops(
        max_txn_ops,
    ))));
    let kv: Arc<dyn MetaKv> = faulty.clone();
    let meta = open(&kv).await;
    (faulty, kv, meta)
}

/// Whether the store holds a Dropped source without the result segment.
async fn orphaned_source(kv: &Arc<dyn MetaKv>) -> bool {
    let child = stored(kv, RESULT).await;
    for id in [1, 2, 3] {
        let source = stored(kv, id).await.expect("source record");
        if source.state() == SegmentState::Dropped && child.is_none() {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn one_transaction_when_the_keys_fit() {
    let (faulty, _kv, meta) = faulty(COMMIT_KEYS).await;
    let sources = add_sources(&meta).await;
    let commits = faulty.commits();
    committed(
        meta.complete_compaction(commit_of(&sources, 55))
            .await
            .expect("commit"),
    );
    assert_eq!(faulty.commits() - commits, 1);
    assert_matches_store(&meta).await;
}

#[tokio::test]
async fn wide_results_are_split_result_first() {
    // 3 keys per transaction: the result's 4 log keys take 2, its record 1, the sources 1.
    let (faulty, kv, meta) = faulty(3).await;
    let sources = add_sources(&meta).await;
    let commits = faulty.commits();
    committed(
        meta.complete_compaction(commit_of(&sources, 55))
            .await
            .expect("commit"),
    );
    assert_eq!(faulty.commits() - commits, 4);
    assert!(!orphaned_source(&kv).await);
    assert_matches_store(&meta).await;
}

/// A failure at every transaction of a split commit, refused or applied-then-timed-out: the
/// store never holds a Dropped source without the result, memory equals the store, and a
/// re-run (same meta, or a reloaded one) converges to the full commit.
#[tokio::test]
async fn split_commit_converges_after_a_failure_at_every_step() {
    for fault in [Fault::Rejected, Fault::AppliedThenTimeout] {
        for ok_commits in 0..4 {
            for reload in [false, true] {
                let (faulty, kv, meta) = faulty(3).await;
                let sources = add_sources(&meta).await;
                let commit = commit_of(&sources, 55);
                faulty.fail_after(ok_commits, fault);
                meta.complete_compaction(commit.clone())
                    .await
                    .expect_err("injected failure");
                assert!(
                    !orphaned_source(&kv).await,
                    "{fault:?} after {ok_commits}: a source dropped before its result"
                );
                faulty.heal();
                assert_matches_store(&meta).await;
                let meta = if reload { open(&kv).await } else { meta };
                let child = committed(meta.complete_compaction(commit).await.expect("rerun"));
                assert_eq!(child.compaction_from, vec![1, 2, 3]);
                assert_eq!(child.num_of_rows, 55);
                for id in [1, 2, 3] {
                    let source = meta.segment(id).expect("source");
                    assert_eq!(
                        source.state(),
                        SegmentState::Dropped,
                        "{fault:?} {ok_commits}"
                    );
                    assert!(source.compacted);
                }
                assert_matches_store(&meta).await;
            }
        }
    }
}
