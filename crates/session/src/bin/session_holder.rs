//! Test helper process: registers an active-standby coordinator session and reports its progress
//! on stdout, one line per step, so tests can drive failover across real processes.
//!
//! Usage: `session-holder <etcd-endpoints> <meta-root> <role> <ttl-seconds> <address>`
//! Output: `REGISTERED <server_id>`, then `ACTIVE <server_id>` once it holds the bare key, and
//! `LOST <reason>` (exit code 1) if the session is lost. SIGTERM/SIGINT stop it cleanly.

use std::io::Write;
use std::time::Duration;

use milvus_session::{Session, SessionConfig, SessionRole};

fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args: Vec<String> = std::env::args().collect();
    let [_, endpoints, meta_root, role, ttl, address] = args.as_slice() else {
        eprintln!(
            "usage: session-holder <etcd-endpoints> <meta-root> <role> <ttl-seconds> <address>"
        );
        std::process::exit(2);
    };
    let endpoints: Vec<&str> = endpoints.split(',').collect();
    let ttl: u64 = ttl.parse().expect("ttl-seconds must be an integer");
    let client = etcd_client::Client::connect(&endpoints, None)
        .await
        .expect("connect to etcd");
    let mut config = SessionConfig::new(meta_root.as_str());
    config.ttl = Duration::from_secs(ttl);
    config.retry_times = 5;
    let session = Session::new(
        client,
        config,
        SessionRole::coordinator(role.as_str(), address.as_str()).with_active_standby(true),
    )
    .await
    .expect("create session");
    session.register().await.expect("register session");
    say(&format!("REGISTERED {}", session.server_id()));

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    let liveness = session.liveness();
    let server_id = session.server_id();
    tokio::select! {
        activated = session.process_active_standby(|| async move { say(&format!("ACTIVE {server_id}")) }) => {
            if let Err(err) = activated {
                say(&format!("LOST {err}"));
                std::process::exit(1);
            }
        }
        _ = terminate.recv() => { session.stop().await; return; }
        _ = tokio::signal::ctrl_c() => { session.stop().await; return; }
    }
    session
        .start_liveness_check()
        .expect("start liveness check");
    tokio::select! {
        () = liveness.lost() => {
            say(&format!("LOST {}", liveness.reason().unwrap_or_default()));
            session.stop().await;
            std::process::exit(1);
        }
        _ = terminate.recv() => session.stop().await,
        _ = tokio::signal::ctrl_c() => session.stop().await,
    }
}
