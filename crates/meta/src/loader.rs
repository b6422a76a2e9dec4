//! Startup load (FACTS C.8): four concurrent paged walks (segment records and the three log
//! families, 2000 keys per request), logs attached by segment ID, then checkpoints and
//! removal flags. Each page is decoded as it arrives and dropped, so raw values never pile up.

use std::collections::HashMap;
use std::sync::Arc;

use futures::TryStreamExt;
use milvus_metastore::DEFAULT_PAGE_SIZE;
use milvus_proto::data::FieldBinlog;
use milvus_types::{CollectionId, PartitionId, SegmentId};

use crate::catalog::{Catalog, attach_logs, decode_field_binlog, decode_position, decode_segment};
use crate::error::{MetaError, MetaResult};
use crate::index::{ChannelRemoval, Index};
use crate::keys::{
    CHANNEL_CHECKPOINT_PREFIX, CHANNEL_REMOVAL_PREFIX, LogKind, NON_REMOVED_FLAG, REMOVED_FLAG,
    SEGMENT_PREFIX, parse_log_key,
};

/// The logs of one kind of one segment, as found under its keys.
struct StoredLogs {
    coll: CollectionId,
    part: PartitionId,
    fields: Vec<FieldBinlog>,
}

/// Reads the whole catalog into an index.
pub(crate) async fn load_index(catalog: &Catalog) -> MetaResult<Index> {
    let (segments, mut insert, mut delta, mut stats) = futures::try_join!(
        walk_segments(catalog),
        walk_logs(catalog, LogKind::Insert),
        walk_logs(catalog, LogKind::Delta),
        walk_logs(catalog, LogKind::Stats),
    )?;

    let mut index = Index::default();
    let mut inline_segments = 0usize;
    for mut seg in segments {
        let mut inline = false;
        for (kind, found) in [
            (LogKind::Insert, &mut insert),
            (LogKind::Delta, &mut delta),
            (LogKind::Stats, &mut stats),
        ] {
            let fields = match found.remove(&seg.id) {
                Some(logs) if (logs.coll, logs.part) == (seg.collection_id, seg.partition_id) => {
                    logs.fields
                }
                Some(logs) => {
                    tracing::warn!(
                        segment_id = seg.id,
                        collection_id = seg.collection_id,
                        partition_id = seg.partition_id,
                        key_collection_id = logs.coll,
                        key_partition_id = logs.part,
                        kind = ?kind,
                        "log keys name another collection or partition than the segment; ignored"
                    );
                    Vec::new()
                }
                None => Vec::new(),
            };
            inline |= attach_logs(&mut seg, kind, fields);
        }
        if index.get(seg.id).is_some() {
            tracing::warn!(
                segment_id = seg.id,
                "segment stored twice; the later key wins"
            );
        }
        let id = seg.id;
        index.put(Arc::new(seg));
        if inline {
            inline_segments += 1;
            index.set_inline_logs(id, true);
        }
    }

    report_orphans(&[
        (LogKind::Insert, &insert),
        (LogKind::Delta, &delta),
        (LogKind::Stats, &stats),
    ]);
    if inline_segments > 0 {
        tracing::info!(
            segments = inline_segments,
            "segments with legacy inline logs; their log keys are written on their next change"
        );
    }
    drop((insert, delta, stats));

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

async fn walk_segments(catalog: &Catalog) -> MetaResult<Vec<milvus_proto::data::SegmentInfo>> {
    let mut segments = Vec::new();
    let mut pages = catalog.kv().load_prefix(SEGMENT_PREFIX, DEFAULT_PAGE_SIZE);
    while let Some(page) = pages.try_next().await? {
        segments.reserve(page.len());
        for (key, value) in page {
            segments.push(decode_segment(&key, &value)?);
        }
    }
    Ok(segments)
}

async fn walk_logs(catalog: &Catalog, kind: LogKind) -> MetaResult<HashMap<SegmentId, StoredLogs>> {
    let mut found: HashMap<SegmentId, StoredLogs> = HashMap::new();
    let mut pages = catalog
        .kv()
        .load_prefix(kind.key_prefix(), DEFAULT_PAGE_SIZE);
    while let Some(page) = pages.try_next().await? {
        for (key, value) in page {
            let Some((coll, part, seg)) = parse_log_key(kind, &key) else {
                // 2.3.5 refuses to start on such a key too.
                return Err(MetaError::Corrupt {
                    key,
                    reason: "not a {coll}/{part}/{seg}/{field} log key".to_string(),
                });
            };
            let field = decode_field_binlog(&key, &value)?;
            found
                .entry(seg)
                .or_insert_with(|| StoredLogs {
                    coll,
                    part,
                    fields: Vec::new(),
                })
                .fields
                .push(field);
        }
    }
    Ok(found)
}

/// Log keys whose segment record is missing: left by a write that stopped between its log
/// keys and its segment key, or by a GC that stopped half-way. They are ignored.
fn report_orphans(kinds: &[(LogKind, &HashMap<SegmentId, StoredLogs>)]) {
    for (kind, orphans) in kinds {
        if orphans.is_empty() {
            continue;
        }
        for (segment_id, logs) in orphans.iter() {
            tracing::debug!(
                segment_id,
                collection_id = logs.coll,
                partition_id = logs.part,
                kind = ?kind,
                "log keys without a segment record"
            );
        }
        tracing::warn!(
            kind = ?kind,
            segments = orphans.len(),
            "ignoring log keys of segments that have no segment record"
        );
    }
}
