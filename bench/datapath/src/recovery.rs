use std::time::{Duration, Instant};

use milvus_proto::common::{MsgBase, MsgType};
use milvus_proto::data::GetRecoveryInfoRequestV2;
use milvus_types::status_is_success;
use serde::Serialize;

use crate::{DataCoordBenchClient, ErrorTally, LatencySummary};

/// What every GetRecoveryInfoV2 call asks for.
#[derive(Clone, Debug)]
pub struct RecoveryConfig {
    /// `collectionID`.
    pub collection_id: i64,
    /// `partitionIDs` (empty: all partitions, as QueryCoord sends for a loaded collection).
    pub partition_ids: Vec<i64>,
    /// Number of sequential calls.
    pub calls: u32,
    /// `base.sourceID` of the calling "querycoord".
    pub node_id: i64,
    /// Deadline of one call.
    pub call_timeout: Duration,
}

/// Results of a GetRecoveryInfoV2 run.
#[derive(Clone, Debug, Serialize)]
pub struct RecoveryReport {
    /// Calls made.
    pub calls: u64,
    /// Calls answered Success.
    pub ok: u64,
    /// Calls that failed (gRPC error or non-success status).
    pub errors: u64,
    /// Latency of the successful calls.
    pub latency: Option<LatencySummary>,
    /// Fewest / most segments in a successful answer (an empty answer shows as 0).
    pub segments_min: Option<usize>,
    /// See `segments_min`.
    pub segments_max: Option<usize>,
    /// Fewest / most channels in a successful answer.
    pub channels_min: Option<usize>,
    /// See `channels_min`.
    pub channels_max: Option<usize>,
    /// Failure messages.
    pub error_messages: ErrorTally,
}

/// Calls GetRecoveryInfoV2 `config.calls` times, one at a time (as QueryCoord's periodic target
/// refresh does per collection).
pub async fn run_recovery(
    client: &DataCoordBenchClient,
    config: &RecoveryConfig,
) -> RecoveryReport {
    let mut client = client.clone();
    let mut latencies = Vec::new();
    let mut segment_counts = Vec::new();
    let mut channel_counts = Vec::new();
    let mut errors = ErrorTally::default();
    for _ in 0..config.calls {
        let mut request = tonic::Request::new(GetRecoveryInfoRequestV2 {
            base: Some(MsgBase {
                msg_type: MsgType::GetRecoveryInfo as i32,
                source_id: config.node_id,
                ..MsgBase::default()
            }),
            collection_id: config.collection_id,
            partition_i_ds: config.partition_ids.clone(),
        });
        request.set_timeout(config.call_timeout);
        let started = Instant::now();
        let answer = client.get_recovery_info_v2(request).await;
        let latency = started.elapsed();
        let response = match answer {
            Ok(response) => response.into_inner(),
            Err(status) => {
                errors.add(&format!("grpc {:?}: {}", status.code(), status.message()));
                continue;
            }
        };
        let status = response.status.unwrap_or_default();
        if !status_is_success(&status) {
            errors.add(&format!(
                "status code={} error_code={} reason={}",
                status.code, status.error_code, status.reason
            ));
            continue;
        }
        latencies.push(latency);
        segment_counts.push(response.segments.len());
        channel_counts.push(response.channels.len());
    }
    let ok = latencies.len() as u64;
    tracing::info!(
        calls = config.calls,
        ok,
        errors = errors.total(),
        "recovery run done"
    );
    RecoveryReport {
        calls: u64::from(config.calls),
        ok,
        errors: errors.total(),
        latency: LatencySummary::from_samples(&mut latencies),
        segments_min: segment_counts.iter().min().copied(),
        segments_max: segment_counts.iter().max().copied(),
        channels_min: channel_counts.iter().min().copied(),
        channels_max: channel_counts.iter().max().copied(),
        error_messages: errors,
    }
}
