//! The channel assignment as the services use it ([`Channels`]): implemented by the etcd-backed
//! `datacoord_cluster::ChannelManager` in production and by `testing::FakeChannels` in tests,
//! so the core runs without etcd.

use std::collections::BTreeMap;

use async_trait::async_trait;
use datacoord_cluster::{ChannelManager, ChannelSpec};
use milvus_types::{CollectionId, MilvusError, MilvusResult, NodeId};

/// Which datanode watches which DML vchannel. Channels without a datanode sit on
/// `datacoord_cluster::BUFFER_NODE`, which never matches.
#[async_trait]
pub(crate) trait Channels: Send + Sync {
    /// Assigns a channel unless it is already known (buffer included).
    async fn watch(&self, spec: ChannelSpec) -> MilvusResult<()>;
    /// Asks `node` to release `vchannel`.
    async fn release(&self, node: NodeId, vchannel: &str) -> MilvusResult<()>;
    /// Whether `vchannel` is assigned to the real datanode `node`.
    fn matches(&self, node: NodeId, vchannel: &str) -> bool;
    /// `(node, vchannel)` of the collection's channels on real datanodes, sorted.
    fn channels_of_collection(&self, collection_id: CollectionId) -> Vec<(NodeId, String)>;
    /// Every node (the buffer included) with its channels.
    fn assignments(&self) -> BTreeMap<NodeId, Vec<String>>;
}

#[async_trait]
impl Channels for ChannelManager {
    async fn watch(&self, spec: ChannelSpec) -> MilvusResult<()> {
        ChannelManager::watch(self, spec)
            .await
            .map_err(MilvusError::from)
    }

    async fn release(&self, node: NodeId, vchannel: &str) -> MilvusResult<()> {
        ChannelManager::release(self, node, vchannel)
            .await
            .map_err(MilvusError::from)
    }

    fn matches(&self, node: NodeId, vchannel: &str) -> bool {
        ChannelManager::matches(self, node, vchannel)
    }

    fn channels_of_collection(&self, collection_id: CollectionId) -> Vec<(NodeId, String)> {
        ChannelManager::channels_of_collection(self, collection_id)
    }

    fn assignments(&self) -> BTreeMap<NodeId, Vec<String>> {
        ChannelManager::assignments(self)
    }
}
