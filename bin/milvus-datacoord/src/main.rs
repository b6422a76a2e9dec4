//! `milvus-datacoord`: runs a Milvus 2.3.5 DataCoord from the deployment's `milvus.yaml`.
//!
//! Exit codes: 0 after SIGTERM/SIGINT (graceful stop, session revoked); 1 when init/start fails or
//! the etcd session is lost (2.3.5's TriggerKill: another datacoord may already be active).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use datacoord_grpc_server::DataCoordProcess;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};

#[derive(Parser, Debug)]
#[command(version, about = "Milvus 2.3.5 DataCoord")]
struct Args {
    /// Path of milvus.yaml. Default: $MILVUSCONF/milvus.yaml, else configs/milvus.yaml beside the
    /// working directory, else beside the executable.
    #[arg(long, env = "MILVUS_DATACOORD_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match milvus_config::load(args.config.as_deref()) {
        Ok(config) => Arc::new(config),
        Err(err) => {
            eprintln!("milvus-datacoord: {err}");
            return ExitCode::FAILURE;
        }
    };
    init_tracing(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            error!(error = %err, "tokio runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Arc<milvus_config::LoadedConfig>) -> ExitCode {
    let metrics_port = config.datacoord.metrics_port;
    let (mut sigterm, mut sigint) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        _ => {
            error!("cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let process = match DataCoordProcess::init(config, metrics_port).await {
        Ok(process) => process,
        Err(err) => {
            error!(error = %err, "datacoord failed to initialise");
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = process.start().await {
        error!(error = %err, "datacoord failed to start");
        process.stop().await;
        return ExitCode::FAILURE;
    }
    let lost = process.core().session_lost();
    let code = tokio::select! {
        _ = sigterm.recv() => { info!("SIGTERM received, stopping"); ExitCode::SUCCESS }
        _ = sigint.recv() => { info!("SIGINT received, stopping"); ExitCode::SUCCESS }
        _ = lost.cancelled() => { error!("session lost, stopping"); ExitCode::FAILURE }
    };
    process.stop().await;
    code
}

fn init_tracing(config: &milvus_config::LoadedConfig) {
    let log = &config.datacoord.log;
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        // Colour codes only for a terminal: log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
