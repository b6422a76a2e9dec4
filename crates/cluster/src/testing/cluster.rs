//! A channel manager over a test etcd root, with fake datanodes around it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use milvus_proto::data::{ChannelWatchInfo, ChannelWatchState};
use milvus_types::NodeId;
use tokio_util::sync::CancellationToken;

use super::{Behaviour, FakeDataNode, FakeProvider, TestEtcd, wait_until};
use crate::config::ChannelConfig;
use crate::manager::ChannelManager;

/// How long the `wait_*` helpers wait for an eventual outcome.
pub const WAIT: Duration = Duration::from_secs(20);

/// A manager, its provider, its task token and the fake datanodes of one test.
pub struct TestCluster {
    /// The test's etcd root.
    pub env: TestEtcd,
    /// The meta provider double the manager uses.
    pub provider: Arc<FakeProvider>,
    /// Token handed to `startup`.
    pub token: CancellationToken,
    /// The manager under test.
    pub manager: Arc<ChannelManager>,
    /// Running fake datanodes.
    pub nodes: Vec<FakeDataNode>,
}

impl TestCluster {
    /// Loads a manager over `env` (not started).
    ///
    /// # Panics
    /// When the load fails.
    pub async fn new(env: TestEtcd, provider: Arc<FakeProvider>, config: ChannelConfig) -> Self {
        let manager = ChannelManager::new(
            config,
            env.kv.clone(),
            env.client.clone(),
            env.meta_root.clone(),
            provider.clone(),
        )
        .await
        .expect("channel manager loads");
        Self {
            env,
            provider,
            token: CancellationToken::new(),
            manager,
            nodes: Vec::new(),
        }
    }

    /// The records' subpath.
    pub fn subpath(&self) -> &str {
        &self.manager.config().watch_subpath
    }

    /// Starts a fake datanode `id`.
    pub async fn start_node(&mut self, id: NodeId, behaviour: Behaviour) {
        let node = FakeDataNode::start(
            &self.env.client,
            &self.env.meta_root,
            &self.manager.config().watch_subpath,
            id,
            behaviour,
        )
        .await;
        self.nodes.push(node);
    }

    /// The running fake datanode `id`.
    ///
    /// # Panics
    /// When it is not running.
    pub fn node(&self, id: NodeId) -> &FakeDataNode {
        self.nodes
            .iter()
            .find(|node| node.id() == id)
            .expect("fake node")
    }

    /// Stops the fake datanode `id` (its records stay).
    pub async fn stop_node(&mut self, id: NodeId) {
        let index = self
            .nodes
            .iter()
            .position(|node| node.id() == id)
            .expect("fake node");
        self.nodes.remove(index).stop().await;
    }

    /// `startup(online)` with the cluster's token.
    ///
    /// # Panics
    /// When startup fails.
    pub async fn startup(&self, online: Vec<NodeId>) {
        self.manager
            .startup(online, self.token.clone())
            .await
            .expect("startup");
    }

    /// Stops the manager's tasks; the fake nodes keep running.
    pub async fn stop_manager(&self) {
        self.token.cancel();
        self.manager.join().await;
    }

    /// Every record, decoded, by (node, vchannel).
    pub async fn records(&self) -> BTreeMap<(NodeId, String), ChannelWatchInfo> {
        self.env.records(self.subpath()).await
    }

    /// Waits until the records are exactly the `expected` (node, vchannel) pairs, all in
    /// `state`.
    pub async fn wait_records(&self, expected: &[(NodeId, &str)], state: ChannelWatchState) {
        let mut expected: Vec<(NodeId, String)> = expected
            .iter()
            .map(|(node, channel)| (*node, channel.to_string()))
            .collect();
        expected.sort();
        let what = format!("records {expected:?} in {state:?}");
        wait_until(&what, WAIT, || {
            let expected = expected.clone();
            async move {
                let records = self.records().await;
                let keys: Vec<_> = records.keys().cloned().collect();
                keys == expected && records.values().all(|info| info.state == state as i32)
            }
        })
        .await;
    }

    /// Stops everything and removes the test's root.
    pub async fn finish(self) {
        self.token.cancel();
        self.manager.join().await;
        for node in self.nodes {
            node.stop().await;
        }
        self.env.cleanup().await;
    }
}
