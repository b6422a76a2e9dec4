//! The logic of ManualCompaction, GetCompactionState and GetCompactionStateWithPlans (FACTS
//! §2.10). The gRPC adapter checks health first and turns errors into statuses. Answers come
//! from the task table, which a restart reloads from the persisted tasks (2.3.5 forgets them).

use milvus_proto::common::{CompactionState, Status};
use milvus_proto::milvus::{
    CompactionMergeInfo, GetCompactionPlansResponse, GetCompactionStateResponse,
};
use milvus_types::{CollectionId, MilvusError, MilvusResult};

use crate::engine::CompactionEngine;
use crate::record::TaskState;
use crate::tasks::TaskCounts;

impl CompactionEngine {
    /// ManualCompaction: allocates the compactionID (= signal ID), plans the collection now
    /// with every candidate prioritized (forced: the handler's limit does not apply), and
    /// returns the ID, also when nothing was planned. Collection 0 means every collection,
    /// as in 2.3.5.
    pub async fn manual_compaction(&self, collection_id: CollectionId) -> MilvusResult<i64> {
        self.check_enabled()?;
        let signal_id = self.inner.allocate_id().await?;
        let collection = (collection_id != 0).then_some(collection_id);
        let plans = self.inner.global_signal(signal_id, collection, true).await;
        tracing::info!(
            collection_id,
            compaction_id = signal_id,
            plans,
            "manual compaction triggered"
        );
        Ok(signal_id)
    }

    /// GetCompactionState: the tasks of compactionID `compaction_id` (0: every task);
    /// `executingPlanNo` counts Pipelining, Executing and Committed ones, and the state is
    /// Executing while any is, else Completed (also for unknown IDs).
    pub fn compaction_state(&self, compaction_id: i64) -> MilvusResult<GetCompactionStateResponse> {
        self.check_enabled()?;
        let counts = self.inner.lock_tasks().counts(compaction_id);
        Ok(GetCompactionStateResponse {
            status: Some(Status::default()),
            state: overall_state(counts) as i32,
            executing_plan_no: counts.executing,
            timeout_plan_no: counts.timeout,
            completed_plan_no: counts.completed,
            failed_plan_no: counts.failed,
        })
    }

    /// GetCompactionStateWithPlans: the same state, and per task its sources and result
    /// segment (−1 until the result is committed), by plan ID.
    pub fn compaction_state_with_plans(
        &self,
        compaction_id: i64,
    ) -> MilvusResult<GetCompactionPlansResponse> {
        self.check_enabled()?;
        let tasks = self.inner.lock_tasks();
        let merge_infos = tasks
            .of_signal(compaction_id)
            .map(|record| CompactionMergeInfo {
                sources: record.sources(),
                target: match (record.task_state(), &record.result) {
                    (TaskState::Committed | TaskState::Completed, Some(result)) => {
                        result.segment_id
                    }
                    _ => -1,
                },
            })
            .collect();
        Ok(GetCompactionPlansResponse {
            status: Some(Status::default()),
            state: overall_state(tasks.counts(compaction_id)) as i32,
            merge_infos,
        })
    }

    fn check_enabled(&self) -> MilvusResult<()> {
        if self.inner.config.enable_compaction {
            Ok(())
        } else {
            Err(MilvusError::service_unavailable("compaction disabled"))
        }
    }
}

fn overall_state(counts: TaskCounts) -> CompactionState {
    if counts.executing > 0 {
        CompactionState::Executing
    } else {
        CompactionState::Completed
    }
}
