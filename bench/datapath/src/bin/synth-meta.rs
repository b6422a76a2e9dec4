//! Writes N Flushed segments of one collection in the exact etcd layout of the Go 2.3.5
//! DataCoord, for benchmarks that need a big catalog. Run it while no DataCoord is active: a
//! running one does not see keys written behind its back until it restarts.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use datacoord_bench::{SynthSpec, connect_etcd, init_tracing, write_segments};
use milvus_types::compose_ts;

/// Positions are dated this far in the past, so they precede anything a live cluster writes next.
const BACKDATE_MS: u64 = 3_600_000;

#[derive(Debug, Parser)]
#[command(about = "Write synthetic Flushed segments into etcd (Milvus 2.3.5 DataCoord layout)")]
struct Args {
    /// etcd endpoint (host:port).
    #[arg(long)]
    etcd: String,
    /// Meta root.
    #[arg(long, default_value = "by-dev/meta")]
    root: String,
    /// collectionID.
    #[arg(long)]
    collection: i64,
    /// partitionID.
    #[arg(long)]
    partition: i64,
    /// Virtual channel names, comma-separated; segments go round-robin.
    #[arg(long, value_delimiter = ',', required = true)]
    channels: Vec<String>,
    /// Number of segments.
    #[arg(long)]
    segments: u64,
    /// Fields with an insert binlog (system fields 0 and 1 included).
    #[arg(long, value_delimiter = ',', default_value = "0,1,100,101")]
    fields: Vec<i64>,
    /// Primary-key field (gets the stats log).
    #[arg(long, default_value_t = 100)]
    pk_field: i64,
    /// First segment/log ID; far below RootCoord's TSO-based IDs so they never collide.
    #[arg(long, default_value_t = 1_000_000_000_000)]
    start_id: i64,
    /// num_of_rows per segment.
    #[arg(long, default_value_t = 2000)]
    rows: i64,
    /// max_row_num per segment (9586980 = 512 MiB / 56 B: int64 pk + 8-dim float vector + system fields).
    #[arg(long, default_value_t = 9_586_980)]
    max_row_num: i64,
    /// Datanode ID in the positions' msgGroup.
    #[arg(long, default_value_t = 2)]
    datanode_id: i64,
    /// Transactions in flight.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let args = Args::parse();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("clock before 1970")?
        .as_millis() as u64;
    let spec = SynthSpec {
        meta_root: args.root.trim_end_matches('/').to_string(),
        collection_id: args.collection,
        partition_id: args.partition,
        channels: args.channels,
        segments: args.segments,
        field_ids: args.fields,
        pk_field_id: args.pk_field,
        start_id: args.start_id,
        rows_per_segment: args.rows,
        max_row_num: args.max_row_num,
        datanode_id: args.datanode_id,
        base_ts: compose_ts(now_ms - BACKDATE_MS, 0),
    };
    let kv = connect_etcd(&args.etcd).await?;
    let report = write_segments(&kv, &spec, args.in_flight).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "wrote {} segments ({} keys, {} txns) of collection {} in {:.2}s; next --start-id {}",
            report.segments,
            report.keys,
            report.txns,
            spec.collection_id,
            report.elapsed.as_secs_f64(),
            report.next_id
        );
    }
    Ok(())
}
