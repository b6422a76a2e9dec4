//! Garbage collection as the server runs it: [`collector`] wires the steps in 2.3.5's order
//! (clearEtcd, the index steps, the orphan scan), [`GcService`] answers GcControl.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datacoord_gc::{
    ClearEtcdStep, CollectionSchemas, GarbageCollector, GcConfig, GcStep, IndexGc,
    PendingCompactions, ScanStep,
};
use datacoord_index::IndexMeta;
use datacoord_meta::Meta;
use milvus_proto::common::{ErrorCode as LegacyCode, Status};
use milvus_proto::data::{GcCommand, GcControlRequest};
use milvus_proto::schema::CollectionSchema;
use milvus_storage::ChunkManager;
use milvus_types::{CollectionId, MilvusError, MilvusResult};
use tracing::info;

use crate::collections::Collections;

/// What the collector reads besides meta and storage.
pub(crate) struct GcSources {
    /// Schemas, for the first vector field a compaction child must be indexed on.
    pub(crate) collections: Arc<Collections>,
    /// Partitions an unfinished compaction task may still write files to.
    pub(crate) pending: Arc<dyn PendingCompactions>,
}

#[async_trait]
impl CollectionSchemas for Collections {
    async fn collection_schema(&self, coll: CollectionId) -> MilvusResult<CollectionSchema> {
        let info = self.get(coll).await?;
        info.schema
            .clone()
            .ok_or_else(|| MilvusError::unexpected(format!("collection {coll} has no schema")))
    }
}

/// Builds the collector over index meta, segment meta and object storage.
pub(crate) fn collector(
    config: GcConfig,
    index_meta: IndexMeta,
    meta: Arc<Meta>,
    storage: ChunkManager,
    sources: GcSources,
) -> GarbageCollector {
    let storage = Arc::new(storage);
    let clear_etcd = Arc::new(ClearEtcdStep::new(
        meta.clone(),
        index_meta.clone(),
        sources.collections,
        storage.clone(),
        &config,
    ));
    let scan = Arc::new(ScanStep::new(
        meta.clone(),
        sources.pending,
        storage.clone(),
        &config,
    ));
    let index_gc = Arc::new(IndexGc::new(index_meta, meta, storage, &config));
    let mut steps: Vec<Arc<dyn GcStep>> = index_gc.steps();
    steps.push(clear_etcd);
    steps.push(scan);
    info!(
        enabled = config.enabled,
        interval = ?config.interval,
        missing_tolerance = ?config.missing_tolerance,
        drop_tolerance = ?config.drop_tolerance,
        "GC with option"
    );
    GarbageCollector::new(config, steps)
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
