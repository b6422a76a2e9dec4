//! Init tasks (FACTS 1.5–1.7): drop tasks whose segment or index went away, finish FLAT and
//! small segments without a build, and send the rest to the IndexNode with the most free
//! slots, counting slots down locally so one round spreads tasks over nodes.

use std::collections::BTreeMap;
use std::sync::Arc;

use datacoord_index::{FinishedTask, Index, SegmentIndex};
use datacoord_meta::{is_healthy, with_full_paths};
use milvus_proto::common::IndexState;
use milvus_proto::data::SegmentInfo;
use milvus_proto::index::CreateJobRequest;
use milvus_types::NodeId;

use crate::builder::IndexBuilder;
use crate::nodes::bounded;
use crate::round::RoundSummary;
use crate::task::TaskState;

/// Index types that are searched by brute force: nothing to build.
const FLAT_INDEX_TYPES: [&str; 2] = ["FLAT", "BIN_FLAT"];

/// An Init task that needs a node.
struct Buildable {
    record: Arc<SegmentIndex>,
    index: Arc<Index>,
    segment: Arc<SegmentInfo>,
}

/// How assigning one task to a node ended.
enum Outcome {
    /// Recorded InProgress.
    Assigned,
    /// Nothing reached the node (the assignment could not be recorded): the slot is unused.
    Untouched,
    /// The node refused or did not answer: the task goes to Retry, the node gets no more
    /// tasks this round.
    Refused,
    /// The node took the job but the InProgress state could not be recorded: Retry.
    StateLost,
}

impl IndexBuilder {
    pub(crate) async fn assign(&self, init: Vec<Arc<SegmentIndex>>, summary: &mut RoundSummary) {
        let mut buildable = Vec::new();
        for record in init {
            if let Some(task) = self.check_init(record, summary).await {
                buildable.push(task);
            }
        }
        if buildable.is_empty() {
            return;
        }
        let mut slots = self.free_slots().await;
        let mut tasks = buildable.into_iter();
        for task in tasks.by_ref() {
            let Some(node_id) = pick_node(&slots) else {
                summary.waiting += 1;
                break;
            };
            let build_id = task.record.build_id;
            match self.send(&task, node_id).await {
                Outcome::Assigned => {
                    summary.assigned += 1;
                    decrement(&mut slots, node_id);
                    self.tasks.set(build_id, TaskState::InProgress);
                }
                Outcome::Untouched => {}
                Outcome::Refused => {
                    summary.retried += 1;
                    slots.remove(&node_id);
                    self.tasks.set(build_id, TaskState::Retry);
                }
                Outcome::StateLost => {
                    summary.retried += 1;
                    decrement(&mut slots, node_id);
                    self.tasks.set(build_id, TaskState::Retry);
                }
            }
        }
        let left = tasks.len();
        if summary.waiting > 0 {
            summary.waiting += left;
            tracing::info!(
                waiting = summary.waiting,
                "there is no idle indexing node, wait a minute..."
            );
        }
    }

    /// The checks before a build. Returns the task when it needs a node; otherwise the task
    /// was removed, finished, or stays Init after a failed write.
    async fn check_init(
        &self,
        record: Arc<SegmentIndex>,
        summary: &mut RoundSummary,
    ) -> Option<Buildable> {
        let build_id = record.build_id;
        let segment = self
            .segments
            .segment(record.segment_id)
            .filter(|segment| is_healthy(segment.state()));
        let index = self
            .meta
            .index(record.collection_id, record.index_id)
            .filter(|index| !index.deleted);
        let (Some(segment), Some(index)) = (segment, index) else {
            if let Err(err) = self.meta.mark_segment_index_deleted(build_id).await {
                tracing::warn!(build_id, error = %err, "IndexCoord delete index failed");
                return None;
            }
            tracing::info!(
                build_id,
                segment_id = record.segment_id,
                index_id = record.index_id,
                "task is no need to build index, remove it"
            );
            self.tasks.remove(build_id);
            summary.removed += 1;
            return None;
        };
        let min_rows = self.min_segment_rows();
        if FLAT_INDEX_TYPES.contains(&index.index_type()) || record.num_rows < min_rows {
            let finished = FinishedTask {
                state: IndexState::Finished,
                ..FinishedTask::default()
            };
            if let Err(err) = self.meta.finish_task(build_id, finished).await {
                tracing::warn!(build_id, error = %err, "IndexCoord update index state fail");
                return None;
            }
            tracing::info!(
                build_id,
                segment_id = record.segment_id,
                num_rows = record.num_rows,
                index_type = index.index_type(),
                "segment does not need index really"
            );
            self.tasks.set(build_id, TaskState::Done);
            summary.skipped_build += 1;
            return None;
        }
        Some(Buildable {
            record,
            index,
            segment,
        })
    }

    /// Free slots of every node that may take tasks (not stopping, answered GetJobStats with
    /// success and `task_slots > 0`), asked all at once, each bounded.
    async fn free_slots(&self) -> BTreeMap<NodeId, i64> {
        let candidates: Vec<NodeId> = self
            .nodes
            .nodes()
            .into_iter()
            .filter(|&(_, stopping)| !stopping)
            .map(|(node_id, _)| node_id)
            .collect();
        if candidates.is_empty() {
            tracing::info!("there is no IndexNode online");
            return BTreeMap::new();
        }
        let asks = candidates.into_iter().map(|node_id| async move {
            let answer = bounded(self.nodes.get_job_stats(node_id)).await;
            (node_id, answer)
        });
        let mut slots = BTreeMap::new();
        for (node_id, answer) in futures::future::join_all(asks).await {
            match answer {
                Ok(stats) if stats.task_slots > 0 => {
                    slots.insert(node_id, stats.task_slots);
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(node_id, error = %err, "get IndexNode slots failed"),
            }
        }
        slots
    }

    async fn send(&self, task: &Buildable, node_id: NodeId) -> Outcome {
        let record = &task.record;
        let build_id = record.build_id;
        if let Err(err) = self.meta.update_version(build_id, node_id).await {
            tracing::warn!(build_id, node_id, error = %err, "index builder update index version failed");
            return Outcome::Untouched;
        }
        let req = self.create_job_request(task);
        if let Err(err) = bounded(self.nodes.create_job(node_id, req)).await {
            tracing::warn!(
                build_id, node_id, error = %err,
                "index builder assign task to IndexNode failed"
            );
            return Outcome::Refused;
        }
        tracing::info!(
            build_id,
            node_id,
            segment_id = record.segment_id,
            collection_id = record.collection_id,
            index_id = record.index_id,
            "index task assigned successfully"
        );
        if let Err(err) = self.meta.build_index(build_id).await {
            tracing::warn!(
                build_id, node_id, error = %err,
                "index builder update index meta to InProgress failed"
            );
            return Outcome::StateLost;
        }
        Outcome::Assigned
    }

    /// `CreateJob` as 2.3.5 fills it (FACTS 1.7); `indexID` and `index_name` stay unset.
    fn create_job_request(&self, task: &Buildable) -> CreateJobRequest {
        let Buildable {
            record,
            index,
            segment,
        } = task;
        let with_paths = with_full_paths(segment, &self.config.chunk_root_path);
        let data_paths = with_paths
            .binlogs
            .iter()
            .filter(|field| field.field_id == index.field_id)
            .flat_map(|field| field.binlogs.iter().map(|binlog| binlog.log_path.clone()))
            .collect();
        CreateJobRequest {
            cluster_id: self.config.cluster_id.clone(),
            index_file_prefix: self.config.index_file_prefix(),
            build_id: record.build_id,
            data_paths,
            // The version just recorded by `update_version`.
            index_version: record.index_version + 1,
            index_id: 0,
            index_name: String::new(),
            storage_config: Some(self.config.storage_config.clone()),
            index_params: index.index_params.clone(),
            type_params: index.type_params.clone(),
            num_rows: record.num_rows,
            current_index_version: (self.engine_version)(),
        }
    }
}

/// The node with the most free slots; ties go to the lowest node ID.
fn pick_node(slots: &BTreeMap<NodeId, i64>) -> Option<NodeId> {
    slots
        .iter()
        .filter(|&(_, &free)| free > 0)
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(&node_id, _)| node_id)
}

fn decrement(slots: &mut BTreeMap<NodeId, i64>, node_id: NodeId) {
    if let Some(free) = slots.get_mut(&node_id) {
        *free -= 1;
        if *free <= 0 {
            slots.remove(&node_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_node_prefers_most_free_slots_then_lowest_id() {
        let mut slots = BTreeMap::from([(3, 2), (1, 2), (2, 1)]);
        assert_eq!(pick_node(&slots), Some(1));
        decrement(&mut slots, 1);
        assert_eq!(pick_node(&slots), Some(3));
        decrement(&mut slots, 3);
        assert_eq!(pick_node(&slots), Some(1));
        decrement(&mut slots, 1);
        assert_eq!(pick_node(&slots), Some(2));
        decrement(&mut slots, 2);
        assert_eq!(pick_node(&slots), Some(3));
        decrement(&mut slots, 3);
        assert_eq!(pick_node(&slots), None);
        assert!(slots.is_empty());
    }
}
