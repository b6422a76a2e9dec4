//! The statistics of one index over a collection's segments (FACTS 1.11): total, pending and
//! indexed rows and the aggregated state.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use milvus_proto::common::IndexState;
use milvus_proto::data::SegmentInfo;
use milvus_types::{SegmentId, Timestamp};

use crate::meta::IndexMeta;
use crate::model::Index;
use crate::service::SegmentSource;

/// What [`index_stats`] computes for one index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Rows of segments counted as indexed (see [`index_stats`]).
    pub indexed_rows: i64,
    /// Σ rows of the segments considered.
    pub total_rows: i64,
    /// Rows of segments without a Finished build of this index.
    pub pending_index_rows: i64,
    /// Aggregated state.
    pub state: IndexState,
    /// `"{segmentID}: {reason};"` per Failed build counted, concatenated.
    pub fail_reason: String,
}

/// Statistics of `index` over `segments` (the collection's Flushed/Flushing segments).
///
/// A segment without a build counts as Unissued only if `last_expire_time <= ts`; with a
/// build, it is not counted when `!real_time` and `last_expire_time > ts`. State: any Failed
/// → Failed; else any InProgress/Unissued → InProgress; else any None → None; else Finished
/// (also with no segments). Indexed rows: with `real_time` the rows of counted Finished
/// segments; otherwise the lineage count of [`lineage_indexed_rows`].
pub fn index_stats(
    meta: &IndexMeta,
    source: &dyn SegmentSource,
    index: &Index,
    segments: &[Arc<SegmentInfo>],
    real_time: bool,
    ts: Timestamp,
) -> IndexStats {
    let (mut none, mut unissued, mut in_progress, mut failed) = (0usize, 0usize, 0usize, 0usize);
    let mut stats = IndexStats::default();
    let mut finished_rows = 0i64;
    for seg in segments {
        stats.total_rows += seg.num_of_rows;
        let Some(seg_index) = meta.segment_index_of(seg.id, index.index_id) else {
            if seg.last_expire_time <= ts {
                unissued += 1;
            }
            stats.pending_index_rows += seg.num_of_rows;
            continue;
        };
        if seg_index.state != IndexState::Finished {
            stats.pending_index_rows += seg.num_of_rows;
        }
        if !real_time && seg.last_expire_time > ts {
            continue;
        }
        match seg_index.state {
            IndexState::None => none += 1,
            IndexState::Unissued => unissued += 1,
            IndexState::InProgress => in_progress += 1,
            IndexState::Finished => finished_rows += seg.num_of_rows,
            IndexState::Failed => {
                failed += 1;
                stats
                    .fail_reason
                    .push_str(&format!("{}: {};", seg.id, seg_index.fail_reason));
            }
            // Retry is an IndexNode-side state that meta never holds; 2.3.5 ignores it too.
            IndexState::Retry => {}
        }
    }
    stats.indexed_rows = if real_time {
        finished_rows
    } else {
        lineage_indexed_rows(meta, source, index, segments)
    };
    stats.state = if failed > 0 {
        IndexState::Failed
    } else if in_progress > 0 || unissued > 0 {
        IndexState::InProgress
    } else if none > 0 {
        IndexState::None
    } else {
        IndexState::Finished
    };
    if stats.state != IndexState::Failed {
        stats.fail_reason.clear();
    }
    stats
}

/// Rows counted as indexed through compaction lineage: segments of `segments` with a
/// Finished build, plus, for each other segment, the nearest ancestors (through
/// `compactionFrom`, any state, as long as meta still holds them) with a Finished build.
/// Each segment counts once; the result may exceed the total rows.
pub fn lineage_indexed_rows(
    meta: &IndexMeta,
    source: &dyn SegmentSource,
    index: &Index,
    segments: &[Arc<SegmentInfo>],
) -> i64 {
    let is_finished = |id: SegmentId| {
        meta.segment_index_of(id, index.index_id)
            .is_some_and(|seg_index| seg_index.state == IndexState::Finished)
    };
    let mut indexed: BTreeSet<SegmentId> = BTreeSet::new();
    let mut to_visit: Vec<SegmentId> = Vec::new();
    for seg in segments {
        if is_finished(seg.id) {
            indexed.insert(seg.id);
        } else {
            to_visit.push(seg.id);
        }
    }
    // Guards against a cycle in corrupt lineage, which 2.3.5 would loop on forever.
    let mut visited: HashSet<SegmentId> = HashSet::new();
    while let Some(id) = to_visit.pop() {
        if !visited.insert(id) {
            continue;
        }
        let Some(seg) = source.segment(id) else {
            continue;
        };
        for &parent in &seg.compaction_from {
            if source.segment(parent).is_none() {
                continue;
            }
            if is_finished(parent) {
                indexed.insert(parent);
            } else {
                to_visit.push(parent);
            }
        }
    }
    indexed
        .into_iter()
        .filter_map(|id| source.segment(id))
        .map(|seg| seg.num_of_rows)
        .sum()
}
