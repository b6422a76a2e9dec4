//! Test support (feature `testing`): [`FakeCompactionNodes`], an in-memory DataNode cluster
//! that records every call and lets a test decide when plans complete, fail or get lost, and
//! [`result_for`], which builds the result a DataNode would report for a plan.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use milvus_proto::common::{CompactionState, Status};
use milvus_proto::data::{
    Binlog, CompactionPlan, CompactionResult, CompactionStateResponse, CompactionStateResult,
    FieldBinlog, SyncSegmentsRequest,
};
use milvus_storage::{BinlogKind, binlog_path};
use milvus_types::{MilvusError, MilvusResult, NodeId, SegmentId};

use crate::nodes::{CompactionNodes, node_not_registered};

/// A plan as a fake DataNode holds it.
#[derive(Clone, Debug)]
enum FakePlan {
    Executing(CompactionPlan),
    Completed(CompactionPlan, CompactionResult),
}

impl FakePlan {
    fn plan(&self) -> &CompactionPlan {
        match self {
            Self::Executing(plan) | Self::Completed(plan, _) => plan,
        }
    }
}

#[derive(Debug, Default)]
struct FakeNode {
    plans: BTreeMap<i64, FakePlan>,
    fail_state: usize,
    fail_sync: usize,
    reject_compaction: usize,
    hang_compaction: bool,
}

#[derive(Debug, Default)]
struct Cluster {
    nodes: BTreeMap<NodeId, FakeNode>,
    channels: BTreeMap<String, NodeId>,
    received: Vec<(NodeId, CompactionPlan)>,
    synced: Vec<(NodeId, SyncSegmentsRequest)>,
    state_calls: usize,
}

/// In-memory DataNodes. A plan sent to a node runs (reported Executing) until the test
/// completes it with a result (reported Completed until a SyncSegments for it succeeds) or
/// forgets it (a failed plan simply disappears, as on a real DataNode). Unknown nodes answer
/// [`node_not_registered`].
#[derive(Debug, Default)]
pub struct FakeCompactionNodes {
    cluster: Mutex<Cluster>,
}

fn injected(what: &str) -> Status {
    MilvusError::unexpected(format!("injected DataNode failure: {what}")).to_status()
}

fn take(counter: &mut usize) -> bool {
    if *counter == 0 {
        return false;
    }
    *counter -= 1;
    true
}

impl FakeCompactionNodes {
    /// No nodes.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_node<T>(&self, node: NodeId, change: impl FnOnce(&mut FakeNode) -> T) -> T {
        let mut cluster = self.lock();
        let held = cluster
            .nodes
            .get_mut(&node)
            .unwrap_or_else(|| panic!("fake DataNode {node} is not registered"));
        change(held)
    }

    /// Registers a node (no plans).
    pub fn add_node(&self, node: NodeId) {
        self.lock().nodes.entry(node).or_default();
    }

    /// Unregisters a node; its plans are lost with it.
    pub fn remove_node(&self, node: NodeId) {
        self.lock().nodes.remove(&node);
    }

    /// Makes `node` the watcher of `channel`.
    pub fn watch_channel(&self, channel: &str, node: NodeId) {
        self.lock().channels.insert(channel.to_string(), node);
    }

    /// No node watches `channel` any more.
    pub fn unwatch_channel(&self, channel: &str) {
        self.lock().channels.remove(channel);
    }

    /// The next `count` GetCompactionState calls to `node` fail (transport-like error).
    pub fn fail_next_state(&self, node: NodeId, count: usize) {
        self.with_node(node, |held| held.fail_state = count);
    }

    /// The next `count` SyncSegments calls to `node` answer a failure status.
    pub fn fail_next_sync(&self, node: NodeId, count: usize) {
        self.with_node(node, |held| held.fail_sync = count);
    }

    /// The next `count` Compaction calls to `node` answer a failure status (plan not taken).
    pub fn reject_next_compaction(&self, node: NodeId, count: usize) {
        self.with_node(node, |held| held.reject_compaction = count);
    }

    /// While set, Compaction calls to `node` never answer (and the plan is not taken).
    pub fn hang_compaction(&self, node: NodeId, hang: bool) {
        self.with_node(node, |held| held.hang_compaction = hang);
    }

    /// Every plan a node took, in order.
    pub fn received(&self) -> Vec<(NodeId, CompactionPlan)> {
        self.lock().received.clone()
    }

    /// The plan `plan_id` as it was received (panics when no node took it).
    pub fn plan(&self, plan_id: i64) -> CompactionPlan {
        self.lock()
            .received
            .iter()
            .rev()
            .find(|(_, plan)| plan.plan_id == plan_id)
            .map(|(_, plan)| plan.clone())
            .unwrap_or_else(|| panic!("no DataNode received plan {plan_id}"))
    }

    /// Plan IDs `node` holds (executing or completed).
    pub fn plans_on(&self, node: NodeId) -> Vec<i64> {
        self.lock()
            .nodes
            .get(&node)
            .map(|held| held.plans.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Every successful SyncSegments, in order.
    pub fn synced(&self) -> Vec<(NodeId, SyncSegmentsRequest)> {
        self.lock().synced.clone()
    }

    /// GetCompactionState calls that reached a registered node.
    pub fn state_calls(&self) -> usize {
        self.lock().state_calls
    }

    /// Completes a running plan with `result` on the node holding it; returns whether one did.
    pub fn complete(&self, plan_id: i64, result: CompactionResult) -> bool {
        let mut cluster = self.lock();
        for node in cluster.nodes.values_mut() {
            if let Some(held) = node.plans.get_mut(&plan_id) {
                *held = FakePlan::Completed(held.plan().clone(), result);
                return true;
            }
        }
        false
    }

    /// Every node forgets the plan (it failed, or the node restarted).
    pub fn forget(&self, plan_id: i64) {
        for node in self.lock().nodes.values_mut() {
            node.plans.remove(&plan_id);
        }
    }
}

#[async_trait]
impl CompactionNodes for FakeCompactionNodes {
    fn nodes(&self) -> Vec<NodeId> {
        self.lock().nodes.keys().copied().collect()
    }

    fn channel_node(&self, channel: &str) -> Option<NodeId> {
        self.lock().channels.get(channel).copied()
    }

    async fn compaction(&self, node: NodeId, plan: CompactionPlan) -> MilvusResult<Status> {
        let hang = {
            let mut cluster = self.lock();
            let held = cluster
                .nodes
                .get_mut(&node)
                .ok_or_else(|| node_not_registered(node))?;
            if take(&mut held.reject_compaction) {
                return Ok(injected("compaction"));
            }
            held.hang_compaction
        };
        if hang {
            std::future::pending::<()>().await;
        }
        let mut cluster = self.lock();
        let held = cluster
            .nodes
            .get_mut(&node)
            .ok_or_else(|| node_not_registered(node))?;
        held.plans
            .insert(plan.plan_id, FakePlan::Executing(plan.clone()));
        cluster.received.push((node, plan));
        Ok(Status::default())
    }

    async fn get_compaction_state(&self, node: NodeId) -> MilvusResult<CompactionStateResponse> {
        let mut cluster = self.lock();
        let held = cluster
            .nodes
            .get_mut(&node)
            .ok_or_else(|| node_not_registered(node))?;
        if take(&mut held.fail_state) {
            return Err(MilvusError::unexpected(
                "injected DataNode failure: get compaction state",
            ));
        }
        let results = held
            .plans
            .iter()
            .map(|(plan_id, held)| {
                let (state, result) = match held {
                    FakePlan::Executing(_) => (CompactionState::Executing, None),
                    FakePlan::Completed(_, result) => {
                        (CompactionState::Completed, Some(result.clone()))
                    }
                };
                CompactionStateResult {
                    plan_id: *plan_id,
                    state: state as i32,
                    result,
                }
            })
            .collect();
        cluster.state_calls += 1;
        Ok(CompactionStateResponse {
            status: Some(Status::default()),
            results,
        })
    }

    async fn sync_segments(&self, node: NodeId, req: SyncSegmentsRequest) -> MilvusResult<Status> {
        let mut cluster = self.lock();
        let held = cluster
            .nodes
            .get_mut(&node)
            .ok_or_else(|| node_not_registered(node))?;
        if take(&mut held.fail_sync) {
            return Ok(injected("sync segments"));
        }
        // The DataNode drops the completed result once synced; a repeated sync is fine.
        held.plans.remove(&req.plan_id);
        cluster.synced.push((node, req));
        Ok(Status::default())
    }
}

/// The result a DataNode would report for `plan` with result segment `segment_id`, files under
/// `root`: rows = the sources' rows (insert logs of their first field) minus their deletes;
/// one insert log per field the sources have, one stats log on the sources' first stats field,
/// no delete log; none at all with zero rows. Collection and partition are read from the
/// plan's first log path (panics if the plan has none).
pub fn result_for(plan: &CompactionPlan, root: &str, segment_id: SegmentId) -> CompactionResult {
    let sources = &plan.segment_binlogs;
    let first_path = sources
        .iter()
        .flat_map(|seg| {
            [
                &seg.field_binlogs,
                &seg.field2_statslog_paths,
                &seg.deltalogs,
            ]
        })
        .flatten()
        .flat_map(|field| &field.binlogs)
        .map(|binlog| binlog.log_path.as_str())
        .next()
        .expect("the plan names at least one log path");
    let (collection, partition) = ids_of_path(first_path);
    let entries = |fields: &[FieldBinlog]| -> i64 {
        fields
            .first()
            .map_or(0, |field| field.binlogs.iter().map(|b| b.entries_num).sum())
    };
    let inserted: i64 = sources.iter().map(|seg| entries(&seg.field_binlogs)).sum();
    let deleted: i64 = sources
        .iter()
        .flat_map(|seg| &seg.deltalogs)
        .flat_map(|field| &field.binlogs)
        .map(|binlog| binlog.entries_num)
        .sum();
    let rows = (inserted - deleted).max(0);
    let mut result = CompactionResult {
        plan_id: plan.plan_id,
        segment_id,
        num_of_rows: rows,
        channel: plan.channel.clone(),
        ..CompactionResult::default()
    };
    if rows == 0 {
        return result;
    }
    let mut fields: Vec<i64> = sources
        .iter()
        .flat_map(|seg| seg.field_binlogs.iter().map(|field| field.field_id))
        .collect();
    fields.sort_unstable();
    fields.dedup();
    let mut next_log = segment_id * 1000;
    let mut log = |kind: BinlogKind, field: i64| {
        next_log += 1;
        Binlog {
            entries_num: rows,
            timestamp_from: 1,
            timestamp_to: 2,
            log_path: binlog_path(
                root, kind, collection, partition, segment_id, field, next_log,
            ),
            log_size: rows * 8,
            log_id: 0,
        }
    };
    result.insert_logs = fields
        .iter()
        .map(|&field| FieldBinlog {
            field_id: field,
            binlogs: vec![log(BinlogKind::Insert, field)],
        })
        .collect();
    if let Some(stats_field) = sources
        .iter()
        .flat_map(|seg| &seg.field2_statslog_paths)
        .map(|field| field.field_id)
        .next()
    {
        result.field2_statslog_paths = vec![FieldBinlog {
            field_id: stats_field,
            binlogs: vec![log(BinlogKind::Stats, stats_field)],
        }];
    }
    result
}

/// (collection, partition) of a binlog path: `…/{coll}/{part}/{seg}/[{field}/]{log}`.
fn ids_of_path(path: &str) -> (i64, i64) {
    let parts: Vec<&str> = path.split('/').collect();
    let from_end = if parts.contains(&"delta_log") { 4 } else { 5 };
    let at = |back: usize| -> i64 {
        parts
            .len()
            .checked_sub(back)
            .and_then(|index| parts[index].parse().ok())
            .unwrap_or_else(|| panic!("no IDs in log path {path:?}"))
    };
    (at(from_end), at(from_end - 1))
}
