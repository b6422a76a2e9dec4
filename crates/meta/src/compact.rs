//! The compact in-memory form of cold segments (Flushed, Dropped: the bulk of a catalog, rarely
//! changed): one byte string per segment, materialised into a fresh `SegmentInfo` on read.
//! Not protobuf: varints, values delta-coded against their neighbours, recurring strings and
//! (collection, partition) pairs interned (`codec.rs`). A typical flushed segment takes ~120
//! bytes, where the `SegmentInfo` with its log lists took ~2.5 KB of heap.
//!
//! Layout (the segment ID is the map key, not stored):
//! - header, readable alone ([`peek`]): partition pair, insert channel, state, num_of_rows,
//!   compaction_from (delta-coded against the segment ID);
//! - body: flags (four bools, which positions are present), max_row_num, level, the positions
//!   (channel and message group interned, msg_id raw, timestamps delta-coded), then
//!   last_expire_time and dropped_at against the same timestamp cursor;
//! - log sections to the end: `kind, fields, (field_id, binlogs, (binlog)*)*`. Each section
//!   starts its cursors afresh, so the loader can append the sections of a segment's log keys
//!   as they arrive; several sections of one kind append their fields in order.
//!
//! It must round-trip every field exactly: what is decoded is what the next write of the
//! segment persists. The encoders destructure each message without `..`, so a new proto field
//! is a compile error here.

use milvus_proto::common::SegmentState;
use milvus_proto::data::{Binlog, FieldBinlog, SegmentInfo};
use milvus_proto::msg::MsgPosition;
use milvus_types::SegmentId;

use crate::codec::{Interner, Reader, Writer};
use crate::keys::LogKind;

const CREATED_BY_COMPACTION: u8 = 1;
const IS_IMPORTING: u8 = 1 << 1;
const IS_FAKE: u8 = 1 << 2;
const COMPACTED: u8 = 1 << 3;
const HAS_START_POSITION: u8 = 1 << 4;
const HAS_DML_POSITION: u8 = 1 << 5;

/// Whether segments in `state` are held compactly: Flushed and Dropped ones change rarely and
/// are read mostly in bulk (recovery, GetSegmentInfo). The others are few and written often.
pub(crate) fn is_cold(state: i32) -> bool {
    state == SegmentState::Flushed as i32 || state == SegmentState::Dropped as i32
}

fn kind_code(kind: LogKind) -> u8 {
    match kind {
        LogKind::Insert => 0,
        LogKind::Delta => 1,
        LogKind::Stats => 2,
    }
}

/// What the secondary indexes need, read without decoding the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) pair: u32,
    pub(crate) channel: u32,
    pub(crate) state: i32,
    pub(crate) num_of_rows: i64,
}

/// Reads the header fields of a compact segment.
pub(crate) fn peek(bytes: &[u8]) -> Header {
    read_header(&mut Reader::new(bytes))
}

fn read_header(reader: &mut Reader<'_>) -> Header {
    Header {
        pair: reader.u64() as u32,
        channel: reader.u64() as u32,
        state: reader.i64() as i32,
        num_of_rows: reader.i64(),
    }
}

/// The `compaction_from` list of a compact segment.
pub(crate) fn parents(id: SegmentId, bytes: &[u8]) -> Vec<SegmentId> {
    let mut reader = Reader::new(bytes);
    read_header(&mut reader);
    read_parents(&mut reader, id)
}

fn read_parents(reader: &mut Reader<'_>, id: SegmentId) -> Vec<SegmentId> {
    let mut cursor = id;
    (0..reader.usize())
        .map(|_| reader.near(&mut cursor))
        .collect()
}

/// The compact form of `seg`, in an allocation of exactly its size.
pub(crate) fn encode(seg: &SegmentInfo, strings: &mut Interner) -> Box<[u8]> {
    let mut writer = Writer {
        buf: Vec::with_capacity(256),
    };
    encode_into(&mut writer, seg, strings);
    Box::from(writer.buf.as_slice())
}

/// Appends the compact form of `seg` (with a section for each non-empty log list).
pub(crate) fn encode_into(writer: &mut Writer, seg: &SegmentInfo, strings: &mut Interner) {
    let SegmentInfo {
        id,
        collection_id,
        partition_id,
        insert_channel,
        num_of_rows,
        state,
        max_row_num,
        last_expire_time,
        start_position,
        dml_position,
        binlogs,
        statslogs,
        deltalogs,
        created_by_compaction,
        compaction_from,
        dropped_at,
        is_importing,
        is_fake,
        compacted,
        level,
    } = seg;
    writer.u64(u64::from(
        strings.intern_pair(*collection_id, *partition_id),
    ));
    writer.u64(u64::from(strings.intern(insert_channel)));
    writer.i64(i64::from(*state));
    writer.i64(*num_of_rows);
    writer.usize(compaction_from.len());
    let mut parent_cursor = *id;
    for parent in compaction_from {
        writer.near(*parent, &mut parent_cursor);
    }

    let flags = [
        (*created_by_compaction, CREATED_BY_COMPACTION),
        (*is_importing, IS_IMPORTING),
        (*is_fake, IS_FAKE),
        (*compacted, COMPACTED),
        (start_position.is_some(), HAS_START_POSITION),
        (dml_position.is_some(), HAS_DML_POSITION),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .fold(0, |flags, (_, bit)| flags | bit);
    writer.u8(flags);
    writer.i64(*max_row_num);
    writer.i64(i64::from(*level));
    let mut ts_cursor = 0;
    for position in [start_position, dml_position].into_iter().flatten() {
        put_position(writer, position, strings, &mut ts_cursor);
    }
    writer.near(*last_expire_time as i64, &mut ts_cursor);
    writer.near(*dropped_at as i64, &mut ts_cursor);

    for (kind, fields) in [
        (LogKind::Insert, binlogs),
        (LogKind::Delta, deltalogs),
        (LogKind::Stats, statslogs),
    ] {
        if !fields.is_empty() {
            encode_section(writer, kind, *id, fields);
        }
    }
}

fn put_position(
    writer: &mut Writer,
    position: &MsgPosition,
    strings: &mut Interner,
    ts_cursor: &mut i64,
) {
    let MsgPosition {
        channel_name,
        msg_id,
        msg_group,
        timestamp,
    } = position;
    writer.u64(u64::from(strings.intern(channel_name)));
    writer.bytes(msg_id);
    writer.u64(u64::from(strings.intern(msg_group)));
    writer.near(*timestamp as i64, ts_cursor);
}

/// Running values a binlog is coded against: the previous binlog of the section.
struct BinlogCursor {
    entries: i64,
    ts_from: i64,
    span: i64,
    log_id: i64,
}

impl BinlogCursor {
    fn new(id: SegmentId) -> Self {
        // Log IDs come from the same allocator as segment IDs, shortly after them.
        Self {
            entries: 0,
            ts_from: 0,
            span: 0,
            log_id: id,
        }
    }
}

/// Appends one log section of segment `id`.
pub(crate) fn encode_section(
    writer: &mut Writer,
    kind: LogKind,
    id: SegmentId,
    fields: &[FieldBinlog],
) {
    writer.u8(kind_code(kind));
    writer.usize(fields.len());
    let mut cursor = BinlogCursor::new(id);
    for field in fields {
        let FieldBinlog { field_id, binlogs } = field;
        writer.i64(*field_id);
        writer.usize(binlogs.len());
        for binlog in binlogs {
            let Binlog {
                entries_num,
                timestamp_from,
                timestamp_to,
                log_path,
                log_size,
                log_id,
            } = binlog;
            writer.i64(entries_num.wrapping_sub(cursor.entries));
            cursor.entries = *entries_num;
            writer.near(*timestamp_from as i64, &mut cursor.ts_from);
            let span = timestamp_to.wrapping_sub(*timestamp_from) as i64;
            writer.i64(span.wrapping_sub(cursor.span));
            cursor.span = span;
            writer.bytes(log_path.as_bytes());
            writer.i64(*log_size);
            writer.near(*log_id, &mut cursor.log_id);
        }
    }
}

/// Σ `log_size` over the logs of a compact segment, read without building the message (the
/// quota figures need it for every flushed segment at load). It walks the layout `decode`
/// reads; values coded against a cursor are skipped, so one scratch cursor serves them all.
pub(crate) fn log_size(bytes: &[u8]) -> i64 {
    let mut reader = Reader::new(bytes);
    let mut skip = 0;
    read_header(&mut reader);
    for _ in 0..reader.usize() {
        reader.near(&mut skip); // compaction_from
    }
    let flags = reader.u8();
    reader.i64(); // max_row_num
    reader.i64(); // level
    for bit in [HAS_START_POSITION, HAS_DML_POSITION] {
        if flags & bit != 0 {
            reader.u64(); // channel_name
            reader.bytes(); // msg_id
            reader.u64(); // msg_group
            reader.near(&mut skip); // timestamp
        }
    }
    reader.near(&mut skip); // last_expire_time
    reader.near(&mut skip); // dropped_at
    let mut size = 0;
    while !reader.at_end() {
        reader.u8(); // kind
        for _ in 0..reader.usize() {
            reader.i64(); // field_id
            for _ in 0..reader.usize() {
                reader.i64(); // entries_num
                reader.near(&mut skip); // timestamp_from
                reader.i64(); // span
                reader.bytes(); // log_path
                size = reader.i64().wrapping_add(size);
                reader.near(&mut skip); // log_id
            }
        }
    }
    size
}

/// The segment `id` held as `bytes`.
pub(crate) fn decode(id: SegmentId, bytes: &[u8], strings: &Interner) -> SegmentInfo {
    let mut reader = Reader::new(bytes);
    let header = read_header(&mut reader);
    let (collection_id, partition_id) = strings.pair(header.pair);
    let compaction_from = read_parents(&mut reader, id);
    let flags = reader.u8();
    let max_row_num = reader.i64();
    let level = reader.i64() as i32;
    let mut ts_cursor = 0;
    let start_position = (flags & HAS_START_POSITION != 0)
        .then(|| read_position(&mut reader, strings, &mut ts_cursor));
    let dml_position = (flags & HAS_DML_POSITION != 0)
        .then(|| read_position(&mut reader, strings, &mut ts_cursor));
    let last_expire_time = reader.near(&mut ts_cursor) as u64;
    let dropped_at = reader.near(&mut ts_cursor) as u64;
    let mut seg = SegmentInfo {
        id,
        collection_id,
        partition_id,
        insert_channel: strings.string(header.channel).to_string(),
        num_of_rows: header.num_of_rows,
        state: header.state,
        max_row_num,
        last_expire_time,
        start_position,
        dml_position,
        binlogs: Vec::new(),
        statslogs: Vec::new(),
        deltalogs: Vec::new(),
        created_by_compaction: flags & CREATED_BY_COMPACTION != 0,
        compaction_from,
        dropped_at,
        is_importing: flags & IS_IMPORTING != 0,
        is_fake: flags & IS_FAKE != 0,
        compacted: flags & COMPACTED != 0,
        level,
    };
    while !reader.at_end() {
        read_section(&mut reader, &mut seg);
    }
    seg
}

fn read_position(reader: &mut Reader<'_>, strings: &Interner, ts_cursor: &mut i64) -> MsgPosition {
    MsgPosition {
        channel_name: strings.string(reader.u64() as u32).to_string(),
        msg_id: reader.bytes().to_vec(),
        msg_group: strings.string(reader.u64() as u32).to_string(),
        timestamp: reader.near(ts_cursor) as u64,
    }
}

fn read_section(reader: &mut Reader<'_>, seg: &mut SegmentInfo) {
    let list = match reader.u8() {
        0 => &mut seg.binlogs,
        1 => &mut seg.deltalogs,
        2 => &mut seg.statslogs,
        other => panic!("unknown log section kind {other} (codec bug)"),
    };
    let fields = reader.usize();
    list.reserve(fields);
    let mut cursor = BinlogCursor::new(seg.id);
    for _ in 0..fields {
        let field_id = reader.i64();
        let count = reader.usize();
        let mut binlogs = Vec::with_capacity(count);
        for _ in 0..count {
            let entries_num = cursor.entries.wrapping_add(reader.i64());
            cursor.entries = entries_num;
            let timestamp_from = reader.near(&mut cursor.ts_from) as u64;
            let span = cursor.span.wrapping_add(reader.i64());
            cursor.span = span;
            let log_path = String::from_utf8(reader.bytes().to_vec())
                .expect("log path written from a String (codec bug)");
            binlogs.push(Binlog {
                entries_num,
                timestamp_from,
                timestamp_to: timestamp_from.wrapping_add(span as u64),
                log_path,
                log_size: reader.i64(),
                log_id: reader.near(&mut cursor.log_id),
            });
        }
        list.push(FieldBinlog { field_id, binlogs });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::segment_binlog_size;

    fn binlog(entries: i64, from: u64, to: u64, path: &str, size: i64, log_id: i64) -> Binlog {
        Binlog {
            entries_num: entries,
            timestamp_from: from,
            timestamp_to: to,
            log_path: path.to_string(),
            log_size: size,
            log_id,
        }
    }

    fn position(channel: &str, msg_id: &[u8], group: &str, ts: u64) -> MsgPosition {
        MsgPosition {
            channel_name: channel.to_string(),
            msg_id: msg_id.to_vec(),
            msg_group: group.to_string(),
            timestamp: ts,
        }
    }

    /// A segment with every field away from its default, and awkward values throughout.
    fn everything() -> SegmentInfo {
        const TS: u64 = 449_123_456_789_012_345;
        SegmentInfo {
            id: 1_000_000_000_007,
            collection_id: 900_000_000_000,
            partition_id: -1,
            insert_channel: "by-dev-rootcoord-dml_0_900v0".into(),
            num_of_rows: -1,
            state: 42,
            max_row_num: i64::MAX,
            last_expire_time: u64::MAX,
            // No message group: an empty string must come back empty.
            start_position: Some(position("by-dev-rootcoord-dml_0", &[1, 0, 0, 0], "", TS)),
            dml_position: Some(position(
                "by-dev-rootcoord-dml_0_900v0",
                &[],
                "datanode-2",
                TS - 1,
            )),
            binlogs: vec![
                FieldBinlog {
                    field_id: 0,
                    binlogs: vec![
                        binlog(2000, TS, TS + 99, "", 16_000, 1_000_000_000_010),
                        binlog(0, 0, 0, "", 0, 0),
                        binlog(-5, TS + 200, TS + 100, "", -1, i64::MIN),
                    ],
                },
                // An empty entry is a field whose key exists with no logs.
                FieldBinlog {
                    field_id: 1,
                    binlogs: vec![],
                },
                FieldBinlog {
                    field_id: -100,
                    binlogs: vec![binlog(1, u64::MAX, 0, "", i64::MAX, i64::MAX)],
                },
            ],
            statslogs: vec![FieldBinlog {
                field_id: 100,
                binlogs: vec![
                    binlog(2000, 0, 0, "", 880, 1_000_000_000_011),
                    binlog(2000, 0, 0, "", 880, 1),
                ],
            }],
            // Legacy inline logs keep their full paths and no log ID.
            deltalogs: vec![FieldBinlog {
                field_id: 0,
                binlogs: vec![binlog(3, 5, 6, "files/delta_log/9/-1/7/77", 10, 0)],
            }],
            created_by_compaction: true,
            compaction_from: vec![1_000_000_000_001, 2, -3, 1_000_000_000_001],
            dropped_at: 1_700_000_000_000_000_000,
            is_importing: true,
            is_fake: true,
            compacted: true,
            level: -7,
        }
    }

    /// Encodes and decodes `seg`; the log size read from the bytes must be the message's.
    fn round_trip(seg: &SegmentInfo) -> SegmentInfo {
        let mut strings = Interner::default();
        let bytes = encode(seg, &mut strings);
        assert_eq!(log_size(&bytes), segment_binlog_size(seg));
        decode(seg.id, &bytes, &strings)
    }

    #[test]
    fn every_field_round_trips() {
        let seg = everything();
        assert_eq!(round_trip(&seg), seg);
        assert_eq!(round_trip(&SegmentInfo::default()), SegmentInfo::default());
        let mut dml_only = seg.clone();
        dml_only.start_position = None;
        dml_only.created_by_compaction = false;
        dml_only.compacted = false;
        assert_eq!(round_trip(&dml_only), dml_only);
        let mut start_only = seg;
        start_only.dml_position = None;
        start_only.is_fake = false;
        start_only.binlogs.clear();
        assert_eq!(round_trip(&start_only), start_only);
    }

    #[test]
    fn header_reads_alone() {
        let seg = everything();
        let mut strings = Interner::default();
        let bytes = encode(&seg, &mut strings);
        let header = peek(&bytes);
        assert_eq!(
            strings.pair(header.pair),
            (seg.collection_id, seg.partition_id)
        );
        assert_eq!(strings.string(header.channel), seg.insert_channel);
        assert_eq!((header.state, header.num_of_rows), (42, -1));
        assert_eq!(parents(seg.id, &bytes), seg.compaction_from);
    }

    #[test]
    fn sections_appended_later_decode_in_order() {
        let seg = everything();
        let mut strings = Interner::default();
        let record = SegmentInfo {
            binlogs: Vec::new(),
            statslogs: Vec::new(),
            deltalogs: Vec::new(),
            ..seg.clone()
        };
        let mut writer = Writer::default();
        encode_into(&mut writer, &record, &mut strings);
        // Stats first, insert split in two (a page boundary), delta last.
        encode_section(&mut writer, LogKind::Stats, seg.id, &seg.statslogs);
        encode_section(&mut writer, LogKind::Insert, seg.id, &seg.binlogs[..1]);
        encode_section(&mut writer, LogKind::Insert, seg.id, &seg.binlogs[1..]);
        encode_section(&mut writer, LogKind::Delta, seg.id, &seg.deltalogs);
        assert_eq!(decode(seg.id, &writer.buf, &strings), seg);
        assert_eq!(log_size(&writer.buf), segment_binlog_size(&seg));
        assert_ne!(log_size(&writer.buf), 0);
    }

    #[test]
    fn a_typical_flushed_segment_is_small() {
        // The shape of a 2.3.5 flush: four insert fields, one stats log plus the merged one,
        // an empty delete entry; ~390 bytes as protobuf records.
        const TS: u64 = 449_123_456_789_012_345;
        let id = 1_000_000_000_000;
        let insert = |field_id, offset| FieldBinlog {
            field_id,
            binlogs: vec![binlog(2000, TS, TS + 50_000, "", 16_000, id + offset)],
        };
        let mut seg = SegmentInfo {
            id,
            collection_id: 900_000_000_000,
            partition_id: 900_000_000_001,
            insert_channel: "by-dev-rootcoord-dml_0_x0v0".into(),
            num_of_rows: 2000,
            max_row_num: 100_000,
            last_expire_time: TS + 60_000,
            start_position: Some(position(
                "by-dev-rootcoord-dml_0_x0v0",
                &[1; 8],
                "datanode-2-by-dev-rootcoord-dml_0_x0v0-true",
                TS,
            )),
            dml_position: Some(position(
                "by-dev-rootcoord-dml_0_x0v0",
                &[2; 8],
                "datanode-2-by-dev-rootcoord-dml_0_x0v0-true",
                TS + 1,
            )),
            binlogs: vec![insert(0, 1), insert(1, 2), insert(100, 3), insert(101, 4)],
            statslogs: vec![FieldBinlog {
                field_id: 100,
                binlogs: vec![
                    binlog(0, 0, 0, "", 880, id + 5),
                    binlog(0, 0, 0, "", 880, 1),
                ],
            }],
            deltalogs: vec![FieldBinlog {
                field_id: 0,
                binlogs: vec![],
            }],
            ..SegmentInfo::default()
        };
        seg.set_state(SegmentState::Flushed);
        let mut strings = Interner::default();
        let bytes = encode(&seg, &mut strings);
        assert!(bytes.len() <= 128, "{} bytes", bytes.len());
        assert_eq!(decode(id, &bytes, &strings), seg);
    }

    #[test]
    fn pseudo_random_segments_round_trip() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut strings = Interner::default();
        for _ in 0..500 {
            let mut seg = everything();
            seg.id = next() as i64;
            seg.num_of_rows = next() as i64;
            seg.max_row_num = (next() % 1000) as i64;
            seg.last_expire_time = next() >> (next() % 64);
            seg.dropped_at = next() % 3;
            seg.compaction_from = (0..next() % 3).map(|_| next() as i64).collect();
            for field in &mut seg.binlogs {
                for binlog in &mut field.binlogs {
                    binlog.entries_num = next() as i64 >> (next() % 64);
                    binlog.timestamp_from = next() >> (next() % 64);
                    binlog.timestamp_to = next() >> (next() % 64);
                    binlog.log_id = seg.id.wrapping_add((next() % 7) as i64);
                    binlog.log_size = next() as i64;
                }
            }
            if next() % 2 == 0 {
                seg.start_position = None;
            }
            let bytes = encode(&seg, &mut strings);
            assert_eq!(decode(seg.id, &bytes, &strings), seg);
            assert_eq!(log_size(&bytes), segment_binlog_size(&seg));
        }
    }
}
