//! Connection handling and the retry loop every RootCoord RPC goes through.
//!
//! Behaviour follows 2.3.5's `grpcclient.ClientBase`: one shared connection, dialled lazily from
//! what the resolver says; metadata `cluster` + `serverid` on every request; transport errors and
//! `node not match` drop the connection so the next attempt re-resolves; retriable statuses are
//! retried on the same connection; `UNIMPLEMENTED` and non-retriable statuses return at once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use milvus_proto::common::{MsgBase, MsgType};
use milvus_proto::rootcoord::root_coord_client::RootCoordClient as GrpcClient;
use milvus_types::{Backoff, MilvusError, NodeId, Status};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::{ClientConfig, RootCoordError, RootCoordResolver, RootCoordTarget};

/// Metadata key of the caller's cluster prefix (Go sends `Cluster`; HTTP/2 lowercases it).
pub const CLUSTER_METADATA_KEY: &str = "cluster";
/// Metadata key of the ServerID the caller expects to reach.
pub const SERVER_ID_METADATA_KEY: &str = "serverid";
/// Metadata key marking requests from Milvus members (only the proxy checks it).
pub const SOURCE_ID_METADATA_KEY: &str = "sourceid";
/// base64 of `@@milvus-member@@`, the member credential Go clients send as `sourceId`.
const MEMBER_SOURCE_ID: &str = "QEBtaWx2dXMtbWVtYmVyQEA=";

/// Substrings by which Go clients recognise the server interceptors' rejections.
const NODE_NOT_MATCH: &str = "node not match";
const CROSS_CLUSTER_ROUTING: &str = "cross cluster routing";

/// The generated tonic client on a live channel.
pub(crate) type Grpc = GrpcClient<Channel>;

/// Client of RootCoord's `milvus.proto.rootcoord.RootCoord` service; clones share one connection.
#[derive(Clone)]
pub struct RootCoordClient {
    shared: Arc<Shared>,
    call_timeout: Option<Duration>,
}

struct Shared {
    config: ClientConfig,
    cluster: AsciiMetadataValue,
    node_id: AtomicI64,
    resolver: Arc<dyn RootCoordResolver>,
    state: Mutex<ConnState>,
    generations: AtomicU64,
}

#[derive(Default)]
struct ConnState {
    current: Option<Connection>,
    /// Set after a timeout: the next call first checks that the resolver still names our target.
    verify_target: bool,
}

/// One dialled RootCoord; `generation` tells a stale reset apart from a fresh connection.
#[derive(Clone)]
pub(crate) struct Connection {
    pub(crate) grpc: Grpc,
    pub(crate) target: RootCoordTarget,
    generation: u64,
}

/// What one failed attempt means for the retry loop.
struct AttemptFailure {
    error: RootCoordError,
    retry: bool,
}

/// Response messages that carry a `commonpb.Status`.
pub(crate) trait WithStatus {
    fn status_field(&self) -> Option<&Status>;
}

impl RootCoordClient {
    /// A client that finds RootCoord through `resolver`; nothing is dialled until the first call.
    pub fn new(
        config: ClientConfig,
        resolver: Arc<dyn RootCoordResolver>,
    ) -> Result<Self, RootCoordError> {
        let cluster = MetadataValue::try_from(config.cluster.as_str())
            .map_err(|err| RootCoordError::InvalidConfig(format!("cluster: {err}")))?;
        if config.max_attempts == 0 {
            return Err(RootCoordError::InvalidConfig(
                "max_attempts must be at least 1".to_string(),
            ));
        }
        let call_timeout = config.call_timeout;
        let node_id = AtomicI64::new(config.node_id);
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                cluster,
                node_id,
                resolver,
                state: Mutex::new(ConnState::default()),
                generations: AtomicU64::new(0),
            }),
            call_timeout,
        })
    }

    /// A handle on the same connection whose calls (retries included) end after `timeout`.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            call_timeout: Some(timeout),
        }
    }

    /// Sets the own ServerID used as `MsgBase.sourceID` (for every clone).
    pub fn set_node_id(&self, node_id: NodeId) {
        self.shared.node_id.store(node_id, Ordering::Relaxed);
    }

    /// The own ServerID used as `MsgBase.sourceID`.
    pub fn node_id(&self) -> NodeId {
        self.shared.node_id.load(Ordering::Relaxed)
    }

    /// The RootCoord currently connected to, if any.
    pub async fn connected_target(&self) -> Option<RootCoordTarget> {
        let state = self.shared.state.lock().await;
        state.current.as_ref().map(|conn| conn.target.clone())
    }

    /// Drops the connection; the next call resolves and dials again.
    pub async fn close(&self) {
        self.shared.state.lock().await.current = None;
    }

    /// The deadline of a call starting now.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.call_timeout.map(|timeout| Instant::now() + timeout)
    }

    /// The `MsgBase` Go's client sends: type, own node as source, the target's ServerID, and the
    /// send time in Unix seconds (what `FillMsgBaseFromClient` puts in an empty timestamp).
    pub(crate) fn msg_base(&self, msg_type: MsgType, target: &RootCoordTarget) -> MsgBase {
        let now_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        MsgBase {
            msg_type: msg_type as i32,
            msg_id: 0,
            timestamp: now_secs,
            source_id: self.node_id(),
            target_id: target.server_id,
            ..Default::default()
        }
    }

    /// Runs one RPC with retries. `build` makes the request for the connection in use (so the
    /// target ServerID in `MsgBase` matches the `serverid` metadata); `invoke` sends it.
    pub(crate) async fn call<Req, Resp, Fut>(
        &self,
        rpc: &'static str,
        deadline: Option<Instant>,
        build: impl Fn(&RootCoordTarget) -> Req,
        invoke: impl Fn(Grpc, tonic::Request<Req>) -> Fut,
    ) -> Result<Resp, RootCoordError>
    where
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
        Resp: WithStatus,
    {
        let config = &self.shared.config;
        // Not `milvus_types::retry`: a deadline can end the loop before a pause (see below).
        let mut pauses = Backoff {
            initial: config.initial_backoff,
            max: config.max_backoff,
        }
        .delays();
        let mut last_error: Option<RootCoordError> = None;
        for attempt in 1..=config.max_attempts {
            let outcome = self.attempt(rpc, deadline, &build, &invoke);
            let outcome = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, outcome).await {
                    Ok(outcome) => outcome,
                    Err(_elapsed) => {
                        self.shared.state.lock().await.verify_target = true;
                        return Err(RootCoordError::Timeout {
                            rpc,
                            last_error: last_error.map(|e| e.to_string()),
                        });
                    }
                },
                None => outcome.await,
            };
            let failure = match outcome {
                Ok(response) => match response.status_field().and_then(MilvusError::from_status) {
                    None => return Ok(response),
                    Some(err) if err.is_retriable() => AttemptFailure {
                        error: RootCoordError::Status(err),
                        retry: true,
                    },
                    Some(err) => return Err(RootCoordError::Status(err)),
                },
                Err(failure) => failure,
            };
            tracing::warn!(rpc, attempt, error = %failure.error, "rootcoord call failed");
            if !failure.retry {
                return Err(failure.error);
            }
            let deadline_reported = failure.error.is_deadline_transport_error();
            last_error = Some(failure.error);
            if attempt == config.max_attempts {
                break;
            }
            let pause = pauses.next().unwrap_or(config.max_backoff);
            if deadline.is_some_and(|d| d.saturating_duration_since(Instant::now()) < pause) {
                // The server enforces the propagated `grpc-timeout` too and may answer just
                // before our own timer fires; that is still our deadline passing.
                if deadline_reported {
                    return Err(RootCoordError::Timeout {
                        rpc,
                        last_error: last_error.map(|e| e.to_string()),
                    });
                }
                // Otherwise sleeping past the deadline would only hide the real error.
                break;
            }
            tokio::time::sleep(pause).await;
        }
        let error = last_error.expect("the loop ran at least one failed attempt");
        Err(match error {
            // Go reports a cluster mismatch that outlived every retry as `service unavailable`.
            RootCoordError::Transport { message, .. }
                if message.contains(CROSS_CLUSTER_ROUTING) =>
            {
                RootCoordError::CrossClusterRouting(message)
            }
            other => other,
        })
    }

    async fn attempt<Req, Resp, Fut>(
        &self,
        rpc: &'static str,
        deadline: Option<Instant>,
        build: &impl Fn(&RootCoordTarget) -> Req,
        invoke: &impl Fn(Grpc, tonic::Request<Req>) -> Fut,
    ) -> Result<Resp, AttemptFailure>
    where
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let conn = self
            .connection()
            .await
            .map_err(|error| AttemptFailure { error, retry: true })?;
        let mut request = tonic::Request::new(build(&conn.target));
        if let Some(deadline) = deadline {
            request.set_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        let server_id = MetadataValue::from(conn.target.server_id);
        let metadata = request.metadata_mut();
        metadata.insert(CLUSTER_METADATA_KEY, self.shared.cluster.clone());
        metadata.insert(SERVER_ID_METADATA_KEY, server_id);
        metadata.insert(
            SOURCE_ID_METADATA_KEY,
            AsciiMetadataValue::from_static(MEMBER_SOURCE_ID),
        );
        match invoke(conn.grpc.clone(), request).await {
            Ok(response) => Ok(response.into_inner()),
            Err(status) => Err(self.classify(rpc, &conn, status).await),
        }
    }

    /// Decides retry and reconnect for a gRPC-level error, as Go's `checkGrpcErr`.
    async fn classify(
        &self,
        rpc: &'static str,
        conn: &Connection,
        status: tonic::Status,
    ) -> AttemptFailure {
        let code = status.code();
        if code == tonic::Code::Unimplemented {
            return AttemptFailure {
                error: RootCoordError::Unimplemented(format!("{rpc}: {}", status.message())),
                retry: false,
            };
        }
        let error = RootCoordError::Transport {
            rpc,
            code,
            message: status.message().to_string(),
        };
        if matches!(code, tonic::Code::Cancelled | tonic::Code::DeadlineExceeded) {
            // The server may just be slow; keep the connection but re-check the session.
            self.shared.state.lock().await.verify_target = true;
            return AttemptFailure { error, retry: true };
        }
        // Unavailable, node not match (RootCoord restarted with a new ServerID), cross cluster
        // routing and anything else unknown: dial again from a fresh resolve.
        tracing::info!(
            rpc,
            address = %conn.target.address,
            server_id = conn.target.server_id,
            node_not_match = status.message().contains(NODE_NOT_MATCH),
            "resetting rootcoord connection"
        );
        self.reset(conn.generation).await;
        AttemptFailure { error, retry: true }
    }

    async fn reset(&self, generation: u64) {
        let mut state = self.shared.state.lock().await;
        if state
            .current
            .as_ref()
            .is_some_and(|conn| conn.generation == generation)
        {
            state.current = None;
        }
    }

    /// The shared connection, dialled from a fresh resolve when there is none.
    pub(crate) async fn connection(&self) -> Result<Connection, RootCoordError> {
        let mut state = self.shared.state.lock().await;
        if state.verify_target {
            state.verify_target = false;
            if let Some(current) = &state.current {
                match self.shared.resolver.resolve().await {
                    Ok(target) if target == current.target => {}
                    Ok(target) => {
                        tracing::info!(
                            old_address = %current.target.address,
                            old_server_id = current.target.server_id,
                            new_address = %target.address,
                            new_server_id = target.server_id,
                            "rootcoord session changed, reconnecting"
                        );
                        state.current = None;
                    }
                    // Only a hint: keep the connection and let the call itself decide.
                    Err(err) => tracing::warn!(error = %err, "failed to verify rootcoord session"),
                }
            }
        }
        if let Some(current) = &state.current {
            return Ok(current.clone());
        }
        let target = self.shared.resolver.resolve().await?;
        let channel = self.dial(&target.address).await?;
        let config = &self.shared.config;
        let grpc = GrpcClient::new(channel)
            .max_encoding_message_size(config.max_send_size)
            .max_decoding_message_size(config.max_recv_size);
        let generation = self.shared.generations.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            address = %target.address,
            server_id = target.server_id,
            "connected to rootcoord"
        );
        let conn = Connection {
            grpc,
            target,
            generation,
        };
        state.current = Some(conn.clone());
        Ok(conn)
    }

    async fn dial(&self, address: &str) -> Result<Channel, RootCoordError> {
        let config = &self.shared.config;
        let connect_error = |reason: String| RootCoordError::Connect {
            address: address.to_string(),
            reason,
        };
        let uri = if address.contains("://") {
            address.to_string()
        } else {
            format!("http://{address}")
        };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|err| connect_error(err.to_string()))?
            .connect_timeout(config.dial_timeout)
            .http2_keep_alive_interval(config.keep_alive_time)
            .keep_alive_timeout(config.keep_alive_timeout)
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        // Like Go's blocking dial: the whole connect, handshake included, fits in the dial timeout.
        match tokio::time::timeout(config.dial_timeout, endpoint.connect()).await {
            Ok(Ok(channel)) => Ok(channel),
            Ok(Err(err)) => Err(connect_error(error_chain(&err))),
            Err(_elapsed) => Err(connect_error(format!(
                "dial timeout {:?} exceeded",
                config.dial_timeout
            ))),
        }
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

macro_rules! impl_with_status {
    ($($ty:ty),* $(,)?) => {
        $(impl WithStatus for $ty {
            fn status_field(&self) -> Option<&Status> {
                self.status.as_ref()
            }
        })*
    };
}

impl_with_status!(
    milvus_proto::rootcoord::AllocIdResponse,
    milvus_proto::rootcoord::AllocTimestampResponse,
    milvus_proto::milvus::DescribeCollectionResponse,
    milvus_proto::milvus::ShowPartitionsResponse,
    milvus_proto::milvus::ShowCollectionsResponse,
    milvus_proto::milvus::ListDatabasesResponse,
    milvus_proto::milvus::ComponentStates,
);
