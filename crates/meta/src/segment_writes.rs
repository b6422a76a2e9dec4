//! Segment writes: AddSegment, SetState, SaveBinlogPaths, DropVirtualChannel and GC's drop,
//! with 2.3.5's row-count and log rules (FACTS C.3, C.4, E.2, E.12, D.8).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use milvus_metastore::WriteBatch;
use milvus_proto::common::SegmentState;
use milvus_proto::data::{CheckPoint, FieldBinlog, SegmentInfo, SegmentStartPosition};
use milvus_proto::msg::MsgPosition;
use milvus_types::{CollectionId, PartitionId, SegmentId};

use crate::catalog::{Catalog, WritePlan};
use crate::error::{MetaError, MetaResult};
use crate::index::ChannelRemoval;
use crate::keys::{LogKind, segment_key, segment_log_prefix};
use crate::logs::{
    binlog_row_count, canonical, check_stats_count, has_logs, is_healthy, logs_of_mut,
    merge_by_field, to_stored_form, to_stored_logs,
};
use crate::meta::Shared;

/// What a datanode's SaveBinlogPaths asks of the meta (E.12). Logs carry full paths (or a
/// log ID with an empty path); they are validated and stored in logID form.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BinlogUpdate {
    /// The segment being synced.
    pub segment_id: SegmentId,
    /// The sync is the segment's last: state becomes Flushing.
    pub flushed: bool,
    /// The segment was dropped: state becomes Dropped and `dropped_at` = now.
    pub dropped: bool,
    /// The segment is being imported: rows come from `import_rows`, not from checkpoints.
    pub importing: bool,
    /// The segment manager's current rows (2.3.5's in-memory `currRows`), used when
    /// `importing`; `None` keeps the stored value.
    pub import_rows: Option<i64>,
    /// New insert logs, appended per field.
    pub binlogs: Vec<FieldBinlog>,
    /// New stats logs, appended per field.
    pub statslogs: Vec<FieldBinlog>,
    /// New delete logs, appended per field.
    pub deltalogs: Vec<FieldBinlog>,
    /// Positions and row counts; only those of `segment_id` are used.
    pub checkpoints: Vec<CheckPoint>,
    /// Start positions of this or other (healthy) segments.
    pub start_positions: Vec<SegmentStartPosition>,
}

/// One segment a datanode reports in DropVirtualChannel (D.8).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DroppedSegment {
    /// The segment.
    pub segment_id: SegmentId,
    /// Last insert logs (full paths), appended per field.
    pub binlogs: Vec<FieldBinlog>,
    /// Last stats logs (full paths), appended per field.
    pub statslogs: Vec<FieldBinlog>,
    /// Last delete logs (full paths), appended as whole entries.
    pub deltalogs: Vec<FieldBinlog>,
    /// New start position, if any.
    pub start_position: Option<MsgPosition>,
    /// New dml position, if any.
    pub checkpoint: Option<MsgPosition>,
    /// The segment's row count.
    pub num_of_rows: i64,
}

pub(crate) type SegmentKey = (CollectionId, PartitionId, SegmentId);

pub(crate) fn key_of(seg: &SegmentInfo) -> SegmentKey {
    (seg.collection_id, seg.partition_id, seg.id)
}

pub(crate) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// Puts every log list in the form it is persisted in (logID form, one entry per field, key
/// order), so memory matches what a reload reads.
pub(crate) fn make_logs_canonical(seg: &mut SegmentInfo) {
    for kind in LogKind::ALL {
        let list = logs_of_mut(seg, kind);
        to_stored_form(list);
        *list = canonical(std::mem::take(list));
    }
}

/// Validates and converts the three incoming lists of `segment_id`.
pub(crate) fn incoming_logs(
    segment_id: SegmentId,
    binlogs: Vec<FieldBinlog>,
    statslogs: Vec<FieldBinlog>,
    deltalogs: Vec<FieldBinlog>,
) -> MetaResult<[Vec<FieldBinlog>; 3]> {
    Ok([
        to_stored_logs(LogKind::Insert, segment_id, binlogs)?,
        to_stored_logs(LogKind::Stats, segment_id, statslogs)?,
        to_stored_logs(LogKind::Delta, segment_id, deltalogs)?,
    ])
}

impl Shared {
    pub(crate) fn apply_segments(&self, segments: Vec<SegmentInfo>, logs_written: &[SegmentId]) {
        let mut index = self.write();
        for seg in segments {
            index.put(Arc::new(seg));
        }
        for id in logs_written {
            index.set_inline_logs(*id, false);
        }
    }

    pub(crate) async fn add_segment(&self, mut seg: SegmentInfo) -> MetaResult<()> {
        let [binlogs, statslogs, deltalogs] = incoming_logs(
            seg.id,
            std::mem::take(&mut seg.binlogs),
            std::mem::take(&mut seg.statslogs),
            std::mem::take(&mut seg.deltalogs),
        )?;
        seg.binlogs = binlogs;
        seg.statslogs = statslogs;
        seg.deltalogs = deltalogs;
        make_logs_canonical(&mut seg);
        check_stats_count(&seg)?;
        let rows = binlog_row_count(&seg);
        if rows > 0 && rows != seg.num_of_rows {
            tracing::warn!(
                segment_id = seg.id,
                num_of_rows = seg.num_of_rows,
                binlog_rows = rows,
                "segment row count corrected from its insert logs"
            );
            seg.num_of_rows = rows;
        }
        let plan = WritePlan {
            log_saves: Catalog::log_records(&seg),
            segment_saves: vec![Catalog::segment_record(&seg)],
        };
        self.persist(plan, &[key_of(&seg)]).await?;
        tracing::info!(
            segment_id = seg.id,
            collection_id = seg.collection_id,
            channel = %seg.insert_channel,
            state = ?seg.state(),
            "segment added"
        );
        let id = seg.id;
        self.apply_segments(vec![seg], &[id]);
        Ok(())
    }

    pub(crate) async fn set_state(&self, id: SegmentId, state: SegmentState) -> MetaResult<()> {
        let (current, inline) = {
            let index = self.read();
            (index.get(id), index.has_inline_logs(id))
        };
        let Some(current) = current else {
            if state == SegmentState::Dropped {
                tracing::debug!(segment_id = id, "drop of an unknown segment; nothing to do");
                return Ok(());
            }
            return Err(MetaError::SegmentNotFound(id));
        };
        if !is_healthy(current.state()) {
            tracing::debug!(segment_id = id, state = ?current.state(), target = ?state, "segment not healthy; state kept");
            return Ok(());
        }
        let mut seg = SegmentInfo::clone(&current);
        seg.set_state(state);
        // A dropped segment needs its logs under their keys for GC; 2.3.5 writes them when none
        // exist yet. Legacy inline logs are written on any change, or they would be lost.
        let write_logs = inline
            || (state == SegmentState::Dropped
                && has_logs(&seg)
                && !self.catalog.has_log_keys(&seg).await?);
        if write_logs {
            make_logs_canonical(&mut seg);
        }
        seg.num_of_rows = binlog_row_count(&seg);
        let plan = WritePlan {
            log_saves: if write_logs {
                Catalog::log_records(&seg)
            } else {
                Vec::new()
            },
            segment_saves: vec![Catalog::segment_record(&seg)],
        };
        self.persist(plan, &[key_of(&seg)]).await?;
        tracing::info!(segment_id = id, from = ?current.state(), to = ?state, "segment state set");
        let written: &[SegmentId] = if write_logs { &[id] } else { &[] };
        self.apply_segments(vec![seg], written);
        Ok(())
    }

    pub(crate) async fn unset_is_importing(&self, id: SegmentId) -> MetaResult<()> {
        let (current, inline) = {
            let index = self.read();
            (index.get(id), index.has_inline_logs(id))
        };
        let Some(current) = current else {
            return Err(MetaError::SegmentNotFound(id));
        };
        if !current.is_importing {
            return Ok(());
        }
        // 2.3.5 persists only healthy segments and clears the flag of the others in memory
        // alone; memory equals the store here, so an unhealthy one keeps its flag.
        if !is_healthy(current.state()) {
            tracing::debug!(segment_id = id, state = ?current.state(), "segment not healthy; is_importing kept");
            return Ok(());
        }
        let mut seg = SegmentInfo::clone(&current);
        seg.is_importing = false;
        if inline {
            make_logs_canonical(&mut seg);
        }
        seg.num_of_rows = binlog_row_count(&seg);
        let plan = WritePlan {
            log_saves: if inline {
                Catalog::log_records(&seg)
            } else {
                Vec::new()
            },
            segment_saves: vec![Catalog::segment_record(&seg)],
        };
        self.persist(plan, &[key_of(&seg)]).await?;
        tracing::info!(segment_id = id, state = ?seg.state(), "segment is_importing unset");
        let written: &[SegmentId] = if inline { &[id] } else { &[] };
        self.apply_segments(vec![seg], written);
        Ok(())
    }

    pub(crate) async fn save_binlog_paths(&self, update: BinlogUpdate) -> MetaResult<()> {
        let id = update.segment_id;
        let Some(current) = self.read().get(id) else {
            return Err(MetaError::SegmentNotFound(id));
        };
        match current.state() {
            SegmentState::Dropped => {
                tracing::info!(segment_id = id, "binlogs of a dropped segment ignored");
                return Ok(());
            }
            state if !is_healthy(state) => return Err(MetaError::SegmentNotFound(id)),
            _ => {}
        }
        let [binlogs, statslogs, deltalogs] =
            incoming_logs(id, update.binlogs, update.statslogs, update.deltalogs)?;

        let mut seg = SegmentInfo::clone(&current);
        if update.flushed {
            seg.set_state(SegmentState::Flushing);
        }
        if update.dropped {
            seg.set_state(SegmentState::Dropped);
            seg.dropped_at = now_nanos();
        }
        merge_by_field(&mut seg.binlogs, binlogs);
        merge_by_field(&mut seg.statslogs, statslogs);
        merge_by_field(&mut seg.deltalogs, deltalogs);
        make_logs_canonical(&mut seg);

        let others = self.start_positions(&mut seg, update.start_positions);
        if update.importing {
            let current_rows = update.import_rows.unwrap_or(seg.num_of_rows);
            seg.num_of_rows = current_rows;
            let rows = binlog_row_count(&seg);
            if rows > 0 && rows != current_rows {
                seg.num_of_rows = rows;
            }
        } else {
            apply_checkpoints(&mut seg, update.checkpoints);
        }
        check_stats_count(&seg)?;

        // Every segment this change saves goes through 2.3.5's AlterSegments row rule.
        seg.num_of_rows = binlog_row_count(&seg);
        let mut log_saves = Catalog::log_records(&seg);
        let mut logs_written = vec![id];
        let mut segment_saves = vec![Catalog::segment_record(&seg)];
        let mut touched = vec![key_of(&seg)];
        let mut changed = Vec::with_capacity(1 + others.len());
        for (other_id, (mut other, inline)) in others {
            if inline {
                make_logs_canonical(&mut other);
                log_saves.extend(Catalog::log_records(&other));
                logs_written.push(other_id);
            }
            other.num_of_rows = binlog_row_count(&other);
            segment_saves.push(Catalog::segment_record(&other));
            touched.push(key_of(&other));
            changed.push(other);
        }
        self.persist(
            WritePlan {
                log_saves,
                segment_saves,
            },
            &touched,
        )
        .await?;
        tracing::info!(
            segment_id = id,
            state = ?seg.state(),
            num_of_rows = seg.num_of_rows,
            flushed = update.flushed,
            dropped = update.dropped,
            "binlog paths saved"
        );
        changed.push(seg);
        self.apply_segments(changed, &logs_written);
        Ok(())
    }

    /// Applies start positions with a message ID: to `seg` itself or to other healthy
    /// segments, which are returned (with whether they hold legacy inline logs).
    fn start_positions(
        &self,
        seg: &mut SegmentInfo,
        positions: Vec<SegmentStartPosition>,
    ) -> BTreeMap<SegmentId, (SegmentInfo, bool)> {
        let mut others: BTreeMap<SegmentId, (SegmentInfo, bool)> = BTreeMap::new();
        let index = self.read();
        for entry in positions {
            let Some(position) = entry.start_position else {
                continue;
            };
            if position.msg_id.is_empty() {
                continue;
            }
            if entry.segment_id == seg.id {
                seg.start_position = Some(position);
                continue;
            }
            if let Some((other, _)) = others.get_mut(&entry.segment_id) {
                other.start_position = Some(position);
                continue;
            }
            match index.get(entry.segment_id) {
                Some(other) if is_healthy(other.state()) => {
                    let mut other = SegmentInfo::clone(&other);
                    other.start_position = Some(position);
                    let inline = index.has_inline_logs(other.id);
                    others.insert(other.id, (other, inline));
                }
                _ => tracing::debug!(
                    segment_id = entry.segment_id,
                    "start position of an unknown or unhealthy segment ignored"
                ),
            }
        }
        others
    }

    pub(crate) async fn drop_channel_segments(
        &self,
        vchannel: String,
        reported: Vec<DroppedSegment>,
    ) -> MetaResult<()> {
        let mut dropped: BTreeMap<SegmentId, SegmentInfo> = BTreeMap::new();
        for report in reported {
            let Some(current) = self.read().get(report.segment_id) else {
                tracing::warn!(
                    segment_id = report.segment_id,
                    "dropped segment unknown; skipped"
                );
                continue;
            };
            if !is_healthy(current.state()) {
                tracing::warn!(
                    segment_id = report.segment_id,
                    "dropped segment not healthy; skipped"
                );
                continue;
            }
            let [binlogs, statslogs, deltalogs] = incoming_logs(
                report.segment_id,
                report.binlogs,
                report.statslogs,
                report.deltalogs,
            )?;
            let mut seg = SegmentInfo::clone(&current);
            seg.set_state(SegmentState::Dropped);
            merge_by_field(&mut seg.binlogs, binlogs);
            merge_by_field(&mut seg.statslogs, statslogs);
            seg.deltalogs.extend(deltalogs);
            if let Some(position) = report.start_position {
                seg.start_position = Some(position);
            }
            if let Some(position) = report.checkpoint {
                seg.dml_position = Some(position);
            }
            seg.num_of_rows = report.num_of_rows;
            dropped.insert(seg.id, seg);
        }
        for current in self.read().of_channel(&vchannel) {
            dropped.entry(current.id).or_insert_with(|| {
                let mut seg = SegmentInfo::clone(&current);
                seg.set_state(SegmentState::Dropped);
                seg
            });
        }
        // 2.3.5's SaveDroppedSegmentsInBatch row rule: only a positive, different count wins.
        for seg in dropped.values_mut() {
            let rows = binlog_row_count(seg);
            if rows > 0 && rows != seg.num_of_rows {
                seg.num_of_rows = rows;
            }
        }
        // Only legacy segments with inline logs get log keys (their logs would be lost with
        // the rewritten record); every other log list stays as 2.3.5 leaves it.
        let mut log_saves = Vec::new();
        let mut logs_written = Vec::new();
        {
            let index = self.read();
            for seg in dropped.values_mut() {
                if index.has_inline_logs(seg.id) {
                    make_logs_canonical(seg);
                    log_saves.extend(Catalog::log_records(seg));
                    logs_written.push(seg.id);
                }
            }
        }
        let segment_saves = dropped.values().map(Catalog::segment_record).collect();
        let touched: Vec<SegmentKey> = dropped.values().map(key_of).collect();
        self.persist(
            WritePlan {
                log_saves,
                segment_saves,
            },
            &touched,
        )
        .await?;
        let ids: Vec<SegmentId> = dropped.keys().copied().collect();
        tracing::info!(channel = %vchannel, segments = ?ids, "channel segments saved as dropped");
        self.apply_segments(dropped.into_values().collect(), &logs_written);
        self.put_removal(&vchannel, ChannelRemoval::Removed).await?;
        tracing::info!(channel = %vchannel, "channel removal flag set to removed");
        Ok(())
    }

    pub(crate) async fn drop_segment(&self, id: SegmentId) -> MetaResult<()> {
        let Some(seg) = self.read().get(id) else {
            tracing::debug!(segment_id = id, "drop of an unknown segment; nothing to do");
            return Ok(());
        };
        let (coll, part) = (seg.collection_id, seg.partition_id);
        let batch = WriteBatch {
            saves: Vec::new(),
            removals: vec![segment_key(coll, part, id)],
            prefix_removals: LogKind::ALL
                .iter()
                .map(|kind| segment_log_prefix(*kind, coll, part, id))
                .collect(),
        };
        if let Err(err) = self.catalog.kv().commit(batch).await {
            if err.maybe_applied() {
                self.resync_segments(&[(coll, part, id)]).await;
            }
            return Err(err.into());
        }
        self.write().remove(id);
        tracing::info!(
            segment_id = id,
            collection_id = coll,
            "segment removed from meta"
        );
        Ok(())
    }
}

/// Applies the checkpoints of `seg` (others are ignored): older than the stored dml position
/// → skipped; else rows := reported rows (the insert-log count wins when positive and
/// different) and dml position := the checkpoint's.
fn apply_checkpoints(seg: &mut SegmentInfo, checkpoints: Vec<CheckPoint>) {
    for checkpoint in checkpoints {
        if checkpoint.segment_id != seg.id {
            tracing::warn!(
                segment_id = seg.id,
                checkpoint_segment_id = checkpoint.segment_id,
                "checkpoint of another segment ignored"
            );
            continue;
        }
        let Some(position) = checkpoint.position else {
            tracing::warn!(segment_id = seg.id, "checkpoint without position ignored");
            continue;
        };
        if let Some(stored) = &seg.dml_position
            && stored.timestamp >= position.timestamp
        {
            tracing::warn!(
                segment_id = seg.id,
                stored_ts = stored.timestamp,
                reported_ts = position.timestamp,
                "checkpoint not newer than the stored dml position; ignored"
            );
            continue;
        }
        seg.num_of_rows = checkpoint.num_of_rows;
        let rows = binlog_row_count(seg);
        if rows > 0 && rows != checkpoint.num_of_rows {
            tracing::info!(
                segment_id = seg.id,
                reported_rows = checkpoint.num_of_rows,
                binlog_rows = rows,
                "checkpoint row count differs from the insert logs; the logs win"
            );
            seg.num_of_rows = rows;
        }
        seg.dml_position = Some(position);
    }
}
