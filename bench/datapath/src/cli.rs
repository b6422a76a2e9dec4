//! Command-line pieces the three binaries share.

use crate::{
    BenchResult, DataCoordBenchClient, RoutingMetadata, connect_datacoord, connect_etcd,
    read_server_id,
};

/// Where the DataCoord is and how to address it like a Go client does.
#[derive(Clone, Debug, clap::Args)]
pub struct TargetArgs {
    /// DataCoord gRPC address.
    #[arg(long, default_value = "127.0.0.1:13333")]
    pub addr: String,
    /// etcd endpoint to read the active DataCoord's ServerID from (`{root}/session/datacoord`).
    #[arg(long)]
    pub etcd: Option<String>,
    /// Meta root in etcd.
    #[arg(long, default_value = "by-dev/meta")]
    pub root: String,
    /// ServerID to send instead of reading it from etcd.
    #[arg(long)]
    pub server_id: Option<i64>,
    /// Cluster prefix sent as `cluster` metadata.
    #[arg(long, default_value = "by-dev")]
    pub cluster: String,
}

impl TargetArgs {
    /// Resolves the ServerID (flag, else etcd, else none with a warning) and connects.
    pub async fn connect(&self) -> BenchResult<(DataCoordBenchClient, Option<i64>)> {
        let server_id = match (self.server_id, &self.etcd) {
            (Some(id), _) => Some(id),
            (None, Some(endpoint)) => {
                let mut kv = connect_etcd(endpoint).await?;
                Some(read_server_id(&mut kv, &self.root).await?)
            }
            (None, None) => {
                tracing::warn!(
                    "neither --etcd nor --server-id given: calls carry no serverid metadata"
                );
                None
            }
        };
        let metadata = RoutingMetadata::new(&self.cluster, server_id)?;
        let client = connect_datacoord(&self.addr, metadata).await?;
        Ok((client, server_id))
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `warn`), so stdout carries only results.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// A latency cell: milliseconds with two decimals, or `n/a`.
pub fn ms_cell(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |ms| format!("{ms:.2}"))
}
