use std::time::Duration;

use etcd_client::{Client, KvClient};
use milvus_proto::data::data_coord_client::DataCoordClient;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::{BenchError, BenchResult};

/// gRPC metadata key naming the cluster prefix (`msgChannel.chanNamePrefix.cluster`); Go servers
/// reject calls whose value differs from theirs.
pub const CLUSTER_METADATA_KEY: &str = "cluster";
/// gRPC metadata key naming the ServerID the caller believes it talks to; Go servers reject a
/// mismatch (a stale client after a DataCoord switch-over).
pub const SERVER_ID_METADATA_KEY: &str = "serverid";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Adds the `cluster` and `serverid` metadata a Go client sends to every request.
#[derive(Clone, Debug)]
pub struct RoutingMetadata {
    cluster: AsciiMetadataValue,
    server_id: Option<AsciiMetadataValue>,
}

impl RoutingMetadata {
    /// Metadata for `cluster` (e.g. `by-dev`) and, when known, the target's ServerID.
    pub fn new(cluster: &str, server_id: Option<i64>) -> BenchResult<Self> {
        let cluster = cluster.parse().map_err(|_| {
            BenchError::InvalidArgument(format!("cluster {cluster:?} is not ASCII metadata"))
        })?;
        let server_id = server_id.map(AsciiMetadataValue::from);
        Ok(Self { cluster, server_id })
    }
}

impl Interceptor for RoutingMetadata {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let metadata = request.metadata_mut();
        metadata.insert(CLUSTER_METADATA_KEY, self.cluster.clone());
        if let Some(server_id) = &self.server_id {
            metadata.insert(SERVER_ID_METADATA_KEY, server_id.clone());
        }
        Ok(request)
    }
}

/// A DataCoord client that sends [`RoutingMetadata`].
pub type DataCoordBenchClient = DataCoordClient<InterceptedService<Channel, RoutingMetadata>>;

/// Dials `address` (`host:port`) once and wraps the connection in a DataCoord client.
pub async fn connect_datacoord(
    address: &str,
    metadata: RoutingMetadata,
) -> BenchResult<DataCoordBenchClient> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|err| BenchError::InvalidArgument(format!("address {address:?}: {err}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    let channel = endpoint
        .connect()
        .await
        .map_err(|source| BenchError::Connect {
            address: address.to_string(),
            source,
        })?;
    // Go clients accept answers up to 2 GiB; a 100k-segment recovery answer is several MiB.
    Ok(DataCoordClient::with_interceptor(channel, metadata).max_decoding_message_size(usize::MAX))
}

/// Connects to etcd at `endpoint` (`host:port`).
pub async fn connect_etcd(endpoint: &str) -> BenchResult<KvClient> {
    let client = Client::connect([endpoint], None).await?;
    Ok(client.kv_client())
}

/// The ServerID in the active DataCoord's session (`{meta_root}/session/datacoord`).
pub async fn read_server_id(kv: &mut KvClient, meta_root: &str) -> BenchResult<i64> {
    let key = format!("{meta_root}/session/datacoord");
    let session_error = |reason: String| BenchError::Session {
        key: key.clone(),
        reason,
    };
    let answer = kv.get(key.as_str(), None).await?;
    let Some(entry) = answer.kvs().first() else {
        return Err(session_error("no such key (no active DataCoord)".into()));
    };
    let session: serde_json::Value = serde_json::from_slice(entry.value())
        .map_err(|err| session_error(format!("not JSON: {err}")))?;
    session["ServerID"]
        .as_i64()
        .ok_or_else(|| session_error(format!("no integer ServerID in {session}")))
}

/// Parses `10s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit_secs) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(secs) = text.strip_suffix('s') {
        (secs, 1.0)
    } else if let Some(mins) = text.strip_suffix('m') {
        (mins, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s, 500ms or 2m"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{text:?} is not a non-negative duration"));
    }
    Ok(Duration::from_secs_f64(value * unit_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn interceptor_sets_both_keys() {
        let mut metadata = RoutingMetadata::new("by-dev", Some(42)).expect("ascii");
        let request = metadata.call(tonic::Request::new(())).expect("intercepted");
        let sent = request.metadata();
        assert_eq!(
            sent.get(CLUSTER_METADATA_KEY).map(|v| v.to_str().unwrap()),
            Some("by-dev")
        );
        assert_eq!(
            sent.get(SERVER_ID_METADATA_KEY)
                .map(|v| v.to_str().unwrap()),
            Some("42")
        );

        let mut without_id = RoutingMetadata::new("by-dev", None).expect("ascii");
        let request = without_id
            .call(tonic::Request::new(()))
            .expect("intercepted");
        assert!(request.metadata().get(SERVER_ID_METADATA_KEY).is_none());
    }
}
