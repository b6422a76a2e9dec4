//! The coordinator lifecycle as the gRPC wrapper drives it: `init`, `register`, `start`, `stop`.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use milvus_proto::milvus::ComponentStates;

use crate::{MilvusResult, NodeId};

/// A Milvus component driven by its gRPC wrapper: `Run` = `init` then `register` and `start`.
#[async_trait]
pub trait Component: Send + Sync {
    /// Connects to what the component needs; may leave it StandBy.
    async fn init(&self) -> MilvusResult<()>;
    /// Starts background loops and turns Healthy (when active).
    async fn start(&self) -> MilvusResult<()>;
    /// Stops in reverse start order; a no-op unless the component is Healthy.
    async fn stop(&self) -> MilvusResult<()>;
    /// Registers the component's sessions (and takes part in active-standby).
    async fn register(&self) -> MilvusResult<()>;
    /// What `GetComponentStates` answers.
    fn component_states(&self) -> ComponentStates;
}

/// Creates a client for a node from its address and session ServerID, as Go's `SetDataNodeCreator`.
pub type NodeClientCreator<C> =
    Arc<dyn Fn(String, NodeId) -> BoxFuture<'static, MilvusResult<C>> + Send + Sync>;

/// The setters the DataCoord wrapper calls before `init`, mirroring 2.3.5's `types.DataCoordComponent`.
/// Client types are associated so this crate stays free of transport dependencies.
pub trait DataCoordComponent: Component {
    /// etcd client (sessions, channel watch, and the catalog unless `metastore.type` is tikv).
    type EtcdClient;
    /// TiKV client for the catalog when `metastore.type: tikv`.
    type TikvClient;
    /// RootCoord client (IDs, timestamps, schemas).
    type RootCoordClient;
    /// DataNode client.
    type DataNodeClient;
    /// IndexNode client.
    type IndexNodeClient;

    /// The `ip:port` advertised in the session.
    fn set_address(&self, address: String);
    /// Sets the etcd client.
    fn set_etcd_client(&self, client: Self::EtcdClient);
    /// Sets the TiKV client.
    fn set_tikv_client(&self, client: Self::TikvClient);
    /// Sets the RootCoord client.
    fn set_rootcoord_client(&self, client: Self::RootCoordClient);
    /// Sets how DataNode clients are made.
    fn set_datanode_creator(&self, creator: NodeClientCreator<Self::DataNodeClient>);
    /// Sets how IndexNode clients are made.
    fn set_indexnode_creator(&self, creator: NodeClientCreator<Self::IndexNodeClient>);
}
