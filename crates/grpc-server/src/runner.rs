//! `Run` = init + start, and the graceful stop, of a DataCoord process.
//!
//! Init: etcd client, own address, optional TiKV, gRPC serving **before** the component's Init (so
//! peers see Initializing/StandBy instead of connection errors), metrics HTTP, component Init.
//! Start: component Register (sessions, active-standby) then Start.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use datacoord::Server;
use milvus_config::{DataCoordConfig, LoadedConfig, MetastoreType};
use milvus_proto::data::data_coord_server::DataCoordServer;
use milvus_proto::index::index_coord_server::IndexCoordServer;
use milvus_types::{Component, DataCoordComponent, MilvusError, MilvusResult};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tracing::{info, warn};

use crate::http::{bind_http, serve_http};
use crate::service::DataCoordService;
use crate::validation::RequestValidator;

/// A running DataCoord process: gRPC + HTTP listeners and the component.
pub struct DataCoordProcess {
    core: Arc<Server>,
    grpc_shutdown: CancellationToken,
    http_shutdown: CancellationToken,
    grpc_task: JoinHandle<Result<(), tonic::transport::Error>>,
    http_task: JoinHandle<std::io::Result<()>>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
}

impl DataCoordProcess {
    /// Init: everything up to and including the component's `init`. The gRPC port is already
    /// serving when this returns (state Initializing, StandBy or, without active-standby, about to
    /// be started).
    pub async fn init(loaded: Arc<LoadedConfig>, metrics_port: u16) -> MilvusResult<Self> {
        let config = &loaded.datacoord;
        let etcd = connect_etcd(config).await?;
        let core = Server::new(loaded.clone());
        let ip = if config.datacoord.ip.is_empty() {
            local_ip()
        } else {
            config.datacoord.ip.clone()
        };

        let grpc_listener =
            TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], config.datacoord.port)))
                .await
                .map_err(|e| {
                    MilvusError::internal(format!("listen on :{}: {e}", config.datacoord.port))
                })?;
        let grpc_addr = grpc_listener
            .local_addr()
            .map_err(MilvusError::unexpected)?;
        core.set_address(format!("{ip}:{}", grpc_addr.port()));
        core.set_etcd_client(etcd);
        if config.metastore == MetastoreType::Tikv {
            core.set_tikv_client(connect_tikv(config).await?);
        }

        let grpc_shutdown = CancellationToken::new();
        let grpc_task = tokio::spawn(serve_grpc(
            grpc_listener,
            core.clone(),
            grpc_shutdown.clone(),
        ));
        info!(address = %core.address(), "datacoord gRPC serving");

        let http_listener = bind_http(metrics_port).await.map_err(|e| {
            MilvusError::internal(format!("listen on metrics port {metrics_port}: {e}"))
        })?;
        let http_addr = http_listener
            .local_addr()
            .map_err(MilvusError::unexpected)?;
        let http_shutdown = CancellationToken::new();
        let http_task = tokio::spawn(serve_http(
            http_listener,
            core.clone(),
            http_shutdown.clone(),
        ));

        let process = Self {
            core,
            grpc_shutdown,
            http_shutdown,
            grpc_task,
            http_task,
            grpc_addr,
            http_addr,
        };
        if let Err(err) = process.core.init().await {
            process.shutdown_listeners().await;
            return Err(err.wrap("datacoord init"));
        }
        Ok(process)
    }

    /// Start: Register (sessions; waiting for the active key happens in the background) then Start.
    pub async fn start(&self) -> MilvusResult<()> {
        self.core
            .register()
            .await
            .map_err(|e| e.wrap("datacoord register"))?;
        self.core
            .start()
            .await
            .map_err(|e| e.wrap("datacoord start"))
    }

    /// The component.
    pub fn core(&self) -> &Arc<Server> {
        &self.core
    }

    /// Where gRPC listens (port 0 in the config picks a free one).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Where `/metrics` and `/healthz` listen.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Graceful stop: stop accepting RPCs, stop the component (loops, then sessions), then HTTP.
    pub async fn stop(self) {
        self.grpc_shutdown.cancel();
        match tokio::time::timeout(Duration::from_secs(10), self.grpc_task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => warn!(error = %err, "gRPC server ended with an error"),
            Ok(Err(err)) => warn!(error = %err, "gRPC task failed"),
            Err(_) => warn!("gRPC server did not stop within 10 s"),
        }
        if let Err(err) = self.core.stop().await {
            warn!(error = %err, "datacoord stop");
        }
        self.http_shutdown.cancel();
        let _ = self.http_task.await;
        info!("datacoord process stopped");
    }

    async fn shutdown_listeners(&self) {
        self.grpc_shutdown.cancel();
        self.http_shutdown.cancel();
    }
}

async fn serve_grpc(
    listener: TcpListener,
    core: Arc<Server>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let config = core.config();
    let service = DataCoordService::new(core.clone());
    let id_source = core.clone();
    let validator = RequestValidator::new(
        core.cluster_prefix(),
        Arc::new(move || id_source.server_id()),
    );
    let recv = config.datacoord.grpc.server_max_recv_size;
    let send = config.datacoord.grpc.server_max_send_size;
    let data_coord = DataCoordServer::new(service.clone())
        .max_decoding_message_size(recv)
        .max_encoding_message_size(send);
    let index_coord = IndexCoordServer::new(service)
        .max_decoding_message_size(recv)
        .max_encoding_message_size(send);
    let check = validator.clone();
    let check_index = validator;
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(60)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(InterceptedService::new(data_coord, move |r| check.check(r)))
        .add_service(InterceptedService::new(index_coord, move |r| {
            check_index.check(r)
        }))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.cancelled_owned())
        .await
}

async fn connect_etcd(config: &DataCoordConfig) -> MilvusResult<etcd_client::Client> {
    // Refuse what we cannot honour instead of silently talking plaintext to a different etcd.
    if config.etcd.use_embed {
        return Err(MilvusError::parameter_invalid(
            "an external etcd (etcd.use.embed: false)",
            "etcd.use.embed: true",
        ));
    }
    if config.etcd.ssl.enabled {
        return Err(MilvusError::parameter_invalid(
            "etcd.ssl.enabled: false (etcd TLS is not supported yet)",
            "etcd.ssl.enabled: true",
        ));
    }
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(config.etcd.request_timeout);
    etcd_client::Client::connect(&config.etcd.endpoints, Some(options))
        .await
        .map_err(|e| {
            MilvusError::io_failed(format!("connect etcd {:?}: {e}", config.etcd.endpoints))
        })
}

#[cfg(feature = "tikv")]
async fn connect_tikv(config: &DataCoordConfig) -> MilvusResult<Arc<dyn milvus_metastore::MetaKv>> {
    let kv = milvus_metastore_tikv::TikvKv::connect(config.tikv.endpoints.clone())
        .await
        .map_err(MilvusError::from)?
        .with_request_timeout(config.tikv.request_timeout);
    Ok(Arc::new(milvus_metastore::RootedKv::new(
        Arc::new(kv),
        &config.tikv.meta_root_path,
    )))
}

#[cfg(not(feature = "tikv"))]
async fn connect_tikv(
    _config: &DataCoordConfig,
) -> MilvusResult<Arc<dyn milvus_metastore::MetaKv>> {
    Err(MilvusError::parameter_invalid(
        "a build with the `tikv` feature",
        "metastore.type: tikv",
    ))
}

/// The first non-loopback IPv4 address, as Go's `GetLocalIP`; learned from the route a UDP
/// socket would take (connecting a UDP socket sends nothing).
fn local_ip() -> String {
    let probe = || -> Option<IpAddr> {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
        socket.connect((Ipv4Addr::new(10, 255, 255, 255), 1)).ok()?;
        socket.local_addr().ok().map(|a| a.ip())
    };
    probe()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .to_string()
}
