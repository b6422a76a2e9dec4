//! Startup load (FACTS C.8): four paged walks (segment records and the three log families)
//! merged by key into compact segments (`merge.rs`), then checkpoints and removal flags.
//!
//! Which walk fetches next is chosen for memory: responses are the bulk of what a load holds
//! at any moment (a page of 40000 segment records is ~20 MB on the wire and as much again
//! decoded), and so is what waits in the merge for a walk that lags. So at most two requests
//! are in flight, and once enough is pending only the walk furthest behind fetches. glibc
//! keeps freed response buffers for reuse (its threshold for giving memory back grows with
//! the largest buffer it has seen), so it is asked to return them before each page of segment
//! records, the largest responses.

use futures::FutureExt;
use futures::stream::{BoxStream, FuturesUnordered, StreamExt};
use milvus_metastore::MetastoreResult;

use crate::catalog::{Catalog, decode_position};
use crate::error::MetaResult;
use crate::index::{ChannelRemoval, Index};
use crate::keys::{
    CHANNEL_CHECKPOINT_PREFIX, CHANNEL_REMOVAL_PREFIX, LogKind, NON_REMOVED_FLAG, REMOVED_FLAG,
};
use crate::merge::{Merge, WALKS, walk_prefix};
use crate::meta::release_free_memory;

/// Keys per range request at start-up. etcd 3.4 walks the whole remaining range for every paged
/// request (its index collects all revisions before applying the limit), so a walk costs
/// O(keys² / page): bigger pages than 2.3.5's 2000 are what keep a 700k-key catalog from
/// taking seconds of etcd CPU. 40000 log records are ~6 MB per response.
const LOAD_PAGE_SIZE: usize = 40_000;

/// Range requests in flight at once. Two keep etcd busy while this process decodes (measured
/// as fast as four on two cores); each more adds up to a response's worth of memory.
const MAX_IN_FLIGHT: usize = 2;

/// Pending positions up to which every walk may fetch; beyond, only the walk furthest behind
/// (which is what completes pending segments).
const MAX_PENDING: usize = 15_000;

type Page = Vec<(String, bytes::Bytes)>;
type PageStream<'a> = BoxStream<'a, MetastoreResult<Page>>;

/// Reads the whole catalog into an index.
pub(crate) async fn load_index(catalog: &Catalog) -> MetaResult<Index> {
    load_index_paged(catalog, LOAD_PAGE_SIZE, MAX_PENDING).await
}

fn next_page(
    walk: usize,
    stream: PageStream<'_>,
) -> impl Future<Output = (usize, Option<MetastoreResult<Page>>, PageStream<'_>)> {
    stream
        .into_future()
        .map(move |(page, stream)| (walk, page, stream))
}

/// Whether `walk` may fetch now: always while little is pending, else only when no other
/// unfinished walk is behind it (the walk furthest behind always may, so the load proceeds).
fn may_fetch(merge: &Merge, walk: usize, max_pending: usize) -> bool {
    merge.pending_len() < max_pending
        || (0..WALKS)
            .filter(|other| *other != walk && !merge.is_walk_done(*other))
            .all(|other| merge.frontier(walk) <= merge.frontier(other))
}

/// [`load_index`] with another page size and pending bound (tests use tiny ones to cut
/// segments across pages).
pub(crate) async fn load_index_paged(
    catalog: &Catalog,
    page_size: usize,
    max_pending: usize,
) -> MetaResult<Index> {
    let mut merge = Merge::default();
    let mut idle: Vec<Option<PageStream<'_>>> = (0..WALKS)
        .map(|walk| Some(catalog.kv().load_prefix(walk_prefix(walk), page_size)))
        .collect();
    let mut fetching = FuturesUnordered::new();
    // A page that arrived; it is read once the next fetches are under way.
    let mut arrived: Option<(usize, Page)> = None;
    loop {
        let mut ready: Vec<usize> = (0..WALKS).filter(|walk| idle[*walk].is_some()).collect();
        ready.sort_by_key(|walk| merge.frontier(*walk));
        for walk in ready {
            let allowed = fetching.is_empty()
                || (fetching.len() < MAX_IN_FLIGHT && may_fetch(&merge, walk, max_pending));
            if !allowed {
                continue;
            }
            if walk == 0 {
                release_free_memory();
            }
            let stream = idle[walk].take().expect("an idle walk");
            fetching.push(next_page(walk, stream));
        }
        if let Some((walk, page)) = arrived.take() {
            merge.take_page(walk, page)?;
            continue;
        }
        let Some((walk, page, stream)) = fetching.next().await else {
            break;
        };
        match page {
            None => merge.walk_done(walk),
            Some(page) => {
                let page = page?;
                merge.advance(walk, &page);
                idle[walk] = Some(stream);
                arrived = Some((walk, page));
            }
        }
    }
    debug_assert!(merge.is_done());

    if merge.odd_log_keys > 0 {
        tracing::warn!(
            keys = merge.odd_log_keys,
            "ignoring log keys whose IDs are not spelled as Milvus writes them"
        );
    }
    for (kind, orphans) in LogKind::ALL.iter().zip(merge.orphans) {
        if orphans > 0 {
            tracing::warn!(
                kind = ?kind,
                segments = orphans,
                "ignoring log keys of segments that have no segment record"
            );
        }
    }
    if !merge.inline.is_empty() {
        tracing::info!(
            segments = merge.inline.len(),
            "segments with legacy inline logs; their log keys are written on their next change"
        );
    }
    let mut index = Index::from_loaded(merge.loaded, merge.strings, merge.inline);

    for (key, value) in catalog.load_small_prefix(CHANNEL_CHECKPOINT_PREFIX).await? {
        let vchannel = key[CHANNEL_CHECKPOINT_PREFIX.len()..].to_string();
        let mut position = decode_position(&key, &value)?;
        // Some old releases stored another channel name here; the key is authoritative.
        position.channel_name = vchannel.clone();
        index.checkpoints.insert(vchannel, position);
    }
    for (key, value) in catalog.load_small_prefix(CHANNEL_REMOVAL_PREFIX).await? {
        let vchannel = key[CHANNEL_REMOVAL_PREFIX.len()..].to_string();
        match parse_removal_flag(&value) {
            Some(flag) => {
                index.removals.insert(vchannel, flag);
            }
            None => tracing::warn!(
                channel = %vchannel,
                value = %String::from_utf8_lossy(&value),
                "unknown channel removal flag; treated as absent"
            ),
        }
    }
    tracing::info!(
        segments = index.len(),
        checkpoints = index.checkpoints.len(),
        removal_flags = index.removals.len(),
        "datacoord meta loaded"
    );
    Ok(index)
}

pub(crate) fn parse_removal_flag(value: &[u8]) -> Option<ChannelRemoval> {
    if value == NON_REMOVED_FLAG.as_bytes() {
        Some(ChannelRemoval::NonRemoved)
    } else if value == REMOVED_FLAG.as_bytes() {
        Some(ChannelRemoval::Removed)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use milvus_metastore::{MemoryKv, MetaKv};
    use milvus_proto::common::SegmentState;
    use milvus_proto::data::{Binlog, FieldBinlog, SegmentInfo};
    use prost::Message;

    use super::*;
    use crate::keys::{log_key, segment_key};

    fn field(field_id: i64, log_ids: &[i64]) -> FieldBinlog {
        FieldBinlog {
            field_id,
            binlogs: log_ids
                .iter()
                .map(|log_id| Binlog {
                    entries_num: 10,
                    timestamp_from: 449_000_000_000_000_000 + *log_id as u64,
                    timestamp_to: 449_000_000_000_100_000,
                    log_size: 80,
                    log_id: *log_id,
                    ..Binlog::default()
                })
                .collect(),
        }
    }

    /// A catalog with IDs of every width (so key order is not numeric order), segments with
    /// and without each log family, empty field entries, a legacy record with inline logs,
    /// orphan log keys, log keys under another partition and oddly spelled log keys.
    fn catalog_records() -> (Vec<(String, Bytes)>, usize) {
        let mut records = Vec::new();
        let mut segments = 0;
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let put_logs = |records: &mut Vec<(String, Bytes)>,
                        kind,
                        ids: (i64, i64, i64),
                        fields: Vec<FieldBinlog>| {
            for field in fields {
                let key = log_key(kind, ids.0, ids.1, ids.2, field.field_id);
                records.push((key, Bytes::from(field.encode_to_vec())));
            }
        };
        let ids = [
            1,
            2,
            9,
            10,
            11,
            19,
            100,
            101,
            999,
            1_000,
            123_456_789_012,
            449_000_000_000_001,
        ];
        let states = [
            SegmentState::Flushed,
            SegmentState::Dropped,
            SegmentState::Growing,
            SegmentState::Flushed,
            SegmentState::Sealed,
        ];
        for (partition_index, (coll, part)) in
            [(1, 0), (1, 7), (10, 70), (2, -1)].into_iter().enumerate()
        {
            for id in ids {
                let id = id * 10 + partition_index as i64;
                if next(5) == 0 {
                    // No record: its log keys are orphans.
                    put_logs(
                        &mut records,
                        LogKind::Insert,
                        (coll, part, id),
                        vec![field(0, &[id + 1])],
                    );
                    continue;
                }
                let mut seg = SegmentInfo {
                    id,
                    collection_id: coll,
                    partition_id: part,
                    insert_channel: format!("ch{}", id % 3),
                    num_of_rows: 10,
                    ..SegmentInfo::default()
                };
                seg.set_state(states[next(states.len() as u64) as usize]);
                let log_id = id * 100;
                if next(6) == 0 {
                    // Legacy: insert logs inline; its insert keys are ignored, stats attached.
                    let mut inline = field(0, &[log_id]);
                    inline.binlogs[0].log_path =
                        format!("old/insert_log/{coll}/{part}/{id}/0/{log_id}");
                    seg.binlogs = vec![inline];
                }
                records.push((
                    segment_key(coll, part, id),
                    Bytes::from(seg.encode_to_vec()),
                ));
                segments += 1;
                if next(4) != 0 {
                    let fields = [0, 1, 100, 101, 2][..1 + next(5) as usize]
                        .iter()
                        .map(|field_id| {
                            field(*field_id, &[log_id + field_id, log_id + 50 + field_id])
                        })
                        .collect();
                    put_logs(&mut records, LogKind::Insert, (coll, part, id), fields);
                }
                if next(2) == 0 {
                    let empty = FieldBinlog {
                        field_id: 0,
                        binlogs: vec![],
                    };
                    put_logs(&mut records, LogKind::Delta, (coll, part, id), vec![empty]);
                }
                if next(3) != 0 {
                    put_logs(
                        &mut records,
                        LogKind::Stats,
                        (coll, part, id),
                        vec![field(100, &[log_id + 9, 1])],
                    );
                }
                if next(8) == 0 {
                    // The same segment ID under another partition: not this segment's logs.
                    put_logs(
                        &mut records,
                        LogKind::Delta,
                        (coll, part + 1, id),
                        vec![field(0, &[log_id + 7])],
                    );
                }
                if part >= 0 && next(8) == 0 {
                    let key = format!("{}{coll}/0{part}/{id}/5", LogKind::Insert.key_prefix());
                    records.push((key, Bytes::from(field(5, &[log_id + 8]).encode_to_vec())));
                }
            }
        }
        (records, segments)
    }

    #[tokio::test]
    async fn any_paging_loads_what_single_reads_find() {
        let (records, segments) = catalog_records();
        let kv: Arc<dyn MetaKv> = Arc::new(MemoryKv::new());
        kv.multi_save_batched(records).await.expect("seed");
        let catalog = Catalog::new(kv.clone());
        let stored = kv
            .load_all_with_prefix(crate::keys::SEGMENT_PREFIX)
            .await
            .expect("records");
        assert_eq!(stored.len(), segments);
        for page_size in [1, 2, 3, 5, 8, 1000] {
            for max_pending in [0, 4, MAX_PENDING] {
                let index = load_index_paged(&catalog, page_size, max_pending)
                    .await
                    .expect("load");
                assert_eq!(
                    index.len(),
                    segments,
                    "page {page_size}, pending {max_pending}"
                );
                for (key, value) in &stored {
                    let record = SegmentInfo::decode(value.clone()).expect("record");
                    let (expected, inline) = catalog
                        .read_segment(record.collection_id, record.partition_id, record.id)
                        .await
                        .expect("read")
                        .expect("present");
                    let loaded = index.get(record.id).expect(key);
                    assert_eq!(
                        *loaded, expected,
                        "{key}: page {page_size}, pending {max_pending}"
                    );
                    assert_eq!(index.has_inline_logs(record.id), inline, "{key}");
                }
            }
        }
    }

    #[tokio::test]
    async fn a_record_under_a_foreign_key_loads_without_stored_logs() {
        let mut seg = SegmentInfo {
            id: 3,
            collection_id: 1,
            partition_id: 2,
            insert_channel: "ch".into(),
            ..SegmentInfo::default()
        };
        seg.set_state(SegmentState::Flushed);
        let kv: Arc<dyn MetaKv> = Arc::new(MemoryKv::new());
        kv.multi_save_batched(vec![
            (segment_key(1, 2, 4), Bytes::from(seg.encode_to_vec())),
            (
                log_key(LogKind::Insert, 1, 2, 4, 0),
                Bytes::from(field(0, &[40]).encode_to_vec()),
            ),
            (
                log_key(LogKind::Insert, 1, 2, 3, 0),
                Bytes::from(field(0, &[30]).encode_to_vec()),
            ),
        ])
        .await
        .expect("seed");
        let index = load_index_paged(&Catalog::new(kv), 1, 0)
            .await
            .expect("load");
        assert_eq!(index.len(), 1);
        assert_eq!(*index.get(3).expect("segment 3"), seg);
    }
}
