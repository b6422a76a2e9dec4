//! Test support (feature `testing`): [`FakeIndexNodes`], an in-memory IndexNode cluster that
//! records every call and lets a test decide when jobs finish, fail or get lost.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use datacoord_index::{BuildId, index_type};
use milvus_proto::common::{IndexState, Status};
use milvus_proto::index::{
    CreateJobRequest, DropJobsRequest, GetJobStatsResponse, IndexTaskInfo, QueryJobsRequest,
    QueryJobsResponse,
};
use milvus_types::{MilvusError, MilvusResult, NodeId};

use crate::nodes::{IndexNodes, node_not_registered};

/// Size reported for the files of a job finished by the fake.
pub const FAKE_SERIALIZED_SIZE: u64 = 4096;

#[derive(Clone, Debug)]
struct FakeJob {
    request: CreateJobRequest,
    state: IndexState,
    polls: u32,
    fail_reason: String,
    file_keys: Vec<String>,
    size: u64,
}

impl FakeJob {
    fn finish(&mut self) {
        self.state = IndexState::Finished;
        self.file_keys = vec![index_type(&self.request.index_params).to_string()];
        self.size = FAKE_SERIALIZED_SIZE;
    }

    fn running(&self) -> bool {
        matches!(self.state, IndexState::InProgress | IndexState::Unissued)
    }
}

#[derive(Debug, Default)]
struct FakeNode {
    capacity: i64,
    stopping: bool,
    enable_disk: bool,
    hung: bool,
    jobs: BTreeMap<BuildId, FakeJob>,
    fail_create: usize,
    fail_query: usize,
    fail_drop: usize,
    fail_stats: usize,
}

impl FakeNode {
    fn free_slots(&self) -> i64 {
        let running = self.jobs.values().filter(|job| job.running()).count();
        self.capacity - i64::try_from(running).unwrap_or(i64::MAX)
    }
}

#[derive(Debug, Default)]
struct Cluster {
    nodes: BTreeMap<NodeId, FakeNode>,
    finish_after_polls: Option<u32>,
    created: Vec<(NodeId, CreateJobRequest)>,
    queried: Vec<(NodeId, Vec<BuildId>)>,
    dropped: Vec<(NodeId, Vec<BuildId>)>,
    stats_calls: usize,
}

/// In-memory IndexNodes. Each node has a capacity; its free `task_slots` are the capacity
/// minus its running jobs. Jobs run until the test finishes, fails or loses them, or (with
/// [`FakeIndexNodes::finish_after_polls`]) until polled N times. Unknown nodes answer
/// [`node_not_registered`]; a hung node never answers.
#[derive(Debug, Default)]
pub struct FakeIndexNodes {
    cluster: Mutex<Cluster>,
}

fn injected() -> Status {
    MilvusError::unexpected("injected IndexNode failure").to_status()
}

impl FakeIndexNodes {
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
            .unwrap_or_else(|| panic!("fake IndexNode {node} is not registered"));
        change(held)
    }

    /// Registers a node that can run `capacity` jobs at once.
    pub fn add_node(&self, node: NodeId, capacity: i64) {
        self.lock().nodes.insert(
            node,
            FakeNode {
                capacity,
                ..FakeNode::default()
            },
        );
    }

    /// Unregisters a node (it vanished); its jobs are lost.
    pub fn remove_node(&self, node: NodeId) {
        self.lock().nodes.remove(&node);
    }

    /// Marks a node stopping (or not).
    pub fn set_stopping(&self, node: NodeId, stopping: bool) {
        self.with_node(node, |held| held.stopping = stopping);
    }

    /// Changes a node's capacity.
    pub fn set_capacity(&self, node: NodeId, capacity: i64) {
        self.with_node(node, |held| held.capacity = capacity);
    }

    /// Whether the node reports `enable_disk`.
    pub fn set_enable_disk(&self, node: NodeId, enable_disk: bool) {
        self.with_node(node, |held| held.enable_disk = enable_disk);
    }

    /// A hung node accepts calls and never answers.
    pub fn set_hung(&self, node: NodeId, hung: bool) {
        self.with_node(node, |held| held.hung = hung);
    }

    /// Jobs report Finished once polled `polls` times (`None`: only when told).
    pub fn finish_after_polls(&self, polls: Option<u32>) {
        self.lock().finish_after_polls = polls;
    }

    /// The next `count` CreateJob calls to `node` answer a failure status.
    pub fn fail_next_create(&self, node: NodeId, count: usize) {
        self.with_node(node, |held| held.fail_create = count);
    }

    /// The next `count` QueryJobs calls to `node` answer a failure status.
    pub fn fail_next_query(&self, node: NodeId, count: usize) {
        self.with_node(node, |held| held.fail_query = count);
    }

    /// The next `count` DropJobs calls to `node` answer a failure status.
    pub fn fail_next_drop(&self, node: NodeId, count: usize) {
        self.with_node(node, |held| held.fail_drop = count);
    }

    /// The next `count` GetJobStats calls to `node` answer a failure status.
    pub fn fail_next_stats(&self, node: NodeId, count: usize) {
        self.with_node(node, |held| held.fail_stats = count);
    }

    fn with_job(&self, build_id: BuildId, change: impl Fn(&mut FakeJob)) -> usize {
        let mut cluster = self.lock();
        let mut touched = 0;
        for node in cluster.nodes.values_mut() {
            if let Some(job) = node.jobs.get_mut(&build_id) {
                change(job);
                touched += 1;
            }
        }
        touched
    }

    /// Finishes the job on every node holding it (file key = its index type, size
    /// [`FAKE_SERIALIZED_SIZE`]); returns how many nodes held it.
    pub fn finish(&self, build_id: BuildId) -> usize {
        self.with_job(build_id, FakeJob::finish)
    }

    /// Fails the job with `reason`; returns how many nodes held it.
    pub fn fail(&self, build_id: BuildId, reason: &str) -> usize {
        self.with_job(build_id, |job| {
            job.state = IndexState::Failed;
            job.fail_reason = reason.to_string();
        })
    }

    /// Makes the job report Retry; returns how many nodes held it.
    pub fn report_retry(&self, build_id: BuildId) -> usize {
        self.with_job(build_id, |job| {
            job.state = IndexState::Retry;
            job.fail_reason = "injected retry".to_string();
        })
    }

    /// Every node forgets the job (as after an IndexNode restart).
    pub fn forget(&self, build_id: BuildId) {
        for node in self.lock().nodes.values_mut() {
            node.jobs.remove(&build_id);
        }
    }

    /// Every accepted CreateJob, in order.
    pub fn created(&self) -> Vec<(NodeId, CreateJobRequest)> {
        self.lock().created.clone()
    }

    /// Build IDs `node` currently holds (running or finished, not dropped).
    pub fn jobs_on(&self, node: NodeId) -> Vec<BuildId> {
        self.lock()
            .nodes
            .get(&node)
            .map(|held| held.jobs.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Every QueryJobs call (node, build IDs) that reached a registered node, in order.
    pub fn queried(&self) -> Vec<(NodeId, Vec<BuildId>)> {
        self.lock().queried.clone()
    }

    /// Every DropJobs call (node, build IDs) that reached a registered node, in order.
    pub fn dropped(&self) -> Vec<(NodeId, Vec<BuildId>)> {
        self.lock().dropped.clone()
    }

    /// How many GetJobStats calls reached a registered node.
    pub fn stats_calls(&self) -> usize {
        self.lock().stats_calls
    }

    /// Waits forever if `node` is hung; errors if it is not registered.
    async fn reach(&self, node: NodeId) -> MilvusResult<()> {
        let hung = {
            let cluster = self.lock();
            let held = cluster
                .nodes
                .get(&node)
                .ok_or_else(|| node_not_registered(node))?;
            held.hung
        };
        if hung {
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

fn take_failure(counter: &mut usize) -> bool {
    if *counter == 0 {
        return false;
    }
    *counter -= 1;
    true
}

#[async_trait]
impl IndexNodes for FakeIndexNodes {
    fn nodes(&self) -> Vec<(NodeId, bool)> {
        self.lock()
            .nodes
            .iter()
            .map(|(&node, held)| (node, held.stopping))
            .collect()
    }

    async fn get_job_stats(&self, node: NodeId) -> MilvusResult<GetJobStatsResponse> {
        self.reach(node).await?;
        let mut cluster = self.lock();
        cluster.stats_calls += 1;
        let held = cluster
            .nodes
            .get_mut(&node)
            .ok_or_else(|| node_not_registered(node))?;
        if take_failure(&mut held.fail_stats) {
            return Ok(GetJobStatsResponse {
                status: Some(injected()),
                ..GetJobStatsResponse::default()
            });
        }
        let running = held.jobs.values().filter(|job| job.running()).count() as i64;
        Ok(GetJobStatsResponse {
            status: Some(Status::default()),
            total_job_num: held.jobs.len() as i64,
            in_progress_job_num: running,
            enqueue_job_num: 0,
            task_slots: held.free_slots(),
            job_infos: Vec::new(),
            enable_disk: held.enable_disk,
        })
    }

    async fn create_job(&self, node: NodeId, req: CreateJobRequest) -> MilvusResult<Status> {
        self.reach(node).await?;
        let mut cluster = self.lock();
        let held = cluster
            .nodes
            .get_mut(&node)
            .ok_or_else(|| node_not_registered(node))?;
        if take_failure(&mut held.fail_create) {
            return Ok(injected());
        }
        held.jobs.insert(
            req.build_id,
            FakeJob {
                request: req.clone(),
                state: IndexState::InProgress,
                polls: 0,
                fail_reason: String::new(),
                file_keys: Vec::new(),
                size: 0,
            },
        );
        cluster.created.push((node, req));
        Ok(Status::default())
    }

    async fn query_jobs(
        &self,
        node: NodeId,
        req: QueryJobsRequest,
    ) -> MilvusResult<QueryJobsResponse> {
        self.reach(node).await?;
        let mut cluster = self.lock();
        let finish_after = cluster.finish_after_polls;
        cluster.queried.push((node, req.build_i_ds.clone()));
        let held = cluster
            .nodes
            .get_mut(&node)
            .ok_or_else(|| node_not_registered(node))?;
        if take_failure(&mut held.fail_query) {
            return Ok(QueryJobsResponse {
                status: Some(injected()),
                ..QueryJobsResponse::default()
            });
        }
        let mut infos = Vec::new();
        for build_id in &req.build_i_ds {
            let Some(job) = held.jobs.get_mut(build_id) else {
                continue;
            };
            job.polls += 1;
            if job.state == IndexState::InProgress
                && finish_after.is_some_and(|polls| job.polls >= polls)
            {
                job.finish();
            }
            infos.push(IndexTaskInfo {
                build_id: *build_id,
                state: job.state as i32,
                index_file_keys: job.file_keys.clone(),
                serialized_size: job.size,
                fail_reason: job.fail_reason.clone(),
                current_index_version: job.request.current_index_version,
            });
        }
        Ok(QueryJobsResponse {
            status: Some(Status::default()),
            cluster_id: req.cluster_id,
            index_infos: infos,
        })
    }

    async fn drop_jobs(&self, node: NodeId, req: DropJobsRequest) -> MilvusResult<Status> {
        self.reach(node).await?;
        let mut cluster = self.lock();
        cluster.dropped.push((node, req.build_i_ds.clone()));
        let held = cluster
            .nodes
            .get_mut(&node)
            .ok_or_else(|| node_not_registered(node))?;
        if take_failure(&mut held.fail_drop) {
            return Ok(injected());
        }
        for build_id in &req.build_i_ds {
            held.jobs.remove(build_id);
        }
        Ok(Status::default())
    }
}
