//! The startup load: overlapping paged walks, orphan log keys, legacy inline logs, corrupt keys.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use datacoord_meta::testing::{assert_matches_store, position, segment, sent_logs};
use datacoord_meta::{
    Catalog, ChannelRemoval, LogKind, Meta, MetaError, channel_checkpoint_key, channel_removal_key,
    log_key, segment_key, with_full_paths,
};
use milvus_metastore::{MemoryKv, MetaKv, MetastoreResult, Page, WriteBatch};
use milvus_proto::common::SegmentState;
use milvus_proto::data::{Binlog, FieldBinlog, SegmentInfo};
use prost::Message;

fn record(seg: &SegmentInfo) -> (String, Bytes) {
    (
        segment_key(seg.collection_id, seg.partition_id, seg.id),
        Bytes::from(seg.encode_to_vec()),
    )
}

fn stored_field(field_id: i64, log_ids: &[i64], entries: i64) -> FieldBinlog {
    FieldBinlog {
        field_id,
        binlogs: log_ids
            .iter()
            .map(|log_id| Binlog {
                entries_num: entries,
                log_id: *log_id,
                ..Binlog::default()
            })
            .collect(),
    }
}

fn field_record(
    kind: LogKind,
    (coll, part, seg): (i64, i64, i64),
    field: FieldBinlog,
) -> (String, Bytes) {
    (
        log_key(kind, coll, part, seg, field.field_id),
        Bytes::from(field.encode_to_vec()),
    )
}

async fn seeded(records: Vec<(String, Bytes)>) -> Arc<dyn MetaKv> {
    let kv: Arc<dyn MetaKv> = Arc::new(MemoryKv::new());
    kv.multi_save_batched(records).await.expect("seed");
    kv
}

#[tokio::test]
async fn orphan_log_keys_are_ignored() {
    let seg = segment(1, 1, 2, "ch", SegmentState::Flushed);
    let kv = seeded(vec![
        record(&seg),
        field_record(LogKind::Insert, (1, 2, 1), stored_field(0, &[10], 5)),
        // Segment 2 has logs but no record: a write that stopped before its record.
        field_record(LogKind::Insert, (1, 2, 2), stored_field(0, &[20], 5)),
        field_record(LogKind::Stats, (1, 2, 2), stored_field(100, &[21], 5)),
        // Logs of segment 1 under another partition are not its logs.
        field_record(LogKind::Delta, (1, 3, 1), stored_field(0, &[30], 5)),
    ])
    .await;
    let meta = Meta::load(Catalog::new(kv)).await.expect("load");
    assert_eq!(meta.segment_num(), 1);
    assert!(meta.segment(2).is_none());
    let one = meta.segment(1).expect("segment 1");
    assert_eq!(one.binlogs, vec![stored_field(0, &[10], 5)]);
    assert!(one.deltalogs.is_empty());
}

#[tokio::test]
async fn legacy_inline_logs_are_kept_and_migrated_on_next_write() {
    let mut legacy = segment(1, 1, 2, "ch", SegmentState::Flushed);
    legacy.binlogs = vec![sent_logs(
        LogKind::Insert,
        "old-root",
        (1, 2, 1),
        0,
        &[10, 11],
        5,
    )];
    legacy.num_of_rows = 10;
    let kv = seeded(vec![
        record(&legacy),
        // Ignored: the record lists insert logs inline.
        field_record(LogKind::Insert, (1, 2, 1), stored_field(0, &[99], 5)),
        // Attached: the record has no stats logs inline.
        field_record(LogKind::Stats, (1, 2, 1), stored_field(100, &[1], 5)),
    ])
    .await;
    let meta = Meta::load(Catalog::new(kv.clone())).await.expect("load");
    let loaded = meta.segment(1).expect("segment");
    assert_eq!(loaded.binlogs, legacy.binlogs, "inline logs kept as stored");
    assert_eq!(loaded.statslogs, vec![stored_field(100, &[1], 5)]);
    // Inline paths are answered as stored; key-stored ones are rebuilt.
    let full = with_full_paths(&loaded, "files");
    assert!(
        full.binlogs[0].binlogs[0]
            .log_path
            .starts_with("old-root/insert_log/")
    );
    assert_eq!(
        full.statslogs[0].binlogs[0].log_path,
        "files/stats_log/1/2/1/100/1"
    );

    meta.set_state(1, SegmentState::Flushed)
        .await
        .expect("rewrite");
    let migrated = meta.segment(1).expect("segment");
    let mut expected = legacy.binlogs.clone();
    for (binlog, log_id) in expected[0].binlogs.iter_mut().zip([10, 11]) {
        binlog.log_path.clear();
        binlog.log_id = log_id;
    }
    assert_eq!(migrated.binlogs, expected);
    let key = kv
        .load(&log_key(LogKind::Insert, 1, 2, 1, 0))
        .await
        .expect("load")
        .expect("key");
    assert_eq!(vec![FieldBinlog::decode(key).expect("decode")], expected);
    let record = kv
        .load(&segment_key(1, 2, 1))
        .await
        .expect("load")
        .expect("record");
    assert!(
        SegmentInfo::decode(record)
            .expect("decode")
            .binlogs
            .is_empty()
    );
    assert_matches_store(&meta).await;
}

#[tokio::test]
async fn channel_state_loads() {
    let kv = seeded(vec![
        (
            channel_checkpoint_key("v0"),
            Bytes::from(position("some-other-name", 7).encode_to_vec()),
        ),
        (channel_removal_key("v0"), Bytes::from_static(b"removed")),
        (
            channel_removal_key("v1"),
            Bytes::from_static(b"non-removed"),
        ),
        (channel_removal_key("v2"), Bytes::from_static(b"bogus")),
    ])
    .await;
    let meta = Meta::load(Catalog::new(kv)).await.expect("load");
    let checkpoint = meta.channel_checkpoint("v0").expect("checkpoint");
    assert_eq!(
        (checkpoint.channel_name.as_str(), checkpoint.timestamp),
        ("v0", 7)
    );
    assert_eq!(meta.channel_removal("v0"), ChannelRemoval::Removed);
    assert_eq!(meta.channel_removal("v1"), ChannelRemoval::NonRemoved);
    assert_eq!(meta.channel_removal("v2"), ChannelRemoval::Absent);
}

#[tokio::test]
async fn corrupt_records_fail_the_load() {
    let bad_key = seeded(vec![(
        "datacoord-meta/binlog/1/x/3/0".to_string(),
        Bytes::from(stored_field(0, &[1], 1).encode_to_vec()),
    )])
    .await;
    let err = Meta::load(Catalog::new(bad_key))
        .await
        .expect_err("bad key");
    assert!(matches!(err, MetaError::Corrupt { .. }), "{err}");
    let bad_value = seeded(vec![(
        segment_key(1, 2, 3),
        Bytes::from_static(&[0xff, 0xff, 0xff]),
    )])
    .await;
    let err = Meta::load(Catalog::new(bad_value))
        .await
        .expect_err("bad value");
    assert!(matches!(err, MetaError::Corrupt { .. }), "{err}");
}

/// Records the page requests a load makes and how many were in flight at once; each request
/// yields once so that concurrent walks can interleave.
struct CountingKv {
    inner: Arc<dyn MetaKv>,
    pages: Mutex<BTreeMap<String, Vec<usize>>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

#[async_trait]
impl MetaKv for CountingKv {
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
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::task::yield_now().await;
        let page = self
            .inner
            .load_prefix_page(prefix, start_after, limit)
            .await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.pages
            .lock()
            .expect("lock")
            .entry(prefix.to_string())
            .or_default()
            .push(limit);
        page
    }
    async fn commit(&self, batch: WriteBatch) -> MetastoreResult<()> {
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
async fn twenty_thousand_segments_load_in_overlapping_pages() {
    const SEGMENTS: i64 = 20_000;
    let mut records = Vec::new();
    for id in 1..=SEGMENTS {
        let mut seg = segment(
            id,
            1 + id % 4,
            10,
            &format!("ch{}", id % 8),
            SegmentState::Flushed,
        );
        seg.num_of_rows = 7;
        records.push(record(&seg));
        records.push(field_record(
            LogKind::Insert,
            (seg.collection_id, 10, id),
            stored_field(0, &[id * 10], 7),
        ));
        if id % 2 == 0 {
            records.push(field_record(
                LogKind::Stats,
                (seg.collection_id, 10, id),
                stored_field(100, &[1], 7),
            ));
        }
        if id % 5 == 0 {
            records.push(field_record(
                LogKind::Delta,
                (seg.collection_id, 10, id),
                stored_field(0, &[id * 10 + 1], 1),
            ));
        }
    }
    let counting = Arc::new(CountingKv {
        inner: seeded(records).await,
        pages: Mutex::new(BTreeMap::new()),
        in_flight: AtomicUsize::new(0),
        max_in_flight: AtomicUsize::new(0),
    });
    let meta = Meta::load(Catalog::new(counting.clone()))
        .await
        .expect("load");

    assert_eq!(meta.segment_num(), SEGMENTS as usize);
    let sample = meta.segment(4_010).expect("sample");
    assert_eq!(sample.binlogs, vec![stored_field(0, &[40_100], 7)]);
    assert_eq!(sample.statslogs, vec![stored_field(100, &[1], 7)]);
    assert_eq!(sample.deltalogs, vec![stored_field(0, &[40_101], 1)]);
    assert_eq!(meta.collection_row_count(1), 7 * SEGMENTS / 4);
    assert_eq!(meta.segments_of_channel("ch3").len(), SEGMENTS as usize / 8);

    let pages = counting.pages.lock().expect("lock").clone();
    let walk = |prefix: &str| pages.get(prefix).cloned().unwrap_or_default();
    // Pages of 40000 keys: each family fits one request (a second may confirm the end).
    for prefix in [
        "datacoord-meta/s/",
        "datacoord-meta/binlog/",
        "datacoord-meta/statslog/",
        "datacoord-meta/deltalog/",
    ] {
        let requests = walk(prefix);
        assert!(
            (1..=2).contains(&requests.len()),
            "{prefix}: {} requests",
            requests.len()
        );
        assert!(requests.iter().all(|limit| *limit == 40_000), "{prefix}");
    }
    assert_eq!(
        counting.max_in_flight.load(Ordering::SeqCst),
        2,
        "two walks overlap, never more"
    );
}
