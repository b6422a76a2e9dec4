//! GetRecoveryInfoV2 latency against a DataCoord and the size of its answers, called one at a
//! time as QueryCoord's target refresh does.

use clap::Parser;
use datacoord_bench::{
    RecoveryConfig, TargetArgs, init_tracing, ms_cell, parse_duration, run_recovery,
};

#[derive(Debug, Parser)]
#[command(about = "GetRecoveryInfoV2 latency and answer size")]
struct Args {
    #[command(flatten)]
    target: TargetArgs,
    /// collectionID.
    #[arg(long)]
    collection: i64,
    /// partitionIDs, comma-separated (default: none = all partitions).
    #[arg(long, value_delimiter = ',')]
    partitions: Vec<i64>,
    /// Number of sequential calls.
    #[arg(long, default_value_t = 200)]
    calls: u32,
    /// base.sourceID of the calling querycoord.
    #[arg(long, default_value_t = 0)]
    node_id: i64,
    /// Deadline per call.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: std::time::Duration,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let args = Args::parse();
    let (client, server_id) = args.target.connect().await?;
    let config = RecoveryConfig {
        collection_id: args.collection,
        partition_ids: args.partitions,
        calls: args.calls,
        node_id: args.node_id,
        call_timeout: args.timeout,
    };
    let report = run_recovery(&client, &config).await;
    if args.json {
        let result = serde_json::json!({
            "addr": args.target.addr,
            "server_id": server_id,
            "collection": config.collection_id,
            "report": report,
        });
        println!("{result}");
        return Ok(());
    }
    let range = |min: Option<usize>, max: Option<usize>| match (min, max) {
        (Some(min), Some(max)) if min == max => min.to_string(),
        (Some(min), Some(max)) => format!("{min}..{max}"),
        _ => "n/a".to_string(),
    };
    println!(
        "GetRecoveryInfoV2 on {} (serverid {server_id:?}), collection {}",
        args.target.addr, config.collection_id
    );
    println!("| calls | ok | errors | p50 ms | p99 ms | segments | channels |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {} | {} | {} |",
        report.calls,
        report.ok,
        report.errors,
        ms_cell(report.latency.as_ref().map(|l| l.p50_ms)),
        ms_cell(report.latency.as_ref().map(|l| l.p99_ms)),
        range(report.segments_min, report.segments_max),
        range(report.channels_min, report.channels_max)
    );
    if report.errors > 0 {
        println!("errors: {:?}", report.error_messages);
    }
    Ok(())
}
