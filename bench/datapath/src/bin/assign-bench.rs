//! AssignSegmentID throughput and latency against a DataCoord, one closed-loop run per
//! concurrency level, as a proxy calls it (one SegmentIDRequest per call).

use clap::Parser;
use datacoord_bench::{
    AssignConfig, TargetArgs, init_tracing, ms_cell, parse_duration, run_assign_level,
};

#[derive(Debug, Parser)]
#[command(about = "AssignSegmentID throughput/latency per concurrency level")]
struct Args {
    #[command(flatten)]
    target: TargetArgs,
    /// collectionID.
    #[arg(long)]
    collection: i64,
    /// partitionID.
    #[arg(long)]
    partition: i64,
    /// Virtual channel names, comma-separated; calls use them round-robin.
    #[arg(long, value_delimiter = ',', required = true)]
    channels: Vec<String>,
    /// Concurrency levels, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<usize>,
    /// Measuring time per level (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: std::time::Duration,
    /// Rows asked for per call.
    #[arg(long, default_value_t = 100)]
    rows: u32,
    /// nodeID of the calling proxy.
    #[arg(long, default_value_t = 0)]
    node_id: i64,
    /// Deadline per call.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
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
    let config = AssignConfig {
        collection_id: args.collection,
        partition_id: args.partition,
        channels: args.channels,
        rows: args.rows,
        node_id: args.node_id,
        duration: args.duration,
        call_timeout: args.timeout,
    };
    let mut levels = Vec::new();
    for &concurrency in &args.concurrency {
        levels.push(run_assign_level(&client, &config, concurrency).await);
    }
    if args.json {
        let result = serde_json::json!({
            "addr": args.target.addr,
            "server_id": server_id,
            "collection": config.collection_id,
            "partition": config.partition_id,
            "channels": config.channels,
            "rows": config.rows,
            "levels": levels,
        });
        println!("{result}");
        return Ok(());
    }
    println!(
        "AssignSegmentID on {} (serverid {server_id:?}), {} rows/call",
        args.target.addr, config.rows
    );
    println!("| concurrency | calls | ok/s | p50 ms | p99 ms | errors | empty |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for level in &levels {
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {} |",
            level.concurrency,
            level.calls,
            level.ok_per_sec,
            ms_cell(level.latency.as_ref().map(|l| l.p50_ms)),
            ms_cell(level.latency.as_ref().map(|l| l.p99_ms)),
            level.errors,
            level.empty
        );
    }
    for level in levels.iter().filter(|level| level.errors > 0) {
        println!(
            "errors at concurrency {}: {:?}",
            level.concurrency, level.error_messages
        );
    }
    Ok(())
}
