//! Two `milvus-datacoord` processes on one real etcd (`ETCD_ENDPOINTS`): the second waits as
//! StandBy; after `kill -9` of the first it becomes active once the dead lease expires; SIGTERM
//! then stops it with exit code 0 and revokes its session.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use milvus_proto::data::data_coord_client::DataCoordClient;
use milvus_proto::milvus::GetComponentStatesRequest;
use milvus_session::testing::{cleanup, connect, unique_meta_root};
use milvus_session::{SessionInfo, get_sessions};
use milvus_types::StateCode;

const TTL_SECONDS: u64 = 3;

/// A child process that is killed if the test ends (or panics) while it still runs.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn(config: &Path, log: &Path) -> Process {
    let child = Command::new(env!("CARGO_BIN_EXE_milvus-datacoord"))
        .arg("--config")
        .arg(config)
        .env_clear()
        .env("METRICS_PORT", "0")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).expect("log file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn milvus-datacoord");
    Process(child)
}

async fn sessions(etcd: &etcd_client::Client, meta_root: &str) -> Vec<(String, SessionInfo)> {
    let (sessions, _) = get_sessions(etcd, meta_root, "datacoord")
        .await
        .expect("get sessions");
    sessions.into_iter().collect()
}

async fn state(address: &str) -> Option<StateCode> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .ok()?
        .connect()
        .await
        .ok()?;
    let mut client = DataCoordClient::new(channel);
    let states = client
        .get_component_states(GetComponentStatesRequest {})
        .await
        .ok()?
        .into_inner();
    StateCode::try_from(states.state?.state_code).ok()
}

async fn wait_until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn second_instance_takes_over_after_kill_9() {
    let Some(etcd) = connect().await else { return };
    let meta_root = unique_meta_root("bin-standby");
    let root_path = meta_root.strip_suffix("/meta").expect("meta root");
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoints = std::env::var("ETCD_ENDPOINTS").expect("checked by connect()");
    let config = dir.path().join("milvus.yaml");
    std::fs::write(
        &config,
        format!(
            "etcd:\n  endpoints: {endpoints}\n  rootPath: {root_path}\n\
             dataCoord:\n  ip: 127.0.0.1\n  port: 0\n  enableActiveStandby: true\n\
             common:\n  storageType: local\n  session:\n    ttl: {TTL_SECONDS}\n\
             localStorage:\n  path: {}\n",
            dir.path().join("storage").display()
        ),
    )
    .expect("write config");

    let mut first = spawn(&config, &dir.path().join("first.log"));
    let first_session = wait_until(
        "the first to hold session/datacoord",
        Duration::from_secs(30),
        || async {
            sessions(&etcd, &meta_root)
                .await
                .into_iter()
                .find(|(k, _)| k == "datacoord")
                .map(|(_, s)| s)
        },
    )
    .await;
    wait_until(
        "the first to be Healthy",
        Duration::from_secs(30),
        || async {
            (state(&first_session.address).await == Some(StateCode::Healthy)).then_some(())
        },
    )
    .await;

    let mut second = spawn(&config, &dir.path().join("second.log"));
    let second_session = wait_until(
        "the second to register",
        Duration::from_secs(30),
        || async {
            sessions(&etcd, &meta_root)
                .await
                .into_iter()
                .map(|(_, s)| s)
                .find(|s| s.server_id != first_session.server_id)
        },
    )
    .await;
    let standby = wait_until("the second to answer", Duration::from_secs(30), || async {
        state(&second_session.address).await
    })
    .await;
    assert_eq!(standby, StateCode::StandBy);

    first.0.kill().expect("kill -9 the first");
    first.0.wait().expect("reap the first");
    let killed_at = Instant::now();
    let active = wait_until(
        "the second to win session/datacoord",
        Duration::from_secs(TTL_SECONDS + 15),
        || async {
            sessions(&etcd, &meta_root)
                .await
                .into_iter()
                .find(|(k, s)| k == "datacoord" && s.server_id == second_session.server_id)
                .map(|(_, s)| s)
        },
    )
    .await;
    assert_eq!(active.address, second_session.address);
    wait_until(
        "the second to be Healthy",
        Duration::from_secs(15),
        || async {
            (state(&second_session.address).await == Some(StateCode::Healthy)).then_some(())
        },
    )
    .await;
    eprintln!(
        "takeover after kill -9: {:?} (TTL {TTL_SECONDS} s)",
        killed_at.elapsed()
    );

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(second.0.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = second.0.wait().expect("wait for the second");
    assert_eq!(exit.code(), Some(0), "graceful stop exits 0");
    assert!(
        sessions(&etcd, &meta_root).await.is_empty(),
        "SIGTERM revokes the session at once"
    );
    cleanup(&etcd, &meta_root).await;
}
