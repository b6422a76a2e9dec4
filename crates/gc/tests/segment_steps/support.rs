//! The environment of the segment-step tests: real segment and index meta on a `MetaKv`,
//! a chunk manager (temp dir unless told otherwise) behind a `FaultyStorage`, fake schemas
//! and pending compactions, and builders for segments whose files exist.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use datacoord_gc::testing::{FaultyStorage, PendingSet, StaticSchemas, StorageFixture};
use datacoord_gc::{
    ClearEtcdStep, GarbageCollector, GcConfig, GcStep, IndexGc, RunOutcome, RunReport, ScanStep,
    Stage, StepReport,
};
use datacoord_index::testing::create_request;
use datacoord_index::{FinishedTask, IndexCatalog, IndexMeta};
use datacoord_meta::testing::flushed_segment;
use datacoord_meta::{Catalog, Meta, with_full_paths};
use milvus_config::DataCoordConfig;
use milvus_metastore::MetaKv;
use milvus_proto::common::{IndexState, SegmentState};
use milvus_proto::data::SegmentInfo;
use milvus_proto::schema::DataType;
use milvus_rootcoord_client::FakeAllocator;
use milvus_types::{PartitionId, SegmentId};

pub const COLL: i64 = 10;
pub const PART: i64 = 20;
pub const CHANNEL: &str = "by-dev-rootcoord-dml_0_10v0";
/// The collection's first vector field (see [`Env::new`]'s schema).
pub const VECTOR_FIELD: i64 = 101;
/// A scalar field of the collection.
pub const SCALAR_FIELD: i64 = 102;
pub const HOUR: Duration = Duration::from_secs(3600);
pub const MINUTE: Duration = Duration::from_secs(60);

/// Tolerances of the tests: the 2.3.5 defaults.
pub fn config() -> GcConfig {
    GcConfig {
        remove_concurrent: 4,
        ..GcConfig::from_config(&DataCoordConfig::default())
    }
}

pub struct Env {
    pub kv: Arc<dyn MetaKv>,
    pub meta: Arc<Meta>,
    pub index_meta: IndexMeta,
    pub schemas: Arc<StaticSchemas>,
    pub pending: Arc<PendingSet>,
    pub storage: Arc<FaultyStorage>,
    pub fx: StorageFixture,
    pub root: String,
    pub config: GcConfig,
    next_id: std::sync::atomic::AtomicI64,
}

impl Env {
    /// Meta loaded from `kv`; collection [`COLL`]: primary key, [`SCALAR_FIELD`], then
    /// [`VECTOR_FIELD`] (FloatVector) and another vector field, so the first vector field is
    /// neither the first field nor the only vector field.
    pub async fn new(kv: Arc<dyn MetaKv>, fx: StorageFixture, config: GcConfig) -> Env {
        let meta = Arc::new(
            Meta::load(Catalog::new(kv.clone()))
                .await
                .expect("load meta"),
        );
        let index_meta = IndexMeta::load(IndexCatalog::new(kv.clone()))
            .await
            .expect("load index meta");
        let schemas = Arc::new(StaticSchemas::new());
        schemas.set(
            COLL,
            &[
                (SCALAR_FIELD, DataType::Int64),
                (VECTOR_FIELD, DataType::FloatVector),
                (VECTOR_FIELD + 2, DataType::BinaryVector),
            ],
        );
        let storage = Arc::new(FaultyStorage::new(Arc::new(fx.chunk_manager.clone())));
        let root = fx.root().to_string();
        Env {
            kv,
            meta,
            index_meta,
            schemas,
            pending: Arc::new(PendingSet::new()),
            storage,
            fx,
            root,
            config,
            next_id: std::sync::atomic::AtomicI64::new(1_000_000),
        }
    }

    pub async fn local(kv: Arc<dyn MetaKv>) -> Env {
        Env::new(
            kv,
            StorageFixture::local().await.expect("temp dir"),
            config(),
        )
        .await
    }

    pub fn clear_etcd(&self) -> ClearEtcdStep {
        ClearEtcdStep::new(
            self.meta.clone(),
            self.index_meta.clone(),
            self.schemas.clone(),
            self.storage.clone(),
            &self.config,
        )
    }

    pub fn scan(&self) -> ScanStep {
        ScanStep::new(
            self.meta.clone(),
            self.pending.clone(),
            self.storage.clone(),
            &self.config,
        )
    }

    /// The full 2.3.5 run: clearEtcd, the index steps, scan.
    pub fn collector(&self) -> GarbageCollector {
        let index_gc = Arc::new(IndexGc::new(
            self.index_meta.clone(),
            self.meta.clone(),
            self.storage.clone(),
            &self.config,
        ));
        let mut steps: Vec<Arc<dyn GcStep>> = index_gc.steps();
        steps.push(Arc::new(self.scan()));
        steps.push(Arc::new(self.clear_etcd()));
        GarbageCollector::new(self.config, steps)
    }

    pub async fn run_clear_etcd(&self) -> StepReport {
        self.clear_etcd().run().await
    }

    pub async fn run_scan(&self) -> StepReport {
        self.scan().run().await
    }

    pub fn fresh_id(&self) -> i64 {
        self.next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// A Flushed segment of [`COLL`]/`part` on [`CHANNEL`] with 2 insert logs on 3 fields,
    /// 2 stats logs and a delete log (as datanodes report them), not stored yet.
    pub fn segment_in(&self, part: PartitionId, id: SegmentId) -> SegmentInfo {
        flushed_segment(
            (COLL, part, id),
            CHANNEL,
            &self.root,
            self.fresh_id() * 10,
            2,
        )
    }

    pub fn segment(&self, id: SegmentId) -> SegmentInfo {
        self.segment_in(PART, id)
    }

    /// Stores `seg` in meta and writes every file it names; returns those paths.
    pub async fn store(&self, seg: SegmentInfo) -> Vec<String> {
        let id = seg.id;
        self.meta.add_segment(seg).await.expect("add segment");
        let paths = self.paths_of(id);
        self.fx.write_all(&paths).await;
        paths
    }

    /// Every log path meta holds for segment `id`.
    pub fn paths_of(&self, id: SegmentId) -> Vec<String> {
        let seg = self.meta.segment(id).expect("segment in meta");
        log_paths(&with_full_paths(&seg, &self.root))
    }

    pub async fn exists(&self, path: &str) -> bool {
        self.fx.chunk_manager.exists(path).await.expect("exists")
    }

    pub async fn all_exist(&self, paths: &[String]) -> bool {
        for path in paths {
            if !self.exists(path).await {
                return false;
            }
        }
        true
    }

    pub async fn none_exist(&self, paths: &[String]) -> bool {
        for path in paths {
            if self.exists(path).await {
                return false;
            }
        }
        true
    }

    /// Whether the segment's record is in the store (not only in memory).
    pub async fn stored(&self, seg: &SegmentInfo) -> bool {
        let key = datacoord_meta::segment_key(seg.collection_id, seg.partition_id, seg.id);
        self.kv.load(&key).await.expect("load").is_some()
    }

    /// A live index on `field` of [`COLL`]; returns its ID.
    pub async fn create_index(&self, field: i64) -> i64 {
        let mut request = create_request(COLL, field, &format!("index_{field}"), "16", 5);
        if field == SCALAR_FIELD {
            request.type_params.clear();
            request.index_params = datacoord_index::testing::pairs(&[("index_type", "STL_SORT")]);
        }
        let env = datacoord_index::testing::env_with_fields(
            [VECTOR_FIELD, VECTOR_FIELD + 2],
            [SCALAR_FIELD],
        );
        self.index_meta
            .create_index(request, &FakeAllocator::new(field * 1000), &env)
            .await
            .expect("create index")
    }

    /// A segment index of `index_id` on segment `seg_id`, left in `state`.
    pub async fn build(&self, seg_id: SegmentId, index_id: i64, state: IndexState) {
        let seg = self.meta.segment(seg_id).expect("segment in meta");
        let build_id = self.fresh_id();
        self.index_meta
            .add_segment_index(&seg, index_id, build_id)
            .await
            .expect("add segment index");
        self.index_meta
            .update_version(build_id, 1)
            .await
            .expect("assign");
        match state {
            IndexState::Unissued => {}
            IndexState::InProgress => self.index_meta.build_index(build_id).await.expect("build"),
            _ => self
                .index_meta
                .finish_task(
                    build_id,
                    FinishedTask {
                        state,
                        index_file_keys: vec!["HNSW".to_string()],
                        fail_reason: String::new(),
                        serialized_size: 10,
                        current_index_version: 1,
                    },
                )
                .await
                .expect("finish"),
        }
    }
}

/// Every log path of a segment whose logs carry full paths.
pub fn log_paths(seg: &SegmentInfo) -> Vec<String> {
    [&seg.binlogs, &seg.statslogs, &seg.deltalogs]
        .into_iter()
        .flatten()
        .flat_map(|field| &field.binlogs)
        .map(|binlog| binlog.log_path.clone())
        .collect()
}

/// Unix nanoseconds `ago` before now.
pub fn unix_ns_ago(ago: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    (now - ago).as_nanos() as u64
}

/// `seg` as Dropped at `dropped_at` (unix ns; 0 = never stamped).
pub fn dropped(mut seg: SegmentInfo, dropped_at: u64) -> SegmentInfo {
    seg.set_state(SegmentState::Dropped);
    seg.dropped_at = dropped_at;
    seg
}

pub async fn run(gc: &GarbageCollector) -> RunReport {
    match gc.run_once().await {
        RunOutcome::Ran(report) => report,
        other => panic!("expected a run, got {other:?}"),
    }
}

pub fn step(report: &RunReport, stage: Stage) -> StepReport {
    report.step(stage).expect("step in run")
}
