//! The in-memory picture of the catalog: every segment once (hot ones as `Arc`, cold ones in
//! compact form), secondary indexes holding IDs only, channel checkpoints and removal flags.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use milvus_proto::common::SegmentState;
use milvus_proto::data::SegmentInfo;
use milvus_proto::msg::MsgPosition;
use milvus_types::{CollectionId, PartitionId, SegmentId};

use crate::codec::Interner;
use crate::compact::{self, is_cold};
use crate::logs::{is_healthy, segment_binlog_size};

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

/// How one segment is held: hot ones as the message itself (few, often changed), cold ones
/// (Flushed, Dropped) in the compact form of `compact.rs`.
#[derive(Debug)]
pub(crate) enum Stored {
    Hot(Arc<SegmentInfo>),
    Cold(Box<[u8]>),
}

impl Stored {
    /// Holds a segment loaded in compact form: kept as it is when cold, materialised when hot.
    pub(crate) fn from_compact(id: SegmentId, bytes: Box<[u8]>, strings: &Interner) -> Stored {
        if is_cold(compact::peek(&bytes).state) {
            Stored::Cold(bytes)
        } else {
            Stored::Hot(Arc::new(compact::decode(id, &bytes, strings)))
        }
    }
}

/// What the secondary indexes file a segment under.
struct Filing {
    coll: CollectionId,
    part: PartitionId,
    channel: u32,
    state: i32,
    num_of_rows: i64,
}

fn filing(stored: &Stored, strings: &Interner) -> Filing {
    match stored {
        Stored::Hot(seg) => Filing {
            coll: seg.collection_id,
            part: seg.partition_id,
            channel: strings
                .lookup(&seg.insert_channel)
                .expect("insert channel interned when the segment was put"),
            state: seg.state,
            num_of_rows: seg.num_of_rows,
        },
        Stored::Cold(bytes) => {
            let header = compact::peek(bytes);
            let (coll, part) = strings.pair(header.pair);
            Filing {
                coll,
                part,
                channel: header.channel,
                state: header.state,
                num_of_rows: header.num_of_rows,
            }
        }
    }
}

fn parents_of(id: SegmentId, stored: &Stored) -> Vec<SegmentId> {
    match stored {
        Stored::Hot(seg) => seg.compaction_from.clone(),
        Stored::Cold(bytes) => compact::parents(id, bytes),
    }
}

fn healthy(state: i32) -> bool {
    SegmentState::try_from(state).is_ok_and(is_healthy)
}

fn log_size_of(stored: &Stored) -> i64 {
    match stored {
        Stored::Hot(seg) => segment_binlog_size(seg),
        Stored::Cold(bytes) => compact::log_size(bytes),
    }
}

/// Segments and channel state as last persisted. Only the meta layer mutates it, after the
/// store accepted the change.
#[derive(Debug, Default)]
pub(crate) struct Index {
    segments: HashMap<SegmentId, Stored>,
    /// Strings and partitions the compact forms (and the channel index) refer to.
    strings: Interner,
    by_collection: HashMap<CollectionId, BTreeSet<SegmentId>>,
    /// Keyed by the interned insert channel.
    by_channel: HashMap<u32, BTreeSet<SegmentId>>,
    /// Keyed by the raw state value so a value unknown to us still has a home.
    by_state: HashMap<i32, BTreeSet<SegmentId>>,
    /// Compaction parent → the segments listing it in `compactionFrom`.
    children: HashMap<SegmentId, BTreeSet<SegmentId>>,
    counts: HashMap<(CollectionId, i32), usize>,
    /// Per collection with healthy segments: (how many, Σ their log sizes), kept as segments
    /// come and go so the quota figures never walk the catalog.
    binlog_sizes: HashMap<CollectionId, (usize, i64)>,
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

/// Sets built in one go from sorted IDs fill their nodes completely (about 10 bytes per ID,
/// half what one-by-one inserts in ascending order leave).
fn packed<K: Eq + std::hash::Hash>(
    lists: HashMap<K, Vec<SegmentId>>,
) -> HashMap<K, BTreeSet<SegmentId>> {
    lists
        .into_iter()
        .map(|(key, ids)| (key, ids.into_iter().collect()))
        .collect()
}

impl Index {
    /// The index over a freshly loaded catalog.
    pub(crate) fn from_loaded(
        segments: HashMap<SegmentId, Stored>,
        strings: Interner,
        inline_logs: HashSet<SegmentId>,
    ) -> Index {
        let mut by_collection: HashMap<CollectionId, Vec<SegmentId>> = HashMap::new();
        let mut by_channel: HashMap<u32, Vec<SegmentId>> = HashMap::new();
        let mut by_state: HashMap<i32, Vec<SegmentId>> = HashMap::new();
        let mut children: HashMap<SegmentId, Vec<SegmentId>> = HashMap::new();
        let mut counts: HashMap<(CollectionId, i32), usize> = HashMap::new();
        let mut binlog_sizes: HashMap<CollectionId, (usize, i64)> = HashMap::new();
        for (id, stored) in &segments {
            let filed = filing(stored, &strings);
            if healthy(filed.state) {
                let (count, size) = binlog_sizes.entry(filed.coll).or_default();
                *count += 1;
                *size = size.wrapping_add(log_size_of(stored));
            }
            by_collection.entry(filed.coll).or_default().push(*id);
            by_channel.entry(filed.channel).or_default().push(*id);
            by_state.entry(filed.state).or_default().push(*id);
            *counts.entry((filed.coll, filed.state)).or_default() += 1;
            for parent in parents_of(*id, stored) {
                children.entry(parent).or_default().push(*id);
            }
        }
        Index {
            segments,
            strings,
            by_collection: packed(by_collection),
            by_channel: packed(by_channel),
            by_state: packed(by_state),
            children: packed(children),
            counts,
            binlog_sizes,
            inline_logs,
            ..Index::default()
        }
    }

    /// Inserts or replaces a segment (its inline-logs mark is left as it is).
    pub(crate) fn put(&mut self, seg: Arc<SegmentInfo>) {
        let id = seg.id;
        self.unlink(id);
        self.strings.intern(&seg.insert_channel);
        let size = healthy(seg.state).then(|| segment_binlog_size(&seg));
        let stored = if is_cold(seg.state) {
            let bytes = compact::encode(&seg, &mut self.strings);
            debug_assert_eq!(compact::decode(id, &bytes, &self.strings), *seg);
            Stored::Cold(bytes)
        } else {
            Stored::Hot(seg)
        };
        let filed = filing(&stored, &self.strings);
        self.by_collection.entry(filed.coll).or_default().insert(id);
        self.by_channel.entry(filed.channel).or_default().insert(id);
        self.by_state.entry(filed.state).or_default().insert(id);
        for parent in parents_of(id, &stored) {
            self.children.entry(parent).or_default().insert(id);
        }
        *self.counts.entry((filed.coll, filed.state)).or_default() += 1;
        if let Some(size) = size {
            let (count, total) = self.binlog_sizes.entry(filed.coll).or_default();
            *count += 1;
            *total = total.wrapping_add(size);
        }
        self.segments.insert(id, stored);
    }

    /// Removes a segment; returns whether it was there.
    pub(crate) fn remove(&mut self, id: SegmentId) -> bool {
        self.inline_logs.remove(&id);
        self.unlink(id)
    }

    /// Takes a segment out of the map and every secondary index.
    fn unlink(&mut self, id: SegmentId) -> bool {
        let Some(stored) = self.segments.remove(&id) else {
            return false;
        };
        let filed = filing(&stored, &self.strings);
        remove_from(&mut self.by_collection, &filed.coll, id);
        remove_from(&mut self.by_channel, &filed.channel, id);
        remove_from(&mut self.by_state, &filed.state, id);
        for parent in parents_of(id, &stored) {
            remove_from(&mut self.children, &parent, id);
        }
        if healthy(filed.state)
            && let Some((count, total)) = self.binlog_sizes.get_mut(&filed.coll)
        {
            *count -= 1;
            *total = total.wrapping_sub(log_size_of(&stored));
            if *count == 0 {
                self.binlog_sizes.remove(&filed.coll);
            }
        }
        let count_key = (filed.coll, filed.state);
        if let Some(count) = self.counts.get_mut(&count_key) {
            *count -= 1;
            if *count == 0 {
                self.counts.remove(&count_key);
            }
        }
        true
    }

    /// The segment as a message: shared when hot, freshly decoded when cold.
    pub(crate) fn get(&self, id: SegmentId) -> Option<Arc<SegmentInfo>> {
        self.materialise(id, self.segments.get(&id)?)
    }

    fn materialise(&self, id: SegmentId, stored: &Stored) -> Option<Arc<SegmentInfo>> {
        Some(match stored {
            Stored::Hot(seg) => seg.clone(),
            Stored::Cold(bytes) => Arc::new(compact::decode(id, bytes, &self.strings)),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.segments.len()
    }

    fn resolve<'a>(
        &'a self,
        ids: impl Iterator<Item = &'a SegmentId> + 'a,
    ) -> impl Iterator<Item = Arc<SegmentInfo>> + 'a {
        ids.filter_map(|id| self.materialise(*id, self.segments.get(id)?))
    }

    /// All segments of a collection, by ID.
    pub(crate) fn of_collection(&self, coll: CollectionId) -> Vec<Arc<SegmentInfo>> {
        self.by_collection
            .get(&coll)
            .map(|ids| self.resolve(ids.iter()).collect())
            .unwrap_or_default()
    }

    /// All segments of an insert channel, by ID.
    pub(crate) fn of_channel(&self, vchannel: &str) -> Vec<Arc<SegmentInfo>> {
        self.strings
            .lookup(vchannel)
            .and_then(|channel| self.by_channel.get(&channel))
            .map(|ids| self.resolve(ids.iter()).collect())
            .unwrap_or_default()
    }

    /// Segments in any of `states`, by ID.
    pub(crate) fn in_states(&self, states: &[SegmentState]) -> Vec<Arc<SegmentInfo>> {
        let ids = self.ids_in_states(states);
        self.resolve(ids.iter()).collect()
    }

    /// IDs of the segments in any of `states`, ascending; nothing is decoded.
    pub(crate) fn ids_in_states(&self, states: &[SegmentState]) -> Vec<SegmentId> {
        let wanted: BTreeSet<i32> = states.iter().map(|state| *state as i32).collect();
        let mut ids: Vec<SegmentId> = wanted
            .iter()
            .filter_map(|state| self.by_state.get(state))
            .flatten()
            .copied()
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Whether some segment of the insert channel is healthy, read from the headers alone.
    pub(crate) fn channel_has_healthy(&self, vchannel: &str) -> bool {
        let Some(ids) = self
            .strings
            .lookup(vchannel)
            .and_then(|channel| self.by_channel.get(&channel))
        else {
            return false;
        };
        ids.iter()
            .filter_map(|id| self.segments.get(id))
            .any(|stored| healthy(filing(stored, &self.strings).state))
    }

    /// The segment compacted from `parent` (the lowest ID if, against 2.3.5's own rules,
    /// several list it).
    pub(crate) fn child_of(&self, parent: SegmentId) -> Option<Arc<SegmentInfo>> {
        let child = self.children.get(&parent)?.first()?;
        self.get(*child)
    }

    /// Σ num_of_rows over healthy segments of a collection, optionally of one partition; read
    /// from the headers alone.
    pub(crate) fn row_count(&self, coll: CollectionId, part: Option<PartitionId>) -> i64 {
        let Some(ids) = self.by_collection.get(&coll) else {
            return 0;
        };
        ids.iter()
            .filter_map(|id| self.segments.get(id))
            .map(|stored| filing(stored, &self.strings))
            .filter(|filed| part.is_none_or(|part| filed.part == part))
            .filter(|filed| healthy(filed.state))
            .map(|filed| filed.num_of_rows)
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

    /// Σ log sizes over healthy segments, in total and per collection with healthy segments.
    pub(crate) fn binlog_sizes(&self) -> (i64, BTreeMap<CollectionId, i64>) {
        let per_collection: BTreeMap<_, _> = self
            .binlog_sizes
            .iter()
            .map(|(coll, (_, size))| (*coll, *size))
            .collect();
        let total = per_collection
            .values()
            .fold(0i64, |total, size| total.wrapping_add(*size));
        (total, per_collection)
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
    use milvus_proto::data::FieldBinlog;

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

    fn is_hot(index: &Index, id: SegmentId) -> bool {
        matches!(index.segments.get(&id), Some(Stored::Hot(_)))
    }

    /// Every secondary read of `index` over collections 1, 2 and channels a, b.
    fn reads(index: &Index) -> Vec<String> {
        let all = [
            SegmentState::Growing,
            SegmentState::Sealed,
            SegmentState::Flushed,
            SegmentState::Dropped,
        ];
        let mut seen = vec![
            format!("{:?}", index.of_collection(1)),
            format!("{:?}", index.of_collection(2)),
            format!("{:?}", index.of_channel("a")),
            format!("{:?}", index.of_channel("b")),
            format!("{:?}", index.in_states(&all)),
            format!("{:?}", index.counts()),
            format!("{:?}", index.child_of(1)),
            format!("{:?}", index.binlog_sizes()),
        ];
        for part in [None, Some(10), Some(20)] {
            seen.push(format!("{}", index.row_count(1, part)));
            seen.push(format!("{}", index.row_count(2, part)));
        }
        seen
    }

    #[test]
    fn segments_move_between_hot_and_cold() {
        let mut index = Index::default();
        let mut growing = (*seg(5, 1, "a", SegmentState::Growing)).clone();
        growing.compaction_from = vec![1, 2];
        growing.binlogs = vec![FieldBinlog {
            field_id: 0,
            binlogs: vec![],
        }];
        index.put(Arc::new(growing.clone()));
        index.put(seg(6, 2, "b", SegmentState::Flushed));
        assert!(is_hot(&index, 5) && !is_hot(&index, 6));

        let mut flushed = growing.clone();
        flushed.set_state(SegmentState::Flushed);
        flushed.insert_channel = "b".into();
        index.put(Arc::new(flushed.clone()));
        assert!(!is_hot(&index, 5));
        assert_eq!(*index.get(5).expect("cold"), flushed);
        assert_eq!(ids(&index.of_channel("b")), vec![5, 6]);
        assert_eq!(index.child_of(2).map(|s| s.id), Some(5));
        assert_eq!(index.row_count(1, Some(10)), 5);

        let mut sealed = flushed.clone();
        sealed.set_state(SegmentState::Sealed);
        index.put(Arc::new(sealed.clone()));
        assert!(is_hot(&index, 5));
        assert_eq!(*index.get(5).expect("hot"), sealed);
        assert_eq!(
            ids(&index.in_states(&[SegmentState::Flushed, SegmentState::Sealed])),
            vec![5, 6]
        );

        let mut dropped = sealed;
        dropped.set_state(SegmentState::Dropped);
        index.put(Arc::new(dropped.clone()));
        assert_eq!(*index.get(5).expect("cold again"), dropped);
        assert_eq!(index.row_count(1, None), 0, "a dropped segment has no rows");

        // An index built in one go from the same segments reads the same.
        let mut strings = Interner::default();
        let segments: HashMap<SegmentId, Stored> =
            [dropped, (*seg(6, 2, "b", SegmentState::Flushed)).clone()]
                .into_iter()
                .map(|info| {
                    let bytes = compact::encode(&info, &mut strings);
                    (info.id, Stored::from_compact(info.id, bytes, &strings))
                })
                .collect();
        let loaded = Index::from_loaded(segments, strings, HashSet::new());
        assert_eq!(reads(&loaded), reads(&index));

        assert!(index.remove(5));
        assert!(!index.remove(5));
        assert!(index.child_of(1).is_none());
        assert_eq!(ids(&index.of_channel("b")), vec![6]);
    }

    fn with_logs(
        seg: Arc<SegmentInfo>,
        insert: &[i64],
        delta: &[i64],
        stats: &[i64],
    ) -> Arc<SegmentInfo> {
        let field = |field_id, sizes: &[i64]| {
            vec![FieldBinlog {
                field_id,
                binlogs: sizes
                    .iter()
                    .map(|size| milvus_proto::data::Binlog {
                        log_size: *size,
                        log_id: 100 + size,
                        ..Default::default()
                    })
                    .collect(),
            }]
        };
        let mut info = (*seg).clone();
        info.binlogs = field(100, insert);
        info.deltalogs = field(0, delta);
        info.statslogs = field(100, stats);
        Arc::new(info)
    }

    #[test]
    fn binlog_sizes_follow_segments() {
        use SegmentState::{Dropped, Flushed, Growing};
        let sizes = |index: &Index| {
            let (total, per) = index.binlog_sizes();
            (total, per.into_iter().collect::<Vec<_>>())
        };
        let mut index = Index::default();
        index.put(with_logs(seg(1, 1, "a", Growing), &[100], &[], &[10]));
        index.put(with_logs(seg(2, 1, "a", Flushed), &[600, 400], &[7], &[]));
        index.put(seg(3, 2, "b", Growing));
        assert_eq!(sizes(&index), (1117, vec![(1, 1117), (2, 0)]));

        // Replacing a segment swaps its old size for the new one, hot or cold.
        index.put(with_logs(seg(1, 1, "a", Flushed), &[100, 150], &[], &[50]));
        assert_eq!(sizes(&index), (1307, vec![(1, 1307), (2, 0)]));
        index.put(with_logs(
            seg(2, 1, "a", Flushed),
            &[600, 400],
            &[7, 3],
            &[],
        ));
        assert_eq!(sizes(&index), (1310, vec![(1, 1310), (2, 0)]));

        // A dropped segment's files no longer count (GC removes them later).
        index.put(with_logs(
            seg(2, 1, "a", Dropped),
            &[600, 400],
            &[7, 3],
            &[],
        ));
        assert_eq!(sizes(&index), (300, vec![(1, 300), (2, 0)]));

        // Loading the same segments gives the same figures.
        let mut strings = Interner::default();
        let segments: HashMap<SegmentId, Stored> = [1, 2, 3]
            .into_iter()
            .map(|id| {
                let info = index.get(id).expect("present");
                let bytes = compact::encode(&info, &mut strings);
                (id, Stored::from_compact(id, bytes, &strings))
            })
            .collect();
        let loaded = Index::from_loaded(segments, strings, HashSet::new());
        assert_eq!(sizes(&loaded), sizes(&index));

        // A collection leaves the figures with its last healthy segment.
        assert!(index.remove(3));
        assert!(index.remove(1));
        assert_eq!(sizes(&index), (0, vec![]));
    }
}
