//! Records the Go DataCoord of Milvus 2.3.5 wrote to etcd (captured by
//! `scripts/capture-golden.py`) must decode with our types and re-encode to Go's exact bytes:
//! a field we lacked would be dropped on the way (prost keeps no unknown fields) and show here.

use std::collections::BTreeMap;

use milvus_proto::{data, index, msg};
use prost::Message;

const FIXTURE: &str = include_str!("fixtures/go-2.3.5/etcd-records.json");

struct Record {
    family: String,
    key: String,
    value: Vec<u8>,
}

fn records() -> Vec<Record> {
    let root: serde_json::Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
    root["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| Record {
            family: r["family"].as_str().expect("family").to_string(),
            key: r["key"].as_str().expect("key").to_string(),
            value: decode_hex(r["value_hex"].as_str().expect("value_hex")),
        })
        .collect()
}

fn decode_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Decodes as `M` and re-encodes; Err with a description when anything differs.
fn round_trip<M: Message + Default>(value: &[u8]) -> Result<M, String> {
    let message = M::decode(value).map_err(|e| format!("decode: {e}"))?;
    let encoded = message.encode_to_vec();
    if encoded != value {
        return Err(format!(
            "re-encoded {} bytes differ from Go's {} bytes",
            encoded.len(),
            value.len()
        ));
    }
    Ok(message)
}

#[test]
fn every_go_record_round_trips_byte_for_byte() {
    let mut failures = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let all = records();
    for record in &all {
        let outcome = match record.family.as_str() {
            "datacoord-meta/s/" => round_trip::<data::SegmentInfo>(&record.value).map(drop),
            "datacoord-meta/binlog/" | "datacoord-meta/deltalog/" | "datacoord-meta/statslog/" => {
                round_trip::<data::FieldBinlog>(&record.value).map(drop)
            }
            "datacoord-meta/channel-cp/" => round_trip::<msg::MsgPosition>(&record.value).map(drop),
            "channelwatch/" => round_trip::<data::ChannelWatchInfo>(&record.value).map(drop),
            "field-index/" => round_trip::<index::FieldIndex>(&record.value).map(drop),
            "segment-index/" => round_trip::<index::SegmentIndex>(&record.value).map(drop),
            "datacoord-meta/channel-removal/" => match record.value.as_slice() {
                b"removed" | b"non-removed" => Ok(()),
                other => Err(format!(
                    "unexpected flag {:?}",
                    String::from_utf8_lossy(other)
                )),
            },
            other => Err(format!("unknown family {other}")),
        };
        *seen.entry(record.family.as_str()).or_default() += 1;
        if let Err(why) = outcome {
            failures.push(format!("{}: {why}", record.key));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} records differ:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    // Every family DataCoord owns is represented, so this test cannot pass vacuously.
    assert_eq!(seen.len(), 9, "families captured: {seen:?}");
}

#[test]
fn go_records_carry_what_2_3_5_stores() {
    let all = records();
    let segments: Vec<data::SegmentInfo> = all
        .iter()
        .filter(|r| r.family == "datacoord-meta/s/")
        .map(|r| data::SegmentInfo::decode(r.value.as_slice()).unwrap())
        .collect();
    assert!(!segments.is_empty());
    for segment in &segments {
        // Binlogs live under their own keys; the segment value keeps none (FACTS C.3).
        assert!(
            segment.binlogs.is_empty()
                && segment.statslogs.is_empty()
                && segment.deltalogs.is_empty()
        );
        assert_eq!(
            segment.state,
            milvus_proto::common::SegmentState::Flushed as i32
        );
        assert!(segment.num_of_rows > 0 && segment.dml_position.is_some());
    }
    let binlog = all
        .iter()
        .find(|r| r.family == "datacoord-meta/binlog/")
        .unwrap();
    let field = data::FieldBinlog::decode(binlog.value.as_slice()).unwrap();
    // Stored binlogs keep the logID and drop the path, which readers rebuild (FACTS C.2).
    assert!(
        field
            .binlogs
            .iter()
            .all(|b| b.log_path.is_empty() && b.log_id > 0)
    );
    let empty = all
        .iter()
        .filter(|r| r.family == "datacoord-meta/deltalog/" && r.value.is_empty())
        .count();
    assert!(
        empty > 0,
        "Go stores empty FieldBinlog values; the fixture should hold one"
    );
}
