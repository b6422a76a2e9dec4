use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use milvus_proto::data::{AssignSegmentIdRequest, AssignSegmentIdResponse, SegmentIdRequest};
use milvus_types::status_is_success;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::{DataCoordBenchClient, ErrorTally, LatencySummary};

/// The proxy's role name in AssignSegmentID (datanodes send it as well).
const PEER_ROLE: &str = "proxy";

/// What every AssignSegmentID call asks for.
#[derive(Clone, Debug)]
pub struct AssignConfig {
    /// `collectionID`.
    pub collection_id: i64,
    /// `partitionID`.
    pub partition_id: i64,
    /// Channels, used round-robin across all calls.
    pub channels: Vec<String>,
    /// Rows per request (`count`).
    pub rows: u32,
    /// `nodeID` of the calling "proxy".
    pub node_id: i64,
    /// Measuring time per concurrency level.
    pub duration: Duration,
    /// Deadline of one call.
    pub call_timeout: Duration,
}

/// Results of one concurrency level.
#[derive(Clone, Debug, Serialize)]
pub struct AssignLevelReport {
    /// Calls in flight at any time.
    pub concurrency: usize,
    /// Measured wall time in seconds (until the last call returned).
    pub elapsed_s: f64,
    /// Calls completed.
    pub calls: u64,
    /// Calls answered Success with an assignment for the request.
    pub ok: u64,
    /// Successful calls per second.
    pub ok_per_sec: f64,
    /// Calls that failed: gRPC error, non-success status, or a non-success assignment.
    pub errors: u64,
    /// Calls answered Success without any assignment (2.3.5 skips a request it cannot serve).
    pub empty: u64,
    /// Latency of the successful calls.
    pub latency: Option<LatencySummary>,
    /// Failure messages.
    pub error_messages: ErrorTally,
}

enum Outcome {
    Ok,
    Empty,
    Failed(String),
}

fn classify(answer: Result<tonic::Response<AssignSegmentIdResponse>, tonic::Status>) -> Outcome {
    let response = match answer {
        Ok(response) => response.into_inner(),
        Err(status) => {
            return Outcome::Failed(format!("grpc {:?}: {}", status.code(), status.message()));
        }
    };
    let status = response.status.unwrap_or_default();
    if !status_is_success(&status) {
        return Outcome::Failed(format!(
            "status code={} error_code={} reason={}",
            status.code, status.error_code, status.reason
        ));
    }
    if response.seg_id_assignments.is_empty() {
        return Outcome::Empty;
    }
    for assignment in &response.seg_id_assignments {
        let status = assignment.status.clone().unwrap_or_default();
        if !status_is_success(&status) {
            return Outcome::Failed(format!(
                "assignment status code={} reason={}",
                status.code, status.reason
            ));
        }
    }
    Outcome::Ok
}

#[derive(Default)]
struct WorkerStats {
    latencies: Vec<Duration>,
    calls: u64,
    empty: u64,
    errors: ErrorTally,
}

async fn worker(
    mut client: DataCoordBenchClient,
    config: Arc<AssignConfig>,
    next_channel: Arc<AtomicU64>,
    deadline: Instant,
) -> WorkerStats {
    let mut stats = WorkerStats::default();
    while Instant::now() < deadline {
        let turn = next_channel.fetch_add(1, Ordering::Relaxed);
        let channel = &config.channels[(turn % config.channels.len() as u64) as usize];
        let mut request = tonic::Request::new(AssignSegmentIdRequest {
            node_id: config.node_id,
            peer_role: PEER_ROLE.to_string(),
            segment_id_requests: vec![SegmentIdRequest {
                count: config.rows,
                channel_name: channel.clone(),
                collection_id: config.collection_id,
                partition_id: config.partition_id,
                is_import: false,
                import_task_id: 0,
            }],
        });
        request.set_timeout(config.call_timeout);
        let started = Instant::now();
        let answer = client.assign_segment_id(request).await;
        let latency = started.elapsed();
        stats.calls += 1;
        match classify(answer) {
            Outcome::Ok => stats.latencies.push(latency),
            Outcome::Empty => stats.empty += 1,
            Outcome::Failed(message) => stats.errors.add(&message),
        }
    }
    stats
}

/// Runs `concurrency` callers in a closed loop for `config.duration`, all sharing `client`'s
/// connection (as a proxy's calls do).
pub async fn run_assign_level(
    client: &DataCoordBenchClient,
    config: &AssignConfig,
    concurrency: usize,
) -> AssignLevelReport {
    assert!(!config.channels.is_empty(), "AssignConfig needs a channel");
    let config = Arc::new(config.clone());
    let next_channel = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + config.duration;
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        workers.spawn(worker(
            client.clone(),
            Arc::clone(&config),
            Arc::clone(&next_channel),
            deadline,
        ));
    }
    let mut latencies = Vec::new();
    let mut calls = 0;
    let mut empty = 0;
    let mut errors = ErrorTally::default();
    while let Some(joined) = workers.join_next().await {
        let stats = joined.expect("assign worker panicked");
        latencies.extend(stats.latencies);
        calls += stats.calls;
        empty += stats.empty;
        errors.merge(stats.errors);
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let ok = latencies.len() as u64;
    tracing::info!(
        concurrency,
        calls,
        ok,
        errors = errors.total(),
        empty,
        "assign level done"
    );
    AssignLevelReport {
        concurrency,
        elapsed_s,
        calls,
        ok,
        ok_per_sec: ok as f64 / elapsed_s,
        errors: errors.total(),
        empty,
        latency: LatencySummary::from_samples(&mut latencies),
        error_messages: errors,
    }
}
