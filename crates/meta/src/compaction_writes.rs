//! The compaction commit (FACTS-index-compaction-gc §2.9): a finished plan's sources become
//! Dropped and `compacted`, its result segment is added.
//!
//! One transaction when the keys fit `kv.max_txn_ops()`; otherwise the result segment first (its
//! logs, then its `s/` key) and the sources last, so no source is ever Dropped before its child
//! is stored. The commit is idempotent by plan: run again after a failure at any point, it
//! recognises its own result segment (same ID, `compactionFrom` = the plan's sources) and only
//! drops the sources still healthy.

use std::collections::BTreeSet;
use std::sync::Arc;

use milvus_proto::common::SegmentState;
use milvus_proto::data::{Binlog, FieldBinlog, SegmentInfo};
use milvus_proto::msg::MsgPosition;
use milvus_types::SegmentId;

use crate::catalog::{Catalog, WritePlan};
use crate::error::MetaResult;
use crate::keys::LogKind;
use crate::logs::{binlog_row_count, has_logs, is_healthy, to_stored_logs};
use crate::meta::Shared;
use crate::segment_writes::{SegmentKey, incoming_logs, key_of, make_logs_canonical, now_nanos};

/// One source segment of a compaction plan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompactionSource {
    /// The source segment.
    pub segment_id: SegmentId,
    /// Log IDs of the delete logs the plan carried for it; any other delete log it holds at
    /// commit time arrived later ("late", see [`late_deltalogs`]).
    pub plan_deltalog_ids: Vec<i64>,
}

/// A finished plan's result as the DataNode reported it (already checked against the plan by
/// the caller), plus the late delete logs the caller copied under the result segment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompactionCommit {
    /// The plan, for logs.
    pub plan_id: i64,
    /// The sources, in plan order (the result's `compactionFrom`).
    pub sources: Vec<CompactionSource>,
    /// The result segment (its ID was allocated by the DataNode).
    pub segment_id: SegmentId,
    /// Rows of the result; 0 writes the result directly as Dropped.
    pub num_of_rows: i64,
    /// Insert logs of the result (full paths, or logID form).
    pub binlogs: Vec<FieldBinlog>,
    /// Stats logs of the result.
    pub statslogs: Vec<FieldBinlog>,
    /// Delete logs of the result.
    pub deltalogs: Vec<FieldBinlog>,
    /// The sources' late delete logs, already copied under the result segment (log IDs kept).
    pub copied_deltalogs: Vec<FieldBinlog>,
    /// `plan.start_time`, the result's `last_expire_time`.
    pub start_time: u64,
}

/// How [`crate::Meta::complete_compaction`] ended when the store did not fail.
#[derive(Clone, Debug, PartialEq)]
pub enum CommitOutcome {
    /// The result segment as stored now (written by this call or by an earlier run of the plan).
    Committed(Arc<SegmentInfo>),
    /// Nothing was written: the result does not fit the current meta.
    Refused(CommitRefusal),
}

/// Why a compaction result was refused (nothing written).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CommitRefusal {
    /// The plan lists no source.
    #[error("the plan has no source segment")]
    NoSources,
    /// A source is gone from meta (and the result was never committed).
    #[error("source segment {0} is not in meta")]
    SourceMissing(SegmentId),
    /// A source is no longer healthy (dropped with its channel, compacted by someone else…).
    #[error("source segment {segment_id} is {state:?}")]
    SourceNotHealthy {
        /// The source.
        segment_id: SegmentId,
        /// Its state now.
        state: SegmentState,
    },
    /// The result's segment ID names a segment that is not this plan's earlier result.
    #[error("result segment {0} already exists and does not come from this plan")]
    SegmentExists(SegmentId),
    /// The sources gained delete logs since the caller copied the late ones: copy again.
    #[error("the sources' late delete logs changed since they were copied")]
    LateDeltalogsChanged,
}

impl CommitRefusal {
    /// Whether the same result may be committed later (after copying the late logs again).
    pub fn is_retriable(&self) -> bool {
        matches!(self, Self::LateDeltalogsChanged)
    }
}

/// The delete logs `source` holds that the plan did not carry, per field, in the segment's
/// order (2.3.5 matches by path; we match by log ID, which names the path). A log whose ID
/// cannot be told (legacy path that does not end in an ID) never counts as late.
pub fn late_deltalogs(source: &SegmentInfo, plan_deltalog_ids: &[i64]) -> Vec<FieldBinlog> {
    let planned: BTreeSet<i64> = plan_deltalog_ids.iter().copied().collect();
    source
        .deltalogs
        .iter()
        .filter_map(|field| {
            let late: Vec<Binlog> = field
                .binlogs
                .iter()
                .filter(|binlog| log_id(binlog).is_some_and(|id| !planned.contains(&id)))
                .cloned()
                .collect();
            (!late.is_empty()).then_some(FieldBinlog {
                field_id: field.field_id,
                binlogs: late,
            })
        })
        .collect()
}

/// The log ID of a binlog: its `log_id`, else its path's file name.
fn log_id(binlog: &Binlog) -> Option<i64> {
    if binlog.log_id != 0 {
        return Some(binlog.log_id);
    }
    binlog.log_path.rsplit('/').next()?.parse().ok()
}

fn sorted_log_ids(fields: &[FieldBinlog]) -> Vec<Option<i64>> {
    let mut ids: Vec<Option<i64>> = fields
        .iter()
        .flat_map(|field| field.binlogs.iter().map(log_id))
        .collect();
    ids.sort_unstable();
    ids
}

/// The position with the smallest timestamp among those present (the first one on ties).
fn earliest<'a>(positions: impl Iterator<Item = Option<&'a MsgPosition>>) -> Option<MsgPosition> {
    positions
        .flatten()
        .fold(None::<&MsgPosition>, |best, position| match best {
            Some(best) if best.timestamp <= position.timestamp => Some(best),
            _ => Some(position),
        })
        .cloned()
}

impl Shared {
    pub(crate) async fn complete_compaction(
        &self,
        commit: CompactionCommit,
    ) -> MetaResult<CommitOutcome> {
        let (plan_id, result_id) = (commit.plan_id, commit.segment_id);
        let source_ids: Vec<SegmentId> = commit.sources.iter().map(|s| s.segment_id).collect();
        if source_ids.is_empty() {
            return Ok(CommitOutcome::Refused(CommitRefusal::NoSources));
        }
        let (existing, current) = {
            let index = self.read();
            let current: Vec<_> = source_ids
                .iter()
                .map(|id| (index.get(*id), index.has_inline_logs(*id)))
                .collect();
            (index.get(result_id), current)
        };
        let earlier_result = match existing {
            Some(seg) if seg.compaction_from == source_ids => Some(seg),
            Some(_) => {
                return Ok(CommitOutcome::Refused(CommitRefusal::SegmentExists(
                    result_id,
                )));
            }
            None => None,
        };

        let mut to_drop: Vec<(Arc<SegmentInfo>, bool)> = Vec::with_capacity(current.len());
        for (&id, (seg, inline)) in source_ids.iter().zip(current) {
            match seg {
                Some(seg) if is_healthy(seg.state()) => to_drop.push((seg, inline)),
                // Dropped (or collected) since an earlier run of this plan stored the result.
                _ if earlier_result.is_some() => {}
                None => {
                    return Ok(CommitOutcome::Refused(CommitRefusal::SourceMissing(id)));
                }
                Some(seg) => {
                    return Ok(CommitOutcome::Refused(CommitRefusal::SourceNotHealthy {
                        segment_id: id,
                        state: seg.state(),
                    }));
                }
            }
        }

        let child = match earlier_result {
            Some(stored) => {
                tracing::info!(
                    plan_id,
                    segment_id = stored.id,
                    remaining_sources = to_drop.len(),
                    "compaction result already stored; finishing its sources"
                );
                None
            }
            None => {
                let late: Vec<FieldBinlog> = to_drop
                    .iter()
                    .zip(&commit.sources)
                    .flat_map(|((seg, _), source)| late_deltalogs(seg, &source.plan_deltalog_ids))
                    .collect();
                if sorted_log_ids(&late) != sorted_log_ids(&commit.copied_deltalogs) {
                    return Ok(CommitOutcome::Refused(CommitRefusal::LateDeltalogsChanged));
                }
                Some(new_segment(commit, &to_drop)?)
            }
        };

        let dropped_at = now_nanos();
        let mut sources = Vec::with_capacity(to_drop.len());
        let mut source_logs = Vec::new();
        let mut logs_written = Vec::new();
        for (seg, inline) in to_drop {
            let mut source = SegmentInfo::clone(&seg);
            source.set_state(SegmentState::Dropped);
            source.dropped_at = dropped_at;
            source.compacted = true;
            // As SetState: GC finds a dropped segment's files through its log keys.
            let write_logs =
                inline || (has_logs(&source) && !self.catalog.has_log_keys(&source).await?);
            if write_logs {
                make_logs_canonical(&mut source);
                source_logs.extend(Catalog::log_records(&source));
                logs_written.push(source.id);
            }
            source.num_of_rows = binlog_row_count(&source);
            sources.push(source);
        }
        let source_plan = WritePlan {
            log_saves: source_logs,
            segment_saves: sources.iter().map(Catalog::segment_record).collect(),
        };
        let source_keys: Vec<SegmentKey> = sources.iter().map(key_of).collect();

        match child {
            Some(child) => {
                let child_plan = WritePlan {
                    log_saves: Catalog::log_records(&child),
                    segment_saves: vec![Catalog::segment_record(&child)],
                };
                let keys = child_plan.log_saves.len()
                    + child_plan.segment_saves.len()
                    + source_plan.log_saves.len()
                    + source_plan.segment_saves.len();
                let mut touched = vec![key_of(&child)];
                if keys <= self.catalog.kv().max_txn_ops() {
                    let mut log_saves = child_plan.log_saves;
                    log_saves.extend(source_plan.log_saves);
                    let mut segment_saves = child_plan.segment_saves;
                    segment_saves.extend(source_plan.segment_saves);
                    touched.extend(source_keys);
                    let plan = WritePlan {
                        log_saves,
                        segment_saves,
                    };
                    self.persist(plan, &touched).await?;
                    logs_written.push(child.id);
                    sources.push(child);
                    self.apply_segments(sources, &logs_written);
                } else {
                    tracing::info!(
                        plan_id,
                        segment_id = result_id,
                        keys,
                        "compaction commit split: result segment first, sources last"
                    );
                    self.persist(child_plan, &touched).await?;
                    self.apply_segments(vec![child], &[result_id]);
                    self.persist(source_plan, &source_keys).await?;
                    self.apply_segments(sources, &logs_written);
                }
            }
            None => {
                self.persist(source_plan, &source_keys).await?;
                self.apply_segments(sources, &logs_written);
            }
        }
        tracing::info!(
            plan_id,
            segment_id = result_id,
            compacted_from = ?source_ids,
            "compaction committed to meta"
        );
        let stored = self.read().get(result_id);
        Ok(match stored {
            Some(stored) => CommitOutcome::Committed(stored),
            // Only a concurrent removal could get here; the writer lock rules that out.
            None => CommitOutcome::Refused(CommitRefusal::SourceMissing(result_id)),
        })
    }
}

/// The result segment of a first commit (FACTS §2.9 step 2), its logs in stored form.
fn new_segment(
    commit: CompactionCommit,
    sources: &[(Arc<SegmentInfo>, bool)],
) -> MetaResult<SegmentInfo> {
    let first = &sources[0].0;
    let [binlogs, statslogs, mut deltalogs] = incoming_logs(
        commit.segment_id,
        commit.binlogs,
        commit.statslogs,
        commit.deltalogs,
    )?;
    deltalogs.extend(to_stored_logs(
        LogKind::Delta,
        commit.segment_id,
        commit.copied_deltalogs,
    )?);
    let mut seg = SegmentInfo {
        id: commit.segment_id,
        collection_id: first.collection_id,
        partition_id: first.partition_id,
        insert_channel: first.insert_channel.clone(),
        num_of_rows: commit.num_of_rows,
        max_row_num: first.max_row_num,
        last_expire_time: commit.start_time,
        start_position: earliest(sources.iter().map(|(s, _)| s.start_position.as_ref())),
        dml_position: earliest(sources.iter().map(|(s, _)| s.dml_position.as_ref())),
        binlogs,
        statslogs,
        deltalogs,
        created_by_compaction: true,
        compaction_from: sources.iter().map(|(s, _)| s.id).collect(),
        ..SegmentInfo::default()
    };
    seg.set_state(if commit.num_of_rows == 0 {
        SegmentState::Dropped
    } else {
        SegmentState::Flushing
    });
    make_logs_canonical(&mut seg);
    // 2.3.5's AlterSegments stores the insert-log row count.
    seg.num_of_rows = binlog_row_count(&seg);
    Ok(seg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binlog(log_id: i64, path: &str) -> Binlog {
        Binlog {
            log_id,
            log_path: path.to_string(),
            entries_num: 1,
            ..Binlog::default()
        }
    }

    #[test]
    fn late_deltalogs_are_those_the_plan_did_not_carry() {
        let source = SegmentInfo {
            deltalogs: vec![
                FieldBinlog {
                    field_id: 0,
                    binlogs: vec![binlog(5, ""), binlog(6, ""), binlog(0, "legacy/x/7")],
                },
                FieldBinlog {
                    field_id: 1,
                    binlogs: vec![binlog(0, "legacy/unnamed")],
                },
            ],
            ..SegmentInfo::default()
        };
        let late = late_deltalogs(&source, &[5]);
        assert_eq!(late.len(), 1, "{late:?}");
        let ids: Vec<Option<i64>> = late[0].binlogs.iter().map(log_id).collect();
        assert_eq!(ids, vec![Some(6), Some(7)]);
        assert!(late_deltalogs(&source, &[5, 6, 7]).is_empty());
    }

    #[test]
    fn earliest_position_skips_missing_ones_and_keeps_the_first_on_ties() {
        let at = |ts: u64, group: &str| MsgPosition {
            timestamp: ts,
            msg_group: group.to_string(),
            ..MsgPosition::default()
        };
        let (a, b, c) = (at(5, "a"), at(3, "b"), at(3, "c"));
        assert_eq!(
            earliest([None, Some(&a), Some(&b), None, Some(&c)].into_iter()),
            Some(b.clone())
        );
        assert_eq!(earliest([None, None].into_iter()), None);
    }
}
