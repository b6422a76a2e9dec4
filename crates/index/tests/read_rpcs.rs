//! The read RPCs (FACTS 1.11) with numbers: which segments count, pending and indexed rows
//! (real-time and lineage), the state rules, and GetSegmentIndexState / GetIndexInfos.

use std::sync::Arc;

use datacoord_index::testing::{FakeSegments, create_request, env_with_fields, segment};
use datacoord_index::{FinishedTask, IndexCatalog, IndexError, IndexMeta};
use milvus_metastore::{MemoryKv, MetaKv};
use milvus_proto::common::{IndexState, SegmentState};
use milvus_proto::index::{
    DescribeIndexRequest, GetIndexBuildProgressRequest, GetIndexInfoRequest, GetIndexStateRequest,
    GetIndexStatisticsRequest, GetSegmentIndexStateRequest,
};
use milvus_rootcoord_client::FakeAllocator;

const COLL: i64 = 10;
const CREATED: u64 = 1000;

struct Fixture {
    meta: IndexMeta,
    segs: FakeSegments,
    index_id: i64,
    alloc: FakeAllocator,
}

async fn fixture() -> Fixture {
    let kv: Arc<dyn MetaKv> = Arc::new(MemoryKv::new());
    let meta = IndexMeta::load(IndexCatalog::new(kv)).await.expect("load");
    let alloc = FakeAllocator::new(500);
    let index_id = meta
        .create_index(
            create_request(COLL, 101, "vec", "16", CREATED),
            &alloc,
            &env_with_fields([101, 102], []),
        )
        .await
        .expect("create");
    Fixture {
        meta,
        segs: FakeSegments::new(),
        index_id,
        alloc,
    }
}

impl Fixture {
    /// Adds a segment and, when `state` is given, its build in that state.
    async fn seg(
        &self,
        id: i64,
        state: SegmentState,
        rows: i64,
        expire: u64,
        build: Option<IndexState>,
    ) {
        let seg = segment(id, COLL, state, rows, expire);
        self.segs.put(seg.clone());
        if let Some(build_state) = build {
            let build_id = id + 10_000;
            self.meta
                .add_segment_index(&seg, self.index_id, build_id)
                .await
                .expect("add");
            if build_state != IndexState::Unissued {
                let task = FinishedTask {
                    state: build_state,
                    fail_reason: format!("boom{id}"),
                    ..FinishedTask::default()
                };
                self.meta.finish_task(build_id, task).await.expect("state");
            }
        }
    }

    fn progress(&self) -> (i64, i64, i64) {
        let req = GetIndexBuildProgressRequest {
            collection_id: COLL,
            index_name: String::new(),
        };
        let resp = self
            .meta
            .get_index_build_progress(&self.segs, &req)
            .expect("progress");
        (resp.indexed_rows, resp.total_rows, resp.pending_index_rows)
    }

    fn state(&self) -> (IndexState, String) {
        let req = GetIndexStateRequest {
            collection_id: COLL,
            index_name: "vec".into(),
        };
        let resp = self.meta.get_index_state(&self.segs, &req).expect("state");
        (resp.state(), resp.fail_reason)
    }
}

#[tokio::test]
async fn only_flushed_and_flushing_segments_count() {
    let f = fixture().await;
    f.seg(1, SegmentState::Flushed, 100, 1, Some(IndexState::Finished))
        .await;
    f.seg(2, SegmentState::Flushing, 30, 1, None).await;
    f.seg(3, SegmentState::Growing, 7, 1, None).await;
    f.seg(4, SegmentState::Sealed, 9, 1, None).await;
    f.seg(5, SegmentState::Dropped, 11, 1, Some(IndexState::Finished))
        .await;
    f.seg(6, SegmentState::Importing, 13, 1, None).await;
    assert_eq!(f.progress(), (100, 130, 30));
    assert_eq!(f.state().0, IndexState::InProgress);
}

#[tokio::test]
async fn no_segments_is_finished_and_unknown_names_fail() {
    let f = fixture().await;
    assert_eq!(f.progress(), (0, 0, 0));
    assert_eq!(f.state(), (IndexState::Finished, String::new()));
    let req = GetIndexStateRequest {
        collection_id: COLL,
        index_name: "other".into(),
    };
    assert!(
        matches!(f.meta.get_index_state(&f.segs, &req), Err(IndexError::NotFound(name)) if name == "other")
    );
    let st = milvus_types::MilvusError::from(IndexError::NotFound("other".into())).to_status();
    assert_eq!(
        (st.code, st.error_code, st.reason.as_str()),
        (700, 25, "index not found[indexName=other]")
    );
}

#[tokio::test]
async fn state_rules_and_fail_reasons() {
    let f = fixture().await;
    f.seg(1, SegmentState::Flushed, 10, 1, Some(IndexState::Finished))
        .await;
    f.seg(2, SegmentState::Flushed, 20, 1, Some(IndexState::None))
        .await;
    assert_eq!(f.state().0, IndexState::None);
    f.seg(
        3,
        SegmentState::Flushed,
        40,
        1,
        Some(IndexState::InProgress),
    )
    .await;
    assert_eq!(f.state().0, IndexState::InProgress);
    f.seg(4, SegmentState::Flushed, 80, 1, Some(IndexState::Failed))
        .await;
    f.seg(5, SegmentState::Flushed, 160, 1, Some(IndexState::Failed))
        .await;
    assert_eq!(
        f.state(),
        (IndexState::Failed, "4: boom4;5: boom5;".to_string())
    );
    // Pending: every segment without a Finished build.
    assert_eq!(f.progress(), (10, 310, 300));
}

#[tokio::test]
async fn timestamps_decide_what_is_counted() {
    let f = fixture().await;
    f.seg(
        1,
        SegmentState::Flushed,
        100,
        CREATED,
        Some(IndexState::Finished),
    )
    .await;
    // Without a build, after the index's creation: not Unissued, but pending.
    f.seg(2, SegmentState::Flushed, 50, CREATED + 1, None).await;
    assert_eq!(f.state().0, IndexState::Finished);
    assert_eq!(f.progress(), (100, 150, 50));
    // A failed build after the creation is ignored unless real-time.
    f.seg(
        3,
        SegmentState::Flushed,
        25,
        CREATED + 5,
        Some(IndexState::Failed),
    )
    .await;
    assert_eq!(f.state().0, IndexState::Finished);
    let stats = f
        .meta
        .get_index_statistics(
            &f.segs,
            &GetIndexStatisticsRequest {
                collection_id: COLL,
                index_name: String::new(),
            },
        )
        .expect("stats");
    assert_eq!(stats[0].state(), IndexState::Failed);
    assert_eq!(stats[0].index_state_fail_reason, "3: boom3;");
    assert_eq!(
        (
            stats[0].indexed_rows,
            stats[0].total_rows,
            stats[0].pending_index_rows
        ),
        (100, 175, 75)
    );
    // DescribeIndex at a later request timestamp counts them.
    let later = DescribeIndexRequest {
        collection_id: COLL,
        index_name: String::new(),
        timestamp: CREATED + 10,
    };
    let described = f.meta.describe_index(&f.segs, &later).expect("describe");
    assert_eq!(described.len(), 1);
    assert_eq!(described[0].state(), IndexState::Failed);
    let info = &described[0];
    assert_eq!(
        (info.index_name.as_str(), info.field_id, info.index_id),
        ("vec", 101, f.index_id)
    );
    assert_eq!(info.user_index_params.len(), 3);
    // A segment without a build, before the creation: Unissued → InProgress.
    f.seg(4, SegmentState::Flushed, 5, CREATED - 1, None).await;
    let at_creation = DescribeIndexRequest {
        timestamp: 0,
        ..later
    };
    assert_eq!(
        f.meta
            .describe_index(&f.segs, &at_creation)
            .expect("describe")[0]
            .state(),
        IndexState::InProgress
    );
}

#[tokio::test]
async fn lineage_counts_indexed_ancestors() {
    let f = fixture().await;
    // 1 and 2 (indexed, now Dropped) were compacted into 3; 3 (unindexed) and 4 into 5.
    f.seg(1, SegmentState::Dropped, 60, 1, Some(IndexState::Finished))
        .await;
    f.seg(2, SegmentState::Dropped, 70, 1, None).await;
    let mut third = segment(3, COLL, SegmentState::Dropped, 130, 1);
    third.compaction_from = vec![1, 2];
    f.segs.put(third);
    f.seg(4, SegmentState::Dropped, 20, 1, Some(IndexState::Finished))
        .await;
    let mut fifth = segment(5, COLL, SegmentState::Flushed, 150, 1);
    fifth.compaction_from = vec![3, 4, 99]; // 99 already collected
    f.segs.put(fifth);
    f.seg(6, SegmentState::Flushed, 7, 1, Some(IndexState::Finished))
        .await;
    // indexed = 6 (7) + ancestors 1 (60) and 4 (20); total = 157.
    assert_eq!(f.progress(), (87, 157, 150));
    let real_time = f
        .meta
        .get_index_statistics(
            &f.segs,
            &GetIndexStatisticsRequest {
                collection_id: COLL,
                index_name: "vec".into(),
            },
        )
        .expect("stats");
    assert_eq!(real_time[0].indexed_rows, 7);
}

#[tokio::test]
async fn duplicates_need_one_name() {
    let f = fixture().await;
    f.meta
        .create_index(
            create_request(COLL, 102, "tag", "16", CREATED),
            &f.alloc,
            &env_with_fields([101, 102], []),
        )
        .await
        .expect("second");
    let req = GetIndexBuildProgressRequest {
        collection_id: COLL,
        index_name: String::new(),
    };
    let err = f
        .meta
        .get_index_build_progress(&f.segs, &req)
        .expect_err("two");
    assert!(matches!(err, IndexError::Duplicate(_)));
    let req = DescribeIndexRequest {
        collection_id: COLL,
        ..DescribeIndexRequest::default()
    };
    assert_eq!(f.meta.describe_index(&f.segs, &req).expect("all").len(), 2);
}

#[tokio::test]
async fn segment_index_state_per_segment() {
    let f = fixture().await;
    f.seg(1, SegmentState::Flushed, 10, 1, Some(IndexState::Finished))
        .await;
    f.seg(2, SegmentState::Flushed, 10, 1, Some(IndexState::Failed))
        .await;
    f.seg(3, SegmentState::Growing, 10, 1, None).await;
    let req = GetSegmentIndexStateRequest {
        collection_id: COLL,
        index_name: "vec".into(),
        segment_i_ds: vec![1, 2, 3, 4],
    };
    let states = f
        .meta
        .get_segment_index_state(&f.segs, &req)
        .expect("states")
        .states;
    let got: Vec<_> = states
        .iter()
        .map(|s| (s.segment_id, s.state(), s.fail_reason.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, IndexState::Finished, ""),
            (2, IndexState::Failed, "boom2"),
            (3, IndexState::Unissued, ""),
            (4, IndexState::None, "segment is not exist with ID: 4"),
        ]
    );
    let req = GetSegmentIndexStateRequest {
        index_name: "nope".into(),
        ..req
    };
    assert!(matches!(
        f.meta.get_segment_index_state(&f.segs, &req),
        Err(IndexError::NotFound(_))
    ));
}

#[tokio::test]
async fn index_infos_list_finished_builds_with_paths() {
    let f = fixture().await;
    f.seg(
        1,
        SegmentState::Flushed,
        3000,
        1,
        Some(IndexState::Unissued),
    )
    .await;
    f.meta.update_version(10_001, 2).await.expect("assign");
    f.meta.build_index(10_001).await.expect("in progress");
    let done = FinishedTask {
        state: IndexState::Finished,
        index_file_keys: vec!["IVF_FLAT".into()],
        serialized_size: 94506,
        current_index_version: 1,
        ..FinishedTask::default()
    };
    f.meta.finish_task(10_001, done).await.expect("finish");
    f.seg(
        2,
        SegmentState::Flushed,
        10,
        1,
        Some(IndexState::InProgress),
    )
    .await;
    f.seg(3, SegmentState::Flushed, 10, 1, None).await;
    let req = GetIndexInfoRequest {
        collection_id: COLL,
        segment_i_ds: vec![1, 2, 3, 4],
        index_name: "ignored".into(),
    };
    let resp = f.meta.get_index_infos(&f.segs, &req, "files");
    assert_eq!(resp.segment_info.len(), 4);
    let first = &resp.segment_info[&1];
    assert!(first.enable_index);
    assert_eq!(first.index_infos.len(), 1);
    let info = &first.index_infos[0];
    assert_eq!(
        info.index_file_paths,
        vec!["files/index_files/10001/1/2/1/IVF_FLAT".to_string()]
    );
    assert_eq!(
        (
            info.build_id,
            info.index_version,
            info.num_rows,
            info.serialized_size
        ),
        (10_001, 1, 3000, 94506)
    );
    assert_eq!(
        info.index_params.last().map(|p| p.key.as_str()),
        Some("dim")
    );
    assert_eq!(info.index_params.len(), 4);
    assert!(resp.segment_info[&2].enable_index && resp.segment_info[&2].index_infos.is_empty());
    assert!(!resp.segment_info[&3].enable_index);
    assert!(!resp.segment_info[&4].enable_index);
    assert_eq!(resp.segment_info[&4].collection_id, COLL);
}
