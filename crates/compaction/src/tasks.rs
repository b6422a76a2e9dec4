//! The in-memory task table: every task by plan ID, the segments unfinished tasks lock, and
//! which changes are not persisted yet.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use milvus_types::{CollectionId, PartitionId, SegmentId};
use tokio::sync::OwnedSemaphorePermit;

use crate::record::{CompactionTaskRecord, TaskState};

/// One task as held in memory.
pub(crate) struct Task {
    pub(crate) record: CompactionTaskRecord,
    /// Bumped on every change; equal to `saved` when the store holds this version.
    version: u64,
    saved: u64,
    /// The task's slot on its DataNode (`workerMaxParallelTaskNum`), held until it is final.
    permit: Option<OwnedSemaphorePermit>,
}

/// How many tasks are in each group GetCompactionState reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TaskCounts {
    /// Pipelining, Executing and Committed.
    pub(crate) executing: i64,
    /// Completed.
    pub(crate) completed: i64,
    /// Failed.
    pub(crate) failed: i64,
    /// Timeout.
    pub(crate) timeout: i64,
}

#[derive(Default)]
pub(crate) struct TaskTable {
    tasks: BTreeMap<i64, Task>,
    /// Segment → unfinished plans holding it. Normally one; two only after a reload found
    /// records that both claim it, and each unlocks only its own claim.
    locks: HashMap<SegmentId, BTreeSet<i64>>,
}

impl TaskTable {
    /// Adds a task; an unfinished one locks its sources. Refuses a known plan ID, or (when
    /// `exclusive`) a source another task locks.
    pub(crate) fn insert(
        &mut self,
        record: CompactionTaskRecord,
        saved: bool,
        exclusive: bool,
    ) -> Result<(), String> {
        let plan_id = record.plan_id();
        if self.tasks.contains_key(&plan_id) {
            return Err(format!("plan {plan_id} is already a task"));
        }
        let sources = record.sources();
        if exclusive && let Some(locked) = sources.iter().find(|id| self.is_compacting(**id)) {
            return Err(format!("segment {locked} is already being compacted"));
        }
        if !record.task_state().is_final() {
            for id in sources {
                self.locks.entry(id).or_default().insert(plan_id);
            }
        }
        self.tasks.insert(
            plan_id,
            Task {
                record,
                version: 1,
                saved: if saved { 1 } else { 0 },
                permit: None,
            },
        );
        Ok(())
    }

    pub(crate) fn get(&self, plan_id: i64) -> Option<&CompactionTaskRecord> {
        self.tasks.get(&plan_id).map(|task| &task.record)
    }

    /// Changes a task's record (marks it unsaved); `None` when the task is unknown.
    pub(crate) fn update<T>(
        &mut self,
        plan_id: i64,
        change: impl FnOnce(&mut CompactionTaskRecord) -> T,
    ) -> Option<T> {
        let task = self.tasks.get_mut(&plan_id)?;
        task.version += 1;
        Some(change(&mut task.record))
    }

    /// Moves a task to `state`; a final state unlocks its sources, frees its node slot and
    /// strips its logs.
    pub(crate) fn set_state(&mut self, plan_id: i64, state: TaskState) {
        let Some(task) = self.tasks.get_mut(&plan_id) else {
            return;
        };
        task.version += 1;
        task.record.set_task_state(state);
        if state.is_final() {
            task.permit = None;
            task.record.strip_logs();
            let sources = task.record.sources();
            self.unlock(plan_id, &sources);
        }
    }

    fn unlock(&mut self, plan_id: i64, sources: &[SegmentId]) {
        for id in sources {
            if let Some(plans) = self.locks.get_mut(id) {
                plans.remove(&plan_id);
                if plans.is_empty() {
                    self.locks.remove(id);
                }
            }
        }
    }

    pub(crate) fn attach_permit(&mut self, plan_id: i64, permit: OwnedSemaphorePermit) {
        if let Some(task) = self.tasks.get_mut(&plan_id)
            && !task.record.task_state().is_final()
        {
            task.permit = Some(permit);
        }
    }

    /// The record to save and its version, if the store may not hold it yet.
    pub(crate) fn unsaved(&self, plan_id: i64) -> Option<(CompactionTaskRecord, u64)> {
        let task = self.tasks.get(&plan_id)?;
        (task.version != task.saved).then(|| (task.record.clone(), task.version))
    }

    pub(crate) fn mark_saved(&mut self, plan_id: i64, version: u64) {
        if let Some(task) = self.tasks.get_mut(&plan_id) {
            task.saved = task.saved.max(version);
        }
    }

    /// Plans whose latest change is not saved.
    pub(crate) fn dirty(&self) -> Vec<i64> {
        self.tasks
            .iter()
            .filter(|(_, task)| task.version != task.saved)
            .map(|(plan_id, _)| *plan_id)
            .collect()
    }

    pub(crate) fn remove(&mut self, plan_id: i64) -> Option<CompactionTaskRecord> {
        let task = self.tasks.remove(&plan_id)?;
        let sources = task.record.sources();
        self.unlock(plan_id, &sources);
        Some(task.record)
    }

    pub(crate) fn is_compacting(&self, segment: SegmentId) -> bool {
        self.locks.contains_key(&segment)
    }

    /// Unfinished tasks (2.3.5's `executingTaskNum`).
    pub(crate) fn unfinished(&self) -> usize {
        self.tasks
            .values()
            .filter(|task| !task.record.task_state().is_final())
            .count()
    }

    pub(crate) fn records(&self) -> impl Iterator<Item = &CompactionTaskRecord> {
        self.tasks.values().map(|task| &task.record)
    }

    pub(crate) fn unfinished_partitions(&self) -> BTreeSet<(CollectionId, PartitionId)> {
        self.records()
            .filter(|record| !record.task_state().is_final())
            .map(|record| (record.collection_id, record.partition_id))
            .collect()
    }

    /// GetCompactionState's counts over the tasks of `signal_id` (0: every task).
    pub(crate) fn counts(&self, signal_id: i64) -> TaskCounts {
        let mut counts = TaskCounts::default();
        for record in self.of_signal(signal_id) {
            match record.task_state() {
                TaskState::Pipelining | TaskState::Executing | TaskState::Committed => {
                    counts.executing += 1
                }
                TaskState::Completed => counts.completed += 1,
                TaskState::Failed => counts.failed += 1,
                TaskState::Timeout => counts.timeout += 1,
                TaskState::Unknown => {}
            }
        }
        counts
    }

    pub(crate) fn of_signal(&self, signal_id: i64) -> impl Iterator<Item = &CompactionTaskRecord> {
        self.records()
            .filter(move |record| signal_id == 0 || record.signal_id == signal_id)
    }
}

#[cfg(test)]
mod tests {
    use milvus_proto::data::{CompactionPlan, CompactionSegmentBinlogs};

    use super::*;

    fn record(plan_id: i64, sources: &[SegmentId]) -> CompactionTaskRecord {
        let mut record = CompactionTaskRecord {
            plan: Some(CompactionPlan {
                plan_id,
                segment_binlogs: sources
                    .iter()
                    .map(|id| CompactionSegmentBinlogs {
                        segment_id: *id,
                        ..CompactionSegmentBinlogs::default()
                    })
                    .collect(),
                ..CompactionPlan::default()
            }),
            ..CompactionTaskRecord::default()
        };
        record.set_task_state(TaskState::Executing);
        record
    }

    #[test]
    fn locks_follow_unfinished_tasks_and_each_claim_is_released_alone() {
        let mut table = TaskTable::default();
        table
            .insert(record(1, &[10, 11]), true, true)
            .expect("first");
        assert!(table.is_compacting(10) && table.is_compacting(11));
        assert!(table.insert(record(2, &[11, 12]), true, true).is_err());
        assert!(!table.is_compacting(12), "a refused task locks nothing");
        // A reload may find two records claiming segment 11.
        table
            .insert(record(2, &[11, 12]), true, false)
            .expect("reload");
        table.set_state(1, TaskState::Failed);
        assert!(!table.is_compacting(10));
        assert!(table.is_compacting(11), "still claimed by plan 2");
        table.set_state(2, TaskState::Completed);
        assert!(!table.is_compacting(11) && !table.is_compacting(12));
        assert_eq!(table.unfinished(), 0);
    }

    #[test]
    fn changes_stay_dirty_until_their_version_is_saved() {
        let mut table = TaskTable::default();
        table.insert(record(1, &[10]), true, true).expect("insert");
        assert!(table.dirty().is_empty());
        table.set_state(1, TaskState::Timeout);
        let (_, version) = table.unsaved(1).expect("dirty");
        table.set_state(1, TaskState::Failed);
        table.mark_saved(1, version);
        assert_eq!(table.dirty(), vec![1], "a newer change is still unsaved");
        let (saved, latest) = table.unsaved(1).expect("dirty");
        assert_eq!(saved.task_state(), TaskState::Failed);
        table.mark_saved(1, latest);
        assert!(table.dirty().is_empty());
    }
}
