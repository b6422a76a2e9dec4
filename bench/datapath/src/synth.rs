//! Synthetic Flushed segments in the etcd layout of the Go 2.3.5 DataCoord.
//!
//! Per segment (keys relative to the meta root, e.g. `by-dev/meta`):
//!
//! | key | value |
//! |---|---|
//! | `datacoord-meta/s/{coll}/{part}/{seg}` | `data.SegmentInfo`, logs stripped |
//! | `datacoord-meta/binlog/{coll}/{part}/{seg}/{field}` | `data.FieldBinlog`, one binlog, logID only |
//! | `datacoord-meta/statslog/{coll}/{part}/{seg}/{pk}` | `data.FieldBinlog`: one stats log + the merged one (logID 1) |
//! | `datacoord-meta/deltalog/{coll}/{part}/{seg}/0` | empty `data.FieldBinlog` (zero bytes) |
//!
//! The shapes copy records captured from a real Go cluster
//! (`proto/tests/fixtures/go-2.3.5/etcd-records.json`); `tests/golden_shape.rs` holds them
//! side by side.

use milvus_proto::common::SegmentState;
use milvus_proto::data::{Binlog, FieldBinlog, SegmentInfo};
use milvus_proto::msg::MsgPosition;
use prost::Message;

use crate::{BenchError, BenchResult};

/// Segment values family.
pub const SEGMENT_FAMILY: &str = "datacoord-meta/s";
/// Insert binlogs family.
pub const BINLOG_FAMILY: &str = "datacoord-meta/binlog";
/// Delete logs family.
pub const DELTALOG_FAMILY: &str = "datacoord-meta/deltalog";
/// Stats logs family.
pub const STATSLOG_FAMILY: &str = "datacoord-meta/statslog";

/// Most operations one etcd transaction may hold (etcd's default `--max-txn-ops`, and the
/// chunk size of the Go catalog).
pub const MAX_TXN_OPS: usize = 128;

/// The merged ("compound") stats log of a segment always has logID 1.
const COMPOUND_STATS_LOG_ID: i64 = 1;
/// Size the fake insert binlogs claim per row and field (an int64 column).
const BINLOG_BYTES_PER_ROW: i64 = 8;
/// Size the fake stats logs claim (a pk bloom filter of the golden records' order).
const STATSLOG_BYTES: i64 = 880;
/// Delete logs are keyed by field 0.
const DELTALOG_FIELD: i64 = 0;

/// What to generate: `segments` Flushed segments of one collection/partition spread round-robin
/// over `channels`, with IDs taken from consecutive blocks starting at `start_id`.
#[derive(Clone, Debug)]
pub struct SynthSpec {
    /// Meta root without trailing `/`, e.g. `by-dev/meta`.
    pub meta_root: String,
    /// `collectionID`.
    pub collection_id: i64,
    /// `partitionID`.
    pub partition_id: i64,
    /// Virtual channel names; segment `i` goes to `channels[i % len]`.
    pub channels: Vec<String>,
    /// Number of segments.
    pub segments: u64,
    /// Fields that get an insert binlog key (system fields 0 and 1 included, as Go writes them).
    pub field_ids: Vec<i64>,
    /// The primary-key field (the stats log's field).
    pub pk_field_id: i64,
    /// First ID used; each segment takes [`SynthSpec::ids_per_segment`] consecutive IDs.
    pub start_id: i64,
    /// `num_of_rows` of every segment (also the binlogs' entries).
    pub rows_per_segment: i64,
    /// `max_row_num` of every segment.
    pub max_row_num: i64,
    /// Datanode ID named in the positions' `msgGroup`.
    pub datanode_id: i64,
    /// TSO of the first segment's start position; later positions count up from it.
    pub base_ts: u64,
}

impl SynthSpec {
    /// Checks that the spec can be written (IDs fit, a segment fits in one transaction, ...).
    pub fn validate(&self) -> BenchResult<()> {
        let invalid = |why: String| Err(BenchError::InvalidArgument(why));
        if self.channels.is_empty() || self.channels.iter().any(String::is_empty) {
            return invalid("at least one non-empty channel name is needed".into());
        }
        if self.field_ids.is_empty() {
            return invalid("at least one field is needed".into());
        }
        if self.keys_per_segment() > MAX_TXN_OPS {
            return invalid(format!(
                "{} fields make {} keys per segment, more than one transaction holds ({MAX_TXN_OPS})",
                self.field_ids.len(),
                self.keys_per_segment()
            ));
        }
        if self.rows_per_segment <= 0 || self.max_row_num < self.rows_per_segment {
            return invalid(format!(
                "rows per segment {} must be > 0 and <= max_row_num {}",
                self.rows_per_segment, self.max_row_num
            ));
        }
        if self.start_id <= COMPOUND_STATS_LOG_ID {
            return invalid(format!("start id {} must be > 1", self.start_id));
        }
        let span = i64::try_from(self.segments)
            .ok()
            .and_then(|segments| segments.checked_mul(self.ids_per_segment()))
            .and_then(|span| span.checked_add(self.start_id));
        if span.is_none() {
            return invalid("segment IDs overflow int64".into());
        }
        Ok(())
    }

    /// IDs one segment consumes: its own, one per insert binlog, one for the stats log.
    pub fn ids_per_segment(&self) -> i64 {
        self.field_ids.len() as i64 + 2
    }

    /// etcd keys written per segment.
    pub fn keys_per_segment(&self) -> usize {
        self.field_ids.len() + 3
    }

    /// The first ID after every ID this spec uses (a `--start-id` for the next run).
    pub fn next_id(&self) -> i64 {
        self.start_id + self.segments as i64 * self.ids_per_segment()
    }

    /// Segment ID of the `index`-th segment.
    pub fn segment_id(&self, index: u64) -> i64 {
        self.start_id + index as i64 * self.ids_per_segment()
    }

    /// Channel of the `index`-th segment.
    pub fn channel(&self, index: u64) -> &str {
        &self.channels[(index % self.channels.len() as u64) as usize]
    }

    /// Start and dml position timestamps of the `index`-th segment (dml after start).
    fn timestamps(&self, index: u64) -> (u64, u64) {
        let start = self.base_ts + 2 * index;
        (start, start + 1)
    }

    fn position(&self, index: u64, timestamp: u64, sequence: u64) -> MsgPosition {
        let channel = self.channel(index);
        MsgPosition {
            channel_name: channel.to_string(),
            // MQ message IDs are opaque bytes; 8 bytes like rocksmq's, unique per position.
            msg_id: (2 * index + sequence).to_le_bytes().to_vec(),
            msg_group: format!("datanode-{}-{channel}-true", self.datanode_id),
            timestamp,
        }
    }

    /// The stored segment value: Flushed, logs stripped (they live in their own keys).
    pub fn segment_info(&self, index: u64) -> SegmentInfo {
        let (start_ts, dml_ts) = self.timestamps(index);
        SegmentInfo {
            id: self.segment_id(index),
            collection_id: self.collection_id,
            partition_id: self.partition_id,
            insert_channel: self.channel(index).to_string(),
            num_of_rows: self.rows_per_segment,
            state: SegmentState::Flushed as i32,
            max_row_num: self.max_row_num,
            last_expire_time: dml_ts,
            start_position: Some(self.position(index, start_ts, 1)),
            dml_position: Some(self.position(index, dml_ts, 2)),
            ..SegmentInfo::default()
        }
    }

    /// The insert binlog list of the field at `field_position` in `field_ids`, logID form.
    pub fn insert_binlog(&self, index: u64, field_position: usize) -> FieldBinlog {
        let (start_ts, dml_ts) = self.timestamps(index);
        FieldBinlog {
            field_id: self.field_ids[field_position],
            binlogs: vec![Binlog {
                entries_num: self.rows_per_segment,
                timestamp_from: start_ts,
                timestamp_to: dml_ts,
                log_path: String::new(),
                log_size: self.rows_per_segment * BINLOG_BYTES_PER_ROW,
                log_id: self.segment_id(index) + 1 + field_position as i64,
            }],
        }
    }

    /// The pk stats logs of the `index`-th segment: one per sync plus the merged one.
    pub fn stats_binlog(&self, index: u64) -> FieldBinlog {
        let stats_log = |log_id| Binlog {
            log_size: STATSLOG_BYTES,
            log_id,
            ..Binlog::default()
        };
        FieldBinlog {
            field_id: self.pk_field_id,
            binlogs: vec![
                stats_log(self.segment_id(index) + self.ids_per_segment() - 1),
                stats_log(COMPOUND_STATS_LOG_ID),
            ],
        }
    }

    /// Every (key, value) of the `index`-th segment, segment value first.
    pub fn segment_records(&self, index: u64) -> Vec<(String, Vec<u8>)> {
        let path = format!(
            "{}/{}/{}",
            self.collection_id,
            self.partition_id,
            self.segment_id(index)
        );
        let root = &self.meta_root;
        let mut records = Vec::with_capacity(self.keys_per_segment());
        records.push((
            format!("{root}/{SEGMENT_FAMILY}/{path}"),
            self.segment_info(index).encode_to_vec(),
        ));
        for (position, field_id) in self.field_ids.iter().enumerate() {
            records.push((
                format!("{root}/{BINLOG_FAMILY}/{path}/{field_id}"),
                self.insert_binlog(index, position).encode_to_vec(),
            ));
        }
        records.push((
            format!("{root}/{STATSLOG_FAMILY}/{path}/{}", self.pk_field_id),
            self.stats_binlog(index).encode_to_vec(),
        ));
        // Go stores a segment's empty delete-log list as a zero-length value.
        records.push((
            format!("{root}/{DELTALOG_FAMILY}/{path}/{DELTALOG_FIELD}"),
            FieldBinlog::default().encode_to_vec(),
        ));
        debug_assert_eq!(records.len(), self.keys_per_segment());
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SynthSpec {
        SynthSpec {
            meta_root: "by-dev/meta".into(),
            collection_id: 10,
            partition_id: 11,
            channels: vec!["ch_0".into(), "ch_1".into()],
            segments: 4,
            field_ids: vec![0, 1, 100, 101],
            pk_field_id: 100,
            start_id: 1000,
            rows_per_segment: 2000,
            max_row_num: 9_586_980,
            datanode_id: 2,
            base_ts: 1 << 40,
        }
    }

    #[test]
    fn ids_never_overlap_between_segments() {
        let spec = spec();
        let mut ids = Vec::new();
        for index in 0..spec.segments {
            ids.push(spec.segment_id(index));
            for position in 0..spec.field_ids.len() {
                ids.extend(
                    spec.insert_binlog(index, position)
                        .binlogs
                        .iter()
                        .map(|b| b.log_id),
                );
            }
            ids.push(spec.stats_binlog(index).binlogs[0].log_id);
        }
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
        assert!(
            ids.iter()
                .all(|id| (spec.start_id..spec.next_id()).contains(id))
        );
    }

    #[test]
    fn segments_alternate_channels() {
        let spec = spec();
        let channels: Vec<_> = (0..4)
            .map(|i| spec.segment_info(i).insert_channel)
            .collect();
        assert_eq!(channels, ["ch_0", "ch_1", "ch_0", "ch_1"]);
        let info = spec.segment_info(1);
        let dml = info.dml_position.expect("dml position");
        assert_eq!(dml.msg_group, "datanode-2-ch_1-true");
        assert!(info.start_position.expect("start").timestamp < dml.timestamp);
    }

    #[test]
    fn validation_rejects_unwritable_specs() {
        let mut too_wide = spec();
        too_wide.field_ids = (0..126).collect();
        assert!(too_wide.validate().is_err());
        let mut no_channel = spec();
        no_channel.channels.clear();
        assert!(no_channel.validate().is_err());
        let mut overflow = spec();
        overflow.start_id = i64::MAX - 10;
        assert!(overflow.validate().is_err());
        assert!(spec().validate().is_ok());
    }
}
