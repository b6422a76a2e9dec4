//! Test support (feature `testing`): an isolated etcd root per test, a meta provider double and
//! a fake 2.3.5 datanode that answers watch records as the real one does.
//!
//! etcd comes from `ETCD_ENDPOINTS`; without it [`TestEtcd::connect`] returns `None` (skip),
//! unless `MILVUS_TEST_STRICT=1`, where it panics.

mod cluster;
mod datanode;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Client, DeleteOptions};
use milvus_metastore::{EtcdKv, MetaKv, RootedKv};
use milvus_proto::data::{ChannelWatchInfo, VchannelInfo};
use milvus_proto::msg::MsgPosition;
use milvus_types::{MilvusError, MilvusResult, NodeId};

use crate::manager::ChannelMetaProvider;
use crate::record;
use crate::store::ChannelSpec;

pub use cluster::{TestCluster, WAIT};
pub use datanode::{Behaviour, FakeDataNode, ReleaseReply, WatchReply};

/// One test's corner of etcd: `meta_root` = `test-…/meta`, removed by [`TestEtcd::cleanup`].
pub struct TestEtcd {
    /// Connected client.
    pub client: Client,
    /// This test's metaRoot.
    pub meta_root: String,
    /// etcd rooted at `meta_root`, as DataCoord hands it to the channel manager.
    pub kv: Arc<dyn MetaKv>,
}

impl TestEtcd {
    /// Connects to `ETCD_ENDPOINTS` under a fresh root; `None` means skip.
    ///
    /// # Panics
    /// When etcd is configured but unreachable, or unset with `MILVUS_TEST_STRICT=1`.
    pub async fn connect() -> Option<Self> {
        let endpoints = milvus_metastore::testing::etcd_endpoints()?;
        let client = Client::connect(&endpoints, None)
            .await
            .unwrap_or_else(|err| panic!("cannot connect to etcd at {endpoints:?}: {err}"));
        let meta_root = format!("{}/meta", milvus_metastore::testing::unique_root());
        let kv: Arc<dyn MetaKv> = Arc::new(RootedKv::new(
            Arc::new(EtcdKv::new(client.clone())),
            &meta_root,
        ));
        Some(Self {
            client,
            meta_root,
            kv,
        })
    }

    /// Every watch record under `{subpath}/`, decoded, by (node, vchannel from the key).
    pub async fn records(&self, subpath: &str) -> BTreeMap<(NodeId, String), ChannelWatchInfo> {
        let entries = self
            .kv
            .load_all_with_prefix(&record::all_prefix(subpath))
            .await
            .expect("list watch records");
        entries
            .into_iter()
            .map(|(key, value)| {
                let node = record::parse_node(&key).expect("node in key");
                let channel = key.rsplit('/').next().unwrap_or_default().to_string();
                let info = record::decode(&key, &value).expect("decodable watch record");
                ((node, channel), info)
            })
            .collect()
    }

    /// Puts a raw record (as a datanode or an older DataCoord would have left it).
    pub async fn put_record(
        &self,
        subpath: &str,
        node: NodeId,
        channel: &str,
        info: &ChannelWatchInfo,
    ) {
        use prost::Message;
        self.kv
            .save(
                &record::channel_key(subpath, node, channel),
                info.encode_to_vec().into(),
            )
            .await
            .expect("put watch record");
    }

    /// Deletes everything under this test's root.
    pub async fn cleanup(self) {
        let top = self.meta_root.split('/').next().unwrap_or_default();
        assert!(top.starts_with("test-"), "refusing to clean {top}");
        self.client
            .kv_client()
            .delete(format!("{top}/"), Some(DeleteOptions::new().with_prefix()))
            .await
            .expect("cleanup of the test root");
    }
}

/// A [`ChannelMetaProvider`] over in-memory removal flags: `vchan` carries the channel's name,
/// collection and a seek position built from its first start position.
#[derive(Debug, Default)]
pub struct FakeProvider {
    removed: Mutex<BTreeSet<String>>,
    finished: Mutex<Vec<String>>,
}

impl FakeProvider {
    /// A provider with no channel marked removed.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Marks the channel `removed` (as DropVirtualChannel does).
    pub fn mark_removed(&self, vchannel: &str) {
        lock(&self.removed).insert(vchannel.to_string());
    }

    /// Channels whose drop was finished, in call order.
    pub fn finished(&self) -> Vec<String> {
        lock(&self.finished).clone()
    }
}

#[async_trait]
impl ChannelMetaProvider for FakeProvider {
    fn vchannel_info(&self, channel: &ChannelSpec) -> VchannelInfo {
        let seek_position = channel.start_positions.first().map(|start| MsgPosition {
            channel_name: channel.name.clone(),
            msg_id: start.data.clone(),
            timestamp: channel.create_timestamp,
            ..MsgPosition::default()
        });
        VchannelInfo {
            collection_id: channel.collection_id,
            channel_name: channel.name.clone(),
            seek_position,
            ..VchannelInfo::default()
        }
    }

    fn should_drop(&self, vchannel: &str) -> bool {
        lock(&self.removed).contains(vchannel)
    }

    async fn finish_drop(&self, vchannel: &str) -> MilvusResult<()> {
        if !lock(&self.removed).remove(vchannel) {
            return Err(MilvusError::channel_not_found(vchannel));
        }
        lock(&self.finished).push(vchannel.to_string());
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A channel of collection `collection_id` named like a 2.3.5 DML vchannel.
pub fn channel_spec(collection_id: i64, shard: u32) -> ChannelSpec {
    ChannelSpec {
        name: format!("by-dev-rootcoord-dml_{shard}_{collection_id}v{shard}"),
        collection_id,
        ..ChannelSpec::default()
    }
}

/// Polls `condition` every 20 ms until it holds; panics with `what` after `timeout`. For
/// eventually-true outcomes only, never to measure time.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
