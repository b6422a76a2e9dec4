//! The DataCoord server: lifecycle (init → register → start → stop) in 2.3.5's order.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::SystemTime;

use async_trait::async_trait;
use milvus_config::{DataCoordConfig, LoadedConfig};
use milvus_metastore::{EtcdKv, MetaKv, RootedKv};
use milvus_proto::milvus::{ComponentInfo, ComponentStates};
use milvus_rootcoord_client::{
    Allocator, Broker, ClientConfig, CoordinatorBroker, EstimatedClock, EtcdResolver,
    RootCoordAllocator, RootCoordClient,
};
use milvus_session::{Session, SessionConfig, SessionRole};
use milvus_storage::ChunkManager;
use milvus_types::{
    Component, DataCoordComponent, MilvusError, MilvusResult, NodeClientCreator, StateCode, Status,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use datacoord_cluster::{ChannelConfig, ChannelManager};
use datacoord_gc::{GarbageCollector, GcConfig};
use datacoord_index::{IndexCatalog, IndexMeta};
use datacoord_index_builder::{BuilderConfig, IndexBuilder};
use datacoord_meta::{Catalog, Meta};
use datacoord_segments::{SegmentConfig, SegmentManager};
use milvus_types::SegmentId;
use tokio::sync::mpsc;

use crate::adapters::{ChannelMeta, SegmentMeta};
use crate::clients::{DataNodeClient, IndexNodeClient, datanode_creator, indexnode_creator};
use crate::collections::Collections;
use crate::datapath::{FLUSH_QUEUE, run_flush_loop};
use crate::discovery;
use crate::garbage;
use crate::indexes::IndexNodeSet;
use crate::metrics::Metrics;
use crate::nodes::{EngineVersions, NodeManager};
use crate::state::StateCell;
use crate::system_info::HardwareProbe;

/// The role name in sessions, metrics and `GetComponentStates`.
pub const ROLE: &str = "datacoord";
/// The alias session 2.3.5 keeps for components that still look up IndexCoord.
pub const INDEXCOORD_ROLE: &str = "indexcoord";
/// `common.NotRegisteredID`
const NOT_REGISTERED_ID: i64 = -1;

/// How stale RootCoord's clock reading for allocation expiry may get before it is re-read.
const EXPIRY_CLOCK_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);
/// How often the whole meta load is attempted before init fails (2.3.5: 100).
const META_LOAD_ATTEMPTS: u32 = 100;

/// What `initDataCoord` builds, in 2.3.5's order (so a bad storage or RootCoord setting fails
/// init as it does in Go); present once the server has been activated.
pub(crate) struct Active {
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) allocator: Arc<dyn Allocator>,
    pub(crate) chunk_manager: ChunkManager,
    pub(crate) meta: Arc<Meta>,
    pub(crate) index_meta: Arc<IndexMeta>,
    pub(crate) collections: Arc<Collections>,
    pub(crate) channels: Arc<ChannelManager>,
    pub(crate) segments: Arc<SegmentManager>,
    pub(crate) datanodes: Arc<NodeManager<DataNodeClient>>,
    pub(crate) indexnodes: Arc<NodeManager<IndexNodeClient>>,
    pub(crate) index_builder: Arc<IndexBuilder>,
    pub(crate) garbage_collector: GarbageCollector,
    /// Segments whose binlogs were saved with `flushed`, on their way to Flushed.
    pub(crate) flush_tx: mpsc::Sender<SegmentId>,
    flush_rx: Mutex<Option<mpsc::Receiver<SegmentId>>>,
    pub(crate) flushed_rows: prometheus::IntCounter,
}

struct Sessions {
    datacoord: Arc<Session>,
    indexcoord: Arc<Session>,
}

/// The DataCoord component. Cheap to share (`Arc<Server>`); all state is inside.
pub struct Server {
    /// Itself, for spawning tasks from `&self` methods (a Server only exists inside an Arc).
    me: Weak<Server>,
    loaded: Arc<LoadedConfig>,
    state: StateCell,
    address: Mutex<String>,
    server_id: AtomicI64,
    etcd: OnceLock<etcd_client::Client>,
    tikv: OnceLock<Arc<dyn MetaKv>>,
    rootcoord: OnceLock<RootCoordClient>,
    datanode_creator: OnceLock<NodeClientCreator<DataNodeClient>>,
    indexnode_creator: OnceLock<NodeClientCreator<IndexNodeClient>>,
    sessions: OnceLock<Sessions>,
    pub(crate) active: OnceLock<Active>,
    pub(crate) metrics: Metrics,
    pub(crate) hardware: HardwareProbe,
    pub(crate) created_time: SystemTime,
    /// Parent of every background task's token; cancelled by `stop`.
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Cancelled when the session is lost; the process owner exits non-zero (TriggerKill).
    session_lost: CancellationToken,
}

impl Server {
    /// A server that has not been initialised yet (state Abnormal, as 2.3.5 reports it).
    pub fn new(loaded: Arc<LoadedConfig>) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            loaded,
            state: StateCell::new(),
            address: Mutex::new(String::new()),
            server_id: AtomicI64::new(0),
            etcd: OnceLock::new(),
            tikv: OnceLock::new(),
            rootcoord: OnceLock::new(),
            datanode_creator: OnceLock::new(),
            indexnode_creator: OnceLock::new(),
            sessions: OnceLock::new(),
            active: OnceLock::new(),
            metrics: Metrics::new(),
            hardware: HardwareProbe::new(),
            created_time: SystemTime::now(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            session_lost: CancellationToken::new(),
        })
    }

    fn arc(&self) -> Arc<Self> {
        self.me
            .upgrade()
            .expect("a Server is only reachable through its Arc")
    }

    /// The configuration this server runs with.
    pub fn config(&self) -> &DataCoordConfig {
        &self.loaded.datacoord
    }

    /// The configuration as loaded (file, raw keys), for ShowConfigurations.
    pub(crate) fn loaded_config(&self) -> &LoadedConfig {
        &self.loaded
    }

    /// The current state code.
    pub fn state_code(&self) -> StateCode {
        self.state.get()
    }

    /// The session ServerID, or 0 before the session exists (what the `serverid` check compares).
    pub fn server_id(&self) -> i64 {
        self.server_id.load(Ordering::Acquire)
    }

    /// The advertised `ip:port`.
    pub fn address(&self) -> String {
        self.address
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The cluster prefix requests must carry (`msgChannel.chanNamePrefix.cluster`).
    pub fn cluster_prefix(&self) -> &str {
        &self.config().common.cluster_prefix
    }

    /// What `/metrics` serves: gauges derived from meta are refreshed first.
    pub fn gather_metrics(&self) -> Vec<prometheus::proto::MetricFamily> {
        if let Some(active) = self.active.get() {
            self.metrics.segment_num.reset();
            let mut collections = std::collections::BTreeSet::new();
            for (collection_id, state, count) in active.meta.segment_counts() {
                collections.insert(collection_id);
                self.metrics
                    .segment_num
                    .with_label_values(&[state.as_str_name()])
                    .add(count as i64);
            }
            self.metrics.collection_num.set(collections.len() as i64);
            self.metrics.watched_dml_channel_num.reset();
            for (node, channels) in active.channels.assignments() {
                if node != datacoord_cluster::BUFFER_NODE {
                    self.metrics
                        .watched_dml_channel_num
                        .with_label_values(&[&node.to_string()])
                        .set(channels.len() as i64);
                }
            }
            let node_id = self.server_id().to_string();
            for (channel, checkpoint) in active.meta.channel_checkpoints() {
                let (physical_ms, _) = milvus_types::parse_ts(checkpoint.timestamp);
                self.metrics
                    .channel_checkpoint_unix_seconds
                    .with_label_values(&[&node_id, &channel])
                    .set(physical_ms as f64 / 1000.0);
            }
            self.metrics
                .set_index_task_count(active.index_meta.all_segment_indexes());
        }
        self.metrics.registry().gather()
    }

    /// Runs a background task owned by this server (stopped and awaited by `stop`).
    pub(crate) fn spawn_task<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let token = self.shutdown.child_token();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// Cancelled when the session was lost and the process must exit non-zero.
    pub fn session_lost(&self) -> CancellationToken {
        self.session_lost.clone()
    }

    /// `ServiceNotReady` unless Healthy (2.3.5's `merr.CheckHealthy`).
    pub(crate) fn check_healthy(&self) -> MilvusResult<()> {
        let code = self.state_code();
        if code == StateCode::Healthy {
            return Ok(());
        }
        Err(MilvusError::service_not_ready(
            ROLE,
            self.server_id(),
            code.as_str_name(),
        ))
    }

    fn etcd(&self) -> MilvusResult<etcd_client::Client> {
        self.etcd
            .get()
            .cloned()
            .ok_or_else(|| MilvusError::internal("etcd client not set"))
    }

    fn rootcoord_client_config(&self) -> ClientConfig {
        let grpc = &self.config().grpc_clients.root_coord;
        ClientConfig {
            cluster: self.cluster_prefix().to_string(),
            node_id: self.server_id(),
            dial_timeout: grpc.dial_timeout,
            keep_alive_time: grpc.keep_alive_time,
            keep_alive_timeout: grpc.keep_alive_timeout,
            max_attempts: grpc.max_attempts,
            initial_backoff: grpc.initial_backoff,
            max_backoff: grpc.max_backoff,
            max_send_size: grpc.client_max_send_size,
            max_recv_size: grpc.client_max_recv_size,
            call_timeout: None,
        }
    }

    fn session_config(&self) -> SessionConfig {
        let common = &self.config().common;
        let mut config = SessionConfig::new(self.config().etcd.meta_root_path.clone());
        config.ttl = common.session_ttl;
        config.retry_times = common.session_retry_times;
        config
    }

    fn session_role(&self, name: &str) -> SessionRole {
        SessionRole::coordinator(name, self.address())
            .with_active_standby(self.config().datacoord.enable_active_standby)
    }

    /// `initSession`: the indexcoord alias first, then datacoord, one ServerID for both.
    async fn init_sessions(&self) -> MilvusResult<()> {
        let etcd = self.etcd()?;
        let address = self.address();
        let config = self.session_config();
        let indexcoord = Session::new(
            etcd.clone(),
            config.clone(),
            self.session_role(INDEXCOORD_ROLE),
        )
        .await
        .map_err(MilvusError::from)?;
        let server_id = indexcoord.server_id();
        let datacoord = Session::new(
            etcd,
            config,
            self.session_role(ROLE).with_server_id(server_id),
        )
        .await
        .map_err(MilvusError::from)?;
        self.server_id.store(server_id, Ordering::Release);
        info!(node_id = server_id, %address, "datacoord sessions initialised");
        let sessions = Sessions {
            datacoord: Arc::new(datacoord),
            indexcoord: Arc::new(indexcoord),
        };
        if self.sessions.set(sessions).is_err() {
            return Err(MilvusError::internal("sessions initialised twice"));
        }
        Ok(())
    }

    /// `initDataCoord`: every dependency in 2.3.5's order; each failing step aborts.
    async fn init_datacoord(self: &Arc<Self>) -> MilvusResult<()> {
        self.state.set(StateCode::Initializing);
        let etcd = self.etcd()?;
        let node_id = self.server_id();

        let rootcoord = match self.rootcoord.get() {
            Some(client) => client.clone(),
            None => {
                let resolver = EtcdResolver::new(etcd.clone(), &self.config().etcd.meta_root_path);
                RootCoordClient::new(self.rootcoord_client_config(), Arc::new(resolver))
                    .map_err(MilvusError::from)?
            }
        };
        rootcoord.set_node_id(node_id);
        let broker: Arc<dyn Broker> = Arc::new(CoordinatorBroker::new(&rootcoord));
        info!("broker ready");

        let chunk_manager = ChunkManager::new(&self.config().storage)
            .await
            .map_err(|e| MilvusError::from(e).wrap("create chunk manager"))?;
        info!(root_path = chunk_manager.root_path(), "chunk manager ready");

        let catalog_kv: Arc<dyn MetaKv> = match self.tikv.get() {
            Some(tikv) => tikv.clone(),
            None => {
                let etcd_kv = EtcdKv::new(etcd.clone())
                    .with_request_timeout(self.config().etcd.request_timeout);
                Arc::new(RootedKv::new(
                    Arc::new(etcd_kv),
                    &self.config().etcd.meta_root_path,
                ))
            }
        };
        info!(backend = ?self.config().metastore, "catalog ready");

        let meta = Arc::new(self.load_meta(catalog_kv.clone()).await?);
        let index_meta = Arc::new(self.load_index_meta(catalog_kv).await?);
        let collections = Arc::new(Collections::new(broker.clone()));
        info!(segments = meta.segment_num(), "meta loaded");

        // Cluster: channel assignments (always in etcd, even with a TiKV catalog) and datanodes.
        let config = self.config();
        let watch_kv: Arc<dyn MetaKv> = Arc::new(RootedKv::new(
            Arc::new(EtcdKv::new(etcd.clone()).with_request_timeout(config.etcd.request_timeout)),
            &config.etcd.meta_root_path,
        ));
        let channel_config = ChannelConfig {
            watch_subpath: config.common.channels.datacoord_watch_sub_path.clone(),
            watch_timeout: config.datacoord.channel.watch_timeout_interval,
            balance_silent_duration: config.datacoord.channel.balance_silent_duration,
            balance_interval: config.datacoord.channel.balance_interval,
            auto_balance: config.datacoord.auto_balance,
        };
        let provider = Arc::new(ChannelMeta {
            meta: meta.clone(),
            collections: collections.clone(),
        });
        let channels = ChannelManager::new(
            channel_config,
            watch_kv,
            etcd.clone(),
            config.etcd.meta_root_path.clone(),
            provider,
        )
        .await
        .map_err(|e| MilvusError::from(e).wrap("create channel manager"))?;
        let datanodes = Arc::new(NodeManager::new(
            "datanode",
            self.datanode_creator.get().cloned().unwrap_or_else(|| {
                datanode_creator(self.cluster_prefix(), &config.grpc_clients.data_node)
            }),
            self.metrics.datanode_num.clone(),
        ));
        let allocator: Arc<dyn Allocator> = Arc::new(RootCoordAllocator::new(&rootcoord));
        // IndexNode manager.
        let indexnodes = Arc::new(NodeManager::new(
            "indexnode",
            self.indexnode_creator.get().cloned().unwrap_or_else(|| {
                indexnode_creator(self.cluster_prefix(), &config.grpc_clients.index_node)
            }),
            self.metrics.index_node_num.clone(),
        ));

        // Service discovery: the current nodes now, changes from the listed revision on. The
        // channel manager reconciles its stored assignments with the datanodes online now.
        let meta_root = config.etcd.meta_root_path.clone();
        let datanode_watch =
            discovery::list_and_watch(&etcd, &meta_root, "datanode", datanodes.as_ref()).await?;
        let token = self.shutdown.child_token();
        channels
            .startup(datanodes.node_ids(), token.clone())
            .await
            .map_err(|e| MilvusError::from(e).wrap("channel manager startup"))?;
        let indexnode_watch =
            discovery::list_and_watch(&etcd, &meta_root, "indexnode", indexnodes.as_ref()).await?;
        let engine_versions = Arc::new(EngineVersions::default());
        let querynode_watch =
            discovery::list_and_watch(&etcd, &meta_root, "querynode", engine_versions.as_ref())
                .await?;
        let lost = self.session_lost.clone();
        {
            // A channel manager that can no longer follow etcd would hand out stale assignments;
            // like a lost session, the process stops and a standby takes over.
            let channels_lost = channels.lost();
            let lost = lost.clone();
            let token = token.clone();
            self.tasks.spawn(async move {
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = channels_lost.cancelled() => {
                        error!("channel manager lost etcd, stopping");
                        lost.cancel();
                    }
                }
            });
        }
        self.tasks.spawn(discovery::run(
            datanode_watch,
            datanodes.clone(),
            Some(channels.clone()),
            token.clone(),
            lost.clone(),
        ));
        self.tasks.spawn(discovery::run(
            indexnode_watch,
            indexnodes.clone(),
            None,
            token.clone(),
            lost.clone(),
        ));
        self.tasks.spawn(discovery::run(
            querynode_watch,
            engine_versions.clone(),
            None,
            token,
            lost,
        ));

        let segments = Arc::new(
            SegmentManager::new(
                Arc::new(SegmentMeta(meta.clone())),
                // Expiry stamps need RootCoord's clock, not a TSO round trip per AssignSegmentID.
                Arc::new(EstimatedClock::new(allocator.clone(), EXPIRY_CLOCK_REFRESH)),
                self.segment_config(),
            )
            .await
            .map_err(|e| e.wrap("create segment manager"))?,
        );

        let index_builder = Arc::new(IndexBuilder::new(
            self.builder_config(chunk_manager.root_path()),
            (*index_meta).clone(),
            meta.clone(),
            Arc::new(IndexNodeSet(indexnodes.clone())),
            allocator.clone(),
            {
                let engine_versions = engine_versions.clone();
                Arc::new(move || engine_versions.current())
            },
        ));

        let garbage_collector = garbage::collector(
            self.gc_config(),
            (*index_meta).clone(),
            meta.clone(),
            chunk_manager.clone(),
        );

        let (flush_tx, flush_rx) = mpsc::channel(FLUSH_QUEUE);
        let active = Active {
            broker,
            allocator,
            chunk_manager,
            meta,
            index_meta,
            collections,
            channels,
            segments,
            datanodes,
            indexnodes,
            index_builder,
            garbage_collector,
            flush_tx,
            flush_rx: Mutex::new(Some(flush_rx)),
            flushed_rows: self.metrics.stored_rows_count.clone(),
        };
        if self.active.set(active).is_err() {
            return Err(MilvusError::internal("datacoord initialised twice"));
        }
        Ok(())
    }

    /// Loads the segment meta, retrying the whole load as 2.3.5 does.
    async fn load_meta(&self, kv: Arc<dyn MetaKv>) -> MilvusResult<Meta> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Meta::load(Catalog::new(kv.clone())).await {
                Ok(meta) => return Ok(meta),
                Err(err) if attempt < META_LOAD_ATTEMPTS => {
                    warn!(attempt, error = %err, "meta load failed, retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(err) => return Err(MilvusError::from(err).wrap("load meta")),
            }
        }
    }

    /// Loads the index meta (2.3.5 loads it with the segment meta, under the same retry).
    async fn load_index_meta(&self, kv: Arc<dyn MetaKv>) -> MilvusResult<IndexMeta> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match IndexMeta::load(IndexCatalog::new(kv.clone())).await {
                Ok(meta) => return Ok(meta),
                Err(err) if attempt < META_LOAD_ATTEMPTS => {
                    warn!(attempt, error = %err, "index meta load failed, retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(err) => return Err(MilvusError::from(err).wrap("load index meta")),
            }
        }
    }

    fn gc_config(&self) -> GcConfig {
        let datacoord = &self.config().datacoord;
        GcConfig {
            enabled: datacoord.enable_garbage_collection,
            interval: datacoord.gc.interval,
            missing_tolerance: datacoord.gc.missing_tolerance,
            drop_tolerance: datacoord.gc.drop_tolerance,
            remove_concurrent: datacoord.gc.remove_concurrent,
        }
    }

    fn builder_config(&self, chunk_root_path: &str) -> BuilderConfig {
        let config = self.config();
        BuilderConfig {
            cluster_id: config.common.cluster_prefix.clone(),
            chunk_root_path: chunk_root_path.to_string(),
            storage_config: config.storage.to_index_storage_config(),
            interval: config.indexcoord.scheduler_interval,
            min_segment_rows: config.indexcoord.min_segment_num_rows_to_enable_index,
            ..BuilderConfig::default()
        }
    }

    fn segment_config(&self) -> SegmentConfig {
        let segment = &self.config().datacoord.segment;
        SegmentConfig {
            max_size_mb: segment.max_size_mb,
            seal_proportion: segment.seal_proportion,
            assignment_expiration: segment.assignment_expiration,
            max_life: segment.max_life,
            max_idle_time: segment.max_idle_time,
            min_size_from_idle_to_sealed_mb: segment.min_size_from_idle_to_sealed_mb,
            max_binlog_file_number: segment.max_binlog_file_number,
            alloc_latest_expire_attempt: segment.alloc_latest_expire_attempt,
            import_task_expiration: self.config().rootcoord.import_task_expiration,
            ..SegmentConfig::default()
        }
    }

    /// `startDataCoord`: start the loops, then report Healthy.
    fn start_datacoord(&self) {
        if let Some(active) = self.active.get() {
            let rx = active
                .flush_rx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(rx) = rx {
                let token = self.shutdown.child_token();
                self.tasks.spawn(run_flush_loop(self.arc(), rx, token));
            }
            // Stopped in reverse order by `stop` cancelling the shutdown token and waiting.
            let gc = active.garbage_collector.start(self.shutdown.child_token());
            self.tasks.spawn(async move {
                if let Err(err) = gc.await {
                    error!(error = %err, "garbage collector task ended abnormally");
                }
            });
            let builder = active.index_builder.start(self.shutdown.child_token());
            self.tasks.spawn(async move {
                if let Err(err) = builder.await {
                    error!(error = %err, "index builder task ended abnormally");
                }
            });
        }
        self.state.set(StateCode::Healthy);
        info!(node_id = self.server_id(), "datacoord is healthy");
    }

    /// Runs `initDataCoord` + `startDataCoord` once this server won the active key.
    async fn activate(self: &Arc<Self>) -> MilvusResult<()> {
        info!(
            node_id = self.server_id(),
            "datacoord switching from standby to active"
        );
        self.init_datacoord().await?;
        self.start_datacoord();
        Ok(())
    }

    /// Watches the datacoord session; on loss the owner is told to stop us and exit non-zero
    /// (TriggerKill). Stopping is the owner's job: this task is one of those `stop` waits for.
    fn spawn_liveness_check(self: &Arc<Self>, session: &Session) -> MilvusResult<()> {
        session.start_liveness_check().map_err(MilvusError::from)?;
        let liveness = session.liveness();
        let token = self.shutdown.child_token();
        let lost = self.session_lost.clone();
        let num_node = self
            .metrics
            .num_node
            .with_label_values(&[&self.server_id().to_string(), ROLE]);
        self.tasks.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = liveness.lost() => {
                    error!("disconnected from etcd and exited");
                    num_node.dec();
                    lost.cancel();
                }
            }
        });
        Ok(())
    }
}

#[async_trait]
impl Component for Server {
    async fn init(&self) -> MilvusResult<()> {
        self.init_sessions().await?;
        if self.config().datacoord.enable_active_standby {
            self.state.set(StateCode::StandBy);
            info!("DataCoord enter standby mode successfully");
            return Ok(());
        }
        self.arc().init_datacoord().await
    }

    async fn register(&self) -> MilvusResult<()> {
        let sessions = self
            .sessions
            .get()
            .ok_or_else(|| MilvusError::internal("init not run"))?;
        sessions
            .indexcoord
            .register()
            .await
            .map_err(MilvusError::from)?;
        sessions
            .datacoord
            .register()
            .await
            .map_err(MilvusError::from)?;
        if self.config().datacoord.enable_active_standby {
            // Waiting for the active key must not block the caller: the gRPC server keeps
            // answering StandBy meanwhile, and SIGTERM must still be able to stop us.
            let server = self.arc();
            let datacoord = sessions.datacoord.clone();
            let indexcoord = sessions.indexcoord.clone();
            let token = self.shutdown.child_token();
            self.tasks.spawn(async move {
                let activation = tokio::select! {
                    _ = token.cancelled() => return,
                    result = datacoord.process_active_standby(|| server.activate()) => result,
                };
                match activation {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => {
                        error!(error = %err, "datacoord activation failed");
                        server.session_lost.cancel();
                        return;
                    }
                    Err(err) => {
                        error!(error = %err, "active-standby failed");
                        server.session_lost.cancel();
                        return;
                    }
                }
                if let Err(err) = indexcoord.force_active_standby().await {
                    // 2.3.5 also carries on here: the alias session is advisory.
                    warn!(error = %err, "indexcoord force active failed");
                }
                // Only now is our key the bare active one, which is what must stay ours.
                if let Err(err) = server.spawn_liveness_check(&datacoord) {
                    error!(error = %err, "liveness check failed to start");
                    server.session_lost.cancel();
                }
            });
        }
        self.metrics
            .num_node
            .with_label_values(&[&self.server_id().to_string(), ROLE])
            .inc();
        if self.config().datacoord.enable_active_standby {
            return Ok(());
        }
        self.arc().spawn_liveness_check(&sessions.datacoord)
    }

    async fn start(&self) -> MilvusResult<()> {
        if !self.config().datacoord.enable_active_standby {
            self.start_datacoord();
        }
        Ok(())
    }

    async fn stop(&self) -> MilvusResult<()> {
        // Only a Healthy server stops its loops; anything else (StandBy, Initializing) just
        // releases its sessions so a standby peer is not kept waiting.
        let was_healthy = self
            .state
            .transition(StateCode::Healthy, StateCode::Abnormal);
        if !was_healthy && self.state_code() != StateCode::StandBy {
            warn!(state = ?self.state_code(), "stop while not healthy");
        }
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        if let Some(active) = self.active.get() {
            active.channels.join().await;
        }
        if let Some(sessions) = self.sessions.get() {
            sessions.datacoord.stop().await;
            sessions.indexcoord.stop().await;
        }
        info!(node_id = self.server_id(), "datacoord stopped");
        Ok(())
    }

    fn component_states(&self) -> ComponentStates {
        let registered = self
            .sessions
            .get()
            .is_some_and(|s| s.datacoord.lease_id().is_some());
        let node_id = if registered {
            self.server_id()
        } else {
            NOT_REGISTERED_ID
        };
        ComponentStates {
            state: Some(ComponentInfo {
                node_id,
                role: ROLE.to_string(),
                state_code: self.state_code() as i32,
                extra_info: Vec::new(),
            }),
            subcomponent_states: Vec::new(),
            status: Some(Status::default()),
        }
    }
}

impl DataCoordComponent for Server {
    type EtcdClient = etcd_client::Client;
    type TikvClient = Arc<dyn MetaKv>;
    type RootCoordClient = RootCoordClient;
    type DataNodeClient = DataNodeClient;
    type IndexNodeClient = IndexNodeClient;

    fn set_address(&self, address: String) {
        *self.address.lock().unwrap_or_else(|e| e.into_inner()) = address;
    }

    fn set_etcd_client(&self, client: etcd_client::Client) {
        let _ = self.etcd.set(client);
    }

    fn set_tikv_client(&self, client: Arc<dyn MetaKv>) {
        let _ = self.tikv.set(client);
    }

    fn set_rootcoord_client(&self, client: RootCoordClient) {
        let _ = self.rootcoord.set(client);
    }

    fn set_datanode_creator(&self, creator: NodeClientCreator<DataNodeClient>) {
        let _ = self.datanode_creator.set(creator);
    }

    fn set_indexnode_creator(&self, creator: NodeClientCreator<IndexNodeClient>) {
        let _ = self.indexnode_creator.set(creator);
    }
}
