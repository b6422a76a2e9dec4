//! The persisted compaction task: one record per plan under our own key prefix, relative to the
//! meta root (`by-dev/meta`):
//!
//! | key | value |
//! |---|---|
//! | `datacoord-rs/compaction-task/{planID}` | [`CompactionTaskRecord`] (prost, defined here) |
//!
//! Not under `datacoord-meta/`: Milvus 2.4 keeps its own, differently encoded tasks at
//! `datacoord-meta/compaction-task/`, and 2.3.5 reads neither, so a Go DataCoord taking over
//! ignores ours. Keys under the prefix that are not ours (not a decimal plan ID, or a value that
//! does not decode to a record of that plan) are logged and skipped at load.

use std::sync::Arc;

use bytes::Bytes;
use milvus_metastore::{MetaKv, MetastoreResult};
use milvus_proto::data::{CompactionPlan, CompactionResult};
use milvus_types::{CollectionId, NodeId, PartitionId, SegmentId};
use prost::Message;

/// Prefix of the compaction task records, with trailing `/`.
pub const COMPACTION_TASK_PREFIX: &str = "datacoord-rs/compaction-task/";

/// `datacoord-rs/compaction-task/{planID}`
pub fn compaction_task_key(plan_id: i64) -> String {
    format!("{COMPACTION_TASK_PREFIX}{plan_id}")
}

/// Where a task is. Pipelining, Executing, Committed and Timeout are unfinished (the sources stay
/// locked, the DataNode may still write files); Completed and Failed are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum TaskState {
    /// Not a state (an unreadable record).
    Unknown = 0,
    /// Persisted and locked; the plan may or may not have reached the DataNode.
    Pipelining = 1,
    /// Sent (or the send failed, which the next poll finds out).
    Executing = 2,
    /// The result is in meta; SyncSegments to the DataNode is pending.
    Committed = 3,
    /// Committed and synced.
    Completed = 4,
    /// Rejected, lost or refused; the sources were unlocked.
    Failed = 5,
    /// Ran past `timeout_in_seconds`; waits for the DataNode to drop it (or to complete it).
    Timeout = 6,
}

impl TaskState {
    /// Whether the task is over (Completed or Failed).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

/// One compaction task as persisted.
#[derive(Clone, PartialEq, Message)]
pub struct CompactionTaskRecord {
    /// The plan as sent (with `start_time` once allocated); log lists are stripped once final.
    #[prost(message, optional, tag = "1")]
    pub plan: Option<CompactionPlan>,
    /// The signal (= compactionID for manual compactions) that produced the plan.
    #[prost(int64, tag = "2")]
    pub signal_id: i64,
    /// The DataNode running the plan.
    #[prost(int64, tag = "3")]
    pub node_id: NodeId,
    /// Collection of the sources.
    #[prost(int64, tag = "4")]
    pub collection_id: CollectionId,
    /// Partition of the sources.
    #[prost(int64, tag = "5")]
    pub partition_id: PartitionId,
    /// Insert channel of the sources (the plan's channel).
    #[prost(string, tag = "6")]
    pub channel: String,
    /// [`TaskState`].
    #[prost(enumeration = "TaskState", tag = "7")]
    pub state: i32,
    /// The DataNode's result, recorded before it is committed (its segment ID is the committed
    /// result segment); log lists are stripped once final.
    #[prost(message, optional, tag = "8")]
    pub result: Option<CompactionResult>,
}

impl CompactionTaskRecord {
    /// The plan ID (0 when the record has no plan).
    pub fn plan_id(&self) -> i64 {
        self.plan.as_ref().map_or(0, |plan| plan.plan_id)
    }

    /// The source segments, in plan order.
    pub fn sources(&self) -> Vec<SegmentId> {
        self.plan
            .iter()
            .flat_map(|plan| &plan.segment_binlogs)
            .map(|binlogs| binlogs.segment_id)
            .collect()
    }

    /// The state, `Unknown` for a number this build does not know.
    pub fn task_state(&self) -> TaskState {
        TaskState::try_from(self.state).unwrap_or(TaskState::Unknown)
    }

    pub(crate) fn set_task_state(&mut self, state: TaskState) {
        self.state = state as i32;
    }

    /// Drops the log lists of the plan and the result (2.3.5 does the same to completed plans):
    /// a final record keeps IDs and counts only.
    pub(crate) fn strip_logs(&mut self) {
        if let Some(plan) = &mut self.plan {
            for segment in &mut plan.segment_binlogs {
                segment.field_binlogs.clear();
                segment.field2_statslog_paths.clear();
                segment.deltalogs.clear();
            }
        }
        if let Some(result) = &mut self.result {
            result.insert_logs.clear();
            result.field2_statslog_paths.clear();
            result.deltalogs.clear();
        }
    }
}

/// Every readable record under [`COMPACTION_TASK_PREFIX`], by plan ID.
pub(crate) async fn load_records(
    kv: &Arc<dyn MetaKv>,
) -> MetastoreResult<Vec<CompactionTaskRecord>> {
    let mut records = Vec::new();
    let mut skipped = 0usize;
    for (key, value) in kv.load_all_with_prefix(COMPACTION_TASK_PREFIX).await? {
        match decode(&key, &value) {
            Ok(record) => records.push(record),
            Err(reason) => {
                skipped += 1;
                tracing::warn!(key = %key, reason = %reason, "not a compaction task record; skipped");
            }
        }
    }
    records.sort_by_key(CompactionTaskRecord::plan_id);
    tracing::info!(tasks = records.len(), skipped, "compaction tasks loaded");
    Ok(records)
}

fn decode(key: &str, value: &[u8]) -> Result<CompactionTaskRecord, String> {
    let plan_id: i64 = key
        .strip_prefix(COMPACTION_TASK_PREFIX)
        .and_then(|id| id.parse().ok())
        .ok_or("the key does not end in a plan ID")?;
    let record = CompactionTaskRecord::decode(value).map_err(|err| err.to_string())?;
    if record.plan_id() != plan_id {
        return Err(format!("the record is of plan {}", record.plan_id()));
    }
    if record.task_state() == TaskState::Unknown {
        return Err(format!("unknown task state {}", record.state));
    }
    Ok(record)
}

/// Writes one record.
pub(crate) async fn save_record(
    kv: &Arc<dyn MetaKv>,
    record: &CompactionTaskRecord,
) -> MetastoreResult<()> {
    kv.save(
        &compaction_task_key(record.plan_id()),
        Bytes::from(record.encode_to_vec()),
    )
    .await
}

/// Deletes one record.
pub(crate) async fn remove_record(kv: &Arc<dyn MetaKv>, plan_id: i64) -> MetastoreResult<()> {
    kv.remove(&compaction_task_key(plan_id)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(plan_id: i64, state: TaskState) -> CompactionTaskRecord {
        let mut record = CompactionTaskRecord {
            plan: Some(CompactionPlan {
                plan_id,
                ..CompactionPlan::default()
            }),
            ..CompactionTaskRecord::default()
        };
        record.set_task_state(state);
        record
    }

    #[test]
    fn foreign_keys_and_values_are_not_records() {
        let good = record(7, TaskState::Executing);
        let key = compaction_task_key(7);
        assert_eq!(key, "datacoord-rs/compaction-task/7");
        assert_eq!(decode(&key, &good.encode_to_vec()), Ok(good.clone()));
        assert!(decode("datacoord-rs/compaction-task/x", &good.encode_to_vec()).is_err());
        assert!(decode(&compaction_task_key(8), &good.encode_to_vec()).is_err());
        assert!(decode(&key, b"\xff\xff\xff").is_err());
        assert!(decode(&key, &record(7, TaskState::Unknown).encode_to_vec()).is_err());
    }
}
