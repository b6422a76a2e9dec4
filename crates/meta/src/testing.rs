//! Test support (feature `testing`): segment and log builders in the shapes datanodes send,
//! [`FaultyKv`], a store wrapper that fails or "times out" chosen commits, and
//! [`store_differences`], which compares a [`Meta`] with a fresh load of its store.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use milvus_metastore::{MetaKv, MetastoreError, MetastoreResult, Page, WriteBatch};
use milvus_proto::common::SegmentState;
use milvus_proto::data::{Binlog, FieldBinlog, SegmentInfo};
use milvus_proto::msg::MsgPosition;
use milvus_types::{CollectionId, FieldId, PartitionId, SegmentId};

use crate::catalog::Catalog;
use crate::keys::{LogKind, log_key};
use crate::logs::log_path;
use crate::meta::Meta;

/// Every segment state, for "all segments" queries.
pub const ALL_STATES: [SegmentState; 8] = [
    SegmentState::None,
    SegmentState::NotExist,
    SegmentState::Growing,
    SegmentState::Sealed,
    SegmentState::Flushed,
    SegmentState::Flushing,
    SegmentState::Dropped,
    SegmentState::Importing,
];

/// How `meta` differs from what its store holds: a fresh [`Meta::load`] of the same store is
/// compared segment by segment (and checkpoints, removal flags of the known channels), and
/// every record memory implies is compared byte for byte with the stored value. Empty when
/// memory equals the store.
pub async fn store_differences(meta: &Meta) -> Vec<String> {
    let mut differences = Vec::new();
    let reloaded = Meta::load(meta.catalog().clone())
        .await
        .expect("reload of the store");
    let ours = meta.segments_in_states(&ALL_STATES);
    let theirs = reloaded.segments_in_states(&ALL_STATES);
    let our_ids: Vec<SegmentId> = ours.iter().map(|seg| seg.id).collect();
    let their_ids: Vec<SegmentId> = theirs.iter().map(|seg| seg.id).collect();
    if our_ids != their_ids {
        differences.push(format!(
            "segments in memory {our_ids:?}, in store {their_ids:?}"
        ));
    }
    let kv = meta.catalog().kv();
    for seg in &ours {
        if let Some(stored) = reloaded.segment(seg.id)
            && stored != *seg
        {
            differences.push(format!(
                "segment {}: memory {seg:?}, store {stored:?}",
                seg.id
            ));
        }
        let mut records = Catalog::log_records(seg);
        records.push(Catalog::segment_record(seg));
        for (key, value) in records {
            let stored = kv.load(&key).await.expect("load");
            if stored.as_ref() != Some(&value) {
                differences.push(format!(
                    "key {key}: memory implies {value:?}, store has {stored:?}"
                ));
            }
        }
        // No stored log key beyond those memory lists.
        for kind in LogKind::ALL {
            let prefix =
                crate::keys::segment_log_prefix(kind, seg.collection_id, seg.partition_id, seg.id);
            for (key, _) in kv.load_all_with_prefix(&prefix).await.expect("load prefix") {
                let listed = crate::logs::logs_of(seg, kind).iter().any(|field| {
                    log_key(
                        kind,
                        seg.collection_id,
                        seg.partition_id,
                        seg.id,
                        field.field_id,
                    ) == key
                });
                if !listed {
                    differences.push(format!("stored log key {key} not listed in memory"));
                }
            }
        }
    }
    if meta.channel_checkpoints() != reloaded.channel_checkpoints() {
        differences.push(format!(
            "checkpoints: memory {:?}, store {:?}",
            meta.channel_checkpoints(),
            reloaded.channel_checkpoints()
        ));
    }
    let mut channels: Vec<String> = ours.iter().map(|seg| seg.insert_channel.clone()).collect();
    channels.extend(
        meta.channel_checkpoints()
            .into_iter()
            .map(|(channel, _)| channel),
    );
    channels.sort();
    channels.dedup();
    for channel in channels {
        if meta.channel_removal(&channel) != reloaded.channel_removal(&channel) {
            differences.push(format!(
                "removal flag of {channel}: memory {:?}, store {:?}",
                meta.channel_removal(&channel),
                reloaded.channel_removal(&channel)
            ));
        }
    }
    differences
}

/// Panics with the differences when `meta` does not equal its store.
pub async fn assert_matches_store(meta: &Meta) {
    let differences = store_differences(meta).await;
    assert!(
        differences.is_empty(),
        "memory differs from the store:\n{}",
        differences.join("\n")
    );
}

/// A segment with the given identity and state, no rows, no logs.
pub fn segment(
    id: SegmentId,
    coll: CollectionId,
    part: PartitionId,
    channel: &str,
    state: SegmentState,
) -> SegmentInfo {
    let mut seg = SegmentInfo {
        id,
        collection_id: coll,
        partition_id: part,
        insert_channel: channel.to_string(),
        max_row_num: 1_000_000,
        ..SegmentInfo::default()
    };
    seg.set_state(state);
    seg
}

/// One field's logs as a datanode sends them: full paths under `root`, `entries` rows each.
pub fn sent_logs(
    kind: LogKind,
    root: &str,
    (coll, part, seg): (CollectionId, PartitionId, SegmentId),
    field: FieldId,
    log_ids: &[i64],
    entries: i64,
) -> FieldBinlog {
    FieldBinlog {
        field_id: field,
        binlogs: log_ids
            .iter()
            .map(|log_id| Binlog {
                entries_num: entries,
                timestamp_from: 1,
                timestamp_to: 2,
                log_path: log_path(kind, root, coll, part, seg, field, *log_id),
                log_size: entries * 8,
                log_id: 0,
            })
            .collect(),
    }
}

/// A flushed segment with `logs` insert logs of 10 rows each on fields 0, 1 and 100 (log IDs
/// from `first_log`), one stats log per insert log on field 100 and one delete log, with full
/// paths under `root` as a datanode reports them.
pub fn flushed_segment(
    (coll, part, id): (CollectionId, PartitionId, SegmentId),
    channel: &str,
    root: &str,
    first_log: i64,
    logs: i64,
) -> SegmentInfo {
    let ids = (coll, part, id);
    let log_ids: Vec<i64> = (first_log..first_log + logs).collect();
    let mut seg = segment(id, coll, part, channel, SegmentState::Flushed);
    seg.binlogs = [0, 1, 100]
        .iter()
        .map(|field| sent_logs(LogKind::Insert, root, ids, *field, &log_ids, 10))
        .collect();
    seg.statslogs = vec![sent_logs(LogKind::Stats, root, ids, 100, &log_ids, 10)];
    seg.deltalogs = vec![sent_logs(
        LogKind::Delta,
        root,
        ids,
        0,
        &[first_log + 1000],
        1,
    )];
    seg.num_of_rows = 10 * logs;
    seg
}

/// Instantiates `async fn case(kv: Arc<dyn MetaKv>)` functions of the parent module as
/// `#[tokio::test]`s, each on a fresh store from `$factory` (an
/// `async fn() -> Option<milvus_metastore::testing::TestKv>`; `None` skips), e.g.
/// `mod etcd { datacoord_meta::meta_store_cases!(milvus_metastore::testing::etcd_test_kv; my_case); }`.
#[macro_export]
macro_rules! meta_store_cases {
    ($factory:path; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(test_kv) = $factory().await else {
                    return;
                };
                super::$case(test_kv.kv.clone()).await;
                test_kv.cleanup().await;
            }
        )+
    };
}

/// A position on `channel` at `ts` with a non-empty message ID.
pub fn position(channel: &str, ts: u64) -> MsgPosition {
    MsgPosition {
        channel_name: channel.to_string(),
        msg_id: ts.to_le_bytes().to_vec(),
        msg_group: format!("datanode-1-{channel}-true"),
        timestamp: ts,
    }
}

/// How the next commits of a [`FaultyKv`] fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Rejected before anything is written.
    Rejected,
    /// Applied, but the caller sees a timeout (the "maybe applied" case).
    AppliedThenTimeout,
}

/// Wraps a store; after `ok_commits` more successful commits, every commit fails with the
/// configured [`Fault`] until [`FaultyKv::heal`]. Reads always pass through.
pub struct FaultyKv {
    inner: Arc<dyn MetaKv>,
    plan: Mutex<Option<(usize, Fault)>>,
    commits: AtomicUsize,
}

impl FaultyKv {
    /// A transparent wrapper around `inner`.
    pub fn new(inner: Arc<dyn MetaKv>) -> Self {
        Self {
            inner,
            plan: Mutex::new(None),
            commits: AtomicUsize::new(0),
        }
    }

    /// Lets `ok_commits` more commits succeed, then fails the following ones with `fault`.
    pub fn fail_after(&self, ok_commits: usize, fault: Fault) {
        *self.plan.lock().expect("plan lock") = Some((ok_commits, fault));
    }

    /// Stops failing.
    pub fn heal(&self) {
        *self.plan.lock().expect("plan lock") = None;
    }

    /// Commits that reached the inner store (including applied-then-timeout ones).
    pub fn commits(&self) -> usize {
        self.commits.load(Ordering::SeqCst)
    }

    fn next_fault(&self) -> Option<Fault> {
        let mut plan = self.plan.lock().expect("plan lock");
        match plan.as_mut() {
            None => None,
            Some((0, fault)) => Some(*fault),
            Some((left, _)) => {
                *left -= 1;
                None
            }
        }
    }

    fn timeout() -> MetastoreError {
        MetastoreError::Timeout {
            op: "txn",
            timeout: Duration::from_millis(1),
        }
    }
}

#[async_trait]
impl MetaKv for FaultyKv {
    fn max_txn_ops(&self) -> usize {
        self.inner.max_txn_ops()
    }

    async fn load(&self, key: &str) -> MetastoreResult<Option<Bytes>> {
        self.inner.load(key).await
    }

    async fn load_prefix_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> MetastoreResult<Page> {
        self.inner
            .load_prefix_page(prefix, start_after, limit)
            .await
    }

    async fn commit(&self, batch: WriteBatch) -> MetastoreResult<()> {
        match self.next_fault() {
            None => {
                self.inner.commit(batch).await?;
                self.commits.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            Some(Fault::Rejected) => Err(MetastoreError::InvalidRequest(
                "injected failure".to_string(),
            )),
            Some(Fault::AppliedThenTimeout) => {
                self.inner.commit(batch).await?;
                self.commits.fetch_add(1, Ordering::SeqCst);
                Err(Self::timeout())
            }
        }
    }

    async fn remove_with_prefix(&self, prefix: &str) -> MetastoreResult<()> {
        self.commit(WriteBatch {
            prefix_removals: vec![prefix.to_string()],
            ..WriteBatch::default()
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Bytes>,
        new: Bytes,
    ) -> MetastoreResult<bool> {
        self.inner.compare_and_swap(key, expected, new).await
    }
}
