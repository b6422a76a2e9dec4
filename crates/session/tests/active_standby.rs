//! Active-standby: in-process hand-over, forced take-over (indexcoord alias), and fail-over
//! between two real processes after `kill -9`. Needs a real etcd (`ETCD_ENDPOINTS`).

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::Client;
use milvus_session::{
    Session, SessionConfig, SessionError, SessionRole, get_sessions, session_key, testing,
};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const DEADLINE: Duration = Duration::from_secs(30);

fn config(meta_root: &str, ttl_secs: u64) -> SessionConfig {
    let mut config = SessionConfig::new(meta_root);
    config.ttl = Duration::from_secs(ttl_secs);
    config.retry_times = 3;
    config
}

async fn standby_coordinator(
    client: &Client,
    meta_root: &str,
    role: &str,
    port: u16,
) -> Arc<Session> {
    let session = Session::new(
        client.clone(),
        config(meta_root, 10),
        SessionRole::coordinator(role, format!("127.0.0.1:{port}")).with_active_standby(true),
    )
    .await
    .unwrap();
    session.register().await.unwrap();
    Arc::new(session)
}

async fn active_holder(client: &Client, meta_root: &str, role: &str) -> Option<i64> {
    let (sessions, _) = get_sessions(client, meta_root, role).await.unwrap();
    sessions.get(role).map(|info| info.server_id)
}

#[tokio::test]
async fn standby_takes_over_when_active_stops() {
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let meta_root = testing::unique_meta_root("as");
    let first = standby_coordinator(&client, &meta_root, "datacoord", 1).await;
    assert!(first.is_standby());
    assert_eq!(
        first.key(),
        session_key(&meta_root, &format!("datacoord-{}", first.server_id()))
    );
    let activated = first
        .process_active_standby(|| async { "first active" })
        .await
        .unwrap();
    assert_eq!(activated, "first active");
    assert!(!first.is_standby());
    assert_eq!(first.key(), session_key(&meta_root, "datacoord"));

    let second = standby_coordinator(&client, &meta_root, "datacoord", 2).await;
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let competitor = {
        let second = Arc::clone(&second);
        tokio::spawn(async move {
            second
                .process_active_standby(|| async move {
                    let _ = tx.send(());
                })
                .await
        })
    };
    // Both instance keys exist; the bare key stays with the first while it lives.
    let (sessions, _) = get_sessions(&client, &meta_root, "datacoord")
        .await
        .unwrap();
    assert!(sessions.contains_key(&format!("datacoord-{}", first.server_id())));
    assert!(sessions.contains_key(&format!("datacoord-{}", second.server_id())));
    assert_eq!(
        active_holder(&client, &meta_root, "datacoord").await,
        Some(first.server_id())
    );
    assert!(
        rx.try_recv().is_err(),
        "second must not activate while first holds the key"
    );

    first.stop().await;
    tokio::time::timeout(DEADLINE, competitor)
        .await
        .expect("second activates")
        .unwrap()
        .unwrap();
    rx.try_recv().expect("activate closure ran");
    assert_eq!(
        active_holder(&client, &meta_root, "datacoord").await,
        Some(second.server_id())
    );
    second.stop().await;
    testing::cleanup(&client, &meta_root).await;
}

#[tokio::test]
async fn standby_wait_ends_on_stop() {
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let meta_root = testing::unique_meta_root("asstop");
    let first = standby_coordinator(&client, &meta_root, "datacoord", 1).await;
    first.process_active_standby(|| async {}).await.unwrap();
    let second = standby_coordinator(&client, &meta_root, "datacoord", 2).await;
    let competitor = {
        let second = Arc::clone(&second);
        tokio::spawn(async move { second.process_active_standby(|| async {}).await })
    };
    tokio::task::yield_now().await;
    second.stop().await;
    let outcome = tokio::time::timeout(DEADLINE, competitor)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(outcome, Err(SessionError::Cancelled)),
        "{outcome:?}"
    );
    assert_eq!(
        active_holder(&client, &meta_root, "datacoord").await,
        Some(first.server_id())
    );
    first.stop().await;
    testing::cleanup(&client, &meta_root).await;
}

#[tokio::test]
async fn force_active_revokes_the_old_holder_lease() {
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let meta_root = testing::unique_meta_root("force");
    let old = standby_coordinator(&client, &meta_root, "indexcoord", 1).await;
    old.force_active_standby().await.unwrap();
    assert_eq!(
        active_holder(&client, &meta_root, "indexcoord").await,
        Some(old.server_id())
    );

    let new = standby_coordinator(&client, &meta_root, "indexcoord", 2).await;
    new.force_active_standby().await.unwrap();
    assert!(!new.is_standby());
    let (sessions, _) = get_sessions(&client, &meta_root, "indexcoord")
        .await
        .unwrap();
    assert_eq!(sessions["indexcoord"].server_id, new.server_id());
    assert_eq!(sessions["indexcoord"].lease_id, new.lease_id());
    assert!(
        !sessions.contains_key(&format!("indexcoord-{}", old.server_id())),
        "revoking the old lease removes all its keys: {sessions:?}"
    );
    tokio::time::timeout(DEADLINE, old.liveness().lost())
        .await
        .expect("old holder loses its lease");

    // Forcing again while holding the key keeps our own lease.
    new.force_active_standby().await.unwrap();
    assert!(!new.liveness().is_lost());
    old.stop().await;
    new.stop().await;
    testing::cleanup(&client, &meta_root).await;
}

#[tokio::test]
async fn force_active_deletes_stale_keys_without_lease() {
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let meta_root = testing::unique_meta_root("forcestale");
    let mut kv = client.kv_client();
    let stale = r#"{"ServerID":77,"ServerName":"indexcoord","Address":"127.0.0.1:9","Exclusive":true,"TriggerKill":true,"Version":"2.3.5","IndexEngineVersion":{}}"#;
    kv.put(session_key(&meta_root, "indexcoord"), stale, None)
        .await
        .unwrap();
    kv.put(session_key(&meta_root, "indexcoord-77"), stale, None)
        .await
        .unwrap();

    let new = standby_coordinator(&client, &meta_root, "indexcoord", 2).await;
    new.force_active_standby().await.unwrap();
    let (sessions, _) = get_sessions(&client, &meta_root, "indexcoord")
        .await
        .unwrap();
    let mut keys: Vec<_> = sessions.keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "indexcoord".to_owned(),
            format!("indexcoord-{}", new.server_id())
        ]
    );
    assert_eq!(sessions["indexcoord"].server_id, new.server_id());
    new.stop().await;
    testing::cleanup(&client, &meta_root).await;
}

struct Holder {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Holder {
    fn spawn(endpoints: &str, meta_root: &str, ttl_secs: u64, port: u16) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_session-holder"))
            .args([
                endpoints,
                meta_root,
                "datacoord",
                &ttl_secs.to_string(),
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(Stdio::piped())
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("spawn session-holder");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, lines }
    }

    /// Reads stdout until a line starting with `word`; returns the rest of the line.
    async fn expect(&mut self, word: &str, within: Duration) -> String {
        let found = tokio::time::timeout(within, async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                if let Some(rest) = line.strip_prefix(word) {
                    return rest.trim().to_owned();
                }
                assert!(!line.starts_with("LOST"), "holder lost its session: {line}");
            }
            panic!("session-holder exited before printing {word}");
        })
        .await;
        found.unwrap_or_else(|_| panic!("session-holder did not print {word} in time"))
    }
}

#[tokio::test]
async fn failover_between_processes_after_kill_9() {
    testing::init_tracing();
    let Some(client) = testing::connect().await else {
        return;
    };
    let endpoints = testing::etcd_endpoints().unwrap().join(",");
    let meta_root = testing::unique_meta_root("failover");
    let ttl_secs = 3;

    let mut first = Holder::spawn(&endpoints, &meta_root, ttl_secs, 1);
    let first_id: i64 = first.expect("REGISTERED", DEADLINE).await.parse().unwrap();
    assert_eq!(
        first
            .expect("ACTIVE", DEADLINE)
            .await
            .parse::<i64>()
            .unwrap(),
        first_id
    );

    let mut second = Holder::spawn(&endpoints, &meta_root, ttl_secs, 2);
    let second_id: i64 = second.expect("REGISTERED", DEADLINE).await.parse().unwrap();
    assert_ne!(first_id, second_id);
    // The second is registered (its own key exists) yet the bare key stays with the first.
    let (sessions, _) = get_sessions(&client, &meta_root, "datacoord")
        .await
        .unwrap();
    assert!(
        sessions.contains_key(&format!("datacoord-{second_id}")),
        "{sessions:?}"
    );
    assert_eq!(sessions["datacoord"].server_id, first_id);

    let pid = first.child.id().expect("first holder running");
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    first.child.wait().await.unwrap();

    // The lease of the killed process expires after ttl; then the standby must win.
    let activated = second
        .expect("ACTIVE", Duration::from_secs(ttl_secs + 15))
        .await;
    assert_eq!(activated.parse::<i64>().unwrap(), second_id);
    assert_eq!(
        active_holder(&client, &meta_root, "datacoord").await,
        Some(second_id)
    );

    second.child.start_kill().unwrap();
    second.child.wait().await.unwrap();
    testing::cleanup(&client, &meta_root).await;
}
