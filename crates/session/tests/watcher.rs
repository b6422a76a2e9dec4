//! SessionWatcher: live add/update/delete, version filter, and no lost event across a broken
//! stream or a compacted revision. Needs a real etcd (`ETCD_ENDPOINTS`).

use std::time::Duration;

use etcd_client::Client;
use milvus_session::{
    Session, SessionConfig, SessionEvent, SessionEventKind, SessionRole, SessionWatcher,
    session_key, testing,
};

const DEADLINE: Duration = Duration::from_secs(30);

fn config(meta_root: &str) -> SessionConfig {
    let mut config = SessionConfig::new(meta_root);
    config.ttl = Duration::from_secs(10);
    config.retry_times = 3;
    config
}

async fn datanode(client: &Client, meta_root: &str, port: u16) -> Session {
    let session = Session::new(
        client.clone(),
        config(meta_root),
        SessionRole::node("datanode", format!("127.0.0.1:{port}")),
    )
    .await
    .unwrap();
    session.register().await.unwrap();
    session
}

async fn next(watcher: &mut SessionWatcher) -> SessionEvent {
    tokio::time::timeout(DEADLINE, watcher.next())
        .await
        .expect("event expected")
        .unwrap()
}

fn summary(event: &SessionEvent) -> (SessionEventKind, String, bool) {
    (event.kind, event.key.clone(), event.session.stopping)
}

fn key_of(session: &Session) -> String {
    format!("datanode-{}", session.server_id())
}

#[tokio::test]
async fn watcher_reports_add_update_delete() {
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let meta_root = testing::unique_meta_root("watch");
    let first = datanode(&client, &meta_root, 1).await;
    let (initial, mut watcher) =
        SessionWatcher::list_and_watch(&client, &meta_root, "datanode", None)
            .await
            .unwrap();
    assert_eq!(
        initial.keys().cloned().collect::<Vec<_>>(),
        vec![key_of(&first)]
    );

    let second = datanode(&client, &meta_root, 2).await;
    let added = next(&mut watcher).await;
    assert_eq!(
        summary(&added),
        (SessionEventKind::Add, key_of(&second), false)
    );
    assert_eq!(added.session.server_id, second.server_id());
    assert_eq!(added.session.address, "127.0.0.1:2");

    second.going_stop().await.unwrap();
    assert_eq!(
        summary(&next(&mut watcher).await),
        (SessionEventKind::Update, key_of(&second), true)
    );

    second.stop().await;
    let deleted = next(&mut watcher).await;
    assert_eq!(
        summary(&deleted),
        (SessionEventKind::Delete, key_of(&second), true)
    );
    assert_eq!(
        deleted.session.server_id,
        second.server_id(),
        "delete carries the previous record"
    );

    first.stop().await;
    assert_eq!(
        summary(&next(&mut watcher).await),
        (SessionEventKind::Delete, key_of(&first), false)
    );
    assert!(watcher.known().is_empty());
    testing::cleanup(&client, &meta_root).await;
}

#[tokio::test]
async fn version_filter_hides_old_nodes() {
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let meta_root = testing::unique_meta_root("wver");
    let min = Some(semver::Version::new(2, 2, 3));
    let mut kv = client.kv_client();
    kv.put(
        session_key(&meta_root, "datanode-50"),
        r#"{"ServerID":50,"TriggerKill":true,"Version":"2.2.0","IndexEngineVersion":{}}"#,
        None,
    )
    .await
    .unwrap();
    let (initial, mut watcher) =
        SessionWatcher::list_and_watch(&client, &meta_root, "datanode", min)
            .await
            .unwrap();
    assert!(initial.is_empty(), "{initial:?}");

    kv.put(
        session_key(&meta_root, "datanode-51"),
        r#"{"ServerID":51,"TriggerKill":true,"Version":"2.2.1","IndexEngineVersion":{}}"#,
        None,
    )
    .await
    .unwrap();
    kv.delete(session_key(&meta_root, "datanode-50"), None)
        .await
        .unwrap();
    let fresh = datanode(&client, &meta_root, 3).await;
    // The old nodes' put and delete must not show up before the new node's add.
    assert_eq!(
        summary(&next(&mut watcher).await),
        (SessionEventKind::Add, key_of(&fresh), false)
    );
    fresh.stop().await;
    testing::cleanup(&client, &meta_root).await;
}

/// Changes made while the stream is down: a deletion, a stopping update, an addition, and a
/// node replaced under the same key by another incarnation.
#[tokio::test]
async fn broken_stream_loses_no_event() {
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let meta_root = testing::unique_meta_root("wbreak");
    let leaving = datanode(&client, &meta_root, 1).await;
    let stopping = datanode(&client, &meta_root, 2).await;
    let (initial, mut watcher) =
        SessionWatcher::list_and_watch(&client, &meta_root, "datanode", None)
            .await
            .unwrap();
    assert_eq!(initial.len(), 2);

    watcher.break_stream();
    leaving.stop().await;
    stopping.going_stop().await.unwrap();
    let joined = datanode(&client, &meta_root, 3).await;

    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(summary(&next(&mut watcher).await));
    }
    assert_eq!(
        events,
        vec![
            (SessionEventKind::Delete, key_of(&leaving), false),
            (SessionEventKind::Update, key_of(&stopping), true),
            (SessionEventKind::Add, key_of(&joined), false),
        ]
    );

    // Live watching resumes after the re-list.
    joined.stop().await;
    assert_eq!(
        summary(&next(&mut watcher).await),
        (SessionEventKind::Delete, key_of(&joined), false)
    );
    stopping.stop().await;
    assert_eq!(
        summary(&next(&mut watcher).await),
        (SessionEventKind::Delete, key_of(&stopping), true)
    );
    testing::cleanup(&client, &meta_root).await;
}

/// The watch starts at a revision etcd has compacted away: the watcher must re-list and report
/// what changed. Compaction is global, so only history up to this test's own recent writes is
/// compacted.
#[tokio::test]
async fn compacted_revision_loses_no_event() {
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let meta_root = testing::unique_meta_root("wcompact");
    let leaving = datanode(&client, &meta_root, 1).await;
    let (initial, revision) = milvus_session::get_sessions(&client, &meta_root, "datanode")
        .await
        .unwrap();
    let mut watcher =
        SessionWatcher::from_snapshot(&client, &meta_root, "datanode", None, initial, revision);

    leaving.stop().await;
    let joined = datanode(&client, &meta_root, 2).await;
    let current = client
        .kv_client()
        .get("x", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    assert!(current > revision + 1);
    client.kv_client().compact(current, None).await.unwrap();

    let events = vec![
        summary(&next(&mut watcher).await),
        summary(&next(&mut watcher).await),
    ];
    assert_eq!(
        events,
        vec![
            (SessionEventKind::Delete, key_of(&leaving), false),
            (SessionEventKind::Add, key_of(&joined), false),
        ]
    );

    joined.stop().await;
    assert_eq!(
        summary(&next(&mut watcher).await),
        (SessionEventKind::Delete, key_of(&joined), false)
    );
    testing::cleanup(&client, &meta_root).await;
}

#[tokio::test]
async fn watcher_as_stream() {
    use futures::StreamExt;
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let meta_root = testing::unique_meta_root("wstream");
    let (_, watcher) = SessionWatcher::list_and_watch(&client, &meta_root, "datanode", None)
        .await
        .unwrap();
    let mut stream = Box::pin(watcher.into_stream());
    let node = datanode(&client, &meta_root, 9).await;
    let event = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        summary(&event),
        (SessionEventKind::Add, key_of(&node), false)
    );
    node.stop().await;
    testing::cleanup(&client, &meta_root).await;
}
