//! Garbage collection as the server runs it: [`collector`] wires the steps (the index steps;
//! the segment steps come with a later issue), [`GcService`] answers GcControl.

use std::sync::Arc;
use std::time::Duration;

use datacoord_gc::{GarbageCollector, GcConfig, IndexGc};
use datacoord_index::IndexMeta;
use datacoord_meta::Meta;
use milvus_proto::common::{ErrorCode as LegacyCode, Status};
use milvus_proto::data::{GcCommand, GcControlRequest};
use milvus_storage::ChunkManager;
use milvus_types::MilvusError;
use tracing::info;

/// Builds the collector over index meta, segment meta and object storage.
pub(crate) fn collector(
    config: GcConfig,
    index_meta: IndexMeta,
    meta: Arc<Meta>,
    storage: ChunkManager,
) -> GarbageCollector {
    let index_gc = Arc::new(IndexGc::new(index_meta, meta, Arc::new(storage), &config));
    info!(
        enabled = config.enabled,
        interval = ?config.interval,
        missing_tolerance = ?config.missing_tolerance,
        drop_tolerance = ?config.drop_tolerance,
        "GC with option"
    );
    GarbageCollector::new(config, index_gc.steps())
}

/// GcControl answers failures in the old style only: `UnexpectedError` and a reason, code 0.
fn failure(reason: String) -> Status {
    Status {
        error_code: LegacyCode::UnexpectedError as i32,
        reason,
        ..Default::default()
    }
}

/// The GcControl RPC over the running collector.
pub struct GcService {
    pub(crate) collector: GarbageCollector,
}

impl GcService {
    /// GcControl (the proxy's management routes): pause GC for `duration` seconds, or resume.
    pub async fn gc_control(&self, req: &GcControlRequest) -> Status {
        let gc = &self.collector;
        match GcCommand::try_from(req.command) {
            Ok(GcCommand::Pause) => {
                let Some(param) = req.params.iter().find(|kv| kv.key == "duration") else {
                    return failure("pause duration param not found".to_string());
                };
                let seconds = match param.value.parse::<i64>() {
                    Ok(seconds) => seconds,
                    Err(err) => {
                        let why = match err.kind() {
                            std::num::IntErrorKind::PosOverflow
                            | std::num::IntErrorKind::NegOverflow => "value out of range",
                            _ => "invalid syntax",
                        };
                        return failure(format!(
                            "pause duration not valid, strconv.ParseInt: parsing {:?}: {why}",
                            param.value
                        ));
                    }
                };
                // A pause that ends in the past changes nothing, as in 2.3.5.
                gc.pause(Duration::from_secs(seconds.max(0) as u64)).await;
                info!(seconds, "GC paused");
                Status::default()
            }
            Ok(GcCommand::Resume) => match gc.resume().await {
                Ok(()) => {
                    info!("GC resumed");
                    Status::default()
                }
                Err(err) => failure(format!(
                    "failed to pause gc, {}",
                    MilvusError::from(err).to_status().reason
                )),
            },
            _ => failure(format!("unknown gc command: {}", req.command)),
        }
    }
}
