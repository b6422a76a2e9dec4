//! An in-process RootCoord on 127.0.0.1:0 with the 2.3.5 server interceptors' checks, plus
//! resolvers and client settings for the tests.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use milvus_proto::common::{MsgBase, StateCode};
use milvus_proto::milvus::{
    ComponentInfo, ComponentStates, DescribeCollectionRequest, DescribeCollectionResponse,
    GetComponentStatesRequest, ListDatabasesRequest, ListDatabasesResponse, ShowCollectionsRequest,
    ShowCollectionsResponse, ShowPartitionsRequest, ShowPartitionsResponse,
};
use milvus_proto::rootcoord::root_coord_server::{RootCoord, RootCoordServer};
use milvus_proto::rootcoord::{
    AllocIdRequest, AllocIdResponse, AllocTimestampRequest, AllocTimestampResponse,
};
use milvus_rootcoord_client::{
    ClientConfig, RootCoordError, RootCoordResolver, RootCoordTarget, StaticResolver,
};
use milvus_types::{MilvusError, Status};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::{Request, Response};

/// The cluster prefix our test servers belong to.
pub const SERVER_CLUSTER: &str = "by-dev";

/// Metadata of one request as the server saw it (before any handler ran).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeenMetadata {
    pub cluster: Option<String>,
    pub server_id: Option<String>,
    pub source_id: Option<String>,
}

/// What a test server recorded and what it is told to answer.
#[derive(Default)]
pub struct ServerState {
    /// Every request that reached the server, rejected ones included.
    pub seen: Vec<SeenMetadata>,
    /// `MsgBase` of every AllocID that reached the handler.
    pub alloc_bases: Vec<MsgBase>,
    /// Statuses the next AllocID calls answer with, in order.
    pub alloc_failures: VecDeque<Status>,
    /// collection ID → (db, partition IDs)
    pub collections: BTreeMap<i64, (String, Vec<i64>)>,
    pub databases: Vec<String>,
    pub next_id: i64,
}

/// How a [`FakeRootCoord`] behaves.
#[derive(Clone, Copy)]
pub struct Behaviour {
    pub server_id: i64,
    /// Serve `DescribeCollectionInternal` / `ShowPartitionsInternal` (false: UNIMPLEMENTED).
    pub internal_rpcs: bool,
    /// AllocTimestamp never answers.
    pub hang_timestamps: bool,
}

impl Behaviour {
    pub fn new(server_id: i64) -> Self {
        Self {
            server_id,
            internal_rpcs: true,
            hang_timestamps: false,
        }
    }
}

/// A RootCoord that answers from [`ServerState`].
pub struct FakeRootCoord {
    behaviour: Behaviour,
    state: Arc<Mutex<ServerState>>,
}

impl FakeRootCoord {
    fn lock(&self) -> std::sync::MutexGuard<'_, ServerState> {
        self.state.lock().unwrap()
    }

    fn describe(&self, collection_id: i64) -> DescribeCollectionResponse {
        match self.lock().collections.get(&collection_id) {
            Some((db, _)) => DescribeCollectionResponse {
                status: Some(Status::default()),
                collection_id,
                db_name: db.clone(),
                collection_name: format!("coll_{collection_id}"),
                virtual_channel_names: vec![format!("by-dev-rootcoord-dml_0_{collection_id}v0")],
                ..Default::default()
            },
            None => DescribeCollectionResponse {
                status: Some(MilvusError::collection_not_found(collection_id).to_status()),
                ..Default::default()
            },
        }
    }

    fn partitions(&self, collection_id: i64) -> ShowPartitionsResponse {
        match self.lock().collections.get(&collection_id) {
            Some((_, partitions)) => ShowPartitionsResponse {
                status: Some(Status::default()),
                partition_i_ds: partitions.clone(),
                ..Default::default()
            },
            None => ShowPartitionsResponse {
                status: Some(MilvusError::collection_not_found(collection_id).to_status()),
                ..Default::default()
            },
        }
    }
}

type RpcResult<T> = Result<Response<T>, tonic::Status>;

#[async_trait]
impl RootCoord for FakeRootCoord {
    async fn get_component_states(
        &self,
        _request: Request<GetComponentStatesRequest>,
    ) -> RpcResult<ComponentStates> {
        Ok(Response::new(ComponentStates {
            state: Some(ComponentInfo {
                node_id: self.behaviour.server_id,
                role: "rootcoord".to_string(),
                state_code: StateCode::Healthy as i32,
                ..Default::default()
            }),
            status: Some(Status::default()),
            ..Default::default()
        }))
    }

    async fn alloc_id(&self, request: Request<AllocIdRequest>) -> RpcResult<AllocIdResponse> {
        let request = request.into_inner();
        let mut state = self.lock();
        state.alloc_bases.push(request.base.unwrap_or_default());
        if let Some(status) = state.alloc_failures.pop_front() {
            return Ok(Response::new(AllocIdResponse {
                status: Some(status),
                ..Default::default()
            }));
        }
        let id = state.next_id;
        state.next_id += i64::from(request.count);
        Ok(Response::new(AllocIdResponse {
            status: Some(Status::default()),
            id,
            count: request.count,
        }))
    }

    async fn alloc_timestamp(
        &self,
        request: Request<AllocTimestampRequest>,
    ) -> RpcResult<AllocTimestampResponse> {
        if self.behaviour.hang_timestamps {
            futures::future::pending::<()>().await;
        }
        Ok(Response::new(AllocTimestampResponse {
            status: Some(Status::default()),
            timestamp: milvus_types::compose_ts(1_700_000_000_000, 0),
            count: request.into_inner().count,
        }))
    }

    async fn describe_collection_internal(
        &self,
        request: Request<DescribeCollectionRequest>,
    ) -> RpcResult<DescribeCollectionResponse> {
        if !self.behaviour.internal_rpcs {
            return Err(tonic::Status::unimplemented("Not yet implemented"));
        }
        Ok(Response::new(
            self.describe(request.into_inner().collection_id),
        ))
    }

    async fn describe_collection(
        &self,
        request: Request<DescribeCollectionRequest>,
    ) -> RpcResult<DescribeCollectionResponse> {
        Ok(Response::new(
            self.describe(request.into_inner().collection_id),
        ))
    }

    async fn show_partitions_internal(
        &self,
        request: Request<ShowPartitionsRequest>,
    ) -> RpcResult<ShowPartitionsResponse> {
        if !self.behaviour.internal_rpcs {
            return Err(tonic::Status::unimplemented("Not yet implemented"));
        }
        Ok(Response::new(
            self.partitions(request.into_inner().collection_id),
        ))
    }

    async fn show_partitions(
        &self,
        request: Request<ShowPartitionsRequest>,
    ) -> RpcResult<ShowPartitionsResponse> {
        Ok(Response::new(
            self.partitions(request.into_inner().collection_id),
        ))
    }

    async fn show_collections(
        &self,
        request: Request<ShowCollectionsRequest>,
    ) -> RpcResult<ShowCollectionsResponse> {
        let db_name = request.into_inner().db_name;
        let collection_ids = self
            .lock()
            .collections
            .iter()
            .filter(|(_, (db, _))| *db == db_name)
            .map(|(id, _)| *id)
            .collect();
        Ok(Response::new(ShowCollectionsResponse {
            status: Some(Status::default()),
            collection_ids,
            ..Default::default()
        }))
    }

    async fn list_databases(
        &self,
        _request: Request<ListDatabasesRequest>,
    ) -> RpcResult<ListDatabasesResponse> {
        Ok(Response::new(ListDatabasesResponse {
            status: Some(Status::default()),
            db_names: self.lock().databases.clone(),
            ..Default::default()
        }))
    }
}

/// A RootCoord that implements nothing: every RPC is the generated UNIMPLEMENTED default.
pub struct EmptyRootCoord;

impl RootCoord for EmptyRootCoord {}

/// A running test server.
pub struct TestServer {
    pub address: String,
    pub server_id: i64,
    pub state: Arc<Mutex<ServerState>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Records metadata and applies 2.3.5's cluster and server-ID interceptor checks.
fn check_metadata(
    server_id: i64,
    state: &Arc<Mutex<ServerState>>,
    request: &Request<()>,
) -> Result<(), tonic::Status> {
    let text = |key: &str| {
        request
            .metadata()
            .get(key)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    };
    let seen = SeenMetadata {
        cluster: text("cluster"),
        server_id: text("serverid"),
        source_id: text("sourceid"),
    };
    state.lock().unwrap().seen.push(seen.clone());
    if let Some(cluster) = seen
        .cluster
        .filter(|c| !c.is_empty() && c != SERVER_CLUSTER)
    {
        let err = MilvusError::cross_cluster_routing(SERVER_CLUSTER, &cluster);
        return Err(tonic::Status::unknown(err.to_string()));
    }
    if let Some(expected) = seen.server_id.and_then(|id| id.parse::<i64>().ok())
        && expected != server_id
    {
        let err = MilvusError::node_not_match(expected, server_id);
        return Err(tonic::Status::unknown(err.to_string()));
    }
    Ok(())
}

impl TestServer {
    /// Starts a [`FakeRootCoord`] with `behaviour` and IDs starting at `first_id`.
    pub async fn start(behaviour: Behaviour, first_id: i64) -> Self {
        let state = Arc::new(Mutex::new(ServerState {
            next_id: first_id,
            databases: vec!["default".to_string()],
            ..Default::default()
        }));
        let service = FakeRootCoord {
            behaviour,
            state: Arc::clone(&state),
        };
        Self::serve(service, behaviour.server_id, state).await
    }

    /// Starts an [`EmptyRootCoord`].
    pub async fn start_empty(server_id: i64) -> Self {
        Self::serve(EmptyRootCoord, server_id, Arc::default()).await
    }

    async fn serve<S: RootCoord>(
        service: S,
        server_id: i64,
        state: Arc<Mutex<ServerState>>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local addr").to_string();
        let checked_state = Arc::clone(&state);
        let service = RootCoordServer::with_interceptor(service, move |request: Request<()>| {
            check_metadata(server_id, &checked_state, &request).map(|()| request)
        });
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = shutdown_rx.await;
                    },
                )
                .await
                .expect("test server failed");
        });
        Self {
            address,
            server_id,
            state,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, ServerState> {
        self.state.lock().unwrap()
    }

    /// Number of requests that reached the server (rejected and unimplemented ones included).
    pub fn request_count(&self) -> usize {
        self.lock().seen.len()
    }

    pub fn add_collection(&self, db: &str, collection_id: i64, partitions: Vec<i64>) {
        self.lock()
            .collections
            .insert(collection_id, (db.to_string(), partitions));
    }

    /// Stops serving and waits until the server task (and its listener) is gone.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }

    /// A resolver pointing at this server.
    pub fn resolver(&self) -> StaticResolver {
        StaticResolver::new(self.address.clone(), self.server_id)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Fast retries so tests don't wait on production back-offs; a generous dial timeout because
/// the test machine is shared.
pub fn fast_config(node_id: i64) -> ClientConfig {
    ClientConfig {
        node_id,
        dial_timeout: Duration::from_secs(2),
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        call_timeout: Some(Duration::from_secs(20)),
        ..ClientConfig::default()
    }
}

/// Answers a fixed sequence of targets (the last one repeats) and counts the lookups.
pub struct SequenceResolver {
    targets: Vec<RootCoordTarget>,
    calls: AtomicUsize,
}

impl SequenceResolver {
    pub fn new(targets: Vec<RootCoordTarget>) -> Self {
        assert!(!targets.is_empty());
        Self {
            targets,
            calls: AtomicUsize::new(0),
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl RootCoordResolver for SequenceResolver {
    async fn resolve(&self) -> Result<RootCoordTarget, RootCoordError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(self.targets[call.min(self.targets.len() - 1)].clone())
    }
}
