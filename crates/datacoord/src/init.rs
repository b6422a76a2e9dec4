//! `initDataCoord`: connects the core to the cluster in 2.3.5's order (so a bad storage or
//! RootCoord setting fails init as it does in Go) — RootCoord, storage, the catalog, meta, the
//! channel manager, DataNodes/IndexNodes and their discovery — then builds the [`Services`].

use std::sync::Arc;
use std::time::Duration;

use datacoord_cluster::{ChannelConfig, ChannelManager};
use datacoord_index::{IndexCatalog, IndexMeta};
use datacoord_meta::{Catalog, Meta};
use milvus_config::DataCoordConfig;
use milvus_metastore::{EtcdKv, MetaKv, RootedKv};
use milvus_rootcoord_client::{
    Allocator, Broker, ClientConfig, CoordinatorBroker, EtcdResolver, RootCoordAllocator,
    RootCoordClient,
};
use milvus_storage::ChunkManager;
use milvus_types::{Backoff, MilvusError, MilvusResult, NodeClientCreator, NodeId};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::adapters::ChannelMeta;
use crate::background::Background;
use crate::clients::{DataNodeClient, IndexNodeClient, datanode_creator, indexnode_creator};
use crate::collections::Collections;
use crate::compaction::DataNodeCompaction;
use crate::discovery;
use crate::metrics::Metrics;
use crate::nodes::{EngineVersions, NodeManager};
use crate::services::{CoreParts, Services};

/// How often the whole meta load is attempted before init fails (2.3.5: 100, 200 ms apart).
const META_LOAD_ATTEMPTS: u32 = 100;
const META_LOAD_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(200),
    max: Duration::from_millis(200),
};

/// What the process handed the server before init (the clients it did not set are created
/// from the configuration).
pub(crate) struct Connections {
    pub(crate) etcd: etcd_client::Client,
    /// The catalog store when `metastore.type` is tikv.
    pub(crate) tikv: Option<Arc<dyn MetaKv>>,
    pub(crate) rootcoord: Option<RootCoordClient>,
    pub(crate) datanode_creator: Option<NodeClientCreator<DataNodeClient>>,
    pub(crate) indexnode_creator: Option<NodeClientCreator<IndexNodeClient>>,
}

/// An initialised core: the services, and the channel manager whose tasks `stop` joins.
pub(crate) struct Activated {
    pub(crate) services: Services,
    pub(crate) channel_manager: Arc<ChannelManager>,
}

/// `initDataCoord`: every dependency in 2.3.5's order; each failing step aborts. Discovery and
/// channel tasks run on `background`; `lost` is cancelled when they can no longer follow etcd.
pub(crate) async fn init_datacoord(
    config: &DataCoordConfig,
    connections: Connections,
    node_id: NodeId,
    metrics: &Metrics,
    background: &Background,
    lost: &CancellationToken,
) -> MilvusResult<Activated> {
    let Connections {
        etcd,
        tikv,
        rootcoord,
        datanode_creator: datanode_client,
        indexnode_creator: indexnode_client,
    } = connections;
    let meta_root = config.etcd.meta_root_path.clone();

    let rootcoord = match rootcoord {
        Some(client) => client,
        None => {
            let resolver = EtcdResolver::new(etcd.clone(), &meta_root);
            RootCoordClient::new(rootcoord_client_config(config, node_id), Arc::new(resolver))
                .map_err(MilvusError::from)?
        }
    };
    rootcoord.set_node_id(node_id);
    let broker: Arc<dyn Broker> = Arc::new(CoordinatorBroker::new(&rootcoord));
    info!("broker ready");

    let chunk_manager = ChunkManager::new(&config.storage)
        .await
        .map_err(|e| MilvusError::from(e).wrap("create chunk manager"))?;
    info!(root_path = chunk_manager.root_path(), "chunk manager ready");

    let etcd_kv = || -> Arc<dyn MetaKv> {
        let kv = EtcdKv::new(etcd.clone()).with_request_timeout(config.etcd.request_timeout);
        Arc::new(RootedKv::new(Arc::new(kv), &meta_root))
    };
    let catalog_kv = tikv.unwrap_or_else(etcd_kv);
    info!(backend = ?config.metastore, "catalog ready");

    let meta = Arc::new(load_meta(catalog_kv.clone()).await?);
    let index_meta = Arc::new(load_index_meta(catalog_kv).await?);
    let collections = Arc::new(Collections::new(broker.clone()));
    info!(segments = meta.segment_num(), "meta loaded");

    // Cluster: channel assignments (always in etcd, even with a TiKV catalog) and datanodes.
    let provider = Arc::new(ChannelMeta {
        meta: meta.clone(),
        collections: collections.clone(),
    });
    let channels = ChannelManager::new(
        ChannelConfig::from_config(config),
        etcd_kv(),
        etcd.clone(),
        meta_root.clone(),
        provider,
    )
    .await
    .map_err(|e| MilvusError::from(e).wrap("create channel manager"))?;
    let cluster_prefix = &config.common.cluster_prefix;
    let datanodes = Arc::new(NodeManager::new(
        "datanode",
        datanode_client
            .unwrap_or_else(|| datanode_creator(cluster_prefix, &config.grpc_clients.data_node)),
        metrics.datanode_num.clone(),
    ));
    let allocator: Arc<dyn Allocator> = Arc::new(RootCoordAllocator::new(&rootcoord));
    let indexnodes = Arc::new(NodeManager::new(
        "indexnode",
        indexnode_client
            .unwrap_or_else(|| indexnode_creator(cluster_prefix, &config.grpc_clients.index_node)),
        metrics.index_node_num.clone(),
    ));

    // Service discovery: the current nodes now, changes from the listed revision on. The
    // channel manager reconciles its stored assignments with the datanodes online now.
    let datanode_watch =
        discovery::list_and_watch(&etcd, &meta_root, "datanode", datanodes.as_ref()).await?;
    channels
        .startup(datanodes.node_ids(), background.token())
        .await
        .map_err(|e| MilvusError::from(e).wrap("channel manager startup"))?;
    let indexnode_watch =
        discovery::list_and_watch(&etcd, &meta_root, "indexnode", indexnodes.as_ref()).await?;
    let engine_versions = Arc::new(EngineVersions::default());
    let querynode_watch =
        discovery::list_and_watch(&etcd, &meta_root, "querynode", engine_versions.as_ref()).await?;
    {
        // A channel manager that can no longer follow etcd would hand out stale assignments;
        // like a lost session, the process stops and a standby takes over.
        let channels_lost = channels.lost();
        let lost = lost.clone();
        background.spawn(async move {
            channels_lost.cancelled().await;
            error!("channel manager lost etcd, stopping");
            lost.cancel();
        });
    }
    background.spawn_watching(discovery::run(
        datanode_watch,
        datanodes.clone(),
        Some(channels.clone()),
        background.token(),
        lost.clone(),
    ));
    background.spawn_watching(discovery::run(
        indexnode_watch,
        indexnodes.clone(),
        None,
        background.token(),
        lost.clone(),
    ));
    background.spawn_watching(discovery::run(
        querynode_watch,
        engine_versions.clone(),
        None,
        background.token(),
        lost.clone(),
    ));

    let parts = CoreParts {
        node_id,
        meta,
        index_meta,
        collections,
        broker,
        allocator,
        chunk_manager,
        channels: channels.clone(),
        compaction_nodes: Arc::new(DataNodeCompaction {
            node_id,
            nodes: datanodes.clone(),
            channels: channels.clone(),
        }),
        datanodes,
        indexnodes,
        engine_version: Arc::new(move || engine_versions.current()),
    };
    let services = Services::build(parts, config, metrics, background.clone()).await?;
    Ok(Activated {
        services,
        channel_manager: channels,
    })
}

fn rootcoord_client_config(config: &DataCoordConfig, node_id: NodeId) -> ClientConfig {
    let grpc = &config.grpc_clients.root_coord;
    ClientConfig {
        cluster: config.common.cluster_prefix.clone(),
        node_id,
        dial_timeout: grpc.dial_timeout,
        keep_alive_time: grpc.keep_alive_time,
        keep_alive_timeout: grpc.keep_alive_timeout,
        max_attempts: grpc.max_attempts,
        initial_backoff: grpc.initial_backoff,
        max_backoff: grpc.max_backoff,
        max_send_size: grpc.client_max_send_size,
        max_recv_size: grpc.client_max_recv_size,
        call_timeout: None,
    }
}

/// Loads the segment meta, retrying the whole load as 2.3.5 does.
async fn load_meta(kv: Arc<dyn MetaKv>) -> MilvusResult<Meta> {
    load_with_retry("meta", || Meta::load(Catalog::new(kv.clone()))).await
}

/// Loads the index meta (2.3.5 loads it with the segment meta, under the same retry).
async fn load_index_meta(kv: Arc<dyn MetaKv>) -> MilvusResult<IndexMeta> {
    load_with_retry("index meta", || {
        IndexMeta::load(IndexCatalog::new(kv.clone()))
    })
    .await
}

/// Runs `load` until it succeeds, at most [`META_LOAD_ATTEMPTS`] times.
async fn load_with_retry<T, E, F, Fut>(what: &str, load: F) -> MilvusResult<T>
where
    E: std::fmt::Display + Into<MilvusError>,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let loaded = milvus_types::retry(META_LOAD_BACKOFF, load, |err: &E, attempt| {
        if attempt >= META_LOAD_ATTEMPTS {
            return false;
        }
        warn!(attempt, error = %err, what, "load failed, retrying");
        true
    })
    .await;
    loaded.map_err(|err| err.into().wrap(format!("load {what}")))
}
