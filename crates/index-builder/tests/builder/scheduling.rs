//! Rounds over many tasks: no free node, least-loaded choice and spreading, batched calls,
//! and tasks whose segment or index went away.

use std::collections::BTreeMap;
use std::sync::Arc;

use datacoord_index::testing::assert_matches_store;
use datacoord_index_builder::TaskState;
use milvus_metastore::MetaKv;
use milvus_proto::common::{IndexState, SegmentState};

use crate::support::{COLL, Env, VECTOR_FIELD};

async fn without_free_node_tasks_wait_and_others_progress(kv: Arc<dyn MetaKv>) {
    let env = Env::open(kv).await;
    env.nodes.add_node(1, 1);
    let first = env.ivf_flat_task().await;
    env.builder.run_once().await;
    assert_eq!(env.record(first).state, IndexState::InProgress);

    // A big segment queued before a small one: the big one cannot be placed (the only node
    // is full), the small one still finishes, and the running one is still polled.
    env.add_segment(COLL, 2, 1500, 2).await;
    env.add_segment(COLL, 3, 10, 2).await;
    let waiting = env.one_task(2).await;
    let small = env.one_task(3).await;
    assert!(waiting < small);
    env.nodes.finish(first);
    let summary = env.builder.run_once().await;
    assert_eq!(
        (
            summary.waiting,
            summary.skipped_build,
            summary.finished,
            summary.assigned
        ),
        (0, 1, 1, 1),
        "the finished job freed the slot before assignment: {summary:?}"
    );
    // Full again: a big segment waits, and a smaller one queued after it still finishes in
    // the same round (2.3.5 would stop at the first task without a node).
    env.add_segment(COLL, 4, 1500, 2).await;
    env.add_segment(COLL, 5, 10, 2).await;
    let blocked = env.one_task(4).await;
    let small_after = env.one_task(5).await;
    assert!(blocked < small_after);
    let summary = env.builder.run_once().await;
    assert_eq!(
        (summary.waiting, summary.released, summary.skipped_build),
        (1, 2, 1),
        "{summary:?}"
    );
    assert_eq!(env.record(small_after).state, IndexState::Finished);
    let record = env.record(blocked);
    assert_eq!(
        (record.state, record.node_id, record.index_version),
        (IndexState::Unissued, 0, 0)
    );
    assert_eq!(env.builder.task_state(blocked), Some(TaskState::Init));
    assert_eq!(env.record(small).state, IndexState::Finished);
    assert_eq!(env.record(waiting).state, IndexState::InProgress);

    // No node at all: still waiting, nothing written.
    env.nodes.remove_node(1);
    env.builder.run_once().await; // `waiting` → Retry (node gone)
    let summary = env.builder.run_once().await;
    assert!(summary.waiting >= 1, "{summary:?}");
    assert_eq!(env.record(blocked).index_version, 0);
    assert_matches_store(&env.index_meta).await;
}

async fn most_free_slots_wins_and_one_round_spreads(kv: Arc<dyn MetaKv>) {
    let env = Env::open(kv).await;
    env.nodes.add_node(1, 1);
    env.nodes.add_node(2, 3);
    env.nodes.add_node(3, 2);
    env.nodes.add_node(4, 10);
    env.nodes.set_stopping(4, true);
    env.create_index(COLL, VECTOR_FIELD, "IVF_FLAT").await;
    let mut builds = Vec::new();
    for seg in 1..=7 {
        env.add_segment(COLL, seg, 1500, 1).await;
        builds.push(env.one_task(seg).await);
    }
    let summary = env.builder.run_once().await;
    assert_eq!((summary.assigned, summary.waiting), (6, 1), "{summary:?}");
    assert_eq!(env.nodes.stats_calls(), 3, "one GetJobStats per candidate");
    let first = env.nodes.created()[0].0;
    assert_eq!(
        first, 2,
        "the first task goes to the node with most free slots"
    );
    let mut per_node: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for build_id in &builds[..6] {
        let record = env.record(*build_id);
        assert_eq!(record.state, IndexState::InProgress);
        per_node.entry(record.node_id).or_default().push(*build_id);
    }
    let loads: Vec<(i64, usize)> = per_node.iter().map(|(n, b)| (*n, b.len())).collect();
    assert_eq!(
        loads,
        vec![(1, 1), (2, 3), (3, 2)],
        "stopping node 4 gets nothing"
    );
    assert_eq!(env.record(builds[6]).state, IndexState::Unissued);

    // One QueryJobs per node, carrying all of its build IDs.
    env.builder.run_once().await;
    let queried: BTreeMap<i64, Vec<i64>> = env.nodes.queried().into_iter().collect();
    assert_eq!(queried, per_node);
    assert_eq!(env.nodes.queried().len(), 3);

    // All finish: one DropJobs per node, then the waiting task takes a freed slot.
    for build_id in &builds[..6] {
        env.nodes.finish(*build_id);
    }
    let summary = env.builder.run_once().await;
    assert_eq!((summary.finished, summary.assigned), (6, 1), "{summary:?}");
    let summary = env.builder.run_once().await;
    assert_eq!(summary.released, 6, "{summary:?}");
    let dropped: BTreeMap<i64, Vec<i64>> = env.nodes.dropped().into_iter().collect();
    assert_eq!(dropped, per_node);
    assert_matches_store(&env.index_meta).await;
}

async fn gone_segment_or_index_marks_the_task_deleted(kv: Arc<dyn MetaKv>) {
    let env = Env::open(kv).await;
    env.nodes.add_node(1, 5);
    let other_coll = COLL + 1;
    env.create_index(COLL, VECTOR_FIELD, "IVF_FLAT").await;
    let dropped_index = env.create_index(other_coll, VECTOR_FIELD, "IVF_FLAT").await;
    env.add_segment(COLL, 1, 1500, 2).await;
    env.add_segment(COLL, 2, 1500, 2).await;
    env.add_segment(other_coll, 3, 1500, 2).await;
    let of_dropped_segment = env.one_task(1).await;
    let kept = env.one_task(2).await;
    let of_dropped_index = env.one_task(3).await;

    env.meta
        .set_state(1, SegmentState::Dropped)
        .await
        .expect("drop segment");
    env.index_meta
        .mark_indexes_deleted(other_coll, &[dropped_index])
        .await
        .expect("drop index");
    let summary = env.builder.run_once().await;
    assert_eq!((summary.removed, summary.assigned), (2, 1), "{summary:?}");
    for build_id in [of_dropped_segment, of_dropped_index] {
        let record = env.record(build_id);
        assert!(record.deleted, "build {build_id}");
        assert_eq!(record.state, IndexState::Unissued);
        assert_eq!(env.builder.task_state(build_id), None);
    }
    assert!(!env.record(kept).deleted);
    let sent: Vec<i64> = env
        .nodes
        .created()
        .iter()
        .map(|(_, r)| r.build_id)
        .collect();
    assert_eq!(sent, vec![kept]);

    // A record removed from meta (GC) is forgotten.
    env.index_meta
        .remove_segment_index(kept)
        .await
        .expect("remove record");
    let summary = env.builder.run_once().await;
    assert_eq!(summary.removed, 1, "{summary:?}");
    assert_eq!(env.builder.task_counts().total(), 0);
    assert_matches_store(&env.index_meta).await;
}

mod memory {
    datacoord_meta::meta_store_cases!(milvus_metastore::testing::memory_test_kv;
        without_free_node_tasks_wait_and_others_progress,
        most_free_slots_wins_and_one_round_spreads,
        gone_segment_or_index_marks_the_task_deleted,
    );
}

mod etcd {
    datacoord_meta::meta_store_cases!(milvus_metastore::testing::etcd_test_kv;
        without_free_node_tasks_wait_and_others_progress,
        most_free_slots_wins_and_one_round_spreads,
        gone_segment_or_index_marks_the_task_deleted,
    );
}
