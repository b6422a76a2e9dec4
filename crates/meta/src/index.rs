//! The in-memory picture of the catalog: every segment once (`Arc`), secondary indexes holding
//! IDs only, channel checkpoints and removal flags.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use milvus_proto::common::SegmentState;
use milvus_proto::data::SegmentInfo;
use milvus_proto::msg::MsgPosition;
use milvus_types::{CollectionId, PartitionId, SegmentId};

use crate::logs::is_healthy;

/// The removal flag of a channel (`datacoord-meta/channel-removal/{vchannel}`, FACTS C.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelRemoval {
    /// No flag: never watched through WatchChannels, or its drop has finished.
    Absent,
    /// `non-removed`: the channel exists.
    NonRemoved,
    /// `removed`: the channel was dropped and awaits cleanup; it is never reassigned.
    Removed,
}

/// Segments and channel state as last persisted. Only the meta layer mutates it, after the
/// store accepted the change.
#[derive(Debug, Default)]
pub(crate) struct Index {
    segments: HashMap<SegmentId, Arc<SegmentInfo>>,
    by_collection: HashMap<CollectionId, BTreeSet<SegmentId>>,
    by_channel: HashMap<String, BTreeSet<SegmentId>>,
    /// Keyed by the raw state value so a value unknown to us still has a home.
    by_state: HashMap<i32, BTreeSet<SegmentId>>,
    /// Compaction parent → the segments listing it in `compactionFrom`.
    children: HashMap<SegmentId, BTreeSet<SegmentId>>,
    counts: HashMap<(CollectionId, i32), usize>,
    /// Segments whose logs were loaded from a legacy record that carries them inline; the next
    /// write of such a segment also writes its log keys.
    inline_logs: HashSet<SegmentId>,
    pub(crate) checkpoints: HashMap<String, MsgPosition>,
    pub(crate) removals: HashMap<String, ChannelRemoval>,
}

fn remove_from<K: Eq + std::hash::Hash>(
    map: &mut HashMap<K, BTreeSet<SegmentId>>,
    key: &K,
    id: SegmentId,
) {
    if let Some(ids) = map.get_mut(key) {
        ids.remove(&id);
        if ids.is_empty() {
            map.remove(key);
        }
    }
}

impl Index {
    /// Inserts or replaces a segment (its inline-logs mark is left as it is).
    pub(crate) fn put(&mut self, seg: Arc<SegmentInfo>) {
        self.unlink(seg.id);
        let id = seg.id;
        self.by_collection
            .entry(seg.collection_id)
            .or_default()
            .insert(id);
        match self.by_channel.get_mut(seg.insert_channel.as_str()) {
            Some(ids) => {
                ids.insert(id);
            }
            None => {
                self.by_channel
                    .insert(seg.insert_channel.clone(), BTreeSet::from([id]));
            }
        }
        self.by_state.entry(seg.state).or_default().insert(id);
        for parent in &seg.compaction_from {
            self.children.entry(*parent).or_default().insert(id);
        }
        *self
            .counts
            .entry((seg.collection_id, seg.state))
            .or_default() += 1;
        self.segments.insert(id, seg);
    }

    /// Removes a segment; returns it if it was there.
    pub(crate) fn remove(&mut self, id: SegmentId) -> Option<Arc<SegmentInfo>> {
        self.inline_logs.remove(&id);
        self.unlink(id)
    }

    /// Takes a segment out of the map and every secondary index.
    fn unlink(&mut self, id: SegmentId) -> Option<Arc<SegmentInfo>> {
        let seg = self.segments.remove(&id)?;
        remove_from(&mut self.by_collection, &seg.collection_id, id);
        remove_from(&mut self.by_channel, &seg.insert_channel, id);
        remove_from(&mut self.by_state, &seg.state, id);
        for parent in &seg.compaction_from {
            remove_from(&mut self.children, parent, id);
        }
        let count_key = (seg.collection_id, seg.state);
        if let Some(count) = self.counts.get_mut(&count_key) {
            *count -= 1;
            if *count == 0 {
                self.counts.remove(&count_key);
            }
        }
        Some(seg)
    }

    pub(crate) fn get(&self, id: SegmentId) -> Option<Arc<SegmentInfo>> {
        self.segments.get(&id).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        self.segments.len()
    }

    fn resolve<'a>(
        &'a self,
        ids: impl Iterator<Item = &'a SegmentId> + 'a,
    ) -> impl Iterator<Item = &'a Arc<SegmentInfo>> + 'a {
        ids.filter_map(|id| self.segments.get(id))
    }

    /// All segments of a collection, by ID.
    pub(crate) fn of_collection(&self, coll: CollectionId) -> Vec<Arc<SegmentInfo>> {
        self.by_collection
            .get(&coll)
            .map(|ids| self.resolve(ids.iter()).cloned().collect())
            .unwrap_or_default()
    }

    /// All segments of an insert channel, by ID.
    pub(crate) fn of_channel(&self, vchannel: &str) -> Vec<Arc<SegmentInfo>> {
        self.by_channel
            .get(vchannel)
            .map(|ids| self.resolve(ids.iter()).cloned().collect())
            .unwrap_or_default()
    }

    /// Segments in any of `states`, by ID.
    pub(crate) fn in_states(&self, states: &[SegmentState]) -> Vec<Arc<SegmentInfo>> {
        let wanted: BTreeSet<i32> = states.iter().map(|state| *state as i32).collect();
        let mut ids: Vec<SegmentId> = wanted
            .iter()
            .filter_map(|state| self.by_state.get(state))
            .flatten()
            .copied()
            .collect();
        ids.sort_unstable();
        self.resolve(ids.iter()).cloned().collect()
    }

    /// The segment compacted from `parent` (the lowest ID if, against 2.3.5's own rules,
    /// several list it).
    pub(crate) fn child_of(&self, parent: SegmentId) -> Option<Arc<SegmentInfo>> {
        let child = self.children.get(&parent)?.first()?;
        self.get(*child)
    }

    /// Σ num_of_rows over healthy segments of a collection, optionally of one partition.
    pub(crate) fn row_count(&self, coll: CollectionId, part: Option<PartitionId>) -> i64 {
        let Some(ids) = self.by_collection.get(&coll) else {
            return 0;
        };
        self.resolve(ids.iter())
            .filter(|seg| part.is_none_or(|part| seg.partition_id == part))
            .filter(|seg| is_healthy(seg.state()))
            .map(|seg| seg.num_of_rows)
            .sum()
    }

    /// Segments per (collection, state); states unknown to this build are left out.
    pub(crate) fn counts(&self) -> Vec<(CollectionId, SegmentState, usize)> {
        let mut counts: Vec<_> = self
            .counts
            .iter()
            .filter_map(|((coll, state), count)| {
                SegmentState::try_from(*state)
                    .ok()
                    .map(|state| (*coll, state, *count))
            })
            .collect();
        counts.sort_by_key(|(coll, state, _)| (*coll, *state as i32));
        counts
    }

    pub(crate) fn has_inline_logs(&self, id: SegmentId) -> bool {
        self.inline_logs.contains(&id)
    }

    pub(crate) fn set_inline_logs(&mut self, id: SegmentId, inline: bool) {
        if inline {
            self.inline_logs.insert(id);
        } else {
            self.inline_logs.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(
        id: SegmentId,
        coll: CollectionId,
        channel: &str,
        state: SegmentState,
    ) -> Arc<SegmentInfo> {
        let mut info = SegmentInfo {
            id,
            collection_id: coll,
            partition_id: coll * 10,
            insert_channel: channel.to_string(),
            num_of_rows: id,
            ..SegmentInfo::default()
        };
        info.set_state(state);
        Arc::new(info)
    }

    fn ids(segs: &[Arc<SegmentInfo>]) -> Vec<SegmentId> {
        segs.iter().map(|seg| seg.id).collect()
    }

    #[test]
    fn replacing_a_segment_moves_it_between_indexes() {
        let mut index = Index::default();
        index.put(seg(3, 1, "a", SegmentState::Growing));
        index.put(seg(1, 1, "a", SegmentState::Flushed));
        index.put(seg(2, 2, "b", SegmentState::Growing));
        assert_eq!(ids(&index.of_collection(1)), vec![1, 3]);
        assert_eq!(ids(&index.in_states(&[SegmentState::Growing])), vec![2, 3]);

        let mut moved = (*seg(3, 2, "b", SegmentState::Dropped)).clone();
        moved.compaction_from = vec![1];
        index.put(Arc::new(moved));
        assert_eq!(index.len(), 3);
        assert_eq!(ids(&index.of_collection(1)), vec![1]);
        assert_eq!(ids(&index.of_channel("b")), vec![2, 3]);
        assert!(index.of_channel("c").is_empty());
        assert_eq!(ids(&index.in_states(&[SegmentState::Growing])), vec![2]);
        assert_eq!(
            ids(&index.in_states(&[SegmentState::Dropped, SegmentState::Flushed])),
            vec![1, 3]
        );
        assert_eq!(index.child_of(1).map(|s| s.id), Some(3));
        // Dropped segment 3 does not count; 2 (Growing) does.
        assert_eq!(index.row_count(2, None), 2);
        assert_eq!(index.row_count(2, Some(99)), 0);
        assert_eq!(
            index.counts(),
            vec![
                (1, SegmentState::Flushed, 1),
                (2, SegmentState::Growing, 1),
                (2, SegmentState::Dropped, 1),
            ]
        );

        index.remove(3);
        assert!(index.child_of(1).is_none());
        assert!(index.in_states(&[SegmentState::Dropped]).is_empty());
        assert_eq!(index.counts().len(), 2);
    }
}
