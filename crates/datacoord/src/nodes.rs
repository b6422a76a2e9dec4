//! DataNodes and IndexNodes as DataCoord sees them: discovered through their sessions, each with a
//! client created on first use.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use milvus_session::SessionInfo;
use milvus_types::{MilvusError, MilvusResult, NodeClientCreator, NodeId};
use prometheus::IntGauge;
use tokio::sync::OnceCell;
use tracing::info;

struct Node<C> {
    session: SessionInfo,
    stopping: bool,
    client: Arc<OnceCell<C>>,
}

/// What service discovery keeps up to date from the sessions of one role.
pub(crate) trait NodeSet: Send + Sync {
    /// A node joined (or re-registered with a new session).
    fn add(&self, session: SessionInfo);
    /// A node's session is gone.
    fn remove(&self, node_id: NodeId);
    /// A node announced a graceful stop.
    fn mark_stopping(&self, node_id: NodeId);
    /// How many nodes are known.
    fn len(&self) -> usize;
}

impl<C: Clone + Send + Sync + 'static> NodeSet for NodeManager<C> {
    fn add(&self, session: SessionInfo) {
        NodeManager::add(self, session)
    }

    fn remove(&self, node_id: NodeId) {
        NodeManager::remove(self, node_id)
    }

    fn mark_stopping(&self, node_id: NodeId) {
        NodeManager::mark_stopping(self, node_id)
    }

    fn len(&self) -> usize {
        self.nodes.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The index engine versions of the QueryNodes: IndexNodes are asked to build with the lowest
/// current version any QueryNode runs, so every QueryNode can load what is built.
#[derive(Default)]
pub(crate) struct EngineVersions {
    current: RwLock<BTreeMap<NodeId, i32>>,
}

impl EngineVersions {
    /// The minimum current version over the QueryNodes; 0 when there are none.
    pub(crate) fn current(&self) -> i32 {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current.values().copied().min().unwrap_or(0)
    }
}

impl NodeSet for EngineVersions {
    fn add(&self, session: SessionInfo) {
        let version = session.index_engine_version.current_index_version;
        info!(
            node_id = session.server_id,
            version, "querynode index engine version"
        );
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        current.insert(session.server_id, version);
    }

    fn remove(&self, node_id: NodeId) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        current.remove(&node_id);
    }

    // A stopping QueryNode still serves what it loaded; its version still counts.
    fn mark_stopping(&self, _node_id: NodeId) {}

    fn len(&self) -> usize {
        self.current.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The live nodes of one role (`datanode` or `indexnode`), keyed by ServerID.
pub(crate) struct NodeManager<C> {
    role: &'static str,
    creator: NodeClientCreator<C>,
    nodes: RwLock<BTreeMap<NodeId, Node<C>>>,
    gauge: IntGauge,
}

impl<C: Clone + Send + Sync + 'static> NodeManager<C> {
    pub(crate) fn new(role: &'static str, creator: NodeClientCreator<C>, gauge: IntGauge) -> Self {
        Self {
            role,
            creator,
            nodes: RwLock::new(BTreeMap::new()),
            gauge,
        }
    }

    /// A node joined (or re-registered with a new session).
    pub(crate) fn add(&self, session: SessionInfo) {
        let node_id = session.server_id;
        info!(role = self.role, node_id, address = %session.address, "node added");
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        nodes.insert(
            node_id,
            Node {
                session,
                stopping: false,
                client: Arc::new(OnceCell::new()),
            },
        );
        self.gauge.set(nodes.len() as i64);
    }

    /// A node's session is gone; its client is dropped with it.
    pub(crate) fn remove(&self, node_id: NodeId) {
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        if nodes.remove(&node_id).is_some() {
            info!(role = self.role, node_id, "node removed");
        }
        self.gauge.set(nodes.len() as i64);
    }

    /// A node announced a graceful stop.
    pub(crate) fn mark_stopping(&self, node_id: NodeId) {
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        if let Some(node) = nodes.get_mut(&node_id) {
            info!(role = self.role, node_id, "node stopping");
            node.stopping = true;
        }
    }

    /// ServerIDs of the known nodes, ascending, with whether each announced a graceful stop.
    pub(crate) fn node_states(&self) -> Vec<(NodeId, bool)> {
        self.nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, node)| (*id, node.stopping))
            .collect()
    }

    /// ServerIDs of the known nodes, ascending.
    pub(crate) fn node_ids(&self) -> Vec<NodeId> {
        self.nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }

    /// The client of a node, created on first use.
    pub(crate) async fn client(&self, node_id: NodeId) -> MilvusResult<C> {
        let (address, cell) = {
            let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
            let node = nodes.get(&node_id).ok_or_else(|| {
                MilvusError::new(milvus_types::ErrorCode::NODE_NOT_FOUND)
                    .with_field("node", node_id)
            })?;
            (node.session.address.clone(), node.client.clone())
        };
        let creator = self.creator.clone();
        cell.get_or_try_init(|| creator(address, node_id))
            .await
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: i64) -> SessionInfo {
        SessionInfo {
            server_id: id,
            server_name: "datanode".into(),
            address: format!("127.0.0.1:{}", 21000 + id),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn clients_are_created_once_per_session_and_dropped_with_it() {
        let created = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = created.clone();
        let creator: NodeClientCreator<String> = Arc::new(move |address, id| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move { Ok(format!("{id}@{address}")) })
        });
        let gauge = IntGauge::new("test_nodes", "test").unwrap();
        let manager = NodeManager::new("datanode", creator, gauge.clone());
        manager.add(session(1));
        manager.add(session(2));
        assert_eq!(gauge.get(), 2);
        assert_eq!(manager.client(1).await.unwrap(), "1@127.0.0.1:21001");
        assert_eq!(manager.client(1).await.unwrap(), "1@127.0.0.1:21001");
        assert_eq!(created.load(std::sync::atomic::Ordering::SeqCst), 1);
        manager.remove(1);
        assert_eq!(manager.node_ids(), vec![2]);
        assert_eq!(gauge.get(), 1);
        let err = manager.client(1).await.unwrap_err();
        assert_eq!(err.code(), milvus_types::ErrorCode::NODE_NOT_FOUND);
    }
}
