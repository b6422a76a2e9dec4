//! A completed plan (FACTS §2.9): check the result, record it in the task, copy the sources'
//! late delete logs, commit to meta, then SyncSegments to the DataNode and hand the result
//! segment to the flush-complete path.
//!
//! Every step can be re-run: the recorded result is what is committed from then on, the meta
//! commit is idempotent by plan, copies overwrite themselves, and SyncSegments tolerates a
//! retry. A task that stops anywhere resumes at the next poll, in this engine or the next.

use std::sync::Arc;

use datacoord_meta::{
    CommitOutcome, CompactionCommit, CompactionSource, late_deltalogs, with_full_paths,
};
use milvus_proto::data::{
    Binlog, CompactionResult, CompactionSegmentBinlogs, FieldBinlog, SyncSegmentsRequest,
};
use milvus_storage::delta_log_path;
use milvus_types::{Backoff, MilvusResult, NodeId};

use crate::config::SYNC_ATTEMPTS;
use crate::engine::Inner;
use crate::metrics::compacted_segment_size;
use crate::nodes::bounded;
use crate::record::{CompactionTaskRecord, TaskState};
use crate::validate::check_result;

/// The log ID a binlog names: its `log_id`, else its path's file name.
fn log_id(binlog: &Binlog) -> Option<i64> {
    if binlog.log_id != 0 {
        return Some(binlog.log_id);
    }
    binlog.log_path.rsplit('/').next()?.parse().ok()
}

fn plan_deltalog_ids(source: &CompactionSegmentBinlogs) -> Vec<i64> {
    source
        .deltalogs
        .iter()
        .flat_map(|field| field.binlogs.iter().filter_map(log_id))
        .collect()
}

impl Inner {
    /// Commits a plan its node reported Completed (`reported`), or one whose result was recorded
    /// before (`reported` may then be `None`).
    pub(crate) async fn commit(self: &Arc<Self>, plan_id: i64, reported: Option<CompactionResult>) {
        let Some(task) = self.lock_tasks().get(plan_id).cloned() else {
            return;
        };
        // Once recorded, the result is the one committed: it may already be in meta.
        let recorded = task.result.is_some();
        let Some(result) = task.result.clone().or(reported) else {
            tracing::warn!(
                plan_id,
                node_id = task.node_id,
                "compaction result refused: the datanode reported none"
            );
            self.transition(plan_id, TaskState::Failed).await;
            return;
        };
        if let Err(reason) = check_result(&task, &result, self.root_path()) {
            tracing::warn!(
                plan_id,
                node_id = task.node_id,
                segment_id = result.segment_id,
                reason = %reason,
                "compaction result refused"
            );
            self.transition(plan_id, TaskState::Failed).await;
            return;
        }
        if !recorded {
            self.lock_tasks()
                .update(plan_id, |record| record.result = Some(result.clone()));
            if !self.save(plan_id).await {
                return;
            }
        }
        let copied = match self.copy_late_deltalogs(&task, &result).await {
            Ok(copied) => copied,
            Err(err) => {
                tracing::warn!(plan_id, error = %err, "cannot copy late delete logs; retried at the next poll");
                return;
            }
        };
        let plan = task.plan.clone().unwrap_or_default();
        let commit = CompactionCommit {
            plan_id,
            sources: plan
                .segment_binlogs
                .iter()
                .map(|source| CompactionSource {
                    segment_id: source.segment_id,
                    plan_deltalog_ids: plan_deltalog_ids(source),
                })
                .collect(),
            segment_id: result.segment_id,
            num_of_rows: result.num_of_rows,
            binlogs: result.insert_logs.clone(),
            statslogs: result.field2_statslog_paths.clone(),
            deltalogs: result.deltalogs.clone(),
            copied_deltalogs: copied,
            start_time: plan.start_time,
        };
        match self.meta.complete_compaction(commit).await {
            Ok(CommitOutcome::Committed(segment)) => {
                tracing::info!(
                    plan_id,
                    segment_id = segment.id,
                    num_of_rows = segment.num_of_rows,
                    state = ?segment.state(),
                    "compaction result committed"
                );
            }
            Ok(CommitOutcome::Refused(refusal)) if refusal.is_retriable() => {
                tracing::info!(plan_id, reason = %refusal, "compaction commit deferred to the next poll");
                return;
            }
            Ok(CommitOutcome::Refused(refusal)) => {
                tracing::warn!(
                    plan_id,
                    node_id = task.node_id,
                    segment_id = result.segment_id,
                    reason = %refusal,
                    "compaction result refused"
                );
                self.transition(plan_id, TaskState::Failed).await;
                return;
            }
            Err(err) => {
                tracing::warn!(plan_id, error = %err, "cannot commit compaction result; retried at the next poll");
                return;
            }
        }
        self.transition(plan_id, TaskState::Committed).await;
        self.sync_and_complete(plan_id).await;
    }

    /// Copies the delete logs the sources gained after the plan to the result segment's
    /// delete-log paths (2.3.5 copies them too); returns them in logID form. Nothing to copy
    /// once the result is in meta (an earlier run copied them).
    async fn copy_late_deltalogs(
        &self,
        task: &CompactionTaskRecord,
        result: &CompactionResult,
    ) -> MilvusResult<Vec<FieldBinlog>> {
        if self.meta.segment(result.segment_id).is_some() {
            return Ok(Vec::new());
        }
        let root = self.root_path();
        let mut copied = Vec::new();
        for source in task.plan.iter().flat_map(|plan| &plan.segment_binlogs) {
            let Some(segment) = self.meta.segment(source.segment_id) else {
                continue;
            };
            let late = late_deltalogs(&with_full_paths(&segment, root), &plan_deltalog_ids(source));
            for field in late {
                let mut binlogs = Vec::with_capacity(field.binlogs.len());
                for binlog in field.binlogs {
                    let Some(id) = log_id(&binlog) else {
                        continue;
                    };
                    let target = delta_log_path(
                        root,
                        task.collection_id,
                        task.partition_id,
                        result.segment_id,
                        id,
                    );
                    let data = self.chunks.read(&binlog.log_path).await?;
                    self.chunks.write(&target, data).await?;
                    tracing::info!(
                        plan_id = task.plan_id(),
                        segment_id = source.segment_id,
                        from = %binlog.log_path,
                        to = %target,
                        "late delete log copied to the compaction result"
                    );
                    binlogs.push(Binlog {
                        log_id: id,
                        log_path: String::new(),
                        ..binlog
                    });
                }
                copied.push(FieldBinlog {
                    field_id: field.field_id,
                    binlogs,
                });
            }
        }
        Ok(copied)
    }

    /// SyncSegments for a committed task, then Completed. A node that is no longer registered
    /// cannot hear it: the task completes anyway (meta is final). A failed sync leaves the task
    /// Committed for the next poll to retry.
    pub(crate) async fn sync_and_complete(self: &Arc<Self>, plan_id: i64) {
        let Some(task) = self.lock_tasks().get(plan_id).cloned() else {
            return;
        };
        let Some(result) = task.result.clone() else {
            tracing::error!(plan_id, "committed compaction task has no result");
            return;
        };
        let node = task.node_id;
        if self.nodes.nodes().contains(&node) {
            let request = SyncSegmentsRequest {
                plan_id,
                compacted_to: result.segment_id,
                num_of_rows: result.num_of_rows,
                compacted_from: task.sources(),
                stats_logs: result.field2_statslog_paths.clone(),
            };
            if let Err(err) = self.sync_segments(node, request).await {
                tracing::warn!(plan_id, node_id = node, error = %err, "sync segments failed; retried at the next poll");
                return;
            }
        } else {
            tracing::warn!(
                plan_id,
                node_id = node,
                "datanode gone; committed compaction completes without sync segments"
            );
        }
        self.compacted_segment_size
            .observe(compacted_segment_size(&result) as f64);
        self.transition(plan_id, TaskState::Completed).await;
        tracing::info!(
            plan_id,
            segment_id = result.segment_id,
            "compaction completed"
        );
        if self.flushed.send(result.segment_id).await.is_err() {
            tracing::warn!(
                segment_id = result.segment_id,
                "flush path closed; compacted segment not handed over"
            );
        }
    }

    /// SyncSegments with 2.3.5's retries: up to [`SYNC_ATTEMPTS`] attempts, each bounded by
    /// `rpcTimeout`, pausing as `retry.Do` does (200 ms doubling to 3 s) between them.
    async fn sync_segments(&self, node: NodeId, request: SyncSegmentsRequest) -> MilvusResult<()> {
        let plan_id = request.plan_id;
        let synced = milvus_types::retry(
            Backoff::RETRY_DO,
            || bounded(self.config.rpc_timeout, self.nodes.sync_segments(node, request.clone())),
            |err, attempt| {
                tracing::debug!(plan_id, node_id = node, attempt, error = %err, "sync segments attempt failed");
                (attempt as usize) < SYNC_ATTEMPTS
            },
        )
        .await;
        synced.map(|_| ())
    }
}
