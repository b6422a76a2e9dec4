//! The clearEtcd step (FACTS §3.3): Dropped segments whose time has come lose their files,
//! then their metadata; channels left without a healthy segment lose their checkpoint. The
//! ordering and race arguments are in the crate README ("Safety").

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use datacoord_index::{IndexMeta, first_vector_field};
use datacoord_meta::{ChannelRemoval, Meta, is_flush_state, with_full_paths};
use milvus_proto::common::SegmentState;
use milvus_proto::data::SegmentInfo;
use milvus_proto::schema::CollectionSchema;
use milvus_types::{CollectionId, FieldId, MilvusResult};
use tracing::{debug, info, warn};

use crate::config::GcConfig;
use crate::remove::remove_in_slices;
use crate::step::{GcStep, Stage, StepReport};
use crate::storage::GcStorage;

/// Where GC reads a collection's schema (RootCoord `DescribeCollectionInternal`, usually
/// through the coordinator's collection cache).
#[async_trait]
pub trait CollectionSchemas: Send + Sync {
    /// The collection's schema.
    async fn collection_schema(&self, coll: CollectionId) -> MilvusResult<CollectionSchema>;
}

/// Why a Dropped segment stays for now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    /// A compaction result lists it and that result has no Finished index on the first
    /// vector field yet (or the collection has no vector index at all).
    ChildNotIndexed,
    /// Dropped less than `dropTolerance` ago (compacted sources without a child included).
    DropTolerance,
    /// Its channel is active and its dml position is past the channel checkpoint.
    AfterCheckpoint,
}

/// The clearEtcd step over segment metadata, index metadata, schemas and object storage.
pub struct ClearEtcdStep {
    meta: Arc<Meta>,
    index_meta: IndexMeta,
    schemas: Arc<dyn CollectionSchemas>,
    storage: Arc<dyn GcStorage>,
    drop_tolerance: Duration,
    concurrency: usize,
}

impl std::fmt::Debug for ClearEtcdStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClearEtcdStep")
            .field("root_path", &self.storage.root_path())
            .field("drop_tolerance", &self.drop_tolerance)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

/// Each collection's first vector field, asked once per run.
struct VectorFields<'a> {
    schemas: &'a dyn CollectionSchemas,
    known: HashMap<CollectionId, Option<FieldId>>,
}

impl VectorFields<'_> {
    async fn of(&mut self, coll: CollectionId) -> Option<FieldId> {
        if let Some(field) = self.known.get(&coll) {
            return *field;
        }
        let field = match self.schemas.collection_schema(coll).await {
            Ok(schema) => first_vector_field(&schema),
            Err(err) => {
                // As 2.3.5: no schema, no indexed child, so its sources wait for a later run.
                warn!(collection_id = coll, error = %err, "cannot get collection schema, compaction sources kept");
                None
            }
        };
        self.known.insert(coll, field);
        field
    }
}

impl ClearEtcdStep {
    /// The step; `config` gives `drop_tolerance` and `remove_concurrent` (deletions of one
    /// segment's files running at once).
    pub fn new(
        meta: Arc<Meta>,
        index_meta: IndexMeta,
        schemas: Arc<dyn CollectionSchemas>,
        storage: Arc<dyn GcStorage>,
        config: &GcConfig,
    ) -> Self {
        Self {
            meta,
            index_meta,
            schemas,
            storage,
            drop_tolerance: config.drop_tolerance,
            concurrency: config.effective_concurrency(),
        }
    }

    /// Collects every Dropped segment whose time has come, in ascending ID order: its log
    /// files first, its metadata only once they are all gone. Then drops the checkpoint of
    /// every channel concerned that is inactive and has no healthy segment left.
    pub async fn clear_dropped_segments(&self) -> StepReport {
        // IDs only: a dropped collection can leave 100k Dropped segments, decoded one by one.
        let dropped = self.meta.segment_ids_in_states(&[SegmentState::Dropped]);
        info!(dropped = dropped.len(), "start to gc dropped segments");
        let mut fields = VectorFields {
            schemas: self.schemas.as_ref(),
            known: HashMap::new(),
        };
        let mut report = StepReport::default();
        let mut held = 0usize;
        let mut channels = BTreeSet::new();
        for segment_id in dropped {
            let Some(seg) = self.meta.segment(segment_id) else {
                continue;
            };
            if seg.state() != SegmentState::Dropped {
                continue;
            }
            if let Some(hold) = self.hold(&seg, &mut fields).await {
                debug!(
                    segment_id,
                    collection_id = seg.collection_id,
                    ?hold,
                    "dropped segment kept"
                );
                held += 1;
                continue;
            }
            channels.insert(seg.insert_channel.clone());
            report += self.collect(&seg).await;
        }
        for channel in channels {
            report += self.drop_checkpoint_if_gone(&channel).await;
        }
        info!(held, report = ?report, "dropped segments gc done");
        report
    }

    /// What keeps `seg` (Dropped) from being collected now, if anything.
    async fn hold(&self, seg: &SegmentInfo, fields: &mut VectorFields<'_>) -> Option<Hold> {
        match self.meta.child_of(seg.id) {
            // A source goes once its child can serve in its place: no tolerance applies.
            Some(child) => {
                if !self.is_indexed(&child, fields).await {
                    return Some(Hold::ChildNotIndexed);
                }
            }
            // 2.3.5 collects a `compacted` source without a child at once; with a commit that
            // is not atomic that could be the only copy of the data, so it waits like others.
            None => {
                if !self.drop_expired(seg.dropped_at) {
                    return Some(Hold::DropTolerance);
                }
            }
        }
        if self.meta.channel_removal(&seg.insert_channel) == ChannelRemoval::NonRemoved {
            let checkpoint_ts = self
                .meta
                .channel_checkpoint(&seg.insert_channel)
                .map_or(0, |position| position.timestamp);
            let dml_ts = seg
                .dml_position
                .as_ref()
                .map_or(0, |position| position.timestamp);
            if dml_ts > checkpoint_ts {
                return Some(Hold::AfterCheckpoint);
            }
        }
        None
    }

    /// 2.3.5's "indexed" for a compaction child: Flushing, Flushed or Dropped, with a Finished
    /// segment index of the live index on its collection's first vector field.
    async fn is_indexed(&self, child: &SegmentInfo, fields: &mut VectorFields<'_>) -> bool {
        let state = child.state();
        if !is_flush_state(state) && state != SegmentState::Dropped {
            return false;
        }
        let Some(field) = fields.of(child.collection_id).await else {
            return false;
        };
        self.index_meta
            .segment_indexed(child.collection_id, child.id, field)
    }

    /// Whether `dropped_at` (unix ns) lies more than `dropTolerance` in the past; 0 (dropped
    /// by a path that does not stamp it) counts as long ago.
    fn drop_expired(&self, dropped_at: u64) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or_default();
        Duration::from_nanos(now.saturating_sub(dropped_at)) > self.drop_tolerance
    }

    /// Deletes the segment's files, then (only if every deletion succeeded) its metadata.
    async fn collect(&self, seg: &SegmentInfo) -> StepReport {
        let mut report = StepReport::default();
        let full = with_full_paths(seg, self.storage.root_path());
        let paths: Vec<String> = [&full.binlogs, &full.statslogs, &full.deltalogs]
            .into_iter()
            .flatten()
            .flat_map(|field| &field.binlogs)
            .map(|binlog| binlog.log_path.clone())
            .collect();
        let removal = remove_in_slices(self.storage.as_ref(), &paths, self.concurrency).await;
        report.files_removed += removal.removed;
        // Refused paths (outside GC's directories) are never deleted; they do not keep the record.
        report.skipped += removal.refused;
        if let Some(err) = removal.first_error {
            // The record must keep naming the files until they are all gone: next run retries.
            warn!(
                segment_id = seg.id,
                collection_id = seg.collection_id,
                failed = removal.failed,
                error = %err,
                "cannot remove files of dropped segment, meta kept"
            );
            report.failures += 1;
            return report;
        }
        match self.meta.drop_segment(seg.id).await {
            Ok(()) => {
                report.records_removed += 1;
                info!(
                    segment_id = seg.id,
                    collection_id = seg.collection_id,
                    channel = %seg.insert_channel,
                    files = paths.len(),
                    "dropped segment collected"
                );
            }
            Err(err) => {
                warn!(segment_id = seg.id, collection_id = seg.collection_id, error = %err, "cannot drop segment meta, retrying next run");
                report.failures += 1;
            }
        }
        report
    }

    /// Drops the channel's checkpoint when the channel is not active and none of its segments
    /// is healthy any more.
    async fn drop_checkpoint_if_gone(&self, channel: &str) -> StepReport {
        let mut report = StepReport::default();
        if self.meta.channel_removal(channel) == ChannelRemoval::NonRemoved
            || self.meta.channel_has_healthy_segment(channel)
            || self.meta.channel_checkpoint(channel).is_none()
        {
            return report;
        }
        match self.meta.drop_channel_checkpoint(channel).await {
            Ok(()) => {
                info!(
                    channel,
                    "empty channel found during gc, channel checkpoint dropped"
                );
                report.records_removed += 1;
            }
            Err(err) => {
                warn!(channel, error = %err, "cannot drop channel checkpoint, retrying next run");
                report.failures += 1;
            }
        }
        report
    }
}

#[async_trait]
impl GcStep for ClearEtcdStep {
    fn stage(&self) -> Stage {
        Stage::ClearEtcd
    }

    async fn run(&self) -> StepReport {
        self.clear_dropped_segments().await
    }
}
