//! Test support (feature `testing`): the core in-process without etcd or real nodes.
//!
//! [`TestCore`] builds the [`Services`] as `init.rs` does, on a memory `MetaKv`, local storage
//! in a temporary directory, RootCoord fakes, [`FakeChannels`], [`FakeDataNodes`] and
//! `FakeIndexNodes`; tests then call the services directly.

mod channels;
mod datanodes;

use std::sync::Arc;

use async_trait::async_trait;
use datacoord_compaction::testing::FakeCompactionNodes;
use datacoord_index::{IndexCatalog, IndexMeta};
use datacoord_index_builder::IndexNodes;
use datacoord_index_builder::testing::FakeIndexNodes;
use datacoord_meta::{Catalog, Meta};
use milvus_config::{DataCoordConfig, StorageConfig};
use milvus_metastore::{MemoryKv, MetaKv};
use milvus_proto::common::Status;
use milvus_proto::milvus::{GetMetricsRequest, GetMetricsResponse};
use milvus_rootcoord_client::{FakeAllocator, FakeBroker};
use milvus_storage::ChunkManager;
use milvus_types::{ErrorCode, MilvusError, MilvusResult, NodeId};

pub use channels::FakeChannels;
pub use datanodes::FakeDataNodes;

use crate::background::Background;
use crate::collections::Collections;
use crate::compaction::CompactionService;
use crate::datapath::DataPath;
use crate::indexes::Indexes;
use crate::indexnodes::IndexNodeSet;
use crate::metrics::Metrics;
use crate::queries::Queries;
use crate::services::{CoreParts, Services};

/// Our ServerID in a [`TestCore`].
pub const TEST_NODE_ID: NodeId = 1;

#[async_trait]
impl IndexNodeSet for FakeIndexNodes {
    async fn get_metrics(
        &self,
        node: NodeId,
        _req: GetMetricsRequest,
    ) -> MilvusResult<GetMetricsResponse> {
        if !self.nodes().iter().any(|(id, _)| *id == node) {
            return Err(MilvusError::new(ErrorCode::NODE_NOT_FOUND).with_field("node", node));
        }
        Ok(GetMetricsResponse {
            status: Some(Status::default()),
            response: String::new(),
            component_name: format!("indexnode{node}"),
        })
    }
}

/// The services of one DataCoord over in-memory fakes. The fakes and the store are shared with
/// the core, so a test arranges the cluster through them and checks what the core did.
pub struct TestCore {
    /// RootCoord's collections and databases.
    pub broker: Arc<FakeBroker>,
    /// RootCoord's IDs and timestamps.
    pub allocator: Arc<FakeAllocator>,
    /// The channel assignment.
    pub channels: Arc<FakeChannels>,
    /// The DataNodes.
    pub datanodes: Arc<FakeDataNodes>,
    /// The DataNodes as compaction reaches them (their own channel owners).
    pub compaction_nodes: Arc<FakeCompactionNodes>,
    /// The IndexNodes.
    pub indexnodes: Arc<FakeIndexNodes>,
    /// The catalog store (the meta root).
    pub kv: Arc<dyn MetaKv>,
    /// The segment meta the services run on.
    pub meta: Arc<Meta>,
    /// The index meta the services run on.
    pub index_meta: Arc<IndexMeta>,
    config: DataCoordConfig,
    storage: Arc<tempfile::TempDir>,
    services: Services,
    background: Background,
}

impl TestCore {
    /// A core with the 2.3.5 defaults, an empty store and no nodes.
    pub async fn new() -> Self {
        Self::with_config(DataCoordConfig::default()).await
    }

    /// A core with `config` (its storage replaced by a temporary local directory).
    pub async fn with_config(config: DataCoordConfig) -> Self {
        let storage = Arc::new(tempfile::tempdir().expect("temporary storage directory"));
        Self::build(
            config,
            Arc::new(MemoryKv::new()),
            storage,
            Arc::new(FakeBroker::new()),
            Arc::new(FakeAllocator::new(1000)),
            Arc::new(FakeChannels::new()),
            Arc::new(FakeDataNodes::new()),
            Arc::new(FakeCompactionNodes::new()),
            Arc::new(FakeIndexNodes::new()),
        )
        .await
    }

    /// A new core over the same store, storage and cluster, as after a DataCoord restart; this
    /// one is stopped first.
    pub async fn restart(self) -> Self {
        self.stop().await;
        Self::build(
            self.config,
            self.kv,
            self.storage,
            self.broker,
            self.allocator,
            self.channels,
            self.datanodes,
            self.compaction_nodes,
            self.indexnodes,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn build(
        mut config: DataCoordConfig,
        kv: Arc<dyn MetaKv>,
        storage: Arc<tempfile::TempDir>,
        broker: Arc<FakeBroker>,
        allocator: Arc<FakeAllocator>,
        channels: Arc<FakeChannels>,
        datanodes: Arc<FakeDataNodes>,
        compaction_nodes: Arc<FakeCompactionNodes>,
        indexnodes: Arc<FakeIndexNodes>,
    ) -> Self {
        config.storage = StorageConfig::local(storage.path().display().to_string());
        let chunk_manager = ChunkManager::new(&config.storage)
            .await
            .expect("local chunk manager");
        let meta = Arc::new(
            Meta::load(Catalog::new(kv.clone()))
                .await
                .expect("meta loads"),
        );
        let index_meta = Arc::new(
            IndexMeta::load(IndexCatalog::new(kv.clone()))
                .await
                .expect("index meta loads"),
        );
        let background = Background::new();
        let parts = CoreParts {
            node_id: TEST_NODE_ID,
            meta: meta.clone(),
            index_meta: index_meta.clone(),
            collections: Arc::new(Collections::new(broker.clone())),
            broker: broker.clone(),
            allocator: allocator.clone(),
            chunk_manager,
            channels: channels.clone(),
            datanodes: datanodes.clone(),
            compaction_nodes: compaction_nodes.clone(),
            indexnodes: indexnodes.clone(),
            engine_version: Arc::new(|| 0),
        };
        let services = Services::build(parts, &config, &Metrics::new(), background.clone())
            .await
            .expect("services build");
        Self {
            broker,
            allocator,
            channels,
            datanodes,
            compaction_nodes,
            indexnodes,
            kv,
            meta,
            index_meta,
            config,
            storage,
            services,
            background,
        }
    }

    /// All services.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The data-path service.
    pub fn data_path(&self) -> &DataPath {
        self.services.data_path()
    }

    /// The query service.
    pub fn queries(&self) -> &Queries {
        self.services.queries()
    }

    /// The index service.
    pub fn indexes(&self) -> &Indexes {
        self.services.indexes()
    }

    /// The compaction RPCs.
    pub fn compaction(&self) -> &CompactionService {
        self.services.compaction()
    }

    /// The storage root binlog paths live under.
    pub fn storage_root(&self) -> String {
        self.config.storage.effective_root_path()
    }

    /// Starts the loops (flush loop, garbage collector, index builder), as `Start` does.
    pub fn start(&self) {
        self.services.start(&self.background);
    }

    /// Cancels and awaits every background task.
    pub async fn stop(&self) {
        self.background.shutdown().await;
    }
}
