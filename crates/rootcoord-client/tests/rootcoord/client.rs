//! RootCoordClient against a real tonic server in this process.

use std::sync::Arc;
use std::time::Duration;

use milvus_proto::common::{MsgType, StateCode};
use milvus_rootcoord_client::{
    ClientConfig, RootCoordClient, RootCoordError, RootCoordTarget, StaticResolver,
};
use milvus_types::{ErrorCode, MilvusError};

use crate::support::{Behaviour, SERVER_CLUSTER, SequenceResolver, TestServer, fast_config};

fn client_for(server: &TestServer, config: ClientConfig) -> RootCoordClient {
    RootCoordClient::new(config, Arc::new(server.resolver())).expect("client")
}

fn not_ready() -> milvus_types::Status {
    MilvusError::service_not_ready("rootcoord", 7, "Initializing").to_status()
}

#[tokio::test]
async fn every_request_carries_cluster_serverid_and_a_filled_msg_base() {
    let server = TestServer::start(Behaviour::new(7), 100).await;
    let client = client_for(&server, fast_config(42));

    let (begin, count) = client.alloc_id(5).await.expect("alloc id");

    assert_eq!((begin, count), (100, 5));
    let state = server.lock();
    assert_eq!(state.seen.len(), 1);
    let seen = &state.seen[0];
    assert_eq!(seen.cluster.as_deref(), Some(SERVER_CLUSTER));
    assert_eq!(seen.server_id.as_deref(), Some("7"));
    assert_eq!(seen.source_id.as_deref(), Some("QEBtaWx2dXMtbWVtYmVyQEA="));
    let base = &state.alloc_bases[0];
    assert_eq!(base.msg_type, MsgType::RequestId as i32);
    assert_eq!(base.source_id, 42);
    assert_eq!(base.target_id, 7);
    assert_eq!(base.msg_id, 0);
}

#[tokio::test]
async fn node_id_set_later_is_used_as_source() {
    let server = TestServer::start(Behaviour::new(7), 1).await;
    let client = client_for(&server, fast_config(0));
    client.set_node_id(9);

    client.alloc_id(1).await.expect("alloc id");

    assert_eq!(server.lock().alloc_bases[0].source_id, 9);
}

#[tokio::test]
async fn retriable_status_is_retried_until_success() {
    let server = TestServer::start(Behaviour::new(7), 500).await;
    server
        .lock()
        .alloc_failures
        .extend([not_ready(), not_ready()]);
    let client = client_for(&server, fast_config(1));

    let (begin, _) = client.alloc_id(1).await.expect("third attempt succeeds");

    assert_eq!(begin, 500);
    assert_eq!(server.lock().alloc_bases.len(), 3);
}

#[tokio::test]
async fn retriable_status_gives_up_after_max_attempts() {
    let server = TestServer::start(Behaviour::new(7), 1).await;
    server
        .lock()
        .alloc_failures
        .extend((0..5).map(|_| not_ready()));
    let config = ClientConfig {
        max_attempts: 3,
        ..fast_config(1)
    };
    let client = client_for(&server, config);

    let err = client.alloc_id(1).await.expect_err("all attempts fail");

    assert_eq!(err.code(), ErrorCode::SERVICE_NOT_READY);
    assert!(err.is_retriable());
    assert_eq!(server.lock().alloc_bases.len(), 3);
}

#[tokio::test]
async fn non_retriable_status_returns_at_once_with_its_code() {
    let server = TestServer::start(Behaviour::new(7), 1).await;
    let client = client_for(&server, fast_config(1));

    let err = client
        .describe_collection_internal("", 404, 0)
        .await
        .expect_err("unknown collection");

    assert_eq!(err.code(), ErrorCode::COLLECTION_NOT_FOUND);
    assert!(matches!(err, RootCoordError::Status(_)));
    assert_eq!(err.to_milvus().to_status().error_code, 4);
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn unimplemented_is_a_non_retriable_service_unimplemented_error() {
    let server = TestServer::start_empty(7).await;
    let client = client_for(&server, fast_config(1));

    let err = client.alloc_timestamp(1).await.expect_err("unimplemented");

    assert!(matches!(err, RootCoordError::Unimplemented(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::SERVICE_UNIMPLEMENTED);
    let status = err.to_milvus().to_status();
    assert_eq!(status.code, 10);
    assert!(
        status.reason.starts_with("service unimplemented"),
        "{}",
        status.reason
    );
    assert!(!status.retriable);
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn internal_rpcs_fall_back_to_public_ones_when_unimplemented() {
    let behaviour = Behaviour {
        internal_rpcs: false,
        ..Behaviour::new(7)
    };
    let server = TestServer::start(behaviour, 1).await;
    server.add_collection("default", 11, vec![21, 22]);
    let client = client_for(&server, fast_config(1));

    let described = client
        .describe_collection_internal("", 11, 0)
        .await
        .expect("falls back to DescribeCollection");
    let partitions = client
        .show_partitions_internal(11)
        .await
        .expect("falls back to ShowPartitions");

    assert_eq!(described.collection_id, 11);
    assert_eq!(partitions.partition_i_ds, vec![21, 22]);
    // Internal attempt + fallback for each of the two calls.
    assert_eq!(server.request_count(), 4);
}

#[tokio::test]
async fn restarted_rootcoord_on_a_new_port_is_found_after_the_resolver_changes() {
    let first = TestServer::start(Behaviour::new(1), 100).await;
    let resolver = first.resolver();
    let client = RootCoordClient::new(fast_config(5), Arc::new(resolver.clone())).expect("client");
    assert_eq!(client.alloc_id(1).await.expect("first server").0, 100);
    first.stop().await;

    let second = TestServer::start(Behaviour::new(2), 9_000).await;
    resolver.set(second.address.clone(), second.server_id);
    let (begin, _) = client
        .alloc_id(1)
        .await
        .expect("re-resolved to the second server");

    assert_eq!(begin, 9_000);
    assert_eq!(
        client.connected_target().await,
        Some(RootCoordTarget {
            address: second.address.clone(),
            server_id: 2
        })
    );
    assert_eq!(second.lock().seen[0].server_id.as_deref(), Some("2"));
}

#[tokio::test]
async fn node_not_match_makes_the_client_resolve_again() {
    let server = TestServer::start(Behaviour::new(7), 1).await;
    let stale = RootCoordTarget {
        address: server.address.clone(),
        server_id: 99,
    };
    let fresh = RootCoordTarget {
        address: server.address.clone(),
        server_id: 7,
    };
    let resolver = Arc::new(SequenceResolver::new(vec![stale, fresh]));
    let client = RootCoordClient::new(fast_config(1), resolver.clone()).expect("client");

    client
        .alloc_id(1)
        .await
        .expect("succeeds after re-resolving");

    let seen_ids: Vec<_> = server
        .lock()
        .seen
        .iter()
        .map(|seen| seen.server_id.clone().unwrap_or_default())
        .collect();
    assert_eq!(seen_ids, vec!["99", "7"]);
    assert_eq!(resolver.calls(), 2);
    assert_eq!(server.lock().alloc_bases.len(), 1);
}

#[tokio::test]
async fn unreachable_rootcoord_is_resolved_again_on_every_attempt() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_address = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let resolver = Arc::new(SequenceResolver::new(vec![RootCoordTarget {
        address: closed_address,
        server_id: 3,
    }]));
    let config = ClientConfig {
        max_attempts: 3,
        ..fast_config(1)
    };
    let client = RootCoordClient::new(config, resolver.clone()).expect("client");

    let err = client.alloc_id(1).await.expect_err("nobody listens");

    assert!(matches!(err, RootCoordError::Connect { .. }), "{err:?}");
    assert_eq!(err.code(), ErrorCode::UNEXPECTED);
    assert_eq!(resolver.calls(), 3);
}

#[tokio::test]
async fn missing_rootcoord_session_is_a_resolve_error() {
    let config = ClientConfig {
        max_attempts: 2,
        ..fast_config(1)
    };
    let client = RootCoordClient::new(config, Arc::new(StaticResolver::empty())).expect("client");

    let err = client.list_databases().await.expect_err("no rootcoord");

    assert!(matches!(err, RootCoordError::Resolve(_)), "{err:?}");
}

#[tokio::test]
async fn call_timeout_bounds_a_hanging_rpc() {
    let behaviour = Behaviour {
        hang_timestamps: true,
        ..Behaviour::new(7)
    };
    let server = TestServer::start(behaviour, 1).await;
    let client = client_for(&server, fast_config(1)).with_timeout(Duration::from_millis(300));

    let err = client.alloc_timestamp(1).await.expect_err("never answered");

    assert!(matches!(err, RootCoordError::Timeout { .. }), "{err:?}");
    assert_eq!(err.code(), ErrorCode::TIMEOUT);
}

#[tokio::test]
async fn a_timeout_makes_the_next_call_check_the_session_again() {
    let behaviour = Behaviour {
        hang_timestamps: true,
        ..Behaviour::new(1)
    };
    let stale = TestServer::start(behaviour, 100).await;
    let resolver = stale.resolver();
    let client = RootCoordClient::new(fast_config(1), Arc::new(resolver.clone()))
        .expect("client")
        .with_timeout(Duration::from_millis(300));
    client.alloc_timestamp(1).await.expect_err("hangs");

    // The stale server still answers AllocID; only the session check can move the client.
    let fresh = TestServer::start(Behaviour::new(2), 5_000).await;
    resolver.set(fresh.address.clone(), fresh.server_id);
    let (begin, _) = client.alloc_id(1).await.expect("alloc");

    assert_eq!(begin, 5_000);
    assert!(stale.lock().alloc_bases.is_empty());
}

#[tokio::test]
async fn cross_cluster_rejection_ends_as_service_unavailable() {
    let server = TestServer::start(Behaviour::new(7), 1).await;
    let config = ClientConfig {
        cluster: "other-cluster".to_string(),
        max_attempts: 2,
        ..fast_config(1)
    };
    let client = client_for(&server, config);

    let err = client.alloc_id(1).await.expect_err("wrong cluster");

    assert!(
        matches!(err, RootCoordError::CrossClusterRouting(_)),
        "{err:?}"
    );
    assert_eq!(err.to_milvus().code(), ErrorCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.request_count(), 2);
    assert!(server.lock().alloc_bases.is_empty());
}

#[tokio::test]
async fn component_states_and_read_rpcs_return_server_data() {
    let server = TestServer::start(Behaviour::new(7), 1).await;
    server.add_collection("db1", 31, vec![41]);
    server.add_collection("db1", 32, vec![]);
    server.add_collection("default", 33, vec![]);
    server.lock().databases.push("db1".to_string());
    let client = client_for(&server, fast_config(1));

    let states = client.get_component_states().await.expect("states");
    let shown = client.show_collections("db1").await.expect("show");
    let databases = client.list_databases().await.expect("list");
    let (ts, count) = client.alloc_timestamp(3).await.expect("ts");

    let info = states.state.expect("state");
    assert_eq!(
        (info.node_id, info.state_code),
        (7, StateCode::Healthy as i32)
    );
    assert_eq!(shown.collection_ids, vec![31, 32]);
    assert_eq!(databases.db_names, vec!["default", "db1"]);
    assert_eq!(
        (ts, count),
        (milvus_types::compose_ts(1_700_000_000_000, 0), 3)
    );
    assert!(client.has_collection(31).await.expect("has"));
    assert!(!client.has_collection(404).await.expect("has"));
}

#[test]
fn invalid_cluster_name_is_rejected_up_front() {
    let config = ClientConfig {
        cluster: "bad\ncluster".to_string(),
        ..ClientConfig::default()
    };
    let result = RootCoordClient::new(config, Arc::new(StaticResolver::empty()));
    assert!(matches!(result, Err(RootCoordError::InvalidConfig(_))));
}

#[test]
fn defaults_are_the_2_3_5_grpc_client_settings() {
    let config = ClientConfig::default();
    assert_eq!(config.dial_timeout, Duration::from_millis(200));
    assert_eq!(config.keep_alive_time, Duration::from_millis(10_000));
    assert_eq!(config.keep_alive_timeout, Duration::from_millis(20_000));
    assert_eq!(config.max_attempts, 10);
    assert_eq!(config.initial_backoff, Duration::from_millis(200));
    assert_eq!(config.max_backoff, Duration::from_secs(10));
    assert_eq!(config.cluster, "by-dev");
}
