//! [`FakeChannels`]: an in-memory channel assignment, so the services run without etcd.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use datacoord_cluster::{BUFFER_NODE, ChannelSpec};
use milvus_types::{CollectionId, MilvusError, MilvusResult, NodeId};

use crate::channels::Channels;

#[derive(Debug, Default)]
struct Assignment {
    /// Where a newly watched channel goes; `None`: the buffer.
    target: Option<NodeId>,
    channels: BTreeMap<String, (NodeId, ChannelSpec)>,
    watched: Vec<ChannelSpec>,
    released: Vec<(NodeId, String)>,
    fail_watch: usize,
}

/// Channels assigned in memory: a new channel goes to the node set by
/// [`FakeChannels::assign_new_to`] (the buffer until then) and stays there until moved or
/// released. No datanode answers anything: an assignment is complete once made.
#[derive(Debug, Default)]
pub struct FakeChannels {
    assignment: Mutex<Assignment>,
}

impl FakeChannels {
    /// No channels; new ones go to the buffer.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Assignment> {
        self.assignment
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Channels watched from now on go to `node` (`None`: the buffer).
    pub fn assign_new_to(&self, node: Option<NodeId>) {
        self.lock().target = node;
    }

    /// Moves a known channel to `node` (`None`: the buffer).
    ///
    /// # Panics
    /// When the channel was never watched.
    pub fn assign(&self, vchannel: &str, node: Option<NodeId>) {
        let mut assignment = self.lock();
        let held = assignment
            .channels
            .get_mut(vchannel)
            .unwrap_or_else(|| panic!("fake channel {vchannel} was never watched"));
        held.0 = node.unwrap_or(BUFFER_NODE);
    }

    /// The datanode watching `vchannel`; `None` when buffered or unknown.
    pub fn node_of(&self, vchannel: &str) -> Option<NodeId> {
        self.lock()
            .channels
            .get(vchannel)
            .map(|(node, _)| *node)
            .filter(|node| *node != BUFFER_NODE)
    }

    /// The next `count` watch calls fail.
    pub fn fail_next_watch(&self, count: usize) {
        self.lock().fail_watch = count;
    }

    /// Every channel a watch call assigned (already known ones are not repeated), in order.
    pub fn watched(&self) -> Vec<ChannelSpec> {
        self.lock().watched.clone()
    }

    /// Every release, in order.
    pub fn released(&self) -> Vec<(NodeId, String)> {
        self.lock().released.clone()
    }
}

#[async_trait]
impl Channels for FakeChannels {
    async fn watch(&self, spec: ChannelSpec) -> MilvusResult<()> {
        let mut assignment = self.lock();
        if assignment.fail_watch > 0 {
            assignment.fail_watch -= 1;
            return Err(MilvusError::unexpected("injected channel watch failure"));
        }
        if assignment.channels.contains_key(&spec.name) {
            return Ok(());
        }
        let node = assignment.target.unwrap_or(BUFFER_NODE);
        assignment.watched.push(spec.clone());
        assignment.channels.insert(spec.name.clone(), (node, spec));
        Ok(())
    }

    async fn release(&self, node: NodeId, vchannel: &str) -> MilvusResult<()> {
        let mut assignment = self.lock();
        if assignment
            .channels
            .get(vchannel)
            .is_some_and(|(held_by, _)| *held_by == node)
        {
            assignment.channels.remove(vchannel);
        }
        assignment.released.push((node, vchannel.to_string()));
        Ok(())
    }

    fn matches(&self, node: NodeId, vchannel: &str) -> bool {
        node != BUFFER_NODE && self.node_of(vchannel) == Some(node)
    }

    fn channels_of_collection(&self, collection_id: CollectionId) -> Vec<(NodeId, String)> {
        let mut found: Vec<(NodeId, String)> = self
            .lock()
            .channels
            .iter()
            .filter(|(_, (node, spec))| *node != BUFFER_NODE && spec.collection_id == collection_id)
            .map(|(name, (node, _))| (*node, name.clone()))
            .collect();
        found.sort();
        found
    }

    fn assignments(&self) -> BTreeMap<NodeId, Vec<String>> {
        let mut by_node: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
        by_node.entry(BUFFER_NODE).or_default();
        for (name, (node, _)) in &self.lock().channels {
            by_node.entry(*node).or_default().push(name.clone());
        }
        by_node
    }
}
