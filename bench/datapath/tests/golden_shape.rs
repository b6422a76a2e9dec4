//! Synthetic records must look like the ones the Go 2.3.5 DataCoord wrote in a real cluster
//! (`proto/tests/fixtures/go-2.3.5/etcd-records.json`): same key families and key depth per
//! segment, same populated fields on the wire, and values that round-trip through prost.

use std::collections::{BTreeMap, BTreeSet};

use datacoord_bench::{BINLOG_FAMILY, DELTALOG_FAMILY, SEGMENT_FAMILY, STATSLOG_FAMILY, SynthSpec};
use milvus_proto::common::SegmentState;
use milvus_proto::data::{FieldBinlog, SegmentInfo};
use prost::Message;

const FIXTURE: &str = include_str!("../../../proto/tests/fixtures/go-2.3.5/etcd-records.json");

struct Golden {
    family: String,
    key: String,
    value: Vec<u8>,
}

fn golden() -> Vec<Golden> {
    let root: serde_json::Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
    root["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|record| {
            let hex = record["value_hex"].as_str().expect("value_hex");
            Golden {
                family: record["family"].as_str().expect("family").to_string(),
                key: record["key"].as_str().expect("key").to_string(),
                value: (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                    .collect(),
            }
        })
        .collect()
}

/// Field numbers present at the top level of an encoded message, in order, with repeats.
fn wire_tags(mut bytes: &[u8]) -> Vec<u32> {
    let mut tags = Vec::new();
    while !bytes.is_empty() {
        let key = read_varint(&mut bytes);
        let tag = (key >> 3) as u32;
        match key & 7 {
            0 => {
                read_varint(&mut bytes);
            }
            1 => bytes = &bytes[8..],
            2 => {
                let len = read_varint(&mut bytes) as usize;
                bytes = &bytes[len..];
            }
            5 => bytes = &bytes[4..],
            wire_type => panic!("unexpected wire type {wire_type}"),
        }
        tags.push(tag);
    }
    tags
}

fn read_varint(bytes: &mut &[u8]) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = bytes[0];
        *bytes = &bytes[1..];
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return value;
        }
    }
    panic!("varint too long");
}

/// The wire shape of a SegmentInfo: its own tags and those of its two positions.
fn segment_shape(info: &SegmentInfo) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let position_tags = |position: &Option<milvus_proto::msg::MsgPosition>| {
        wire_tags(&position.as_ref().expect("position").encode_to_vec())
    };
    (
        wire_tags(&info.encode_to_vec()),
        position_tags(&info.start_position),
        position_tags(&info.dml_position),
    )
}

/// The wire shape of a FieldBinlog: its tags and each binlog's tags.
fn binlog_shape(value: &[u8]) -> (Vec<u32>, Vec<Vec<u32>>) {
    let list = FieldBinlog::decode(value).expect("FieldBinlog");
    (
        wire_tags(value),
        list.binlogs
            .iter()
            .map(|b| wire_tags(&b.encode_to_vec()))
            .collect(),
    )
}

/// The spec that mirrors the golden collection: its IDs, channels and fields.
fn spec_like_golden(records: &[Golden]) -> (SynthSpec, SegmentInfo) {
    let first = records
        .iter()
        .find(|r| r.family == "datacoord-meta/s/")
        .expect("a golden segment");
    let info = SegmentInfo::decode(first.value.as_slice()).expect("golden SegmentInfo");
    let segment_key_prefix = format!(
        "datacoord-meta/binlog/{}/{}/{}/",
        info.collection_id, info.partition_id, info.id
    );
    let field_ids: Vec<i64> = records
        .iter()
        .filter_map(|r| r.key.strip_prefix(&segment_key_prefix))
        .map(|field| field.parse().expect("field id"))
        .collect();
    let spec = SynthSpec {
        meta_root: "by-dev/meta".into(),
        collection_id: info.collection_id,
        partition_id: info.partition_id,
        channels: vec![info.insert_channel.clone()],
        segments: 3,
        field_ids,
        pk_field_id: 100,
        start_id: 1_000_000,
        rows_per_segment: 2000,
        max_row_num: info.max_row_num,
        datanode_id: 2,
        base_ts: info.start_position.as_ref().expect("start").timestamp,
    };
    (spec, info)
}

#[test]
fn generated_values_round_trip_and_match_golden_wire_shapes() {
    let records = golden();
    let (spec, _) = spec_like_golden(&records);
    spec.validate().expect("valid spec");

    let golden_segments: BTreeSet<_> = records
        .iter()
        .filter(|r| r.family == "datacoord-meta/s/")
        .map(|r| segment_shape(&SegmentInfo::decode(r.value.as_slice()).expect("golden")))
        .collect();
    let golden_logs = |family: &str| -> BTreeSet<_> {
        records
            .iter()
            .filter(|r| r.family == family && !r.value.is_empty())
            .map(|r| binlog_shape(&r.value))
            .collect()
    };
    let golden_binlogs = golden_logs("datacoord-meta/binlog/");
    let golden_statslogs = golden_logs("datacoord-meta/statslog/");

    for index in 0..spec.segments {
        for (key, value) in spec.segment_records(index) {
            let relative = key
                .strip_prefix("by-dev/meta/")
                .expect("under the meta root");
            if relative.starts_with(&format!("{SEGMENT_FAMILY}/")) {
                let info = SegmentInfo::decode(value.as_slice()).expect("SegmentInfo");
                assert_eq!(info.encode_to_vec(), value, "{key} re-encodes identically");
                assert_eq!(info.state, SegmentState::Flushed as i32);
                assert!(
                    info.binlogs.is_empty()
                        && info.statslogs.is_empty()
                        && info.deltalogs.is_empty()
                );
                let shape = segment_shape(&info);
                assert!(
                    golden_segments.contains(&shape),
                    "{key}: shape {shape:?} not among Go's {golden_segments:?}"
                );
            } else if relative.starts_with(&format!("{BINLOG_FAMILY}/")) {
                let list = FieldBinlog::decode(value.as_slice()).expect("FieldBinlog");
                assert_eq!(list.encode_to_vec(), value);
                assert!(
                    list.binlogs
                        .iter()
                        .all(|b| b.log_path.is_empty() && b.log_id > 0),
                    "logID form"
                );
                let field = relative
                    .rsplit('/')
                    .next()
                    .expect("field")
                    .parse::<i64>()
                    .expect("field id");
                assert_eq!(list.field_id, field, "{key}: fieldID matches the key");
                let shape = binlog_shape(&value);
                assert!(
                    golden_binlogs.contains(&shape),
                    "{key}: shape {shape:?} not among Go's {golden_binlogs:?}"
                );
            } else if relative.starts_with(&format!("{STATSLOG_FAMILY}/")) {
                let shape = binlog_shape(&value);
                assert!(
                    golden_statslogs.contains(&shape),
                    "{key}: shape {shape:?} not among Go's {golden_statslogs:?}"
                );
            } else if relative.starts_with(&format!("{DELTALOG_FAMILY}/")) {
                assert!(
                    value.is_empty(),
                    "{key}: an empty delete-log list is a zero-length value"
                );
            } else {
                panic!("unexpected family in {key}");
            }
        }
    }
}

/// Key suffixes per segment with the IDs replaced, e.g. `binlog/C/P/S/100`.
fn key_layout(
    keys: impl IntoIterator<Item = String>,
    collection: i64,
    partition: i64,
    segment: i64,
) -> BTreeSet<String> {
    keys.into_iter()
        .filter_map(|key| {
            let ids = format!("/{collection}/{partition}/{segment}");
            let rest = key.strip_prefix("by-dev/meta/").unwrap_or(&key).to_string();
            rest.contains(&format!("{ids}/"))
                .then(|| rest.replace(&ids, "/C/P/S"))
                .or_else(|| rest.ends_with(&ids).then(|| rest.replace(&ids, "/C/P/S")))
        })
        .collect()
}

#[test]
fn one_segment_writes_the_same_key_set_as_go() {
    let records = golden();
    let (spec, info) = spec_like_golden(&records);
    // The golden segment without delete logs is the one whose deltalog value is empty.
    let bare = records
        .iter()
        .find(|r| r.family == "datacoord-meta/deltalog/" && r.value.is_empty())
        .expect("a golden segment without delete logs");
    let bare_segment: i64 = bare
        .key
        .split('/')
        .nth_back(1)
        .expect("segment")
        .parse()
        .expect("id");
    let golden_keys = key_layout(
        records
            .iter()
            .filter(|r| r.family.starts_with("datacoord-meta/"))
            .map(|r| r.key.clone()),
        info.collection_id,
        info.partition_id,
        bare_segment,
    );
    let ours = key_layout(
        spec.segment_records(0).into_iter().map(|(key, _)| key),
        spec.collection_id,
        spec.partition_id,
        spec.segment_id(0),
    );
    assert!(!golden_keys.is_empty());
    assert_eq!(ours, golden_keys, "per-segment key set differs from Go's");
    let by_family: BTreeMap<_, _> = ours
        .iter()
        .map(|key| (key.split('/').nth(1).expect("family").to_string(), ()))
        .collect();
    assert_eq!(by_family.len(), 4, "{by_family:?}");
}
