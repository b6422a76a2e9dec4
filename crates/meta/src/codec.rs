//! Byte-level primitives of the compact segment form (`compact.rs`): LEB128 varints, zigzag
//! signed values, values delta-coded against a running cursor, and the table that interns
//! strings and (collection, partition) pairs shared by many segments.
//!
//! Every arithmetic step wraps, so any `i64`/`u64` round-trips exactly, however far it lies
//! from its cursor.

use std::collections::HashMap;
use std::sync::Arc;

use milvus_types::{CollectionId, PartitionId};

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Appends to a growing buffer.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, value: u8) {
        self.buf.push(value);
    }

    pub(crate) fn u128(&mut self, mut value: u128) {
        while value >= 0x80 {
            self.buf.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.u128(u128::from(value));
    }

    pub(crate) fn usize(&mut self, value: usize) {
        self.u64(value as u64);
    }

    pub(crate) fn i64(&mut self, value: i64) {
        self.u64(zigzag(value));
    }

    pub(crate) fn bytes(&mut self, value: &[u8]) {
        self.usize(value.len());
        self.buf.extend_from_slice(value);
    }

    /// A value likely close to the previous one of its sequence (log IDs, timestamps). Codes
    /// 0 and 1 stand for the values 0 and 1 themselves (unset timestamps, the merged stats log
    /// ID), which would otherwise cost a full-width delta each way; they leave the cursor alone.
    pub(crate) fn near(&mut self, value: i64, cursor: &mut i64) {
        match value {
            0 | 1 => self.u64(value as u64),
            _ => {
                self.u128(u128::from(zigzag(value.wrapping_sub(*cursor))) + 2);
                *cursor = value;
            }
        }
    }
}

/// Reads what [`Writer`] wrote. The buffers come only from our own encoder, so running past
/// the end is a codec bug and panics.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// What is left to read.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn u8(&mut self) -> u8 {
        let value = *self
            .buf
            .get(self.pos)
            .expect("compact segment form truncated (codec bug)");
        self.pos += 1;
        value
    }

    pub(crate) fn u128(&mut self) -> u128 {
        let mut value = 0u128;
        let mut shift = 0;
        loop {
            let byte = self.u8();
            value |= u128::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return value;
            }
            shift += 7;
        }
    }

    pub(crate) fn u64(&mut self) -> u64 {
        self.u128() as u64
    }

    pub(crate) fn usize(&mut self) -> usize {
        self.u64() as usize
    }

    pub(crate) fn i64(&mut self) -> i64 {
        unzigzag(self.u64())
    }

    pub(crate) fn bytes(&mut self) -> &'a [u8] {
        let len = self.usize();
        let value = self
            .buf
            .get(self.pos..self.pos + len)
            .expect("compact segment form truncated (codec bug)");
        self.pos += len;
        value
    }

    pub(crate) fn near(&mut self, cursor: &mut i64) -> i64 {
        match self.u128() {
            code @ (0 | 1) => code as i64,
            code => {
                let value = cursor.wrapping_add(unzigzag((code - 2) as u64));
                *cursor = value;
                value
            }
        }
    }
}

/// Strings and (collection, partition) pairs that recur across segments (channel names,
/// message groups), stored once and named by index. Entries are never removed: their number
/// is bounded by the channels, datanodes and partitions the catalog has seen, not by segments.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    strings: Vec<Arc<str>>,
    string_ids: HashMap<Arc<str>, u32>,
    pairs: Vec<(CollectionId, PartitionId)>,
    pair_ids: HashMap<(CollectionId, PartitionId), u32>,
}

impl Interner {
    pub(crate) fn intern(&mut self, value: &str) -> u32 {
        if let Some(id) = self.string_ids.get(value) {
            return *id;
        }
        let id = u32::try_from(self.strings.len()).expect("fewer than 2^32 distinct strings");
        let shared: Arc<str> = Arc::from(value);
        self.strings.push(shared.clone());
        self.string_ids.insert(shared, id);
        id
    }

    /// The index of a string already interned.
    pub(crate) fn lookup(&self, value: &str) -> Option<u32> {
        self.string_ids.get(value).copied()
    }

    pub(crate) fn string(&self, id: u32) -> &str {
        self.strings
            .get(id as usize)
            .expect("interned string index (codec bug)")
    }

    pub(crate) fn intern_pair(&mut self, coll: CollectionId, part: PartitionId) -> u32 {
        if let Some(id) = self.pair_ids.get(&(coll, part)) {
            return *id;
        }
        let id = u32::try_from(self.pairs.len()).expect("fewer than 2^32 distinct partitions");
        self.pairs.push((coll, part));
        self.pair_ids.insert((coll, part), id);
        id
    }

    pub(crate) fn pair(&self, id: u32) -> (CollectionId, PartitionId) {
        *self
            .pairs
            .get(id as usize)
            .expect("interned partition index (codec bug)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extremes_round_trip() {
        let values = [0, 1, 2, -1, i64::MIN, i64::MAX, 1 << 62, -(1 << 40), 7];
        let mut writer = Writer::default();
        let mut cursor = 1_000_000_000_000;
        for value in values {
            writer.i64(value);
            writer.near(value, &mut cursor);
            writer.u64(value as u64);
        }
        let mut reader = Reader::new(&writer.buf);
        let mut cursor = 1_000_000_000_000;
        for value in values {
            assert_eq!(reader.i64(), value);
            assert_eq!(reader.near(&mut cursor), value);
            assert_eq!(reader.u64(), value as u64);
        }
        assert!(reader.at_end());
    }

    #[test]
    fn near_values_are_small() {
        let mut writer = Writer::default();
        let mut cursor = 0;
        writer.near(449_000_000_000_000_000, &mut cursor);
        let absolute = writer.buf.len();
        writer.near(449_000_000_000_000_005, &mut cursor);
        writer.near(0, &mut cursor);
        writer.near(1, &mut cursor);
        writer.near(449_000_000_000_000_004, &mut cursor);
        assert_eq!(writer.buf.len(), absolute + 4);
    }

    #[test]
    fn interning_is_stable() {
        let mut interner = Interner::default();
        let a = interner.intern("by-dev-rootcoord-dml_0_1v0");
        let b = interner.intern("other");
        assert_eq!(interner.intern("by-dev-rootcoord-dml_0_1v0"), a);
        assert_ne!(a, b);
        assert_eq!(interner.string(b), "other");
        assert_eq!(interner.lookup("missing"), None);
        let pair = interner.intern_pair(1, -1);
        assert_eq!(interner.intern_pair(1, -1), pair);
        assert_eq!(interner.pair(pair), (1, -1));
    }
}
