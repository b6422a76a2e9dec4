//! The channel manager: construction, the public operations and the read-only views.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

use async_trait::async_trait;
use milvus_metastore::MetaKv;
use milvus_proto::data::VchannelInfo;
use milvus_types::{CollectionId, MilvusResult, NodeId};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::config::{BUFFER_NODE, ChannelConfig};
use crate::error::{ClusterError, ClusterResult};
use crate::record;
use crate::store::{ChannelOp, ChannelSpec, ChannelStore};
use crate::timers::Timers;
use crate::watcher::WatchTarget;

/// What the channel manager needs from DataCoord's segment meta.
#[async_trait]
pub trait ChannelMetaProvider: Send + Sync {
    /// The `vchan` of a watch record: GetDataVChanPositions (FACTS E.14) of the channel over all
    /// partitions, i.e. `{collectionID, channelName, seek_position, unflushed/flushed/dropped
    /// segment ids}`.
    fn vchannel_info(&self, channel: &ChannelSpec) -> VchannelInfo;
    /// Whether the channel's removal flag is `removed` (dropped, cleanup pending).
    fn should_drop(&self, vchannel: &str) -> bool;
    /// Deletes the channel's removal flag once its watch record is gone (FinishDropChannel).
    async fn finish_drop(&self, vchannel: &str) -> MilvusResult<()>;
}

/// State changed only under the operation lock.
#[derive(Debug)]
pub(crate) struct OpState {
    /// Last time a channel op was written; the balancer waits for a quiet period after it.
    pub(crate) last_active: Instant,
}

/// Which datanode watches which DML vchannel, kept in etcd under `channelwatch/` with the 2.3.5
/// protocol (FACTS D): DataCoord puts ToWatch/ToRelease records, datanodes answer by
/// compare-and-swap, and this manager reacts to answers and to answer timeouts.
///
/// Every change is serialised by one async lock and written to etcd **before** memory changes,
/// so the synchronous views ([`ChannelManager::matches`] etc.) always show what is stored.
/// Share it as `Arc<ChannelManager>`.
pub struct ChannelManager {
    pub(crate) config: ChannelConfig,
    pub(crate) kv: Arc<dyn MetaKv>,
    pub(crate) target: WatchTarget,
    pub(crate) provider: Arc<dyn ChannelMetaProvider>,
    pub(crate) store: RwLock<ChannelStore>,
    pub(crate) timers: Mutex<Timers>,
    /// Wakes the event loop when a timer starts, so it sleeps until the right deadline.
    pub(crate) timers_changed: Notify,
    pub(crate) ops: tokio::sync::Mutex<OpState>,
    pub(crate) lost: CancellationToken,
    pub(crate) tasks: TaskTracker,
    pub(crate) started: AtomicBool,
}

impl std::fmt::Debug for ChannelManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelManager")
            .field("config", &self.config)
            .field("store", &*self.read_store())
            .finish_non_exhaustive()
    }
}

impl ChannelManager {
    /// Loads every watch record under `{watch_subpath}/` (FACTS D.2): the node comes from the key,
    /// name, collection and schema from the value; start positions and create timestamps are not
    /// stored and come back empty.
    ///
    /// `watch_kv` is etcd rooted at metaRoot (watch records always live in etcd, even with a TiKV
    /// catalog); `etcd` and `meta_root` serve the watch on the same keys. Like Go, an unreadable
    /// record fails the load.
    pub async fn new(
        config: ChannelConfig,
        watch_kv: Arc<dyn MetaKv>,
        etcd: etcd_client::Client,
        meta_root: String,
        provider: Arc<dyn ChannelMetaProvider>,
    ) -> ClusterResult<Arc<Self>> {
        let mut store = ChannelStore::default();
        let records = watch_kv
            .load_all_with_prefix(&record::all_prefix(&config.watch_subpath))
            .await?;
        for (key, value) in &records {
            let node = record::parse_node(key)?;
            let info = record::decode(key, value)?;
            let vchan = info.vchan.unwrap_or_default();
            let channel = ChannelSpec {
                name: vchan.channel_name,
                collection_id: vchan.collection_id,
                schema: info.schema,
                ..ChannelSpec::default()
            };
            info!(node_id = node, channel = %channel.name, state = record::state_name(info.state),
                "channel store reload channel");
            store.add_node(node);
            store.apply(&ChannelOp::add(node, vec![channel]));
        }
        info!(
            records = records.len(),
            nodes = store.node_ids().len(),
            "channel store reload done"
        );
        let target = WatchTarget::new(etcd, &meta_root, &config.watch_subpath);
        let timers = Timers::new(config.watch_timeout);
        Ok(Arc::new(Self {
            config,
            kv: watch_kv,
            target,
            provider,
            store: RwLock::new(store),
            timers: Mutex::new(timers),
            timers_changed: Notify::new(),
            ops: tokio::sync::Mutex::new(OpState {
                last_active: Instant::now(),
            }),
            lost: CancellationToken::new(),
            tasks: TaskTracker::new(),
            started: AtomicBool::new(false),
        }))
    }

    /// A datanode joined (session add): AvgAssignRegisterPolicy — it takes every buffered
    /// channel, or, with auto-balance, loaded nodes release their share to it.
    pub async fn add_node(&self, node: NodeId) -> ClusterResult<()> {
        let mut op_state = self.ops.lock().await;
        self.add_node_locked(&mut op_state, node).await
    }

    /// A datanode left (session delete): its channels move to the other datanodes (or the
    /// buffer), then every record under `{subpath}/{node}/` is deleted and the node forgotten.
    pub async fn delete_node(&self, node: NodeId) -> ClusterResult<()> {
        let mut op_state = self.ops.lock().await;
        self.delete_node_locked(&mut op_state, node).await
    }

    /// Assigns a new channel (WatchChannels / AssignSegmentID): no-op when the channel is already
    /// known on any node, buffer included; else AverageAssignPolicy and a ToWatch record.
    pub async fn watch(&self, spec: ChannelSpec) -> ClusterResult<()> {
        let mut op_state = self.ops.lock().await;
        self.watch_locked(&mut op_state, spec).await
    }

    /// Asks `node` to release `vchannel` (ToRelease record + timer); the release ack reassigns
    /// it, or finishes its drop when the channel is marked removed.
    pub async fn release(&self, node: NodeId, vchannel: &str) -> ClusterResult<()> {
        let mut op_state = self.ops.lock().await;
        self.release_locked(&mut op_state, node, vchannel).await
    }

    /// Whether `vchannel` is assigned to the real datanode `node` (validates datanode RPCs;
    /// buffered channels never match).
    pub fn matches(&self, node: NodeId, vchannel: &str) -> bool {
        node != BUFFER_NODE && self.read_store().get(node, vchannel).is_some()
    }

    /// The datanode assigned to `vchannel`; `None` when buffered or unknown.
    pub fn node_of(&self, vchannel: &str) -> Option<NodeId> {
        self.read_store()
            .find(vchannel)
            .map(|(node, _)| node)
            .filter(|node| *node != BUFFER_NODE)
    }

    /// Whether `vchannel` is known on any node, buffer included.
    pub fn contains(&self, vchannel: &str) -> bool {
        self.read_store().find(vchannel).is_some()
    }

    /// The channel and where it sits (buffer included).
    pub fn channel(&self, vchannel: &str) -> Option<(NodeId, ChannelSpec)> {
        self.read_store()
            .find(vchannel)
            .map(|(node, spec)| (node, spec.clone()))
    }

    /// `(node, vchannel)` of the collection's channels on real datanodes, sorted.
    pub fn channels_of_collection(&self, coll: CollectionId) -> Vec<(NodeId, String)> {
        let store = self.read_store();
        let mut found: Vec<(NodeId, String)> = store
            .real_nodes()
            .flat_map(|(node, channels)| {
                channels
                    .iter()
                    .filter(|channel| channel.collection_id == coll)
                    .map(move |channel| (node, channel.name.clone()))
            })
            .collect();
        found.sort();
        found
    }

    /// Every node (the buffer [`BUFFER_NODE`] included, even when empty) with its channels in
    /// assignment order; for metrics and debugging.
    pub fn assignments(&self) -> BTreeMap<NodeId, Vec<String>> {
        self.read_store()
            .all_nodes()
            .map(|(node, channels)| {
                let names = channels
                    .iter()
                    .map(|channel| channel.name.clone())
                    .collect();
                (node, names)
            })
            .collect()
    }

    /// Whether any datanode answer is still awaited (a running timer).
    pub fn has_running_timers(&self) -> bool {
        !self.lock_timers().is_empty()
    }

    /// Cancelled when the manager can no longer follow etcd (the watch failed beyond
    /// re-watching, or a write left memory and etcd possibly apart); the owner must stop, as Go's
    /// DataCoord panics there.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Waits for the tasks spawned by [`ChannelManager::startup`] to end; cancel the token given
    /// to `startup` first.
    pub async fn join(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// The settings in use.
    pub fn config(&self) -> &ChannelConfig {
        &self.config
    }

    pub(crate) fn read_store(&self) -> RwLockReadGuard<'_, ChannelStore> {
        self.store.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write_store(&self) -> std::sync::RwLockWriteGuard<'_, ChannelStore> {
        self.store.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lock_timers(&self) -> std::sync::MutexGuard<'_, Timers> {
        self.timers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn not_found(node: NodeId, channel: &str) -> ClusterError {
        ClusterError::ChannelNotFound {
            node,
            channel: channel.to_string(),
        }
    }
}
