//! Writes that fail: nothing changes when the store refused; memory is re-read when a write
//! may have landed; big changes write log keys before segment records; a dropped caller does
//! not stop a write half-way.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datacoord_meta::testing::{
    Fault, FaultyKv, assert_matches_store, position, segment, sent_logs,
};
use datacoord_meta::{BinlogUpdate, Catalog, LogKind, Meta, MetaError, log_key, segment_key};
use milvus_metastore::{MemoryKv, MetaKv, MetastoreError, MetastoreResult, Page, WriteBatch};
use milvus_proto::common::SegmentState;
use milvus_proto::data::{CheckPoint, SegmentInfo};
use prost::Message;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{Notify, Semaphore};

async fn dump(kv: &Arc<dyn MetaKv>) -> Vec<(String, Bytes)> {
    kv.load_all_with_prefix("datacoord-meta/")
        .await
        .expect("dump")
}

async fn faulty(max_txn_ops: usize) -> (Arc<FaultyKv>, Meta) {
    let faulty = Arc::new(FaultyKv::new(Arc::new(MemoryKv::with_max_txn_ops(
        max_txn_ops,
    ))));
    let meta = Meta::load(Catalog::new(faulty.clone()))
        .await
        .expect("load");
    (faulty, meta)
}

#[tokio::test]
async fn refused_write_changes_nothing() {
    let (kv, meta) = faulty(128).await;
    meta.add_segment(segment(1, 1, 2, "ch", SegmentState::Growing))
        .await
        .expect("add");
    let kv_dyn: Arc<dyn MetaKv> = kv.clone();
    let before = dump(&kv_dyn).await;
    kv.fail_after(0, Fault::Rejected);
    let err = meta
        .set_state(1, SegmentState::Sealed)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, MetaError::Kv(MetastoreError::InvalidRequest(_))),
        "{err}"
    );
    let err = meta
        .update_channel_checkpoint("ch", position("ch", 5))
        .await
        .expect_err("refused");
    assert!(matches!(err, MetaError::Kv(_)));
    let err = meta.mark_channel_added("ch").await.expect_err("refused");
    assert!(matches!(err, MetaError::Kv(_)));
    assert_eq!(meta.segment(1).expect("seg").state(), SegmentState::Growing);
    assert!(meta.channel_checkpoint("ch").is_none());
    assert_eq!(dump(&kv_dyn).await, before);
    kv.heal();
    assert_matches_store(&meta).await;
}

#[tokio::test]
async fn timed_out_write_is_read_back() {
    let (kv, meta) = faulty(128).await;
    meta.add_segment(segment(1, 1, 2, "ch", SegmentState::Growing))
        .await
        .expect("add");
    meta.add_segment(segment(2, 1, 2, "ch", SegmentState::Flushed))
        .await
        .expect("add");
    kv.fail_after(0, Fault::AppliedThenTimeout);
    let err = meta
        .set_state(1, SegmentState::Sealed)
        .await
        .expect_err("timeout");
    assert!(
        matches!(err, MetaError::Kv(MetastoreError::Timeout { .. })),
        "{err}"
    );
    // The store took it; memory followed the store rather than the error.
    assert_eq!(meta.segment(1).expect("seg").state(), SegmentState::Sealed);
    meta.update_channel_checkpoint("ch", position("ch", 9))
        .await
        .expect_err("timeout");
    assert_eq!(meta.channel_checkpoint("ch").map(|p| p.timestamp), Some(9));
    meta.drop_segment(2).await.expect_err("timeout");
    assert!(meta.segment(2).is_none());
    kv.heal();
    assert_matches_store(&meta).await;
}

/// A sync of 3 fields × 2 kinds needs 7 keys; with 3 per transaction the log keys take two
/// transactions and the segment record a third, which is refused here.
#[tokio::test]
async fn large_change_writes_logs_before_the_record() {
    let (kv, meta) = faulty(3).await;
    meta.add_segment(segment(1, 1, 2, "ch", SegmentState::Growing))
        .await
        .expect("add");
    let ids = (1, 2, 1);
    let update = BinlogUpdate {
        segment_id: 1,
        flushed: true,
        binlogs: [0, 1, 100]
            .iter()
            .map(|f| sent_logs(LogKind::Insert, "files", ids, *f, &[11], 10))
            .collect(),
        statslogs: [100, 101, 102]
            .iter()
            .map(|f| sent_logs(LogKind::Stats, "files", ids, *f, &[12], 10))
            .collect(),
        checkpoints: vec![CheckPoint {
            segment_id: 1,
            position: Some(position("ch", 100)),
            num_of_rows: 10,
        }],
        ..BinlogUpdate::default()
    };
    let commits = kv.commits();
    kv.fail_after(2, Fault::Rejected);
    meta.save_binlog_paths(update.clone())
        .await
        .expect_err("record refused");
    assert_eq!(
        kv.commits(),
        commits + 2,
        "two log transactions went through"
    );
    let kv_dyn: Arc<dyn MetaKv> = kv.clone();
    // The record was never rewritten: still Growing, no checkpoint.
    let record = kv_dyn
        .load(&segment_key(1, 2, 1))
        .await
        .expect("load")
        .expect("record");
    let record = SegmentInfo::decode(record).expect("decode");
    assert_eq!(record.state(), SegmentState::Growing);
    assert!(record.dml_position.is_none());
    assert!(
        kv_dyn
            .load(&log_key(LogKind::Stats, 1, 2, 1, 102))
            .await
            .expect("load")
            .is_some()
    );
    // Memory was re-read: it shows the logs that landed, and the unchanged record.
    let seg = meta.segment(1).expect("seg");
    assert_eq!(seg.state(), SegmentState::Growing);
    assert_eq!(seg.binlogs.len(), 3);
    kv.heal();
    assert_matches_store(&meta).await;

    // With the store healthy the same change goes through in three transactions.
    let (kv, meta) = faulty(3).await;
    meta.add_segment(segment(1, 1, 2, "ch", SegmentState::Growing))
        .await
        .expect("add");
    let commits = kv.commits();
    meta.save_binlog_paths(update).await.expect("sync");
    assert_eq!(kv.commits(), commits + 3);
    assert_eq!(
        meta.segment(1).expect("seg").state(),
        SegmentState::Flushing
    );
    assert_matches_store(&meta).await;
}

/// Once armed, holds every commit until a permit is released, and tells when one arrives.
struct GateKv {
    inner: Arc<dyn MetaKv>,
    armed: AtomicBool,
    arrived: Notify,
    release: Semaphore,
}

#[async_trait]
impl MetaKv for GateKv {
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
        if self.armed.load(Ordering::SeqCst) {
            self.arrived.notify_one();
            self.release
                .acquire()
                .await
                .expect("open semaphore")
                .forget();
        }
        self.inner.commit(batch).await
    }
    async fn remove_with_prefix(&self, prefix: &str) -> MetastoreResult<()> {
        self.inner.remove_with_prefix(prefix).await
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

#[tokio::test]
async fn abandoned_write_still_completes() {
    let gate = Arc::new(GateKv {
        inner: Arc::new(MemoryKv::new()),
        armed: AtomicBool::new(false),
        arrived: Notify::new(),
        release: Semaphore::new(0),
    });
    let meta = Meta::load(Catalog::new(gate.clone())).await.expect("load");
    meta.add_segment(segment(1, 1, 2, "ch", SegmentState::Growing))
        .await
        .expect("add");

    // The caller gives up while its write waits in the store (a cancelled RPC).
    gate.armed.store(true, Ordering::SeqCst);
    tokio::select! {
        _ = meta.set_state(1, SegmentState::Sealed) => panic!("the gate holds the commit"),
        _ = gate.arrived.notified() => {}
    }
    assert_eq!(meta.segment(1).expect("seg").state(), SegmentState::Growing);
    gate.release.add_permits(2);
    // Writes run in call order: once the next one is through, the abandoned one has finished.
    meta.mark_channel_added("ch").await.expect("next write");
    assert_eq!(meta.segment(1).expect("seg").state(), SegmentState::Sealed);
    gate.armed.store(false, Ordering::SeqCst);
    assert_matches_store(&meta).await;
}
