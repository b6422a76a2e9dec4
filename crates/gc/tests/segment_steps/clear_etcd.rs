//! clearEtcd (FACTS §3.3): which Dropped segments go, files before meta, channel checkpoints.

use std::sync::Arc;

use datacoord_gc::Stage;
use datacoord_meta::testing::{Fault, FaultyKv, assert_matches_store, position};
use datacoord_meta::{ChannelRemoval, channel_checkpoint_key};
use milvus_metastore::MetaKv;
use milvus_proto::common::{IndexState, SegmentState};
use milvus_proto::data::SegmentInfo;
use milvus_proto::schema::DataType;

use crate::support::{
    CHANNEL, COLL, Env, HOUR, MINUTE, PART, SCALAR_FIELD, VECTOR_FIELD, dropped, run, step,
    unix_ns_ago,
};

/// Whether the segment was collected: gone from memory and store with all its files. A
/// segment still there must still have all its files.
async fn collected(env: &Env, seg: &SegmentInfo, paths: &[String]) -> bool {
    let gone = env.meta.segment(seg.id).is_none() && !env.stored(seg).await;
    if gone {
        assert!(
            env.none_exist(paths).await,
            "segment {} collected, files left",
            seg.id
        );
    } else {
        assert!(
            env.all_exist(paths).await,
            "segment {} kept, files missing",
            seg.id
        );
    }
    gone
}

/// Stores `seg` Dropped at `dropped_at` with its files; returns it and its paths.
async fn stored_dropped(
    env: &Env,
    seg: SegmentInfo,
    dropped_at: u64,
) -> (SegmentInfo, Vec<String>) {
    let seg = dropped(seg, dropped_at);
    let paths = env.store(seg.clone()).await;
    (seg, paths)
}

pub async fn drop_tolerance_is_kept_on_both_sides(kv: Arc<dyn MetaKv>) {
    let env = Env::local(kv).await;
    let tolerance = env.config.drop_tolerance;
    let (recent, recent_paths) =
        stored_dropped(&env, env.segment(1), unix_ns_ago(tolerance - MINUTE)).await;
    let (expired, expired_paths) =
        stored_dropped(&env, env.segment(2), unix_ns_ago(tolerance + MINUTE)).await;
    let (unstamped, unstamped_paths) = stored_dropped(&env, env.segment(3), 0).await;
    let live = env.segment(4);
    let live_paths = env.store(live.clone()).await;

    let report = env.run_clear_etcd().await;

    assert!(!collected(&env, &recent, &recent_paths).await);
    assert!(collected(&env, &expired, &expired_paths).await);
    assert!(
        collected(&env, &unstamped, &unstamped_paths).await,
        "dropped_at 0 counts as long ago"
    );
    assert!(env.all_exist(&live_paths).await);
    assert!(env.meta.segment(live.id).is_some());
    assert_eq!(report.records_removed, 2);
    assert_eq!(
        report.files_removed,
        expired_paths.len() + unstamped_paths.len()
    );
    assert_eq!(report.failures, 0);
    assert_matches_store(&env.meta).await;
}

/// A child compacted from `sources`, Flushed, stored with its files.
async fn child_of(env: &Env, id: i64, sources: &[i64], state: SegmentState) -> SegmentInfo {
    let mut child = env.segment(id);
    child.compaction_from = sources.to_vec();
    child.created_by_compaction = true;
    child.set_state(state);
    env.store(child.clone()).await;
    child
}

/// A compacted source, Dropped at `dropped_at`, stored with its files.
async fn source(env: &Env, id: i64, dropped_at: u64) -> (SegmentInfo, Vec<String>) {
    let mut seg = env.segment(id);
    seg.compacted = true;
    stored_dropped(env, seg, dropped_at).await
}

pub async fn compaction_sources_wait_for_their_child_index(kv: Arc<dyn MetaKv>) {
    let env = Env::local(kv).await;
    let index = env.create_index(VECTOR_FIELD).await;
    // Long expired: what keeps it is the child's index, not the tolerance.
    let (waiting, waiting_paths) = source(&env, 11, unix_ns_ago(10 * HOUR)).await;
    child_of(&env, 12, &[11], SegmentState::Flushed).await;
    env.build(12, index, IndexState::InProgress).await;
    // Just dropped: an indexed child lets it go at once, without the tolerance.
    let (ready, ready_paths) = source(&env, 21, unix_ns_ago(MINUTE)).await;
    child_of(&env, 22, &[21], SegmentState::Flushed).await;
    env.build(22, index, IndexState::Finished).await;
    // A child that is Dropped itself still counts once indexed (as 2.3.5).
    let (behind_dropped, behind_dropped_paths) = source(&env, 31, unix_ns_ago(MINUTE)).await;
    let dropped_child = child_of(&env, 32, &[31], SegmentState::Dropped).await;
    env.build(32, index, IndexState::Finished).await;
    // A child still Growing is not indexed whatever its index says.
    let (behind_growing, behind_growing_paths) = source(&env, 41, unix_ns_ago(10 * HOUR)).await;
    child_of(&env, 42, &[41], SegmentState::Growing).await;
    env.build(42, index, IndexState::Finished).await;

    let report = env.run_clear_etcd().await;

    assert!(!collected(&env, &waiting, &waiting_paths).await);
    assert!(collected(&env, &ready, &ready_paths).await);
    assert!(collected(&env, &behind_dropped, &behind_dropped_paths).await);
    assert!(!collected(&env, &behind_growing, &behind_growing_paths).await);
    // The Dropped child has dropped_at 0 and no child of its own: it goes too.
    assert!(env.meta.segment(dropped_child.id).is_none());
    assert_eq!(report.records_removed, 3);
    assert_eq!(report.failures, 0);
    assert_matches_store(&env.meta).await;
}

pub async fn sources_stay_without_an_index_on_the_first_vector_field(kv: Arc<dyn MetaKv>) {
    let env = Env::local(kv).await;
    // Indexes on a scalar field or on the second vector field do not count, even Finished.
    let scalar_index = env.create_index(SCALAR_FIELD).await;
    let second_vector_index = env.create_index(VECTOR_FIELD + 2).await;
    let (kept, kept_paths) = source(&env, 11, unix_ns_ago(10 * HOUR)).await;
    child_of(&env, 12, &[11], SegmentState::Flushed).await;
    env.build(12, scalar_index, IndexState::Finished).await;
    env.build(12, second_vector_index, IndexState::Finished)
        .await;

    let report = env.run_clear_etcd().await;
    assert!(!collected(&env, &kept, &kept_paths).await);
    assert_eq!(report.records_removed, 0);

    // With the vector index Finished but no schema (RootCoord cannot answer), still kept.
    let vector_index = env.create_index(VECTOR_FIELD).await;
    env.build(12, vector_index, IndexState::Finished).await;
    env.schemas.remove(COLL);
    env.run_clear_etcd().await;
    assert!(!collected(&env, &kept, &kept_paths).await);

    // Schema back: the child is indexed on its first vector field.
    env.schemas.set(
        COLL,
        &[
            (SCALAR_FIELD, DataType::Int64),
            (VECTOR_FIELD, DataType::FloatVector),
        ],
    );
    env.run_clear_etcd().await;
    assert!(collected(&env, &kept, &kept_paths).await);
}

pub async fn compacted_source_without_child_waits_for_drop_tolerance(kv: Arc<dyn MetaKv>) {
    let env = Env::local(kv).await;
    let tolerance = env.config.drop_tolerance;
    // 2.3.5 would collect both at once; the first may be the only copy of its data.
    let (recent, recent_paths) = source(&env, 11, unix_ns_ago(tolerance - MINUTE)).await;
    let (expired, expired_paths) = source(&env, 12, unix_ns_ago(tolerance + MINUTE)).await;

    let report = env.run_clear_etcd().await;

    assert!(!collected(&env, &recent, &recent_paths).await);
    assert!(collected(&env, &expired, &expired_paths).await);
    assert_eq!(report.records_removed, 1);
}

pub async fn active_channel_keeps_segments_past_its_checkpoint(kv: Arc<dyn MetaKv>) {
    let env = Env::local(kv).await;
    env.meta.mark_channel_added(CHANNEL).await.expect("watch");
    env.meta
        .update_channel_checkpoint(CHANNEL, position(CHANNEL, 100))
        .await
        .expect("checkpoint");
    let at = |id: i64, ts: u64| {
        let mut seg = env.segment(id);
        seg.dml_position = Some(position(CHANNEL, ts));
        seg
    };
    let (after, after_paths) = stored_dropped(&env, at(1, 101), 0).await;
    let (at_checkpoint, at_checkpoint_paths) = stored_dropped(&env, at(2, 100), 0).await;
    // An active channel without any checkpoint holds every segment with a dml position.
    let other = "by-dev-rootcoord-dml_1_10v1";
    env.meta.mark_channel_added(other).await.expect("watch");
    let mut on_other = at(3, 5);
    on_other.insert_channel = other.to_string();
    on_other.dml_position = Some(position(other, 5));
    let (on_other, on_other_paths) = stored_dropped(&env, on_other, 0).await;

    env.run_clear_etcd().await;

    assert!(!collected(&env, &after, &after_paths).await);
    assert!(collected(&env, &at_checkpoint, &at_checkpoint_paths).await);
    assert!(!collected(&env, &on_other, &on_other_paths).await);

    // Once the channel is dropped (flag `removed`) its checkpoint no longer holds anything.
    env.meta
        .drop_channel_segments(CHANNEL, Vec::new())
        .await
        .expect("drop channel");
    assert_eq!(env.meta.channel_removal(CHANNEL), ChannelRemoval::Removed);
    env.run_clear_etcd().await;
    assert!(collected(&env, &after, &after_paths).await);
}

pub async fn channel_checkpoint_goes_with_the_channel(kv: Arc<dyn MetaKv>) {
    let env = Env::local(kv).await;
    let channel = |n: u32| format!("by-dev-rootcoord-dml_{n}_10v{n}");
    let on = |id: i64, channel: &str| {
        let mut seg = env.segment(id);
        seg.insert_channel = channel.to_string();
        seg.dml_position = Some(position(channel, 10));
        seg
    };
    // 0: dropped channel, all its segments dropped → checkpoint dropped after the last one.
    // 1: active channel → checkpoint kept. 2: no flag but a healthy segment left → kept.
    for n in 0..3 {
        env.meta
            .mark_channel_added(&channel(n))
            .await
            .expect("watch");
        env.meta
            .update_channel_checkpoint(&channel(n), position(&channel(n), 50))
            .await
            .expect("checkpoint");
    }
    env.store(on(1, &channel(0))).await;
    env.store(on(2, &channel(0))).await;
    env.meta
        .drop_channel_segments(&channel(0), Vec::new())
        .await
        .expect("drop channel 0");
    env.store(dropped(on(3, &channel(1)), 0)).await;
    env.store(dropped(on(4, &channel(2)), 0)).await;
    env.store(on(5, &channel(2))).await;
    env.meta
        .finish_drop_channel(&channel(2))
        .await
        .expect("flag gone");

    let report = env.run_clear_etcd().await;

    assert_eq!(report.failures, 0);
    // Segments 1, 2, 3, 4 and the checkpoint of channel 0.
    assert_eq!(report.records_removed, 5);
    assert!(env.meta.channel_checkpoint(&channel(0)).is_none());
    assert!(
        env.kv
            .load(&channel_checkpoint_key(&channel(0)))
            .await
            .expect("load")
            .is_none()
    );
    assert!(env.meta.channel_checkpoint(&channel(1)).is_some());
    assert!(env.meta.channel_checkpoint(&channel(2)).is_some());
    assert!(env.meta.segment(5).is_some());
    assert_matches_store(&env.meta).await;
}

pub async fn storage_failure_keeps_meta_until_files_are_gone(kv: Arc<dyn MetaKv>) {
    let env = Env::local(kv).await;
    let (seg, paths) = stored_dropped(&env, env.segment(1), 0).await;
    env.storage.fail_removes(true);

    let report = env.run_clear_etcd().await;

    assert_eq!(report.failures, 1);
    assert_eq!(report.records_removed, 0);
    assert!(env.meta.segment(seg.id).is_some());
    assert!(env.stored(&seg).await);

    env.storage.fail_removes(false);
    let report = env.run_clear_etcd().await;
    assert_eq!(report.failures, 0);
    assert!(collected(&env, &seg, &paths).await);
}

pub async fn missing_files_do_not_block_collection(kv: Arc<dyn MetaKv>) {
    let env = Env::local(kv).await;
    let seg = dropped(env.segment(1), 0);
    env.meta.add_segment(seg.clone()).await.expect("add");
    // Only one of its files was ever written.
    let paths = env.paths_of(seg.id);
    env.fx.write_all(&paths[..1]).await;

    let report = env.run_clear_etcd().await;

    assert_eq!(report.failures, 0);
    assert!(collected(&env, &seg, &paths).await);
}

pub async fn failed_meta_drop_is_retried_next_run(kv: Arc<dyn MetaKv>) {
    let faulty = Arc::new(FaultyKv::new(kv));
    let env = Env::local(faulty.clone()).await;
    let (seg, paths) = stored_dropped(&env, env.segment(1), 0).await;
    faulty.fail_after(0, Fault::Rejected);

    let report = env.run_clear_etcd().await;

    assert_eq!(report.failures, 1);
    assert!(
        env.meta.segment(seg.id).is_some(),
        "meta kept when its removal fails"
    );
    assert!(env.none_exist(&paths).await, "files go first");

    faulty.heal();
    let report = env.run_clear_etcd().await;
    assert_eq!(report.failures, 0);
    assert!(collected(&env, &seg, &paths).await);
}

pub async fn gc_confirm_turns_true_once_segments_are_collected(kv: Arc<dyn MetaKv>) {
    let env = Env::local(kv).await;
    let index = env.create_index(VECTOR_FIELD).await;
    for seg in [env.segment(1), env.segment_in(PART + 1, 2)] {
        env.store(seg).await;
    }
    env.build(1, index, IndexState::Finished).await;
    let mut other_collection = env.segment(3);
    other_collection.collection_id = COLL + 1;
    other_collection.insert_channel = "by-dev-rootcoord-dml_1_11v0".to_string();
    env.store(other_collection).await;
    assert!(!env.meta.gc_confirm(COLL, -1).await.expect("confirm"));

    // RootCoord drops the collection: its channel's segments are dropped (dropped_at 0).
    env.meta
        .drop_channel_segments(CHANNEL, Vec::new())
        .await
        .expect("drop channel");
    assert!(!env.meta.gc_confirm(COLL, -1).await.expect("confirm"));
    assert!(!env.meta.gc_confirm(COLL, PART).await.expect("confirm"));

    let report = run(&env.collector()).await;

    assert_eq!(step(&report, Stage::ClearEtcd).records_removed, 2);
    assert!(env.meta.gc_confirm(COLL, -1).await.expect("confirm"));
    assert!(env.meta.gc_confirm(COLL, PART).await.expect("confirm"));
    assert!(!env.meta.gc_confirm(COLL + 1, -1).await.expect("confirm"));
    // The segment index of a collected segment goes in the same run.
    assert_eq!(
        step(&report, Stage::RecycleUnusedSegmentIndexes).records_removed,
        1
    );
    assert_eq!(env.fx.all_files().await, sorted(env.paths_of(3)));
}

fn sorted(mut paths: Vec<String>) -> Vec<String> {
    paths.sort();
    paths
}
