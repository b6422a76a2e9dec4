//! The environment of every case: segment and index meta on a memory store behind a
//! `FaultyKv`, a local chunk manager in a temp dir, fake DataNodes, RootCoord fakes, and an
//! engine over them that a case can "crash" and load again.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datacoord_compaction::testing::{FakeCompactionNodes, result_for};
use datacoord_compaction::{
    CompactionConfig, CompactionDeps, CompactionEngine, CompactionTaskRecord, TaskState,
    compacted_segment_size_opts,
};
use datacoord_index::testing::{create_request, pairs};
use datacoord_index::{FinishedTask, IndexCatalog, IndexMeta};
use datacoord_meta::testing::{FaultyKv, segment, sent_logs};
use datacoord_meta::{BinlogUpdate, Catalog, LogKind, Meta, with_full_paths};
use milvus_config::DataCoordConfig;
use milvus_metastore::{MemoryKv, MetaKv};
use milvus_proto::common::{IndexState, KeyValuePair, SegmentState};
use milvus_proto::data::{CompactionPlan, CompactionResult, CompactionSegmentBinlogs, SegmentInfo};
use milvus_proto::milvus::DescribeCollectionResponse;
use milvus_proto::schema::{CollectionSchema, DataType, FieldSchema};
use milvus_rootcoord_client::{FakeAllocator, FakeBroker};
use milvus_storage::{ChunkManager, StorageConfig};
use milvus_types::{SegmentId, Status};
use prometheus::Histogram;
use tokio::sync::mpsc;

pub const COLL: i64 = 10;
pub const PART: i64 = 2;
pub const OTHER_PART: i64 = 3;
pub const CHANNEL: &str = "by-dev-rootcoord-dml_0_10v0";
pub const NODE: i64 = 7;
pub const PK: i64 = 100;
pub const VECTOR: i64 = 101;
/// Insert-log fields of every test segment, in stored (key) order.
pub const FIELDS: [i64; 4] = [0, 1, PK, VECTOR];

/// 2.3.5's defaults.
pub fn config() -> CompactionConfig {
    CompactionConfig::from_config(&DataCoordConfig::default())
}

pub struct Env {
    pub faulty: Arc<FaultyKv>,
    pub kv: Arc<dyn MetaKv>,
    pub meta: Arc<Meta>,
    pub index_meta: IndexMeta,
    pub nodes: Arc<FakeCompactionNodes>,
    pub alloc: Arc<FakeAllocator>,
    pub broker: Arc<FakeBroker>,
    pub chunks: ChunkManager,
    pub histogram: Histogram,
    pub engine: CompactionEngine,
    pub config: CompactionConfig,
    flushed: Mutex<mpsc::Receiver<SegmentId>>,
    _dir: Arc<tempfile::TempDir>,
}

impl Env {
    /// A fresh environment: node [`NODE`] registered and watching [`CHANNEL`], collection
    /// [`COLL`] known to RootCoord with `properties`.
    pub async fn open(config: CompactionConfig) -> Env {
        Self::open_with_txn_limit(config, milvus_metastore::DEFAULT_MAX_TXN_OPS).await
    }

    /// As [`Env::open`] on a store that takes at most `max_txn_ops` operations per transaction.
    pub async fn open_with_txn_limit(config: CompactionConfig, max_txn_ops: usize) -> Env {
        let faulty = Arc::new(FaultyKv::new(Arc::new(MemoryKv::with_max_txn_ops(
            max_txn_ops,
        ))));
        let nodes = Arc::new(FakeCompactionNodes::new());
        nodes.add_node(NODE);
        nodes.watch_channel(CHANNEL, NODE);
        let broker = Arc::new(FakeBroker::new());
        set_collection(&broker, Vec::new());
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let chunks = ChunkManager::new(&StorageConfig::local(
            dir.path().to_str().expect("utf-8 temp dir"),
        ))
        .await
        .expect("local chunk manager");
        Self::load(
            config,
            faulty,
            nodes,
            Arc::new(FakeAllocator::new(1000)),
            broker,
            chunks,
            dir,
        )
        .await
    }

    async fn load(
        config: CompactionConfig,
        faulty: Arc<FaultyKv>,
        nodes: Arc<FakeCompactionNodes>,
        alloc: Arc<FakeAllocator>,
        broker: Arc<FakeBroker>,
        chunks: ChunkManager,
        dir: Arc<tempfile::TempDir>,
    ) -> Env {
        let kv: Arc<dyn MetaKv> = faulty.clone();
        let meta = Arc::new(Meta::load(Catalog::new(kv.clone())).await.expect("meta"));
        let index_meta = IndexMeta::load(IndexCatalog::new(kv.clone()))
            .await
            .expect("index meta");
        let histogram = Histogram::with_opts(compacted_segment_size_opts()).expect("histogram");
        let (flushed_tx, flushed_rx) = mpsc::channel(1000);
        let engine = CompactionEngine::load(
            config.clone(),
            CompactionDeps {
                meta: meta.clone(),
                index_meta: index_meta.clone(),
                nodes: nodes.clone(),
                allocator: alloc.clone(),
                broker: broker.clone(),
                chunk_manager: chunks.clone(),
                flushed: flushed_tx,
                compacted_segment_size: histogram.clone(),
                engine_version: Arc::new(|| 1),
            },
        )
        .await
        .expect("engine");
        Env {
            faulty,
            kv,
            meta,
            index_meta,
            nodes,
            alloc,
            broker,
            chunks,
            histogram,
            engine,
            config,
            flushed: Mutex::new(flushed_rx),
            _dir: dir,
        }
    }

    /// A crash and a new coordinator: this engine is dropped (its sends stop), the store
    /// heals, and meta, index meta and a new engine load from it; DataNodes, RootCoord and
    /// object storage are the same.
    pub async fn restart(self) -> Env {
        let Env {
            faulty,
            nodes,
            alloc,
            broker,
            chunks,
            engine,
            config,
            _dir,
            ..
        } = self;
        drop(engine);
        faulty.heal();
        Self::load(config, faulty, nodes, alloc, broker, chunks, _dir).await
    }

    pub fn root(&self) -> String {
        self.chunks.root_path().to_string()
    }

    /// Stores a Flushed segment of `part` on [`CHANNEL`] with `logs` insert logs of
    /// `rows_per_log` rows on every field of [`FIELDS`], one stats log per insert log on
    /// [`PK`] and no delete log (log IDs from `id * 100`).
    pub async fn add_segment_in(&self, part: i64, id: SegmentId, rows_per_log: i64, logs: i64) {
        let root = self.root();
        let mut seg = segment(id, COLL, part, CHANNEL, SegmentState::Flushed);
        let log_ids: Vec<i64> = (id * 100..id * 100 + logs).collect();
        seg.binlogs = FIELDS
            .iter()
            .map(|&field| {
                sent_logs(
                    LogKind::Insert,
                    &root,
                    (COLL, part, id),
                    field,
                    &log_ids,
                    rows_per_log,
                )
            })
            .collect();
        seg.statslogs = vec![sent_logs(
            LogKind::Stats,
            &root,
            (COLL, part, id),
            PK,
            &log_ids,
            rows_per_log,
        )];
        seg.num_of_rows = rows_per_log * logs;
        self.meta.add_segment(seg).await.expect("add segment");
    }

    /// [`Env::add_segment_in`] partition [`PART`].
    pub async fn add_segment(&self, id: SegmentId, rows_per_log: i64, logs: i64) {
        self.add_segment_in(PART, id, rows_per_log, logs).await;
    }

    /// Adds a delete log of `entries` rows to a segment, and its file (with `content`).
    pub async fn add_deltalog(&self, id: SegmentId, log_id: i64, entries: i64, content: &str) {
        let seg = self.meta.segment(id).expect("segment");
        let logs = sent_logs(
            LogKind::Delta,
            &self.root(),
            (COLL, seg.partition_id, id),
            0,
            &[log_id],
            entries,
        );
        self.chunks
            .write(&logs.binlogs[0].log_path, Bytes::from(content.to_string()))
            .await
            .expect("write delete log");
        self.meta
            .save_binlog_paths(BinlogUpdate {
                segment_id: id,
                deltalogs: vec![logs],
                ..BinlogUpdate::default()
            })
            .await
            .expect("save delete log");
    }

    /// A plan of `segments` as the trigger builds it (no start time yet).
    pub fn plan(&self, plan_id: i64, segments: &[SegmentId]) -> CompactionPlan {
        let root = self.root();
        let segs: Vec<Arc<SegmentInfo>> = segments
            .iter()
            .map(|id| self.meta.segment(*id).expect("segment"))
            .collect();
        CompactionPlan {
            plan_id,
            segment_binlogs: segs
                .iter()
                .map(|seg| {
                    let full = with_full_paths(seg, &root);
                    CompactionSegmentBinlogs {
                        segment_id: seg.id,
                        field_binlogs: full.binlogs,
                        field2_statslog_paths: full.statslogs,
                        deltalogs: full.deltalogs,
                        insert_channel: String::new(),
                    }
                })
                .collect(),
            timeout_in_seconds: self.config.timeout_seconds,
            r#type: milvus_proto::data::CompactionType::MixCompaction as i32,
            channel: CHANNEL.to_string(),
            total_rows: segs.iter().map(|seg| seg.num_of_rows).sum(),
            ..CompactionPlan::default()
        }
    }

    /// Executes a plan of `segments` (signal 1) and waits until it is sent.
    pub async fn execute(&self, plan_id: i64, segments: &[SegmentId]) {
        self.engine
            .execute(1, self.plan(plan_id, segments))
            .await
            .expect("execute");
        self.engine.wait_dispatched().await;
    }

    /// The result the node would report for a plan it received, into segment `result_id`.
    pub fn result(&self, plan_id: i64, result_id: SegmentId) -> CompactionResult {
        result_for(&self.nodes.plan(plan_id), &self.root(), result_id)
    }

    /// Completes a received plan on its node with [`Env::result`].
    pub fn complete(&self, plan_id: i64, result_id: SegmentId) -> CompactionResult {
        let result = self.result(plan_id, result_id);
        assert!(
            self.nodes.complete(plan_id, result.clone()),
            "plan {plan_id} not on a node"
        );
        result
    }

    /// Segment IDs handed to the flush path so far (and not read before).
    pub fn flushed(&self) -> Vec<SegmentId> {
        let mut receiver = self.flushed.lock().expect("receiver");
        let mut ids = Vec::new();
        while let Ok(id) = receiver.try_recv() {
            ids.push(id);
        }
        ids
    }

    pub fn state(&self, plan_id: i64) -> Option<TaskState> {
        self.engine.task_state(plan_id)
    }

    /// The task record as stored.
    pub async fn stored_task(&self, plan_id: i64) -> Option<CompactionTaskRecord> {
        let value = self
            .kv
            .load(&datacoord_compaction::compaction_task_key(plan_id))
            .await
            .expect("load")?;
        Some(prost::Message::decode(value).expect("record"))
    }

    /// Every key and value of segment meta.
    pub async fn segment_meta_dump(&self) -> Vec<(String, Bytes)> {
        self.kv
            .load_all_with_prefix("datacoord-meta/")
            .await
            .expect("dump")
    }

    /// An IVF_FLAT index on [`VECTOR`] (created once) and a Finished build for each segment.
    pub async fn index_segments(&self, segments: &[SegmentId]) {
        let index_id = match self.index_meta.live_field_indexes(COLL, VECTOR, "").first() {
            Some(index) => index.index_id,
            None => self
                .index_meta
                .create_index(
                    create_request(COLL, VECTOR, "vec", "16", 5),
                    &*self.alloc,
                    &datacoord_index::testing::env_with_fields([VECTOR], []),
                )
                .await
                .expect("create index"),
        };
        for id in segments {
            let seg = self.meta.segment(*id).expect("segment");
            let build_id = 50_000 + id;
            self.index_meta
                .add_segment_index(&seg, index_id, build_id)
                .await
                .expect("segment index");
            self.index_meta
                .finish_task(
                    build_id,
                    FinishedTask {
                        state: IndexState::Finished,
                        index_file_keys: vec!["IVF_FLAT".to_string()],
                        fail_reason: String::new(),
                        serialized_size: 1,
                        current_index_version: 1,
                    },
                )
                .await
                .expect("finish");
        }
    }

    /// Replaces the collection's properties at RootCoord.
    pub fn set_properties(&self, properties: &[(&str, &str)]) {
        set_collection(&self.broker, pairs(properties));
    }
}

/// Collection [`COLL`]: primary key [`PK`] and an 8-dimensional float vector [`VECTOR`].
fn set_collection(broker: &FakeBroker, properties: Vec<KeyValuePair>) {
    let field = |id: i64, data_type: DataType, params: Vec<KeyValuePair>| {
        let mut field = FieldSchema {
            field_id: id,
            name: format!("f{id}"),
            is_primary_key: id == PK,
            type_params: params,
            ..FieldSchema::default()
        };
        field.set_data_type(data_type);
        field
    };
    let schema = CollectionSchema {
        name: "coll".to_string(),
        fields: vec![
            field(PK, DataType::Int64, Vec::new()),
            field(VECTOR, DataType::FloatVector, pairs(&[("dim", "8")])),
        ],
        ..CollectionSchema::default()
    };
    broker.add_collection_response(
        "default",
        DescribeCollectionResponse {
            status: Some(Status::default()),
            collection_name: schema.name.clone(),
            schema: Some(schema),
            collection_id: COLL,
            db_name: "default".to_string(),
            properties,
            ..DescribeCollectionResponse::default()
        },
        vec![PART, OTHER_PART],
    );
}

/// Whether the segment is healthy and Flushed, not compacted.
pub fn untouched(meta: &Meta, id: SegmentId) -> bool {
    meta.segment(id)
        .is_some_and(|seg| seg.state() == SegmentState::Flushed && !seg.compacted)
}

/// Whether the segment was compacted away (Dropped, `compacted`).
pub fn compacted_away(meta: &Meta, id: SegmentId) -> bool {
    meta.segment(id)
        .is_some_and(|seg| seg.state() == SegmentState::Dropped && seg.compacted)
}
