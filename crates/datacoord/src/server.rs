//! The DataCoord server: lifecycle (init → register → start → stop) in 2.3.5's order, the
//! sessions and the state. The RPC logic lives in the [`Services`] it owns once active.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::SystemTime;

use async_trait::async_trait;
use datacoord_import::ImportService;
use milvus_config::{DataCoordConfig, LoadedConfig};
use milvus_metastore::MetaKv;
use milvus_proto::milvus::{ComponentInfo, ComponentStates};
use milvus_rootcoord_client::RootCoordClient;
use milvus_session::{Session, SessionConfig, SessionRole};
use milvus_types::{
    Component, DataCoordComponent, MilvusError, MilvusResult, NodeClientCreator, SegmentId,
    StateCode, Status,
};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::background::Background;
use crate::clients::{DataNodeClient, IndexNodeClient};
use crate::compaction::CompactionService;
use crate::datapath::DataPath;
use crate::garbage::GcService;
use crate::indexes::Indexes;
use crate::init::{Activated, Connections, init_datacoord};
use crate::metrics::Metrics;
use crate::monitor::Monitor;
use crate::queries::Queries;
use crate::services::Services;
use crate::state::StateCell;
use crate::system_info::HardwareProbe;

/// The role name in sessions, metrics and `GetComponentStates`.
pub const ROLE: &str = "datacoord";
/// The alias session 2.3.5 keeps for components that still look up IndexCoord.
pub const INDEXCOORD_ROLE: &str = "indexcoord";
/// `common.NotRegisteredID`
const NOT_REGISTERED_ID: i64 = -1;

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
    /// What `initDataCoord` built; present once the server has been activated.
    active: OnceLock<Activated>,
    pub(crate) metrics: Metrics,
    pub(crate) hardware: HardwareProbe,
    pub(crate) created_time: SystemTime,
    /// Every background task; its shutdown is `stop`'s.
    background: Background,
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
            background: Background::new(),
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
        if let Some(monitor) = self.monitor() {
            monitor.refresh_gauges();
        }
        self.metrics.registry().gather()
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

    /// The services, or ServiceNotReady unless Healthy: the one health check of every RPC.
    fn healthy(&self) -> MilvusResult<&Services> {
        self.check_healthy()?;
        self.active
            .get()
            .map(|active| &active.services)
            .ok_or_else(|| MilvusError::internal("datacoord is healthy but not initialised"))
    }

    /// The data-path service, or ServiceNotReady unless Healthy.
    pub fn data_path(&self) -> MilvusResult<&DataPath> {
        Ok(self.healthy()?.data_path())
    }

    /// The query service, or ServiceNotReady unless Healthy.
    pub fn queries(&self) -> MilvusResult<&Queries> {
        Ok(self.healthy()?.queries())
    }

    /// The index service, or ServiceNotReady unless Healthy.
    pub fn indexes(&self) -> MilvusResult<&Indexes> {
        Ok(self.healthy()?.indexes())
    }

    /// The compaction RPCs, or ServiceNotReady unless Healthy.
    pub fn compaction(&self) -> MilvusResult<&CompactionService> {
        Ok(self.healthy()?.compaction())
    }

    /// Import and SaveImportSegment, or ServiceNotReady unless Healthy.
    pub fn import(&self) -> MilvusResult<&ImportService> {
        Ok(self.healthy()?.import())
    }

    /// UnsetIsImportingState: served without the health check, as 2.3.5 does (it only needs the
    /// meta loaded).
    pub async fn unset_is_importing_state(&self, ids: &[SegmentId]) -> MilvusResult<()> {
        let active = self.active.get().ok_or_else(|| {
            MilvusError::service_not_ready(ROLE, self.server_id(), self.state_code().as_str_name())
        })?;
        active.services.import().unset_is_importing_state(ids).await
    }

    /// The GcControl service, or ServiceNotReady unless Healthy.
    pub fn gc(&self) -> MilvusResult<&GcService> {
        Ok(self.healthy()?.gc())
    }

    /// MarkSegmentsDropped: the one data-path RPC 2.3.5 serves without its health check (it
    /// only needs the meta loaded).
    pub async fn mark_segments_dropped(&self, ids: &[SegmentId]) -> MilvusResult<()> {
        let active = self.active.get().ok_or_else(|| {
            MilvusError::service_not_ready(ROLE, self.server_id(), self.state_code().as_str_name())
        })?;
        active.services.data_path().mark_segments_dropped(ids).await
    }

    /// The metrics and health glue, once active (whatever the state).
    pub(crate) fn monitor(&self) -> Option<&Monitor> {
        self.active.get().map(|active| &active.services.monitor)
    }

    fn etcd(&self) -> MilvusResult<etcd_client::Client> {
        self.etcd
            .get()
            .cloned()
            .ok_or_else(|| MilvusError::internal("etcd client not set"))
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

    /// `initDataCoord` (see `init.rs`), keeping what it built.
    async fn init_datacoord(&self) -> MilvusResult<()> {
        self.state.set(StateCode::Initializing);
        let connections = Connections {
            etcd: self.etcd()?,
            tikv: self.tikv.get().cloned(),
            rootcoord: self.rootcoord.get().cloned(),
            datanode_creator: self.datanode_creator.get().cloned(),
            indexnode_creator: self.indexnode_creator.get().cloned(),
        };
        let activated = init_datacoord(
            self.config(),
            connections,
            self.server_id(),
            &self.metrics,
            &self.background,
            &self.session_lost,
        )
        .await?;
        if self.active.set(activated).is_err() {
            return Err(MilvusError::internal("datacoord initialised twice"));
        }
        Ok(())
    }

    /// `startDataCoord`: start the loops, then report Healthy.
    fn start_datacoord(&self) {
        if let Some(active) = self.active.get() {
            // Stopped by `stop` cancelling the background and waiting.
            active.services.start(&self.background);
        }
        self.state.set(StateCode::Healthy);
        info!(node_id = self.server_id(), "datacoord is healthy");
    }

    /// Runs `initDataCoord` + `startDataCoord` once this server won the active key.
    async fn activate(&self) -> MilvusResult<()> {
        info!(
            node_id = self.server_id(),
            "datacoord switching from standby to active"
        );
        self.init_datacoord().await?;
        self.start_datacoord();
        Ok(())
    }

    /// Watches both sessions from registration on: losing either (lease expired or revoked, e.g.
    /// by a peer forcing the indexcoord alias over; or, once the own-key check runs, the key
    /// deleted) tells the owner to stop us and exit non-zero (TriggerKill). A process that keeps
    /// serving without its session is a second coordinator nobody can see. Stopping is the
    /// owner's job: this task is one of those `stop` waits for.
    fn spawn_session_loss_watch(&self, sessions: &Sessions) {
        let datacoord = sessions.datacoord.liveness();
        let indexcoord = sessions.indexcoord.liveness();
        let lost = self.session_lost.clone();
        let num_node = self
            .metrics
            .num_node
            .with_label_values(&[&self.server_id().to_string(), ROLE]);
        self.background.spawn(async move {
            let role = tokio::select! {
                () = datacoord.lost() => ROLE,
                () = indexcoord.lost() => INDEXCOORD_ROLE,
            };
            error!(role, "disconnected from etcd and exited");
            num_node.dec();
            lost.cancel();
        });
    }

    /// Also counts the session lost when its key is deleted (the keep-alive alone only sees the
    /// lease); started once the key we must keep is the bare active one.
    fn start_own_key_check(&self, session: &Session) -> MilvusResult<()> {
        session.start_liveness_check().map_err(MilvusError::from)
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
        self.init_datacoord().await
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
        self.spawn_session_loss_watch(sessions);
        if self.config().datacoord.enable_active_standby {
            // Waiting for the active key must not block the caller: the gRPC server keeps
            // answering StandBy meanwhile, and SIGTERM must still be able to stop us.
            let server = self.arc();
            let datacoord = sessions.datacoord.clone();
            let indexcoord = sessions.indexcoord.clone();
            self.background.spawn(async move {
                let activation = datacoord.process_active_standby(|| server.activate()).await;
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
                if let Err(err) = server.start_own_key_check(&datacoord) {
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
        self.start_own_key_check(&sessions.datacoord)
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
        self.background.shutdown().await;
        if let Some(active) = self.active.get() {
            active.channel_manager.join().await;
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
