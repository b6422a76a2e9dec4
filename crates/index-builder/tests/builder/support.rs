//! The environment of every case: segment meta and index meta on one store, fake IndexNodes,
//! a fake allocator and a builder over them.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use datacoord_index::testing::{create_request, pairs};
use datacoord_index::{BuildId, IndexCatalog, IndexMeta, SegmentIndex};
use datacoord_index_builder::testing::FakeIndexNodes;
use datacoord_index_builder::{BuilderConfig, IndexBuilder};
use datacoord_meta::testing::{segment, sent_logs};
use datacoord_meta::{Catalog, LogKind, Meta};
use milvus_config::DataCoordConfig;
use milvus_metastore::MetaKv;
use milvus_proto::common::SegmentState;
use milvus_proto::data::SegmentInfo;
use milvus_rootcoord_client::FakeAllocator;
use milvus_types::{CollectionId, IndexId, SegmentId};

pub const COLL: CollectionId = 10;
pub const PART: i64 = 2;
pub const VECTOR_FIELD: i64 = 101;
pub const ROOT: &str = "files";
/// Fields every test segment has insert logs for, in meta order.
pub const FIELDS: [i64; 4] = [0, 1, 100, VECTOR_FIELD];

pub fn config() -> BuilderConfig {
    BuilderConfig {
        cluster_id: "by-dev".to_string(),
        chunk_root_path: ROOT.to_string(),
        storage_config: milvus_proto::index::StorageConfig {
            address: "localhost:9000".to_string(),
            bucket_name: "a-bucket".to_string(),
            root_path: ROOT.to_string(),
            storage_type: "minio".to_string(),
            request_timeout_ms: 10_000,
            ..Default::default()
        },
        ..BuilderConfig::from_config(&DataCoordConfig::default())
    }
}

pub struct Env {
    pub kv: Arc<dyn MetaKv>,
    pub meta: Arc<Meta>,
    pub index_meta: IndexMeta,
    pub nodes: Arc<FakeIndexNodes>,
    pub alloc: Arc<FakeAllocator>,
    pub engine_version: Arc<AtomicI32>,
    pub builder: Arc<IndexBuilder>,
}

impl Env {
    pub async fn open(kv: Arc<dyn MetaKv>) -> Env {
        let nodes = Arc::new(FakeIndexNodes::new());
        let alloc = Arc::new(FakeAllocator::new(1000));
        Self::open_with(kv, nodes, alloc).await
    }

    async fn open_with(
        kv: Arc<dyn MetaKv>,
        nodes: Arc<FakeIndexNodes>,
        alloc: Arc<FakeAllocator>,
    ) -> Env {
        let meta = Arc::new(
            Meta::load(Catalog::new(kv.clone()))
                .await
                .expect("load segment meta"),
        );
        let index_meta = IndexMeta::load(IndexCatalog::new(kv.clone()))
            .await
            .expect("load index meta");
        let engine_version = Arc::new(AtomicI32::new(1));
        let read_version = engine_version.clone();
        let builder = Arc::new(IndexBuilder::new(
            config(),
            index_meta.clone(),
            meta.clone(),
            nodes.clone(),
            alloc.clone(),
            Arc::new(move || read_version.load(Ordering::Relaxed)),
        ));
        Env {
            kv,
            meta,
            index_meta,
            nodes,
            alloc,
            engine_version,
            builder,
        }
    }

    /// A restarted coordinator: both metas and the builder loaded afresh from the same store;
    /// the IndexNodes and RootCoord are the same.
    pub async fn restart(&self) -> Env {
        Self::open_with(self.kv.clone(), self.nodes.clone(), self.alloc.clone()).await
    }

    /// An IVF_FLAT (or `index_type`) index on `field` of `coll`.
    pub async fn create_index(&self, coll: CollectionId, field: i64, index_type: &str) -> IndexId {
        let mut req = create_request(coll, field, &format!("idx{field}"), "16", 5);
        req.index_params = pairs(&[
            ("index_type", index_type),
            ("metric_type", "L2"),
            ("nlist", "16"),
        ]);
        if index_type == "HNSW" {
            // HNSW's build parameters (CreateIndex checks them).
            req.index_params = pairs(&[
                ("index_type", index_type),
                ("metric_type", "L2"),
                ("M", "8"),
                ("efConstruction", "64"),
            ]);
        }
        self.index_meta
            .create_index(
                req,
                &*self.alloc,
                &datacoord_index::testing::env_with_fields([VECTOR_FIELD], [100]),
            )
            .await
            .expect("create index")
    }

    /// Stores a Flushed segment of `coll` with `logs` insert logs of `rows_per_log` rows on
    /// every field of [`FIELDS`] (log IDs from `id * 100`).
    pub async fn add_segment(
        &self,
        coll: CollectionId,
        id: SegmentId,
        rows_per_log: i64,
        logs: i64,
    ) -> SegmentInfo {
        let mut seg = segment(id, coll, PART, &format!("ch-{coll}"), SegmentState::Flushed);
        let log_ids: Vec<i64> = (id * 100..id * 100 + logs).collect();
        seg.binlogs = FIELDS
            .iter()
            .map(|&field| {
                sent_logs(
                    LogKind::Insert,
                    ROOT,
                    (coll, PART, id),
                    field,
                    &log_ids,
                    rows_per_log,
                )
            })
            .collect();
        seg.num_of_rows = rows_per_log * logs;
        self.meta
            .add_segment(seg.clone())
            .await
            .expect("add segment");
        seg
    }

    /// The record of a build.
    pub fn record(&self, build_id: BuildId) -> Arc<SegmentIndex> {
        self.index_meta
            .segment_index(build_id)
            .unwrap_or_else(|| panic!("no record for build {build_id}"))
    }

    /// The common start: an IVF_FLAT index on the vector field of `COLL` and Flushed segment 1
    /// (1500 rows, 2 logs), with its one record created; returns its build ID.
    pub async fn ivf_flat_task(&self) -> BuildId {
        self.create_index(COLL, VECTOR_FIELD, "IVF_FLAT").await;
        self.add_segment(COLL, 1, 1500, 2).await;
        self.one_task(1).await
    }

    /// Creates the missing records of one segment; returns the single new build ID.
    pub async fn one_task(&self, segment_id: SegmentId) -> BuildId {
        let created = self
            .builder
            .create_tasks_for_segment(segment_id)
            .await
            .expect("create tasks");
        assert_eq!(created.len(), 1, "segment {segment_id}: {created:?}");
        created[0]
    }
}

/// The insert-log paths of `field` of a segment added by [`Env::add_segment`].
pub fn expected_paths(coll: CollectionId, id: SegmentId, field: i64, logs: i64) -> Vec<String> {
    (id * 100..id * 100 + logs)
        .map(|log_id| format!("{ROOT}/insert_log/{coll}/{PART}/{id}/{field}/{log_id}"))
        .collect()
}
