//! What datanodes and querycoord need to (re)start a channel: its segments split by state and the
//! position to seek the DML stream from (2.3.5's ServerHandler).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datacoord_meta::Meta;
use milvus_proto::common::{KeyDataPair, SegmentState};
use milvus_proto::data::{SegmentInfo, VchannelInfo};
use milvus_proto::msg::MsgPosition;
use milvus_types::{CollectionId, PartitionId, SegmentId};
use tracing::{info, warn};

use crate::collections::Collections;

/// A channel as the handler sees it. Start positions and the create timestamp are only known for
/// channels that came through WatchChannels in this process lifetime.
#[derive(Clone, Copy)]
pub(crate) struct ChannelRef<'a> {
    pub(crate) name: &'a str,
    pub(crate) collection_id: CollectionId,
    pub(crate) start_positions: &'a [KeyDataPair],
    pub(crate) create_timestamp: u64,
}

impl<'a> ChannelRef<'a> {
    pub(crate) fn bare(name: &'a str, collection_id: CollectionId) -> Self {
        Self {
            name,
            collection_id,
            start_positions: &[],
            create_timestamp: 0,
        }
    }
}

/// The physical channel of a vchannel: everything before its last `_`.
pub(crate) fn physical_channel(vchannel: &str) -> &str {
    match vchannel.rfind('_') {
        Some(index) => &vchannel[..index],
        None => vchannel,
    }
}

fn has_position(segment: &SegmentInfo) -> bool {
    segment.start_position.is_some() || segment.dml_position.is_some()
}

fn is_flush_state(state: i32) -> bool {
    state == SegmentState::Flushing as i32 || state == SegmentState::Flushed as i32
}

/// Segments of the channel that take part in recovery: real, positioned, not importing, and in
/// the partitions asked for (none = all).
pub(crate) fn recovery_segments(
    meta: &Meta,
    channel: &str,
    partitions: &[PartitionId],
) -> Vec<Arc<SegmentInfo>> {
    let partitions: BTreeSet<PartitionId> = partitions.iter().copied().filter(|p| *p > 0).collect();
    meta.segments_of_channel(channel)
        .into_iter()
        .filter(|s| !s.is_fake && !s.is_importing && has_position(s))
        .filter(|s| partitions.is_empty() || partitions.contains(&s.partition_id))
        .collect()
}

/// GetDataVChanPositions: the watch info a datanode starts its flowgraph from.
pub(crate) fn data_vchan_positions(
    meta: &Meta,
    collections: &Collections,
    channel: ChannelRef<'_>,
    partition: PartitionId,
) -> VchannelInfo {
    let partitions: Vec<PartitionId> = if partition > 0 {
        vec![partition]
    } else {
        Vec::new()
    };
    let mut flushed = BTreeSet::new();
    let mut unflushed = BTreeSet::new();
    let mut dropped = BTreeSet::new();
    let segments = recovery_segments(meta, channel.name, &partitions);
    for segment in &segments {
        if segment.state == SegmentState::Dropped as i32 {
            dropped.insert(segment.id);
        } else if is_flush_state(segment.state) {
            flushed.insert(segment.id);
        } else {
            unflushed.insert(segment.id);
        }
    }
    info!(
        collection_id = channel.collection_id,
        channel = channel.name,
        flushed = flushed.len(),
        unflushed = unflushed.len(),
        dropped = dropped.len(),
        "GetDataVChanPositions"
    );
    VchannelInfo {
        collection_id: channel.collection_id,
        channel_name: channel.name.to_string(),
        seek_position: seek_position(meta, collections, channel, &segments),
        flushed_segment_ids: flushed.into_iter().collect(),
        unflushed_segment_ids: unflushed.into_iter().collect(),
        dropped_segment_ids: dropped.into_iter().collect(),
        ..Default::default()
    }
}

/// GetQueryVChanPositions: what querycoord loads. Flushed segments are split by index state only
/// to replace an unindexed compaction result by its (still present) parents, so a search never
/// falls back to brute force on a segment whose parents are indexed.
///
/// `segments` are the channel's [`recovery_segments`]; the caller keeps them to answer with.
/// Flushed segments with fewer than `min_rows_to_index` rows are never indexed and count as
/// indexed (`indexCoord.segment.minSegmentNumRowsToEnableIndex`).
pub(crate) fn query_vchan_positions(
    meta: &Meta,
    collections: &Collections,
    channel: ChannelRef<'_>,
    segments: &[Arc<SegmentInfo>],
    is_indexed: &dyn Fn(&SegmentInfo) -> bool,
    min_rows_to_index: i64,
) -> VchannelInfo {
    let by_id: HashMap<SegmentId, &SegmentInfo> = segments.iter().map(|s| (s.id, &**s)).collect();
    let mut indexed = BTreeSet::new();
    let mut unindexed = BTreeSet::new();
    let mut dropped = BTreeSet::new();
    let mut growing = BTreeSet::new();
    let mut truly_indexed = BTreeSet::new();
    for segment in segments {
        let flushed_or_dropped =
            is_flush_state(segment.state) || segment.state == SegmentState::Dropped as i32;
        if flushed_or_dropped && is_indexed(segment) {
            truly_indexed.insert(segment.id);
        }
        if segment.state == SegmentState::Dropped as i32 {
            dropped.insert(segment.id);
        } else if !is_flush_state(segment.state) {
            growing.insert(segment.id);
        } else if truly_indexed.contains(&segment.id) || segment.num_of_rows < min_rows_to_index {
            indexed.insert(segment.id);
        } else {
            unindexed.insert(segment.id);
        }
    }
    // Replace unindexed compaction results by their parents while all parents are still known.
    loop {
        let mut again = false;
        for id in unindexed.clone() {
            let Some(segment) = by_id.get(&id) else {
                continue;
            };
            let parents = &segment.compaction_from;
            if parents.is_empty() || !parents.iter().all(|p| by_id.contains_key(p)) {
                continue;
            }
            for parent in parents {
                if truly_indexed.contains(parent) {
                    indexed.insert(*parent);
                } else if unindexed.insert(*parent) {
                    again = true;
                }
                dropped.remove(parent);
            }
            unindexed.remove(&id);
        }
        if !again {
            break;
        }
    }
    info!(
        collection_id = channel.collection_id,
        channel = channel.name,
        segments = segments.len(),
        indexed = truly_indexed.len(),
        "GetQueryVChanPositions"
    );
    indexed.extend(unindexed);
    VchannelInfo {
        collection_id: channel.collection_id,
        channel_name: channel.name.to_string(),
        seek_position: seek_position(meta, collections, channel, segments),
        flushed_segment_ids: indexed.into_iter().collect(),
        unflushed_segment_ids: growing.into_iter().collect(),
        dropped_segment_ids: dropped.into_iter().collect(),
        ..Default::default()
    }
}

/// Where a consumer of the channel starts: the channel checkpoint, else the earliest position of a
/// live segment among the channel's `segments` (its [`recovery_segments`]), else the channel's (or
/// collection's) start position.
fn seek_position(
    meta: &Meta,
    collections: &Collections,
    channel: ChannelRef<'_>,
    segments: &[Arc<SegmentInfo>],
) -> Option<MsgPosition> {
    if let Some(checkpoint) = meta.channel_checkpoint(channel.name) {
        info!(
            channel = channel.name,
            ts = checkpoint.timestamp,
            "channel seek position set from channel checkpoint meta"
        );
        return Some(checkpoint);
    }
    let earliest = segments
        .iter()
        .filter(|s| s.state != SegmentState::Dropped as i32)
        .filter_map(|s| s.dml_position.clone().or_else(|| s.start_position.clone()))
        .min_by_key(|p| p.timestamp);
    if let Some(position) = earliest {
        info!(
            channel = channel.name,
            ts = position.timestamp,
            "channel seek position set from earliest segment dml position"
        );
        return Some(position);
    }
    let start = if channel.start_positions.is_empty() {
        collections.cached(channel.collection_id).and_then(|c| {
            start_position(channel.name, &c.start_positions).map(|mut p| {
                p.timestamp = c.created_at;
                p
            })
        })
    } else {
        start_position(channel.name, channel.start_positions).map(|mut p| {
            p.timestamp = channel.create_timestamp;
            p
        })
    };
    match &start {
        Some(position) => info!(
            channel = channel.name,
            ts = position.timestamp,
            "channel seek position set from collection start position"
        ),
        None => warn!(
            channel = channel.name,
            "no channel checkpoint, segment position or start position for the channel"
        ),
    }
    start
}

fn start_position(vchannel: &str, positions: &[KeyDataPair]) -> Option<MsgPosition> {
    let pchannel = physical_channel(vchannel);
    positions
        .iter()
        .find(|p| p.key == pchannel)
        .map(|p| MsgPosition {
            channel_name: vchannel.to_string(),
            msg_id: p.data.clone(),
            ..Default::default()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_channel_strips_the_shard_suffix() {
        assert_eq!(
            physical_channel("by-dev-rootcoord-dml_1_470730857520700478v0"),
            "by-dev-rootcoord-dml_1"
        );
        assert_eq!(physical_channel("plain"), "plain");
    }
}
