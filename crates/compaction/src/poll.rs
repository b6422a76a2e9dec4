//! The poller (FACTS §2.8): every `check.interval` each registered DataNode is asked for its
//! plans, and every unfinished task moves on from what its node reports.
//!
//! Unlike 2.3.5 (#31352), a node whose GetCompactionState fails is skipped for the round: only
//! a node that answered without the plan, or that is no longer registered, makes it absent.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures::future::join_all;
use milvus_proto::common::CompactionState;
use milvus_proto::data::CompactionStateResult;
use milvus_types::{NodeId, Timestamp, parse_ts};

use crate::config::FINAL_TASK_RETENTION;
use crate::engine::Inner;
use crate::nodes::bounded;
use crate::record::TaskState;

/// What the DataNodes told one round.
struct Reports {
    registered: BTreeSet<NodeId>,
    unreachable: BTreeSet<NodeId>,
    plans: HashMap<i64, CompactionStateResult>,
}

impl Reports {
    /// Whether the node's plans are known this round: it answered, or it is gone (then none
    /// of its plans survive).
    fn knows(&self, node: NodeId) -> bool {
        !self.registered.contains(&node) || !self.unreachable.contains(&node)
    }
}

/// A task as the round sees it.
struct Polled {
    plan_id: i64,
    state: TaskState,
    node_id: NodeId,
    start_time: Timestamp,
    timeout_seconds: i32,
}

/// Whether a plan started at `start` ran out of its `timeout_seconds` at `now` (whole seconds
/// between the physical parts, as 2.3.5).
pub(crate) fn timed_out(now: Timestamp, start: Timestamp, timeout_seconds: i32) -> bool {
    let elapsed_ms = parse_ts(now).0.saturating_sub(parse_ts(start).0);
    let elapsed_seconds = i64::try_from(elapsed_ms / 1000).unwrap_or(i64::MAX);
    elapsed_seconds >= i64::from(timeout_seconds)
}

impl Inner {
    pub(crate) async fn poll_once(self: &Arc<Self>) {
        let now = match tokio::time::timeout(
            self.config.rpc_timeout,
            self.allocator.alloc_timestamp(),
        )
        .await
        {
            Ok(Ok(ts)) => ts,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "unable to get current timestamp; compaction poll skipped");
                return;
            }
            Err(_) => {
                tracing::warn!("timestamp allocation timed out; compaction poll skipped");
                return;
            }
        };
        self.save_dirty().await;
        // Taken before asking the nodes: a task sent meanwhile is not judged on answers that
        // predate it.
        let polled = self.polled(now);
        if !polled.is_empty() {
            let reports = self.ask_nodes().await;
            join_all(polled.iter().map(|task| self.resolve(task, &reports, now))).await;
        }
        self.remove_expired(now).await;
    }

    /// The unfinished tasks the round acts on (not Pipelining: their send is in flight). A
    /// resumed task that never got a start time starts its clock now.
    fn polled(&self, now: Timestamp) -> Vec<Polled> {
        let mut tasks = self.lock_tasks();
        let mut polled: Vec<Polled> = tasks
            .records()
            .filter(|record| {
                matches!(
                    record.task_state(),
                    TaskState::Executing | TaskState::Timeout | TaskState::Committed
                )
            })
            .map(|record| {
                let (start_time, timeout_seconds) = record
                    .plan
                    .as_ref()
                    .map_or((0, 0), |plan| (plan.start_time, plan.timeout_in_seconds));
                Polled {
                    plan_id: record.plan_id(),
                    state: record.task_state(),
                    node_id: record.node_id,
                    start_time,
                    timeout_seconds,
                }
            })
            .collect();
        for task in polled.iter_mut().filter(|task| task.start_time == 0) {
            task.start_time = now;
            tasks.update(task.plan_id, |record| {
                record.plan.get_or_insert_default().start_time = now;
            });
        }
        polled
    }

    /// GetCompactionState on every registered node at once, each bounded by `rpcTimeout`.
    async fn ask_nodes(&self) -> Reports {
        let registered: BTreeSet<NodeId> = self.nodes.nodes().into_iter().collect();
        let answers = join_all(registered.iter().map(|&node| async move {
            let answer = bounded(
                self.config.rpc_timeout,
                self.nodes.get_compaction_state(node),
            )
            .await;
            (node, answer)
        }))
        .await;
        let mut reports = Reports {
            registered,
            unreachable: BTreeSet::new(),
            plans: HashMap::new(),
        };
        for (node, answer) in answers {
            match answer {
                Ok(response) => {
                    for result in response.results {
                        reports.plans.insert(result.plan_id, result);
                    }
                }
                Err(err) => {
                    tracing::warn!(node_id = node, error = %err, "cannot get compaction state; its plans wait for the next poll");
                    reports.unreachable.insert(node);
                }
            }
        }
        reports
    }

    async fn resolve(self: &Arc<Self>, task: &Polled, reports: &Reports, now: Timestamp) {
        let plan_id = task.plan_id;
        if task.state == TaskState::Committed {
            self.sync_and_complete(plan_id).await;
            return;
        }
        let reported = reports.plans.get(&plan_id);
        match reported.map(|result| result.state()) {
            Some(CompactionState::Completed) => {
                let result = reported.and_then(|report| report.result.clone());
                self.commit(plan_id, result).await;
            }
            Some(CompactionState::Executing)
                if task.state == TaskState::Timeout
                    || !timed_out(now, task.start_time, task.timeout_seconds) => {}
            Some(state) => {
                if task.state == TaskState::Executing {
                    tracing::warn!(
                        plan_id,
                        node_id = task.node_id,
                        start_time = task.start_time,
                        now,
                        reported = ?state,
                        "compaction timeout"
                    );
                    self.transition(plan_id, TaskState::Timeout).await;
                }
            }
            None if !reports.knows(task.node_id) => {}
            None => self.absent(plan_id, task).await,
        }
    }

    /// The plan is gone from its node. A result recorded before (the node completed it and
    /// then forgot it, e.g. after SyncSegments from before a restart) is committed from the
    /// record; otherwise the task failed.
    async fn absent(self: &Arc<Self>, plan_id: i64, task: &Polled) {
        let recorded = self
            .lock_tasks()
            .get(plan_id)
            .is_some_and(|record| record.result.is_some());
        if recorded {
            self.commit(plan_id, None).await;
            return;
        }
        tracing::info!(
            plan_id,
            node_id = task.node_id,
            timed_out = task.state == TaskState::Timeout,
            "compaction failed: the plan is gone from its datanode"
        );
        self.transition(plan_id, TaskState::Failed).await;
    }

    /// Removes final tasks whose start + timeout + 1 h has passed (2.3.5's clean-up).
    async fn remove_expired(&self, now: Timestamp) {
        let retention = i32::try_from(FINAL_TASK_RETENTION.as_secs()).unwrap_or(i32::MAX);
        let expired: Vec<i64> = self
            .lock_tasks()
            .records()
            .filter(|record| record.task_state().is_final())
            .filter(|record| {
                let plan = record.plan.as_ref();
                let start = plan.map_or(0, |plan| plan.start_time);
                let timeout = plan.map_or(0, |plan| plan.timeout_in_seconds);
                timed_out(now, start, timeout.saturating_add(retention))
            })
            .map(|record| record.plan_id())
            .collect();
        for plan_id in expired {
            self.remove(plan_id).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use milvus_types::compose_ts;

    use super::*;

    #[test]
    fn timeout_counts_whole_seconds_of_the_physical_clock() {
        let start = compose_ts(1_000_000, 5);
        assert!(!timed_out(compose_ts(1_000_000 + 899_999, 0), start, 900));
        assert!(timed_out(compose_ts(1_000_000 + 900_000, 0), start, 900));
        // A clock going backwards is no timeout.
        assert!(!timed_out(compose_ts(999_000, 0), start, 1));
        // 2.3.5's "unknown start" TSO of 1 has timed out at once.
        assert!(timed_out(compose_ts(1_000_000, 0), 1, 900));
    }
}
