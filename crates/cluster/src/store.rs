//! The in-memory assignment: node → channels, always mirroring the watch records in etcd.

use std::collections::BTreeMap;

use milvus_proto::common::KeyDataPair;
use milvus_proto::schema::CollectionSchema;
use milvus_types::{CollectionId, NodeId};

use crate::config::BUFFER_NODE;

/// A DML vchannel as the channel manager knows it.
///
/// `start_positions` and `create_timestamp` come from WatchChannels and are not persisted: a
/// channel reloaded from etcd has them empty / zero (as in 2.3.5). `schema` is persisted in the
/// watch record and survives a restart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChannelSpec {
    /// The vchannel name, e.g. `by-dev-rootcoord-dml_1_470730857520700478v0`.
    pub name: String,
    /// Its collection.
    pub collection_id: CollectionId,
    /// MQ start positions (key = pchannel, data = message id), from WatchChannels.
    pub start_positions: Vec<KeyDataPair>,
    /// The collection schema, when known.
    pub schema: Option<CollectionSchema>,
    /// Creation timestamp (TSO), from WatchChannels.
    pub create_timestamp: u64,
}

/// Add puts a watch record for each channel on the node; Delete removes the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpKind {
    Add,
    Delete,
}

/// One change of the assignment (Go's `ChannelOp`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ChannelOp {
    pub(crate) kind: OpKind,
    pub(crate) node: NodeId,
    pub(crate) channels: Vec<ChannelSpec>,
}

impl ChannelOp {
    pub(crate) fn add(node: NodeId, channels: Vec<ChannelSpec>) -> Self {
        Self {
            kind: OpKind::Add,
            node,
            channels,
        }
    }

    pub(crate) fn delete(node: NodeId, channels: Vec<ChannelSpec>) -> Self {
        Self {
            kind: OpKind::Delete,
            node,
            channels,
        }
    }
}

/// Channels per node, each list in assignment order (policies pick "the first channels").
/// The buffer node is always present; real nodes appear when registered or when a record names
/// them.
#[derive(Clone, Debug)]
pub(crate) struct ChannelStore {
    nodes: BTreeMap<NodeId, Vec<ChannelSpec>>,
}

impl Default for ChannelStore {
    fn default() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(BUFFER_NODE, Vec::new());
        Self { nodes }
    }
}

impl ChannelStore {
    /// Registers a node without channels (no-op when known).
    pub(crate) fn add_node(&mut self, node: NodeId) {
        self.nodes.entry(node).or_default();
    }

    /// Forgets a real node and returns its channels.
    pub(crate) fn remove_node(&mut self, node: NodeId) -> Option<Vec<ChannelSpec>> {
        debug_assert_ne!(node, BUFFER_NODE, "the buffer node is permanent");
        self.nodes.remove(&node)
    }

    pub(crate) fn has_node(&self, node: NodeId) -> bool {
        self.nodes.contains_key(&node)
    }

    /// Real nodes, ascending.
    pub(crate) fn node_ids(&self) -> Vec<NodeId> {
        self.real_nodes().map(|(node, _)| node).collect()
    }

    /// Real nodes and their channels, ascending by node.
    pub(crate) fn real_nodes(&self) -> impl Iterator<Item = (NodeId, &[ChannelSpec])> {
        self.nodes
            .iter()
            .filter(|(node, _)| **node != BUFFER_NODE)
            .map(|(node, channels)| (*node, channels.as_slice()))
    }

    /// Every node including the buffer, ascending.
    pub(crate) fn all_nodes(&self) -> impl Iterator<Item = (NodeId, &[ChannelSpec])> {
        self.nodes
            .iter()
            .map(|(node, channels)| (*node, channels.as_slice()))
    }

    pub(crate) fn channels_of(&self, node: NodeId) -> &[ChannelSpec] {
        self.nodes.get(&node).map_or(&[], Vec::as_slice)
    }

    /// The channel named `name` on `node`.
    pub(crate) fn get(&self, node: NodeId, name: &str) -> Option<&ChannelSpec> {
        self.channels_of(node)
            .iter()
            .find(|channel| channel.name == name)
    }

    /// The node (buffer included) holding `name`.
    pub(crate) fn find(&self, name: &str) -> Option<(NodeId, &ChannelSpec)> {
        self.nodes.iter().find_map(|(node, channels)| {
            channels
                .iter()
                .find(|channel| channel.name == name)
                .map(|channel| (*node, channel))
        })
    }

    /// Applies a written op. Add skips channels the node already lists (by name and collection,
    /// as Go); Delete removes by name.
    pub(crate) fn apply(&mut self, op: &ChannelOp) {
        match op.kind {
            OpKind::Add => {
                let list = self.nodes.entry(op.node).or_default();
                for channel in &op.channels {
                    let present = list.iter().any(|known| {
                        known.name == channel.name && known.collection_id == channel.collection_id
                    });
                    if !present {
                        list.push(channel.clone());
                    }
                }
            }
            OpKind::Delete => {
                if let Some(list) = self.nodes.get_mut(&op.node) {
                    list.retain(|known| !op.channels.iter().any(|gone| gone.name == known.name));
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) fn spec(name: &str, collection_id: CollectionId) -> ChannelSpec {
    ChannelSpec {
        name: name.to_string(),
        collection_id,
        ..ChannelSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_add_and_delete() {
        let mut store = ChannelStore::default();
        assert!(store.has_node(BUFFER_NODE));
        assert!(store.node_ids().is_empty());

        store.apply(&ChannelOp::add(
            BUFFER_NODE,
            vec![spec("a", 1), spec("b", 1)],
        ));
        store.add_node(5);
        store.apply(&ChannelOp::delete(BUFFER_NODE, vec![spec("a", 1)]));
        store.apply(&ChannelOp::add(5, vec![spec("a", 1)]));
        // Adding again (a ToRelease rewrite on the same node) keeps one entry.
        store.apply(&ChannelOp::add(5, vec![spec("a", 1)]));

        assert_eq!(store.channels_of(5), &[spec("a", 1)]);
        assert_eq!(store.channels_of(BUFFER_NODE), &[spec("b", 1)]);
        assert_eq!(store.find("a").map(|(node, _)| node), Some(5));
        assert_eq!(store.find("b").map(|(node, _)| node), Some(BUFFER_NODE));
        assert!(store.get(5, "b").is_none());
        assert_eq!(store.node_ids(), vec![5]);
        assert_eq!(store.remove_node(5), Some(vec![spec("a", 1)]));
        assert!(store.find("a").is_none());
    }
}
