use std::time::{Duration, Instant};

use etcd_client::{KvClient, Txn, TxnOp};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::{BenchError, BenchResult, MAX_TXN_OPS, SynthSpec};

/// What [`write_segments`] wrote.
#[derive(Clone, Debug, Serialize)]
pub struct WriteReport {
    /// Segments written.
    pub segments: u64,
    /// Keys written.
    pub keys: u64,
    /// Transactions committed.
    pub txns: u64,
    /// Wall time of the whole write.
    #[serde(serialize_with = "as_secs")]
    pub elapsed: Duration,
    /// The first ID after the ones used.
    pub next_id: i64,
}

fn as_secs<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

/// Writes every segment of `spec` with up to `in_flight` transactions outstanding.
///
/// A segment's keys always share one transaction, so a reader never sees a segment without its
/// logs; transactions hold whole segments up to [`MAX_TXN_OPS`] keys.
pub async fn write_segments(
    kv: &KvClient,
    spec: &SynthSpec,
    in_flight: usize,
) -> BenchResult<WriteReport> {
    spec.validate()?;
    if in_flight == 0 {
        return Err(BenchError::InvalidArgument(
            "in-flight transactions must be > 0".into(),
        ));
    }
    let started = Instant::now();
    let per_txn = (MAX_TXN_OPS / spec.keys_per_segment()) as u64;
    let batches = spec.segments.div_ceil(per_txn);
    let keys = futures::stream::iter(0..batches)
        .map(|batch| {
            let first = batch * per_txn;
            let last = (first + per_txn).min(spec.segments);
            let ops: Vec<TxnOp> = (first..last)
                .flat_map(|index| spec.segment_records(index))
                .map(|(key, value)| TxnOp::put(key, value, None))
                .collect();
            let mut client = kv.clone();
            async move {
                let count = ops.len() as u64;
                client.txn(Txn::new().and_then(ops)).await?;
                tracing::debug!(batch, segments = last - first, "txn committed");
                Ok::<u64, BenchError>(count)
            }
        })
        .buffer_unordered(in_flight)
        .try_fold(0u64, |total, count| async move { Ok(total + count) })
        .await?;
    Ok(WriteReport {
        segments: spec.segments,
        keys,
        txns: batches,
        elapsed: started.elapsed(),
        next_id: spec.next_id(),
    })
}
