//! Handing a plan to its DataNode (FACTS §2.8 execute): check the sources, persist the task,
//! lock the sources, then — in the background, once the node has a free slot — a fresh start
//! TSO and the `Compaction` RPC.

use std::sync::Arc;

use milvus_proto::common::SegmentState;
use milvus_proto::data::CompactionPlan;
use milvus_types::{CollectionId, ErrorCode, MilvusError, MilvusResult, NodeId, PartitionId};

use crate::engine::{CompactionEngine, Inner};
use crate::nodes::bounded;
use crate::record::{CompactionTaskRecord, TaskState, save_record};

/// `start_time` of a plan whose TSO could not be allocated: it times out at the first poll, as
/// in 2.3.5.
const START_TIME_UNKNOWN: u64 = 1;

impl CompactionEngine {
    /// Starts a plan produced by signal `signal_id`: every source must be healthy, Flushed,
    /// not importing, not compacting and on the plan's channel, and a DataNode must watch the
    /// channel. The task is persisted (Pipelining) and its sources locked before this returns;
    /// the plan is sent in the background when its node has a free slot
    /// (`workerMaxParallelTaskNum`), with a fresh start TSO, and the task becomes Executing
    /// whether or not the node accepted it (a refused plan is absent at the next poll).
    pub async fn execute(&self, signal_id: i64, plan: CompactionPlan) -> MilvusResult<()> {
        self.inner.execute(signal_id, plan).await
    }
}

impl Inner {
    pub(crate) async fn execute(
        self: &Arc<Self>,
        signal_id: i64,
        plan: CompactionPlan,
    ) -> MilvusResult<()> {
        if !self.config.enable_compaction {
            return Err(MilvusError::service_unavailable("compaction disabled"));
        }
        let plan_id = plan.plan_id;
        let (collection_id, partition_id) = self.check_plan(&plan)?;
        let Some(node_id) = self.nodes.channel_node(&plan.channel) else {
            return Err(
                MilvusError::channel_not_found(&plan.channel).wrap("no DataNode watches it")
            );
        };
        let mut record = CompactionTaskRecord {
            channel: plan.channel.clone(),
            plan: Some(plan),
            signal_id,
            node_id,
            collection_id,
            partition_id,
            ..CompactionTaskRecord::default()
        };
        record.set_task_state(TaskState::Pipelining);
        self.lock_tasks()
            .insert(record.clone(), false, true)
            .map_err(|reason| MilvusError::new(ErrorCode::PARAMETER_INVALID).with_desc(reason))?;
        // Persisted before the DataNode can hear of it, so a restart knows the plan and GC
        // keeps the files it may write.
        if let Err(err) = save_record(&self.kv, &record).await {
            self.lock_tasks().remove(plan_id);
            tracing::warn!(plan_id, error = %err, "cannot persist compaction task; plan dropped");
            return Err(err.into());
        }
        self.lock_tasks().mark_saved(plan_id, 1);
        tracing::info!(
            plan_id,
            signal_id,
            node_id,
            collection_id,
            channel = %record.channel,
            segments = ?record.sources(),
            "compaction task persisted"
        );
        let inner = self.clone();
        self.spawn_send(async move { inner.send(plan_id, node_id).await });
        Ok(())
    }

    /// §2.3 eligibility of every source, checked again here whatever built the plan; returns
    /// the sources' collection and partition.
    fn check_plan(&self, plan: &CompactionPlan) -> MilvusResult<(CollectionId, PartitionId)> {
        let invalid = |reason: String| {
            MilvusError::new(ErrorCode::PARAMETER_INVALID)
                .with_desc(format!("compaction plan {}: {reason}", plan.plan_id))
        };
        if plan.segment_binlogs.is_empty() {
            return Err(invalid("no segment".to_string()));
        }
        let mut group = None;
        let mut seen = std::collections::BTreeSet::new();
        for source in &plan.segment_binlogs {
            let id = source.segment_id;
            if !seen.insert(id) {
                return Err(invalid(format!("segment {id} is listed twice")));
            }
            let seg = self
                .meta
                .segment(id)
                .ok_or_else(|| MilvusError::segment_not_found(id))?;
            if seg.state() != SegmentState::Flushed {
                return Err(invalid(format!("segment {id} is {:?}", seg.state())));
            }
            if seg.is_importing {
                return Err(invalid(format!("segment {id} is importing")));
            }
            // A source without insert logs gives the DataNode nothing to read.
            if seg.binlogs.iter().all(|field| field.binlogs.is_empty())
                || source
                    .field_binlogs
                    .iter()
                    .all(|field| field.binlogs.is_empty())
            {
                return Err(invalid(format!("segment {id} has no insert binlogs")));
            }
            if seg.insert_channel != plan.channel {
                return Err(invalid(format!(
                    "segment {id} is on channel {}",
                    seg.insert_channel
                )));
            }
            if self.lock_tasks().is_compacting(id) {
                return Err(invalid(format!("segment {id} is being compacted")));
            }
            let ids = (seg.collection_id, seg.partition_id);
            if *group.get_or_insert(ids) != ids {
                return Err(invalid(format!("segment {id} is of another partition")));
            }
        }
        group.ok_or_else(|| invalid("no segment".to_string()))
    }

    /// Waits for a slot on the node, stamps the plan with a fresh TSO and sends it.
    async fn send(self: Arc<Self>, plan_id: i64, node_id: NodeId) {
        let Ok(permit) = self.node_slots(node_id).acquire_owned().await else {
            return;
        };
        self.lock_tasks().attach_permit(plan_id, permit);
        let allocated =
            tokio::time::timeout(self.config.rpc_timeout, self.allocator.alloc_timestamp()).await;
        let start_time = match allocated {
            Ok(Ok(ts)) => Some(ts),
            Ok(Err(err)) => {
                tracing::warn!(plan_id, error = %err, "cannot allocate the start time of a compaction plan; it will time out");
                None
            }
            Err(_) => {
                tracing::warn!(
                    plan_id,
                    "start time allocation timed out; the plan will time out"
                );
                None
            }
        };
        let plan = self.lock_tasks().update(plan_id, |record| {
            let plan = record.plan.get_or_insert_default();
            plan.start_time = start_time.unwrap_or(START_TIME_UNKNOWN);
            plan.clone()
        });
        let Some(plan) = plan else {
            return;
        };
        if start_time.is_some() {
            let sent = bounded(
                self.config.rpc_timeout,
                self.nodes.compaction(node_id, plan),
            )
            .await;
            match sent {
                Ok(_) => tracing::info!(plan_id, node_id, "compaction plan sent"),
                // Not released here: the next poll finds the plan absent and fails the task.
                Err(err) => {
                    tracing::warn!(plan_id, node_id, error = %err, "datanode did not take the compaction plan")
                }
            }
        }
        self.transition(plan_id, TaskState::Executing).await;
        self.poll_wake.notify_one();
    }
}
