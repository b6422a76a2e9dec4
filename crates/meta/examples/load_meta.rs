//! Loads a catalog from etcd and reports load time, CPU and memory: the measuring stick for the
//! meta's start-up cost (not a test).
//!
//! `cargo run --release -p datacoord-meta --example load_meta -- 127.0.0.1:2379 by-dev/meta`

use std::sync::Arc;
use std::time::Instant;

use datacoord_meta::{Catalog, Meta};
use milvus_metastore::{EtcdKv, RootedKv};

fn proc_status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_string())
        .unwrap_or_default()
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let endpoint = args.next().unwrap_or_else(|| "127.0.0.1:2379".into());
    let root = args.next().unwrap_or_else(|| "by-dev/meta".into());
    let client = etcd_client::Client::connect([endpoint], None)
        .await
        .expect("connect etcd");
    let kv = Arc::new(RootedKv::new(Arc::new(EtcdKv::new(client)), &root));
    let started = Instant::now();
    let meta = Meta::load(Catalog::new(kv)).await.expect("load");
    let elapsed = started.elapsed();
    println!(
        "segments={} load_ms={} cpu_s={:.2} rss={} hwm={}",
        meta.segment_num(),
        elapsed.as_millis(),
        cpu_seconds(),
        proc_status("VmRSS:"),
        proc_status("VmHWM:")
    );
}
