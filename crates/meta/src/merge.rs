//! The merge behind the startup load: pages of the four walks (segment records, insert, delete
//! and stats log keys) go in as they arrive, whole segments in compact form come out.
//!
//! Each walk returns its keys in order, and a segment's record and log keys all sit at the same
//! `{coll}/{part}/{seg}` position of their families. So once every walk has moved past a
//! position, that segment is complete: it is assembled once, at its final size, and whatever
//! waited for it is freed. Only positions between the slowest and the fastest walk are ever
//! pending, and they wait compactly: a record is encoded as soon as its page is decoded, the
//! log keys of a segment become one section per page.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use milvus_proto::data::FieldBinlog;
use milvus_types::SegmentId;

use crate::catalog::{decode_field_binlog, decode_segment};
use crate::codec::{Interner, Reader, Writer};
use crate::compact;
use crate::error::{MetaError, MetaResult};
use crate::index::Stored;
use crate::keys::{LogKind, SEGMENT_PREFIX, parse_log_key};
use crate::logs::logs_of;

/// The walks, each named by its index: segment records, then the log families in
/// `LogKind::ALL` order.
pub(crate) const WALKS: usize = 4;

/// The key prefix a walk covers.
pub(crate) fn walk_prefix(walk: usize) -> &'static str {
    match walk {
        0 => SEGMENT_PREFIX,
        log => LogKind::ALL[log - 1].key_prefix(),
    }
}

/// A segment's `{coll}/{part}/{seg}` place in every walk. It orders as the key text sorts:
/// component by component, each as its decimal text (a minus sign before any digit, a prefix
/// before its extensions: `1` < `10` < `2`). Each component is held as a number that sorts
/// that way, which compares far faster than the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position([u128; 3]);

impl Position {
    fn of(ids: [i64; 3]) -> Position {
        Position(ids.map(text_order))
    }

    /// The position of a key's first three components (after the family prefix), if they are
    /// IDs spelled as Milvus writes them (`-`? then no leading zero): other spellings (which
    /// Go would parse, like `+5` or `05`) sort elsewhere than their value.
    pub(crate) fn parse(suffix: &str) -> Option<Position> {
        let mut bytes = suffix.as_bytes();
        let mut order = [0u128; 3];
        for (index, component) in order.iter_mut().enumerate() {
            let negative = bytes.first() == Some(&b'-');
            if negative {
                bytes = &bytes[1..];
            }
            let digits = bytes
                .iter()
                .take_while(|byte| byte.is_ascii_digit())
                .count();
            let canonical = match digits {
                0 => false,
                1 => !(negative && bytes[0] == b'0'),
                _ => bytes[0] != b'0',
            };
            let ends = match bytes.get(digits) {
                None => true,
                Some(b'/') => true,
                Some(_) => false,
            };
            if !canonical || !ends || digits > 19 || (index < 2 && digits == bytes.len()) {
                return None;
            }
            let magnitude = bytes[..digits].iter().try_fold(0u64, |value, digit| {
                value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
            })?;
            let limit = if negative {
                1u64 << 63
            } else {
                i64::MAX as u64
            };
            if magnitude > limit {
                return None;
            }
            *component = order_of(!negative, magnitude, digits as u32);
            bytes = bytes.get(digits + 1..).unwrap_or_default();
        }
        Some(Position(order))
    }

    fn ids(&self) -> [i64; 3] {
        self.0.map(|order| {
            let digits = (order & 0x1f) as u32;
            let magnitude = ((order >> 5) as u64) / 10u64.pow(19 - digits);
            if order >> 127 == 1 {
                magnitude as i64
            } else {
                (magnitude as i64).wrapping_neg()
            }
        })
    }
}

/// A number that sorts as the decimal text of `value` does: the sign first (`-` before any
/// digit), then the digits left-aligned (|i64| < 10^19, so 19 places hold them), then the
/// length, so that a prefix comes before its extensions.
fn text_order(value: i64) -> u128 {
    let magnitude = value.unsigned_abs();
    let digits = magnitude.checked_ilog10().map_or(1, |log| log + 1);
    order_of(value >= 0, magnitude, digits)
}

fn order_of(non_negative: bool, magnitude: u64, digits: u32) -> u128 {
    let aligned = magnitude * 10u64.pow(19 - digits);
    (u128::from(non_negative) << 127) | (u128::from(aligned) << 5) | u128::from(digits)
}

/// What is known of one position while some walk has not passed it: the record (once seen)
/// at the front of `bytes`, then each log section behind its length.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Length of the record at the front of `bytes`; 0 while none was seen.
    record_len: usize,
    id: SegmentId,
    /// Log kinds (bit per `LogKind::ALL` index) the record lists inline.
    inline: u8,
}

/// The merge of the four walks.
#[derive(Default)]
pub(crate) struct Merge {
    pub(crate) strings: Interner,
    /// Encoding space; what is kept is copied out at its exact size.
    scratch: Writer,
    pending: BTreeMap<Position, Pending>,
    /// The last position each walk returned.
    frontier: [Option<Position>; WALKS],
    done: [bool; WALKS],
    pub(crate) loaded: HashMap<SegmentId, Stored>,
    /// Loaded segments whose record lists logs inline (legacy).
    pub(crate) inline: HashSet<SegmentId>,
    /// Positions with log keys but no segment record, per kind.
    pub(crate) orphans: [usize; 3],
    /// Log keys left out because their IDs are not spelled as Milvus writes them.
    pub(crate) odd_log_keys: usize,
}

impl Merge {
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn frontier(&self, walk: usize) -> Option<Position> {
        self.frontier[walk]
    }

    pub(crate) fn is_walk_done(&self, walk: usize) -> bool {
        self.done[walk]
    }

    /// A walk ended: nothing more comes from it.
    pub(crate) fn walk_done(&mut self, walk: usize) {
        self.done[walk] = true;
        self.finish_passed();
    }

    /// Notes how far a page takes its walk, before the page is read (so that the next fetch
    /// can be chosen while it is): the position of its last key.
    pub(crate) fn advance(&mut self, walk: usize, page: &[(String, Bytes)]) {
        let prefix_len = walk_prefix(walk).len();
        let last = page
            .iter()
            .rev()
            .find_map(|(key, _)| key.get(prefix_len..).and_then(Position::parse));
        if last.is_some() {
            self.frontier[walk] = last;
        }
    }

    /// Reads a page [`Merge::advance`] saw, then assembles every segment now complete.
    pub(crate) fn take_page(&mut self, walk: usize, page: Vec<(String, Bytes)>) -> MetaResult<()> {
        if walk == 0 {
            self.take_records(page)?;
        } else {
            self.take_logs(walk - 1, page)?;
        }
        self.finish_passed();
        Ok(())
    }

    /// Whether every walk is done; then nothing is pending any more.
    pub(crate) fn is_done(&self) -> bool {
        self.done.iter().all(|done| *done)
    }

    fn take_records(&mut self, page: Vec<(String, Bytes)>) -> MetaResult<()> {
        for (key, value) in page {
            let seg = decode_segment(&key, &value)?;
            self.scratch.buf.clear();
            compact::encode_into(&mut self.scratch, &seg, &mut self.strings);
            let inline = LogKind::ALL
                .iter()
                .enumerate()
                .filter(|(_, kind)| !logs_of(&seg, **kind).is_empty())
                .fold(0u8, |mask, (index, _)| mask | 1 << index);
            let content = Position::of([seg.collection_id, seg.partition_id, seg.id]);
            if Position::parse(&key[SEGMENT_PREFIX.len()..]) != Some(content) {
                // Never written by Milvus, which derives the key from the record.
                tracing::warn!(
                    key = %key,
                    segment_id = seg.id,
                    collection_id = seg.collection_id,
                    partition_id = seg.partition_id,
                    "segment record stored under another key than its own; its log keys are not attached"
                );
                let bytes = Box::from(self.scratch.buf.as_slice());
                self.finish_record(seg.id, bytes, inline != 0);
                continue;
            }
            let pending = self.pending.entry(content).or_default();
            if pending.record_len > 0 {
                tracing::warn!(key = %key, "two segment keys at one position; the later key wins");
                pending.bytes.drain(..pending.record_len);
            }
            pending.bytes.splice(0..0, self.scratch.buf.iter().copied());
            pending.record_len = self.scratch.buf.len();
            pending.id = seg.id;
            pending.inline = inline;
        }
        Ok(())
    }

    fn take_logs(&mut self, kind_index: usize, page: Vec<(String, Bytes)>) -> MetaResult<()> {
        let kind = LogKind::ALL[kind_index];
        let prefix_len = kind.key_prefix().len();
        // Consecutive keys of one segment become one section.
        let mut group: Option<(Position, Vec<FieldBinlog>)> = None;
        for (key, value) in page {
            let Some(pos) = Position::parse(&key[prefix_len..]) else {
                if parse_log_key(kind, &key).is_none() {
                    // 2.3.5 refuses to start on such a key too.
                    return Err(MetaError::Corrupt {
                        key,
                        reason: "not a {coll}/{part}/{seg}/{field} log key".to_string(),
                    });
                }
                self.odd_log_keys += 1;
                tracing::debug!(key = %key, "log key with IDs not spelled as Milvus writes them; ignored");
                continue;
            };
            let field = decode_field_binlog(&key, &value)?;
            match &mut group {
                Some((group_pos, fields)) if *group_pos == pos => fields.push(field),
                _ => {
                    if let Some((done_pos, fields)) = group.take() {
                        self.add_section(kind_index, done_pos, &fields);
                    }
                    group = Some((pos, vec![field]));
                }
            }
        }
        if let Some((pos, fields)) = group {
            self.add_section(kind_index, pos, &fields);
        }
        Ok(())
    }

    fn add_section(&mut self, kind_index: usize, pos: Position, fields: &[FieldBinlog]) {
        self.scratch.buf.clear();
        let seg = pos.ids()[2];
        compact::encode_section(&mut self.scratch, LogKind::ALL[kind_index], seg, fields);
        let pending = self.pending.entry(pos).or_default();
        let mut framed = Writer {
            buf: std::mem::take(&mut pending.bytes),
        };
        framed.buf.reserve_exact(self.scratch.buf.len() + 2);
        framed.usize(self.scratch.buf.len());
        framed.buf.extend_from_slice(&self.scratch.buf);
        pending.bytes = framed.buf;
    }

    /// Whether every walk has moved past `pos` (or ended).
    fn passed(&self, pos: &Position) -> bool {
        (0..WALKS)
            .all(|walk| self.done[walk] || self.frontier[walk].is_some_and(|seen| seen > *pos))
    }

    fn finish_passed(&mut self) {
        while let Some(first) = self.pending.keys().next() {
            if !self.passed(first) {
                return;
            }
            let (pos, pending) = self.pending.pop_first().expect("a first entry");
            self.finish(pos, pending);
        }
    }

    /// Attaches the log sections to the record, unless it lists that kind inline (FACTS C.8
    /// step 2); log keys without a record are counted and dropped.
    fn finish(&mut self, pos: Position, pending: Pending) {
        let (record, mut framed) = pending.bytes.split_at(pending.record_len);
        let mut kept = Vec::new();
        let mut seen_kinds = 0u8;
        while !framed.is_empty() {
            let mut reader = Reader::new(framed);
            let len = reader.usize();
            let (section, rest) = reader.rest().split_at(len);
            framed = rest;
            let kind_index = usize::from(section[0]);
            let kind = LogKind::ALL[kind_index];
            let first_of_kind = seen_kinds & (1 << kind_index) == 0;
            seen_kinds |= 1 << kind_index;
            if pending.record_len == 0 {
                if first_of_kind {
                    self.orphans[kind_index] += 1;
                    let [collection_id, partition_id, segment_id] = pos.ids();
                    tracing::debug!(
                        segment_id,
                        collection_id,
                        partition_id,
                        kind = ?kind,
                        "log keys without a segment record"
                    );
                }
            } else if pending.inline & (1 << kind_index) != 0 {
                if first_of_kind {
                    tracing::warn!(
                        segment_id = pending.id,
                        kind = ?kind,
                        "segment record lists logs inline; its separate log keys are ignored"
                    );
                }
            } else {
                kept.push(section);
            }
        }
        if pending.record_len == 0 {
            return;
        }
        let len = record.len() + kept.iter().map(|section| section.len()).sum::<usize>();
        let mut bytes = Vec::with_capacity(len);
        bytes.extend_from_slice(record);
        for section in kept {
            bytes.extend_from_slice(section);
        }
        self.finish_record(pending.id, bytes.into_boxed_slice(), pending.inline != 0);
    }

    fn finish_record(&mut self, id: SegmentId, bytes: Box<[u8]>, inline: bool) {
        let stored = Stored::from_compact(id, bytes, &self.strings);
        if self.loaded.insert(id, stored).is_some() {
            tracing::warn!(segment_id = id, "segment stored twice; the later key wins");
        }
        if inline {
            self.inline.insert(id);
        } else if !self.inline.is_empty() {
            self.inline.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_sort_as_their_key_text() {
        let ids = [
            0,
            1,
            2,
            9,
            10,
            11,
            19,
            100,
            101,
            1_000_000_000_000,
            449_000_000_000_000_001,
            i64::MAX,
            -1,
            -2,
            -10,
            -100,
            i64::MIN,
            i64::MIN + 1,
        ];
        let mut triples = Vec::new();
        for a in ids {
            for b in [-1, 0, 7, 70] {
                for c in [ids[3], ids[4], ids[9], ids[12]] {
                    triples.push([a, b, c]);
                }
            }
        }
        for left in &triples {
            for right in &triples {
                let text = |[a, b, c]: [i64; 3]| format!("{a}/{b}/{c}/");
                assert_eq!(
                    Position::of(*left).cmp(&Position::of(*right)),
                    text(*left).cmp(&text(*right)),
                    "{left:?} vs {right:?}"
                );
            }
            assert_eq!(Position::of(*left).ids(), *left);
            let [a, b, c] = *left;
            assert_eq!(
                Position::parse(&format!("{a}/{b}/{c}/100")),
                Some(Position::of(*left))
            );
        }
    }

    #[test]
    fn only_canonical_ids_have_a_position() {
        assert!(Position::parse("1/2/3").is_some());
        assert_eq!(
            Position::parse("-9223372036854775808/9223372036854775807/0"),
            Some(Position::of([i64::MIN, i64::MAX, 0]))
        );
        assert!(Position::parse("1/-2/0/4/5").is_some());
        for odd in [
            "01/2/3",
            "+1/2/3",
            "1/-0/3",
            "1/2/-03",
            "1/2",
            "1/x/3",
            "1//3",
            "-/2/3",
            "1/2/3x",
            "1/2/3x/4",
            "9223372036854775808/1/2",
            "1/-9223372036854775809/2",
            "1/2/99999999999999999999",
        ] {
            assert_eq!(Position::parse(odd), None, "{odd}");
        }
    }
}
