//! [`Services`]: the per-feature services the RPCs call, each holding only what it needs, built
//! from [`CoreParts`] (production: `init.rs`; tests: `testing::TestCore`), and the loops they run.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use datacoord_compaction::{CompactionConfig, CompactionDeps, CompactionEngine, CompactionNodes};
use datacoord_gc::{GarbageCollector, GcConfig};
use datacoord_import::{ImportCleaner, ImportService};
use datacoord_index::IndexMeta;
use datacoord_index_builder::{BuilderConfig, EngineVersion, IndexBuilder};
use datacoord_meta::Meta;
use datacoord_segments::{SegmentConfig, SegmentManager};
use milvus_config::DataCoordConfig;
use milvus_rootcoord_client::{Allocator, Broker, EstimatedClock};
use milvus_storage::{ChunkManager, StorageType};
use milvus_types::{MilvusResult, NodeId, SegmentId};
use tokio::sync::mpsc;

use crate::adapters::SegmentMeta;
use crate::background::Background;
use crate::channels::Channels;
use crate::collections::Collections;
use crate::compaction::{CompactionService, FlushSignals, PendingTasks};
use crate::datanodes::DataNodes;
use crate::datapath::DataPath;
use crate::flush::{FLUSH_QUEUE, Flusher};
use crate::garbage::{self, GcService, GcSources};
use crate::import::{ImportCluster, ImportCore, ManagedImports, RootCoordImportTasks};
use crate::indexes::Indexes;
use crate::indexnodes::IndexNodeSet;
use crate::metrics::Metrics;
use crate::monitor::Monitor;
use crate::queries::Queries;

/// How stale RootCoord's clock reading for allocation expiry may get before it is re-read.
const EXPIRY_CLOCK_REFRESH: Duration = Duration::from_secs(1);
/// How often RootCoord's failed import tasks are read while Importing segments exist.
const IMPORT_CLEANUP_INTERVAL: Duration = Duration::from_secs(5);

/// What the services are built on: loaded meta, and the rest of the cluster behind traits.
pub(crate) struct CoreParts {
    /// Our session ServerID (`source_id` of what we send, `node_id` metric label).
    pub(crate) node_id: NodeId,
    pub(crate) meta: Arc<Meta>,
    pub(crate) index_meta: Arc<IndexMeta>,
    pub(crate) collections: Arc<Collections>,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) allocator: Arc<dyn Allocator>,
    pub(crate) chunk_manager: ChunkManager,
    pub(crate) channels: Arc<dyn Channels>,
    pub(crate) datanodes: Arc<dyn DataNodes>,
    /// The DataNodes as compaction reaches them (Compaction, GetCompactionState, SyncSegments).
    pub(crate) compaction_nodes: Arc<dyn CompactionNodes>,
    pub(crate) indexnodes: Arc<dyn IndexNodeSet>,
    /// The index engine version IndexNodes build with (from the QueryNodes).
    pub(crate) engine_version: EngineVersion,
}

/// The loops, until [`Services::start`] runs them.
struct Loops {
    flusher: Flusher,
    flush_rx: mpsc::Receiver<SegmentId>,
    compaction: Arc<CompactionEngine>,
    index_builder: Arc<IndexBuilder>,
    collector: GarbageCollector,
    import_cleaner: ImportCleaner,
}

/// The RPC logic of an active DataCoord, one service per feature.
pub struct Services {
    data_path: Arc<DataPath>,
    queries: Queries,
    indexes: Indexes,
    compaction: CompactionService,
    import: ImportService,
    gc: GcService,
    pub(crate) monitor: Monitor,
    loops: Mutex<Option<Loops>>,
}

impl Services {
    /// Builds every service (compaction, segment manager, garbage collector, index builder in
    /// 2.3.5's order); nothing runs until [`Services::start`]. FlushSegments calls and relayed
    /// imports run on `background`.
    pub(crate) async fn build(
        parts: CoreParts,
        config: &DataCoordConfig,
        metrics: &Metrics,
        background: Background,
    ) -> MilvusResult<Self> {
        let CoreParts {
            node_id,
            meta,
            index_meta,
            collections,
            broker,
            allocator,
            chunk_manager,
            channels,
            datanodes,
            compaction_nodes,
            indexnodes,
            engine_version,
        } = parts;
        let storage_root = chunk_manager.root_path().to_string();
        let local_storage = chunk_manager.storage_type() == StorageType::Local;
        let (flush_tx, flush_rx) = mpsc::channel(FLUSH_QUEUE);

        // Persisted tasks are reloaded (and their sources locked) before anything can plan or
        // collect, so GC's first run already sees them.
        let compaction = Arc::new(
            CompactionEngine::load(
                CompactionConfig::from_config(config),
                CompactionDeps {
                    meta: meta.clone(),
                    index_meta: (*index_meta).clone(),
                    nodes: compaction_nodes,
                    allocator: allocator.clone(),
                    broker: broker.clone(),
                    chunk_manager: chunk_manager.clone(),
                    flushed: flush_tx.clone(),
                    compacted_segment_size: metrics.compacted_segment_size.clone(),
                    engine_version: engine_version.clone(),
                },
            )
            .await
            .map_err(|e| e.wrap("load compaction tasks"))?,
        );

        let segments = Arc::new(
            SegmentManager::new(
                Arc::new(SegmentMeta(meta.clone())),
                // Expiry stamps need RootCoord's clock, not a TSO round trip per AssignSegmentID.
                Arc::new(EstimatedClock::new(allocator.clone(), EXPIRY_CLOCK_REFRESH)),
                SegmentConfig::from_config(config),
            )
            .await
            .map_err(|e| e.wrap("create segment manager"))?,
        );
        let index_builder = Arc::new(IndexBuilder::new(
            BuilderConfig::from_config(config),
            (*index_meta).clone(),
            meta.clone(),
            indexnodes.clone(),
            allocator.clone(),
            engine_version,
        ));
        let collector = garbage::collector(
            GcConfig::from_config(config),
            (*index_meta).clone(),
            meta.clone(),
            chunk_manager,
            GcSources {
                collections: collections.clone(),
                pending: Arc::new(PendingTasks(compaction.clone())),
            },
        );

        let flusher = Flusher {
            meta: meta.clone(),
            listeners: vec![
                index_builder.clone(),
                Arc::new(FlushSignals(compaction.clone())),
            ],
            flushed_rows: metrics.stored_rows_count.clone(),
        };
        let import_relays = (background.tracker(), background.token());
        let data_path = Arc::new(DataPath {
            node_id,
            meta: meta.clone(),
            segments: segments.clone(),
            channels: channels.clone(),
            datanodes: datanodes.clone(),
            allocator: allocator.clone(),
            collections: collections.clone(),
            flush_tx,
            background,
            tt_lag: metrics.datanode_tt_lag_ms.clone(),
            storage_root: storage_root.clone(),
        });
        let mut import = ImportService::new(
            node_id,
            Arc::new(ImportCluster {
                datanodes: datanodes.clone(),
                channels: channels.clone(),
            }),
            Arc::new(ImportCore {
                meta: meta.clone(),
                data_path: data_path.clone(),
            }),
            import_relays.0,
            import_relays.1,
        );
        let import_cleaner = ImportCleaner::new(
            Arc::new(RootCoordImportTasks {
                kv: meta.catalog().kv().clone(),
            }),
            Arc::new(ManagedImports(segments.clone())),
            IMPORT_CLEANUP_INTERVAL,
        );
        if local_storage {
            import = import.local_sources_under(storage_root.clone());
        }
        let queries = Queries {
            meta: meta.clone(),
            index_meta: index_meta.clone(),
            collections,
            broker: broker.clone(),
            channels: channels.clone(),
            storage_root: storage_root.clone(),
            min_rows_to_index: config.indexcoord.min_segment_num_rows_to_enable_index,
        };
        let indexes = Indexes {
            meta: meta.clone(),
            index_meta: index_meta.clone(),
            broker,
            allocator,
            indexnodes: indexnodes.clone(),
            index_builder: index_builder.clone(),
            storage_root,
            requests: metrics.index_req_count.clone(),
        };
        let monitor = Monitor {
            node_id,
            meta,
            index_meta,
            channels,
            datanodes,
            indexnodes,
            metrics: metrics.clone(),
        };
        Ok(Self {
            data_path,
            queries,
            indexes,
            compaction: CompactionService {
                engine: compaction.clone(),
            },
            import,
            gc: GcService {
                collector: collector.clone(),
            },
            monitor,
            loops: Mutex::new(Some(Loops {
                flusher,
                flush_rx,
                compaction,
                index_builder,
                collector,
                import_cleaner,
            })),
        })
    }

    /// Starts the flush loop, compaction, the garbage collector, the index builder and the
    /// cleaner of failed imports on
    /// `background` (stopped by its shutdown). A second call does nothing.
    pub(crate) fn start(&self, background: &Background) {
        let loops = self
            .loops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(loops) = loops else {
            return;
        };
        background.spawn_watching(loops.flusher.run(loops.flush_rx, background.token()));
        background.track("compaction", loops.compaction.start(background.token()));
        background.track(
            "garbage collector",
            loops.collector.start(background.token()),
        );
        background.track(
            "index builder",
            loops.index_builder.start(background.token()),
        );
        background.track(
            "import cleaner",
            loops.import_cleaner.start(background.token()),
        );
    }

    /// Channels, allocation, time ticks, binlogs, flush, segment states.
    pub fn data_path(&self) -> &DataPath {
        &self.data_path
    }

    /// Segment infos, statistics, flush state, recovery info.
    pub fn queries(&self) -> &Queries {
        &self.queries
    }

    /// The index RPCs.
    pub fn indexes(&self) -> &Indexes {
        &self.indexes
    }

    /// ManualCompaction, GetCompactionState, GetCompactionStateWithPlans.
    pub fn compaction(&self) -> &CompactionService {
        &self.compaction
    }

    /// Import, SaveImportSegment, UnsetIsImportingState.
    pub fn import(&self) -> &ImportService {
        &self.import
    }

    /// GcControl.
    pub fn gc(&self) -> &GcService {
        &self.gc
    }
}
