//! ServerID allocation, registration, previous incarnations, lease expiry, liveness, stop.
//! Needs a real etcd (`ETCD_ENDPOINTS`); see `milvus_session::testing`.

use std::collections::BTreeSet;
use std::time::Duration;

use etcd_client::{Client, EventType, PutOptions, WatchOptions};
use milvus_session::{
    Session, SessionConfig, SessionError, SessionInfo, SessionRole, allocate_server_id,
    get_sessions, server_id_key, session_key, testing,
};

const DEADLINE: Duration = Duration::from_secs(30);

fn config(meta_root: &str, ttl_secs: u64) -> SessionConfig {
    let mut config = SessionConfig::new(meta_root);
    config.ttl = Duration::from_secs(ttl_secs);
    config.retry_times = 3;
    config
}

async fn raw_get(client: &Client, key: &str) -> Option<(Vec<u8>, i64)> {
    let response = client.kv_client().get(key, None).await.unwrap();
    response
        .kvs()
        .first()
        .map(|kv| (kv.value().to_vec(), kv.lease()))
}

#[tokio::test]
async fn server_id_counter_starts_at_one_and_concurrent_allocations_are_unique() {
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let meta_root = testing::unique_meta_root("sid");

    assert_eq!(allocate_server_id(&client, &meta_root).await.unwrap(), 1);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let client = client.clone();
        let meta_root = meta_root.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..8 {
                ids.push(allocate_server_id(&client, &meta_root).await.unwrap());
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "duplicate ServerIDs: {all:?}");
    assert_eq!(
        unique,
        (2..=49).collect(),
        "IDs must be consecutive after 1"
    );
    let (counter, _) = raw_get(&client, &server_id_key(&meta_root)).await.unwrap();
    assert_eq!(counter, b"50");
    testing::cleanup(&client, &meta_root).await;
}

#[tokio::test]
async fn reused_server_id_does_not_touch_the_counter() {
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let meta_root = testing::unique_meta_root("reuse");
    let first = Session::new(
        client.clone(),
        config(&meta_root, 10),
        SessionRole::coordinator("indexcoord", "127.0.0.1:1"),
    )
    .await
    .unwrap();
    let second = Session::new(
        client.clone(),
        config(&meta_root, 10),
        SessionRole::coordinator("datacoord", "127.0.0.1:1").with_server_id(first.server_id()),
    )
    .await
    .unwrap();
    assert_eq!(first.server_id(), second.server_id());
    let (counter, _) = raw_get(&client, &server_id_key(&meta_root)).await.unwrap();
    assert_eq!(counter, (first.server_id() + 1).to_string().as_bytes());
    testing::cleanup(&client, &meta_root).await;
}

#[tokio::test]
async fn registered_sessions_are_listed_with_go_keys_and_json() {
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let meta_root = testing::unique_meta_root("reg");
    let coord = Session::new(
        client.clone(),
        config(&meta_root, 10),
        SessionRole::coordinator("datacoord", "127.0.0.1:13333"),
    )
    .await
    .unwrap();
    coord.register().await.unwrap();
    let node_a = Session::new(
        client.clone(),
        config(&meta_root, 10),
        SessionRole::node("datanode", "127.0.0.1:21124"),
    )
    .await
    .unwrap();
    node_a.register().await.unwrap();
    let node_b = Session::new(
        client.clone(),
        config(&meta_root, 10),
        SessionRole::node("datanode", "127.0.0.1:21125"),
    )
    .await
    .unwrap();
    node_b.register().await.unwrap();

    let (coords, revision) = get_sessions(&client, &meta_root, "datacoord")
        .await
        .unwrap();
    assert!(revision > 0);
    assert_eq!(coords.keys().collect::<Vec<_>>(), vec!["datacoord"]);
    let listed = &coords["datacoord"];
    assert_eq!(listed.server_id, coord.server_id());
    assert_eq!(listed.address, "127.0.0.1:13333");
    assert!(listed.exclusive && listed.trigger_kill);
    assert_eq!(listed.version, "2.3.5");
    assert_eq!(listed.lease_id, coord.lease_id());

    let (raw, lease) = raw_get(&client, &session_key(&meta_root, "datacoord"))
        .await
        .unwrap();
    assert_eq!(
        Some(lease),
        coord.lease_id(),
        "key is attached to the session lease"
    );
    assert_eq!(String::from_utf8(raw).unwrap(), coord.info().to_json());

    let (nodes, _) = get_sessions(&client, &meta_root, "datanode").await.unwrap();
    let expected: BTreeSet<String> = [node_a.server_id(), node_b.server_id()]
        .iter()
        .map(|id| format!("datanode-{id}"))
        .collect();
    assert_eq!(nodes.keys().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(nodes.values().all(|info| !info.exclusive));

    for session in [&coord, &node_a, &node_b] {
        session.stop().await;
    }
    for role in ["datacoord", "datanode"] {
        let (after, _) = get_sessions(&client, &meta_root, role).await.unwrap();
        assert!(after.is_empty(), "stop() must remove the keys: {after:?}");
    }
    testing::cleanup(&client, &meta_root).await;
}

#[tokio::test]
async fn previous_incarnation_at_same_address_is_replaced_and_loses_liveness() {
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let meta_root = testing::unique_meta_root("restart");
    let old = Session::new(
        client.clone(),
        config(&meta_root, 10),
        SessionRole::coordinator("datacoord", "127.0.0.1:13333"),
    )
    .await
    .unwrap();
    old.register().await.unwrap();
    old.start_liveness_check().unwrap();

    let new = Session::new(
        client.clone(),
        config(&meta_root, 10),
        SessionRole::coordinator("datacoord", "127.0.0.1:13333"),
    )
    .await
    .unwrap();
    assert!(new.server_id() > old.server_id());
    new.register().await.unwrap();

    let (sessions, _) = get_sessions(&client, &meta_root, "datacoord")
        .await
        .unwrap();
    assert_eq!(sessions["datacoord"].server_id, new.server_id());
    let old_liveness = old.liveness();
    tokio::time::timeout(DEADLINE, old_liveness.lost())
        .await
        .expect("old session must notice");
    assert!(new.liveness().reason().is_none());

    old.stop().await;
    new.stop().await;
    testing::cleanup(&client, &meta_root).await;
}

#[tokio::test]
async fn key_held_at_another_address_is_not_taken() {
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let meta_root = testing::unique_meta_root("taken");
    let holder = Session::new(
        client.clone(),
        config(&meta_root, 10),
        SessionRole::coordinator("datacoord", "127.0.0.1:1"),
    )
    .await
    .unwrap();
    holder.register().await.unwrap();
    let mut short_retry = config(&meta_root, 10);
    short_retry.retry_times = 2;
    let other = Session::new(
        client.clone(),
        short_retry,
        SessionRole::coordinator("datacoord", "127.0.0.1:2"),
    )
    .await
    .unwrap();
    let err = other.register().await.unwrap_err();
    assert!(matches!(err, SessionError::KeyTaken { .. }), "{err}");
    let (sessions, _) = get_sessions(&client, &meta_root, "datacoord")
        .await
        .unwrap();
    assert_eq!(sessions["datacoord"].server_id, holder.server_id());
    holder.stop().await;
    testing::cleanup(&client, &meta_root).await;
}

#[tokio::test]
async fn lease_expiry_deletes_the_key_when_keepalive_stops() {
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let meta_root = testing::unique_meta_root("expiry");
    let session = Session::new(
        client.clone(),
        config(&meta_root, 2),
        SessionRole::node("datanode", "127.0.0.1:3"),
    )
    .await
    .unwrap();
    session.register().await.unwrap();
    let key = session.key();
    let (_, lease) = raw_get(&client, &key).await.expect("registered");

    // Watch from now so the expiry cannot be missed.
    let revision = client
        .kv_client()
        .get(key.as_str(), None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let options = WatchOptions::new().with_start_revision(revision + 1);
    let mut watch = client
        .watch_client()
        .watch(key.as_str(), Some(options))
        .await
        .unwrap();

    // Dropping without stop(): keep-alive ends, the lease is not revoked, etcd must expire it.
    drop(session);
    let deleted = tokio::time::timeout(DEADLINE, async {
        while let Some(response) = watch.message().await.unwrap() {
            if response
                .events()
                .iter()
                .any(|event| event.event_type() == EventType::Delete)
            {
                return;
            }
        }
        panic!("watch ended");
    })
    .await;
    assert!(deleted.is_ok(), "key with lease {lease} not expired");
    assert!(raw_get(&client, &key).await.is_none());
    testing::cleanup(&client, &meta_root).await;
}

#[tokio::test]
async fn keepalive_keeps_the_key_past_its_ttl() {
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let meta_root = testing::unique_meta_root("alive");
    let session = Session::new(
        client.clone(),
        config(&meta_root, 1),
        SessionRole::node("datanode", "127.0.0.1:4"),
    )
    .await
    .unwrap();
    session.register().await.unwrap();
    session.start_liveness_check().unwrap();
    // Several TTLs: without keep-alive the key would be gone long before.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(raw_get(&client, &session.key()).await.is_some());
    assert!(!session.liveness().is_lost());
    session.stop().await;
    testing::cleanup(&client, &meta_root).await;
}

#[tokio::test]
async fn revoked_lease_or_deleted_key_fires_liveness() {
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let meta_root = testing::unique_meta_root("lost");

    let revoked = Session::new(
        client.clone(),
        config(&meta_root, 10),
        SessionRole::node("datanode", "127.0.0.1:5"),
    )
    .await
    .unwrap();
    revoked.register().await.unwrap();
    // Without the key watch only the keep-alive can notice.
    client
        .lease_client()
        .revoke(revoked.lease_id().unwrap())
        .await
        .unwrap();
    tokio::time::timeout(DEADLINE, revoked.liveness().lost())
        .await
        .expect("lease loss noticed");

    let deleted = Session::new(
        client.clone(),
        config(&meta_root, 10),
        SessionRole::coordinator("datacoord", "127.0.0.1:6"),
    )
    .await
    .unwrap();
    deleted.register().await.unwrap();
    deleted.start_liveness_check().unwrap();
    client
        .kv_client()
        .delete(deleted.key().as_str(), None)
        .await
        .unwrap();
    tokio::time::timeout(DEADLINE, deleted.liveness().lost())
        .await
        .expect("key deletion noticed");
    // "deleted" if the watch saw it, "gone" if the deletion won the race with the first read.
    let reason = deleted.liveness().reason().unwrap();
    assert!(
        reason == "session key deleted" || reason == "session key is gone",
        "{reason}"
    );

    revoked.stop().await;
    deleted.stop().await;
    testing::cleanup(&client, &meta_root).await;
}

#[tokio::test]
async fn stop_is_not_a_loss_and_going_stop_marks_the_record() {
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let meta_root = testing::unique_meta_root("stop");
    let session = Session::new(
        client.clone(),
        config(&meta_root, 10),
        SessionRole::node("indexnode", "127.0.0.1:7"),
    )
    .await
    .unwrap();
    session.register().await.unwrap();
    session.start_liveness_check().unwrap();
    session.going_stop().await.unwrap();
    let (raw, lease) = raw_get(&client, &session.key()).await.unwrap();
    let stored = SessionInfo::from_json("k", &raw).unwrap();
    assert!(stored.stopping);
    assert_eq!(
        Some(lease),
        session.lease_id(),
        "the stopping record keeps the lease"
    );

    session.stop().await;
    assert!(raw_get(&client, &session.key()).await.is_none());
    assert!(!session.liveness().is_lost());
    session.stop().await; // idempotent
    testing::cleanup(&client, &meta_root).await;
}

#[tokio::test]
async fn unparsable_version_fails_get_sessions() {
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let meta_root = testing::unique_meta_root("badver");
    let key = session_key(&meta_root, "querynode-9");
    client
        .kv_client()
        .put(
            key.as_str(),
            r#"{"ServerID":9,"Version":"nope"}"#,
            None::<PutOptions>,
        )
        .await
        .unwrap();
    let err = get_sessions(&client, &meta_root, "querynode")
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::Version { .. }), "{err}");
    testing::cleanup(&client, &meta_root).await;
}
