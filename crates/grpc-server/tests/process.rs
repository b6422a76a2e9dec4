//! The whole DataCoord process in-process, against a real etcd (`ETCD_ENDPOINTS`): lifecycle,
//! both gRPC services, request checks, the unimplemented list, HTTP, active-standby hand-over.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use datacoord_grpc_server::DataCoordProcess;
use http::uri::PathAndQuery;
use milvus_config::LoadedConfig;
use milvus_proto::data::data_coord_client::DataCoordClient;
use milvus_proto::index::index_coord_client::IndexCoordClient;
use milvus_proto::internal::{GetStatisticsChannelRequest, ShowConfigurationsRequest};
use milvus_proto::milvus::{CheckHealthRequest, GetComponentStatesRequest, GetMetricsRequest};
use milvus_session::testing::{cleanup, connect, unique_meta_root};
use milvus_session::{SessionInfo, get_sessions};
use milvus_types::StateCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

struct Fixture {
    etcd: etcd_client::Client,
    meta_root: String,
    dir: tempfile::TempDir,
}

impl Fixture {
    async fn new(tag: &str) -> Option<Self> {
        let etcd = connect().await?;
        let meta_root = unique_meta_root(tag);
        Some(Self {
            etcd,
            meta_root,
            dir: tempfile::tempdir().expect("tempdir"),
        })
    }

    fn root_path(&self) -> &str {
        self.meta_root
            .strip_suffix("/meta")
            .expect("meta root ends with /meta")
    }

    /// A milvus.yaml for one datacoord of this fixture's cluster: loopback, a free port, local
    /// storage, a 10 s session TTL; `overrides` (dotted keys) replace or add values.
    fn config(&self, name: &str, overrides: &[(&str, &str)]) -> Arc<LoadedConfig> {
        let endpoints = std::env::var("ETCD_ENDPOINTS").expect("checked by connect()");
        let storage = self.dir.path().join("storage").display().to_string();
        let mut settings: std::collections::BTreeMap<&str, String> = [
            ("etcd.endpoints", endpoints),
            ("etcd.rootPath", self.root_path().to_string()),
            ("etcd.metaSubPath", "meta".to_string()),
            ("dataCoord.ip", "127.0.0.1".to_string()),
            ("dataCoord.port", "0".to_string()),
            ("dataCoord.enableActiveStandby", "false".to_string()),
            ("common.storageType", "local".to_string()),
            ("common.session.ttl", "10".to_string()),
            ("localStorage.path", storage),
        ]
        .into_iter()
        .collect();
        for (key, value) in overrides {
            settings.insert(key, value.to_string());
        }
        // YAML is a superset of JSON: nest the dotted keys and write JSON.
        let mut root = serde_json::Map::new();
        for (key, value) in settings {
            let mut parts: Vec<&str> = key.split('.').collect();
            let leaf = parts.pop().expect("non-empty key");
            let mut node = &mut root;
            for part in parts {
                node = node
                    .entry(part)
                    .or_insert_with(|| serde_json::Value::Object(Default::default()))
                    .as_object_mut()
                    .expect("a section");
            }
            node.insert(leaf.to_string(), serde_json::Value::String(value));
        }
        let file = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, serde_json::to_string_pretty(&root).unwrap()).expect("write config");
        Arc::new(load(&file))
    }

    async fn active_session(&self) -> Option<SessionInfo> {
        let (sessions, _) = get_sessions(&self.etcd, &self.meta_root, "datacoord")
            .await
            .expect("get sessions");
        sessions.get("datacoord").cloned()
    }

    async fn cleanup(self) {
        cleanup(&self.etcd, &self.meta_root).await;
    }
}

fn load(file: &Path) -> LoadedConfig {
    LoadedConfig::from_parts(Some(file), std::iter::empty::<(String, String)>()).expect("config")
}

async fn start(config: Arc<LoadedConfig>) -> DataCoordProcess {
    let process = DataCoordProcess::init(config, 0).await.expect("init");
    process.start().await.expect("start");
    process
}

async fn channel(process: &DataCoordProcess) -> Channel {
    let addr = process.grpc_addr();
    Channel::from_shared(format!("http://127.0.0.1:{}", addr.port()))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

async fn state_of(channel: &Channel) -> (StateCode, i64, String) {
    let states = DataCoordClient::new(channel.clone())
        .get_component_states(GetComponentStatesRequest {})
        .await
        .expect("GetComponentStates")
        .into_inner();
    let info = states.state.expect("state");
    (
        StateCode::try_from(info.state_code).expect("state code"),
        info.node_id,
        info.role,
    )
}

async fn wait_for_state(channel: &Channel, wanted: StateCode, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (state, _, _) = state_of(channel).await;
        if state == wanted {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {state:?}, wanted {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Calls `/{service}/{method}` with an empty message; returns the gRPC code.
async fn call_empty(channel: &Channel, service: &str, method: &str) -> tonic::Code {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("ready");
    let path = PathAndQuery::try_from(format!("/{service}/{method}")).expect("path");
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match grpc.unary(tonic::Request::new(()), path, codec).await {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}

async fn http_get(addr: std::net::SocketAddr, path: &str, json: bool) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", addr.port()))
        .await
        .expect("tcp");
    let content_type = if json {
        "Content-Type: application/json\r\n"
    } else {
        ""
    };
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{content_type}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response[9..12].parse().expect("status code");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Method names of a service as listed in the README's unimplemented section.
fn readme_unimplemented(service: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let begin = readme
        .find("<!-- unimplemented:begin -->")
        .expect("begin marker");
    let end = readme
        .find("<!-- unimplemented:end -->")
        .expect("end marker");
    let section = &readme[begin..end];
    let start = section
        .find(&format!("- {service}:"))
        .expect("service line");
    let rest = &section[start + service.len() + 3..];
    let items = rest.split("\n- ").next().unwrap_or(rest);
    items
        .split(',')
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty() && m != "none")
        .collect()
}

fn service_methods(full_name: &str) -> Vec<String> {
    use prost::Message;
    let fds =
        prost_types::FileDescriptorSet::decode(milvus_proto::FILE_DESCRIPTOR_SET).expect("fds");
    let (package, name) = full_name.rsplit_once('.').expect("qualified");
    fds.file
        .iter()
        .filter(|f| f.package() == package)
        .flat_map(|f| f.service.iter())
        .filter(|s| s.name() == name)
        .flat_map(|s| s.method.iter().map(|m| m.name().to_string()))
        .collect()
}

#[tokio::test]
async fn serves_both_services_and_registers_its_session() {
    let Some(fixture) = Fixture::new("dc-process").await else {
        return;
    };
    let process = start(fixture.config("a", &[])).await;
    let channel = channel(&process).await;

    let (state, node_id, role) = state_of(&channel).await;
    assert_eq!((state, role.as_str()), (StateCode::Healthy, "datacoord"));
    let session = fixture
        .active_session()
        .await
        .expect("session/datacoord exists");
    assert_eq!(session.server_id, node_id);
    assert_eq!(
        session.address,
        format!("127.0.0.1:{}", process.grpc_addr().port())
    );
    assert!(session.exclusive && session.trigger_kill);
    let (aliases, _) = get_sessions(&fixture.etcd, &fixture.meta_root, "indexcoord")
        .await
        .unwrap();
    assert_eq!(
        aliases.get("indexcoord").map(|s| s.server_id),
        Some(node_id)
    );

    // IndexCoord answers with the same handler (role "datacoord").
    let states = IndexCoordClient::new(channel.clone())
        .get_component_states(GetComponentStatesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(states.state.unwrap().role, "datacoord");

    let mut client = DataCoordClient::new(channel.clone());
    let stats = client
        .get_statistics_channel(GetStatisticsChannelRequest {})
        .await
        .unwrap();
    assert_eq!(stats.into_inner().status.unwrap().code, 500);
    let configs = client
        .show_configurations(ShowConfigurationsRequest {
            base: None,
            pattern: "datacoord.port".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(configs.status.unwrap().code, 0);
    assert!(
        configs
            .configuations
            .iter()
            .any(|kv| kv.key == "datacoord.port" && kv.value == "0")
    );
    let metrics = client
        .get_metrics(GetMetricsRequest {
            base: None,
            request: r#"{"metric_type":"system_info"}"#.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(metrics.status.unwrap().code, 0);
    assert_eq!(metrics.component_name, format!("datacoord{node_id}"));
    let topology: serde_json::Value = serde_json::from_str(&metrics.response).unwrap();
    assert_eq!(topology["cluster"]["self"]["id"], node_id);
    let unknown = client
        .get_metrics(GetMetricsRequest {
            base: None,
            request: r#"{"metric_type":"nope"}"#.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unknown.status.unwrap().code, 1200);
    let health = client
        .check_health(CheckHealthRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(health.is_healthy, "{:?}", health.reasons);

    let (code, body) = http_get(process.http_addr(), "/healthz", false).await;
    assert_eq!((code, body.as_str()), (200, "OK"));
    let (_, body) = http_get(process.http_addr(), "/healthz", true).await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["detail"][0]["code"], StateCode::Healthy as i32);
    let (code, body) = http_get(process.http_addr(), "/metrics", false).await;
    assert_eq!(code, 200);
    assert!(
        body.contains(&format!(
            "milvus_num_node{{node_id=\"{node_id}\",role_name=\"datacoord\"}} 1"
        )),
        "{body}"
    );
    assert!(body.contains("process_resident_memory_bytes"));

    process.stop().await;
    assert!(
        fixture.active_session().await.is_none(),
        "stop revokes the session"
    );
    fixture.cleanup().await;
}

#[tokio::test]
async fn rejects_other_clusters_and_other_server_ids() {
    let Some(fixture) = Fixture::new("dc-validate").await else {
        return;
    };
    let process = start(fixture.config("a", &[])).await;
    let channel = channel(&process).await;
    let (_, node_id, _) = state_of(&channel).await;
    let mut client = DataCoordClient::new(channel.clone());
    let mut call = async |metadata: &[(&'static str, String)]| {
        let mut request = tonic::Request::new(GetComponentStatesRequest {});
        for (key, value) in metadata {
            request.metadata_mut().insert(*key, value.parse().unwrap());
        }
        client.get_component_states(request).await
    };

    let err = call(&[("serverid", (node_id + 1).to_string())])
        .await
        .expect_err("other server id");
    assert!(
        err.message().contains("node not match"),
        "{}",
        err.message()
    );
    let err = call(&[("cluster", "another-cluster".to_string())])
        .await
        .expect_err("other cluster");
    assert!(
        err.message().contains("cross cluster routing"),
        "{}",
        err.message()
    );
    let matching = [
        ("serverid", node_id.to_string()),
        ("cluster", "by-dev".to_string()),
    ];
    assert!(call(&matching).await.is_ok());

    process.stop().await;
    fixture.cleanup().await;
}

#[tokio::test]
async fn unimplemented_methods_are_exactly_the_readme_list() {
    let Some(fixture) = Fixture::new("dc-unimpl").await else {
        return;
    };
    let process = start(fixture.config("a", &[])).await;
    let channel = channel(&process).await;
    for (service, short) in [
        ("milvus.proto.data.DataCoord", "DataCoord"),
        ("milvus.proto.index.IndexCoord", "IndexCoord"),
    ] {
        let listed = readme_unimplemented(short);
        let methods = service_methods(service);
        assert!(!methods.is_empty(), "{service} has methods");
        for name in &listed {
            assert!(
                methods.contains(name),
                "README lists {short}.{name}, which does not exist"
            );
        }
        for method in &methods {
            let code = call_empty(&channel, service, method).await;
            let unimplemented = code == tonic::Code::Unimplemented;
            assert_eq!(
                unimplemented,
                listed.contains(method),
                "{service}/{method} answered {code:?}; README lists it: {}",
                listed.contains(method)
            );
        }
    }
    process.stop().await;
    fixture.cleanup().await;
}

#[tokio::test]
async fn standby_takes_over_when_the_active_one_stops() {
    let Some(fixture) = Fixture::new("dc-standby").await else {
        return;
    };
    let first = start(fixture.config("a", &[("dataCoord.enableActiveStandby", "true")])).await;
    let first_channel = channel(&first).await;
    wait_for_state(&first_channel, StateCode::Healthy, Duration::from_secs(20)).await;
    let second = start(fixture.config("b", &[("dataCoord.enableActiveStandby", "true")])).await;
    let second_channel = channel(&second).await;
    let (state, second_id, _) = state_of(&second_channel).await;
    assert_eq!(state, StateCode::StandBy);

    // A standby refuses work with a retriable ServiceNotReady, but answers GetMetrics.
    let mut client = DataCoordClient::new(second_channel.clone());
    let configs = client
        .show_configurations(ShowConfigurationsRequest {
            base: None,
            pattern: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let status = configs.status.unwrap();
    assert_eq!(
        (status.code, status.error_code, status.retriable),
        (1, 56, true)
    );
    assert!(status.reason.contains("StandBy"), "{}", status.reason);
    let metrics = client
        .get_metrics(GetMetricsRequest {
            base: None,
            request: r#"{"metric_type":"system_info"}"#.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(metrics.status.unwrap().code, 0);
    let (code, body) = http_get(second.http_addr(), "/healthz", false).await;
    assert_eq!((code, body.as_str()), (200, "OK"));

    first.stop().await;
    wait_for_state(&second_channel, StateCode::Healthy, Duration::from_secs(20)).await;
    let session = fixture.active_session().await.expect("active session");
    assert_eq!(session.server_id, second_id);
    second.stop().await;
    fixture.cleanup().await;
}

#[tokio::test]
async fn remote_storage_bucket_is_created_at_init() {
    let Some(fixture) = Fixture::new("dc-s3").await else {
        return;
    };
    let s3_dir = fixture.dir.path().join("s3");
    std::fs::create_dir_all(&s3_dir).unwrap();
    let s3 = milvus_storage::testing::S3TestServer::start(&s3_dir)
        .await
        .expect("s3 server");
    let port = s3.port.to_string();
    let config = fixture.config(
        "s3",
        &[
            ("common.storageType", "minio"),
            ("minio.address", &s3.address),
            ("minio.port", &port),
            ("minio.accessKeyID", &s3.access_key),
            ("minio.secretAccessKey", &s3.secret_key),
            ("minio.bucketName", "dc-test-bucket"),
            ("minio.rootPath", "files"),
        ],
    );
    assert_eq!(
        config.datacoord.storage.storage_type,
        milvus_storage::StorageType::Minio
    );
    assert!(!s3_dir.join("dc-test-bucket").exists());
    let process = start(config).await;
    assert!(
        s3_dir.join("dc-test-bucket").is_dir(),
        "init creates the bucket, as 2.3.5 does"
    );
    process.stop().await;
    fixture.cleanup().await;
}

#[tokio::test]
async fn settings_we_cannot_honour_fail_init_clearly() {
    let Some(fixture) = Fixture::new("dc-embed").await else {
        return;
    };
    for (key, name) in [("etcd.use.embed", "embed"), ("etcd.ssl.enabled", "tls")] {
        let config = fixture.config(name, &[(key, "true")]);
        let err = DataCoordProcess::init(config, 0)
            .await
            .err()
            .expect("refused");
        assert_eq!(
            err.code(),
            milvus_types::ErrorCode::PARAMETER_INVALID,
            "{key}"
        );
        assert!(err.to_string().contains(key), "{err}");
    }
    assert!(fixture.active_session().await.is_none());
    fixture.cleanup().await;
}
