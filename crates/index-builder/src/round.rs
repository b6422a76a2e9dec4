//! One scheduler round (FACTS 1.5): every task moves at most one step. InProgress tasks are
//! polled and Done/Retry tasks released with one call per node, then Init tasks are checked
//! and assigned (`assign.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datacoord_index::{BuildId, FinishedTask, SegmentIndex};
use milvus_proto::common::IndexState;
use milvus_proto::index::{DropJobsRequest, IndexTaskInfo, QueryJobsRequest};
use milvus_types::NodeId;

use crate::builder::IndexBuilder;
use crate::nodes::{CallError, bounded};
use crate::task::TaskState;

/// What one round did, by task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundSummary {
    /// Sent to a node and recorded InProgress.
    pub assigned: usize,
    /// FLAT/BIN_FLAT or small segments recorded Finished without a build.
    pub skipped_build: usize,
    /// Reported Finished by their node and recorded.
    pub finished: usize,
    /// Reported Failed by their node and recorded (terminal).
    pub failed: usize,
    /// Moved to Retry (node gone, job lost or refused).
    pub retried: usize,
    /// Released: the node dropped the job (or is gone); Done tasks forgotten, Retry → Init.
    pub released: usize,
    /// Forgotten because the record is gone, or marked deleted (segment or index gone).
    pub removed: usize,
    /// Init tasks that found no node with a free slot.
    pub waiting: usize,
}

impl IndexBuilder {
    /// Runs one round now; rounds never overlap.
    pub async fn run_once(&self) -> RoundSummary {
        let _round = self.round.lock().await;
        let mut summary = RoundSummary::default();
        let mut init = Vec::new();
        let mut to_poll: BTreeMap<NodeId, Vec<Arc<SegmentIndex>>> = BTreeMap::new();
        let mut to_release: BTreeMap<NodeId, Vec<(Arc<SegmentIndex>, TaskState)>> = BTreeMap::new();
        let snapshot = self.tasks.snapshot();
        if !snapshot.is_empty() {
            tracing::debug!(tasks = snapshot.len(), "index builder task schedule");
        }
        for (build_id, state) in snapshot {
            let Some(record) = self.meta.segment_index(build_id) else {
                tracing::debug!(build_id, "index task has no record any more, remove task");
                self.tasks.remove(build_id);
                summary.removed += 1;
                continue;
            };
            match state {
                TaskState::Init => init.push(record),
                TaskState::InProgress => to_poll.entry(record.node_id).or_default().push(record),
                TaskState::Done | TaskState::Retry => to_release
                    .entry(record.node_id)
                    .or_default()
                    .push((record, state)),
            }
        }
        self.poll(to_poll, &mut summary).await;
        self.release(to_release, &mut summary).await;
        self.assign(init, &mut summary).await;
        summary
    }

    /// QueryJobs, one call per node carrying all its build IDs, all nodes at once.
    async fn poll(
        &self,
        to_poll: BTreeMap<NodeId, Vec<Arc<SegmentIndex>>>,
        summary: &mut RoundSummary,
    ) {
        let calls = to_poll.into_iter().map(|(node_id, records)| async move {
            let req = QueryJobsRequest {
                cluster_id: self.config.cluster_id.clone(),
                build_i_ds: records.iter().map(|record| record.build_id).collect(),
            };
            let answer = bounded(self.nodes.query_jobs(node_id, req)).await;
            (node_id, records, answer)
        });
        for (node_id, records, answer) in futures::future::join_all(calls).await {
            let infos: HashMap<BuildId, IndexTaskInfo> = match answer {
                Ok(resp) => resp
                    .index_infos
                    .into_iter()
                    .map(|info| (info.build_id, info))
                    .collect(),
                Err(err) => {
                    tracing::warn!(
                        node_id, tasks = records.len(), error = %err,
                        "query jobs on IndexNode failed, tasks will be retried"
                    );
                    for record in &records {
                        self.tasks.set(record.build_id, TaskState::Retry);
                        summary.retried += 1;
                    }
                    continue;
                }
            };
            for record in records {
                self.apply_job_info(node_id, &record, infos.get(&record.build_id), summary)
                    .await;
            }
        }
    }

    async fn apply_job_info(
        &self,
        node_id: NodeId,
        record: &SegmentIndex,
        info: Option<&IndexTaskInfo>,
        summary: &mut RoundSummary,
    ) {
        let build_id = record.build_id;
        let Some(info) = info else {
            tracing::info!(
                build_id,
                node_id,
                "this task should be retry, indexNode does not have this task"
            );
            self.tasks.set(build_id, TaskState::Retry);
            summary.retried += 1;
            return;
        };
        let state = info.state();
        match state {
            IndexState::Finished | IndexState::Failed => {
                let outcome = FinishedTask {
                    state,
                    index_file_keys: info.index_file_keys.clone(),
                    fail_reason: info.fail_reason.clone(),
                    serialized_size: info.serialized_size,
                    current_index_version: info.current_index_version,
                };
                if let Err(err) = self.meta.finish_task(build_id, outcome).await {
                    // Stays InProgress: the next poll reports the outcome again.
                    tracing::warn!(build_id, error = %err, "cannot record the outcome of an index task");
                    return;
                }
                if state == IndexState::Finished {
                    summary.finished += 1;
                    tracing::info!(
                        build_id,
                        node_id,
                        segment_id = record.segment_id,
                        "finish index task success"
                    );
                } else {
                    summary.failed += 1;
                    tracing::warn!(
                        build_id, node_id, segment_id = record.segment_id,
                        fail_reason = %info.fail_reason, "index task failed"
                    );
                }
                self.tasks.set(build_id, TaskState::Done);
            }
            IndexState::Retry | IndexState::None => {
                tracing::info!(
                    build_id, node_id, fail_reason = %info.fail_reason,
                    "this task should be retry"
                );
                self.tasks.set(build_id, TaskState::Retry);
                summary.retried += 1;
            }
            IndexState::Unissued | IndexState::InProgress => {}
        }
    }

    /// DropJobs, one call per node carrying all its Done and Retry build IDs. A node that is
    /// gone has nothing left to drop; a record that never had a node needs no call.
    async fn release(
        &self,
        to_release: BTreeMap<NodeId, Vec<(Arc<SegmentIndex>, TaskState)>>,
        summary: &mut RoundSummary,
    ) {
        let calls = to_release.into_iter().map(|(node_id, tasks)| async move {
            if node_id == 0 {
                return (node_id, tasks, Ok(()));
            }
            let req = DropJobsRequest {
                cluster_id: self.config.cluster_id.clone(),
                build_i_ds: tasks.iter().map(|(record, _)| record.build_id).collect(),
            };
            let answer = match bounded(self.nodes.drop_jobs(node_id, req)).await {
                Ok(_) | Err(CallError::Gone) => Ok(()),
                Err(err) => Err(err),
            };
            (node_id, tasks, answer)
        });
        for (node_id, tasks, answer) in futures::future::join_all(calls).await {
            if let Err(err) = answer {
                tracing::warn!(
                    node_id, tasks = tasks.len(), error = %err,
                    "IndexCoord notify IndexNode drop the index task fail"
                );
                continue;
            }
            for (record, state) in tasks {
                let build_id = record.build_id;
                if state == TaskState::Done {
                    self.tasks.remove(build_id);
                } else {
                    self.tasks.set(build_id, TaskState::Init);
                }
                summary.released += 1;
                tracing::info!(
                    build_id,
                    node_id,
                    was = state.as_str(),
                    "IndexCoord notify IndexNode drop the index task success"
                );
            }
        }
    }
}
