//! Client settings; defaults are Milvus 2.3.5's `grpc.client.*` and `rootCoord.grpc.client*` values.

use std::time::Duration;

use milvus_types::NodeId;

/// `grpc.client.dialTimeout` (ms).
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_millis(200);
/// `grpc.client.keepAliveTime` (ms).
pub const DEFAULT_KEEP_ALIVE_TIME: Duration = Duration::from_millis(10_000);
/// `grpc.client.keepAliveTimeout` (ms).
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_millis(20_000);
/// `grpc.client.maxMaxAttempts`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// `grpc.client.initialBackOff` (0.2 s).
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// `grpc.client.maxBackoff` (10 s).
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10);
/// `rootCoord.grpc.clientMaxSendSize` as shipped in milvus.yaml.
pub const DEFAULT_CLIENT_MAX_SEND_SIZE: usize = 268_435_456;
/// `rootCoord.grpc.clientMaxRecvSize` as shipped in milvus.yaml.
pub const DEFAULT_CLIENT_MAX_RECV_SIZE: usize = 536_870_912;
/// `msgChannel.chanNamePrefix.cluster` default.
pub const DEFAULT_CLUSTER: &str = "by-dev";

/// How a [`crate::RootCoordClient`] dials, retries and labels its requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Own cluster prefix, sent as metadata `cluster` (RootCoord rejects other clusters).
    pub cluster: String,
    /// Own ServerID, used as `MsgBase.sourceID`; may be set later with
    /// [`crate::RootCoordClient::set_node_id`] once the session has one.
    pub node_id: NodeId,
    /// Upper bound for establishing one connection.
    pub dial_timeout: Duration,
    /// HTTP/2 keepalive ping interval (also while idle, as Go's `PermitWithoutStream`).
    pub keep_alive_time: Duration,
    /// How long a keepalive ping may stay unanswered before the connection is dropped.
    pub keep_alive_timeout: Duration,
    /// Attempts per call, the first one included.
    pub max_attempts: u32,
    /// Sleep after the first failed attempt; doubled after each further one.
    pub initial_backoff: Duration,
    /// Cap of the sleep between attempts.
    pub max_backoff: Duration,
    /// Largest request we send.
    pub max_send_size: usize,
    /// Largest response we accept.
    pub max_recv_size: usize,
    /// Deadline of one call including its retries; `None` = bounded by attempts only (as Go
    /// without a context deadline).
    pub call_timeout: Option<Duration>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            cluster: DEFAULT_CLUSTER.to_string(),
            node_id: 0,
            dial_timeout: DEFAULT_DIAL_TIMEOUT,
            keep_alive_time: DEFAULT_KEEP_ALIVE_TIME,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            max_send_size: DEFAULT_CLIENT_MAX_SEND_SIZE,
            max_recv_size: DEFAULT_CLIENT_MAX_RECV_SIZE,
            call_timeout: None,
        }
    }
}
