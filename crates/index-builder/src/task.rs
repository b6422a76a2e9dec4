//! The in-memory task table: build ID → [`TaskState`] (2.3.5 keeps it in memory only and
//! rebuilds it from the segment-index records at start).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use datacoord_index::{BuildId, SegmentIndex};
use milvus_proto::common::IndexState;

/// Where a build task is in the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Waiting for a node (record Unissued, or back from Retry).
    Init,
    /// Sent to the node in the record; polled with QueryJobs.
    InProgress,
    /// Outcome stored; the node is told to drop the job, then the task is forgotten.
    Done,
    /// The node lost or refused the job; it is told to drop it, then the task goes to Init.
    Retry,
}

impl TaskState {
    /// The name 2.3.5 logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Init => "Init",
            Self::InProgress => "InProgress",
            Self::Done => "Done",
            Self::Retry => "Retry",
        }
    }
}

/// How many tasks are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCounts {
    /// Waiting for a node.
    pub init: usize,
    /// Building on a node.
    pub in_progress: usize,
    /// Finished, failed or skipped; the job is still to be dropped.
    pub done: usize,
    /// To be dropped and reassigned.
    pub retry: usize,
}

impl TaskCounts {
    /// All tasks.
    pub fn total(&self) -> usize {
        self.init + self.in_progress + self.done + self.retry
    }
}

/// The task table. Every access is a short critical section; no lock is held across an await.
#[derive(Debug, Default)]
pub(crate) struct TaskTable {
    tasks: Mutex<BTreeMap<BuildId, TaskState>>,
}

impl TaskTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<BuildId, TaskState>> {
        // Nothing panics while holding the lock, so a poisoned table is still consistent.
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The start-up table (FACTS 1.5): live Unissued records → Init, InProgress → InProgress.
    /// An Unissued record that names a node was assigned once and then interrupted (crash
    /// before the state reached InProgress); it starts at Retry so that node is told to drop
    /// a job it may have received.
    pub(crate) fn recover(records: &[std::sync::Arc<SegmentIndex>]) -> Self {
        let table = Self::default();
        {
            let mut tasks = table.lock();
            for record in records.iter().filter(|record| !record.deleted) {
                let state = match record.state {
                    IndexState::Unissued if record.node_id != 0 => TaskState::Retry,
                    IndexState::Unissued => TaskState::Init,
                    IndexState::InProgress => TaskState::InProgress,
                    _ => continue,
                };
                tasks.insert(record.build_id, state);
            }
        }
        table
    }

    /// Adds a task in Init unless it is already known; returns whether it was added.
    pub(crate) fn enqueue(&self, build_id: BuildId) -> bool {
        let mut tasks = self.lock();
        if tasks.contains_key(&build_id) {
            return false;
        }
        tasks.insert(build_id, TaskState::Init);
        true
    }

    pub(crate) fn get(&self, build_id: BuildId) -> Option<TaskState> {
        self.lock().get(&build_id).copied()
    }

    pub(crate) fn set(&self, build_id: BuildId, state: TaskState) {
        self.lock().insert(build_id, state);
    }

    pub(crate) fn remove(&self, build_id: BuildId) {
        self.lock().remove(&build_id);
    }

    /// Every task, by build ID ascending.
    pub(crate) fn snapshot(&self) -> Vec<(BuildId, TaskState)> {
        self.lock()
            .iter()
            .map(|(&build_id, &state)| (build_id, state))
            .collect()
    }

    pub(crate) fn counts(&self) -> TaskCounts {
        let mut counts = TaskCounts::default();
        for state in self.lock().values() {
            match state {
                TaskState::Init => counts.init += 1,
                TaskState::InProgress => counts.in_progress += 1,
                TaskState::Done => counts.done += 1,
                TaskState::Retry => counts.retry += 1,
            }
        }
        counts
    }
}
