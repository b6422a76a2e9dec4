//! gRPC clients of the nodes DataCoord calls (DataNode, IndexNode).
//!
//! Every request carries the metadata 2.3.5 servers validate: `cluster` (our cluster prefix) and
//! `serverid` (the target's session ServerID), so a request never reaches a different incarnation
//! listening on a reused address.

use std::sync::Arc;
use std::time::Duration;

use milvus_config::GrpcClientConfig;
use milvus_proto::data::data_node_client::DataNodeClient as GenDataNodeClient;
use milvus_proto::index::index_node_client::IndexNodeClient as GenIndexNodeClient;
use milvus_types::{ErrorCode, MilvusError, MilvusResult, NodeClientCreator};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// Adds `cluster` and `serverid` to every outgoing request.
#[derive(Clone, Debug)]
pub struct TargetMetadata {
    cluster: AsciiMetadataValue,
    server_id: AsciiMetadataValue,
}

impl TargetMetadata {
    /// Metadata for a target with this ServerID in this cluster.
    pub fn new(cluster: &str, server_id: i64) -> Result<Self, MilvusError> {
        let cluster = cluster
            .parse()
            .map_err(|_| MilvusError::parameter_invalid("ASCII cluster prefix", cluster))?;
        let server_id = server_id.to_string().parse().expect("digits are ASCII");
        Ok(Self { cluster, server_id })
    }
}

impl Interceptor for TargetMetadata {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let metadata = request.metadata_mut();
        metadata.insert("cluster", self.cluster.clone());
        metadata.insert("serverid", self.server_id.clone());
        Ok(request)
    }
}

/// A channel to one node with its metadata attached.
pub type NodeChannel = InterceptedService<Channel, TargetMetadata>;
/// DataNode client.
pub type DataNodeClient = GenDataNodeClient<NodeChannel>;
/// IndexNode client.
pub type IndexNodeClient = GenIndexNodeClient<NodeChannel>;

/// Opens a lazily connecting channel to `address` (`host:port`) for the node `server_id`, with
/// the `grpc.client.*` dial and keep-alive settings.
pub fn node_channel(
    cluster: &str,
    address: &str,
    server_id: i64,
    grpc: &GrpcClientConfig,
) -> Result<NodeChannel, MilvusError> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| MilvusError::parameter_invalid("host:port", format!("{address}: {e}")))?
        // Go's 200 ms dial timeout assumes an idle host; a loaded one still deserves an answer.
        .connect_timeout(grpc.dial_timeout.max(Duration::from_secs(1)))
        .http2_keep_alive_interval(grpc.keep_alive_time)
        .keep_alive_timeout(grpc.keep_alive_timeout)
        .keep_alive_while_idle(true);
    let metadata = TargetMetadata::new(cluster, server_id)?;
    Ok(InterceptedService::new(endpoint.connect_lazy(), metadata))
}

/// A client creator over [`node_channel`]; `make` wraps the channel in the generated client.
fn node_creator<C: Send + 'static>(
    cluster: &str,
    grpc: &GrpcClientConfig,
    make: fn(NodeChannel, &GrpcClientConfig) -> C,
) -> NodeClientCreator<C> {
    let cluster: Arc<str> = cluster.into();
    let grpc = Arc::new(grpc.clone());
    Arc::new(move |address, server_id| {
        let cluster = cluster.clone();
        let grpc = grpc.clone();
        Box::pin(async move {
            Ok(make(
                node_channel(&cluster, &address, server_id, &grpc)?,
                &grpc,
            ))
        })
    })
}

/// The default DataNode client creator.
pub fn datanode_creator(
    cluster: &str,
    grpc: &GrpcClientConfig,
) -> NodeClientCreator<DataNodeClient> {
    node_creator(cluster, grpc, |channel, grpc| {
        GenDataNodeClient::new(channel)
            .max_decoding_message_size(grpc.client_max_recv_size)
            .max_encoding_message_size(grpc.client_max_send_size)
    })
}

/// The default IndexNode client creator.
pub fn indexnode_creator(
    cluster: &str,
    grpc: &GrpcClientConfig,
) -> NodeClientCreator<IndexNodeClient> {
    node_creator(cluster, grpc, |channel, grpc| {
        GenIndexNodeClient::new(channel)
            .max_decoding_message_size(grpc.client_max_recv_size)
            .max_encoding_message_size(grpc.client_max_send_size)
    })
}

/// The message of a unary call to a node, or its failure as [`transport_error`] maps it.
pub(crate) fn answer<T>(call: Result<tonic::Response<T>, tonic::Status>) -> MilvusResult<T> {
    call.map(tonic::Response::into_inner)
        .map_err(transport_error)
}

/// A failed call to a node: a node without the method (an older version) is told apart from an
/// unreachable one, since callers fall back on the former.
fn transport_error(err: tonic::Status) -> MilvusError {
    if err.code() == tonic::Code::Unimplemented {
        return MilvusError::new(ErrorCode::SERVICE_UNIMPLEMENTED).with_desc(err.message());
    }
    MilvusError::service_unavailable(&err.to_string())
}
