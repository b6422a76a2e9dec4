//! Records a real Go 2.3.5 DataCoord wrote (proto/tests/fixtures/go-2.3.5/etcd-records.json):
//! loaded into a store, read by `Meta::load`, and written back by the catalog encoders, every
//! `datacoord-meta/...` value must come out byte for byte as Go wrote it.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use datacoord_meta::testing::ALL_STATES;
use datacoord_meta::{Catalog, ChannelRemoval, Meta, with_full_paths};
use milvus_metastore::{MemoryKv, MetaKv};
use milvus_proto::common::SegmentState;
use milvus_proto::data::FieldBinlog;
use prost::Message;

const FIXTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../proto/tests/fixtures/go-2.3.5/etcd-records.json"
));

/// The JSON string value following `"field"` at or after `from`, and where it ends. The
/// fixture's keys and hex values contain no escapes.
fn string_field(text: &str, field: &str, from: usize) -> Option<(String, usize)> {
    let name = format!("\"{field}\"");
    let start = from + text[from..].find(&name)? + name.len();
    let rest = &text[start..];
    let colon = rest.find(':')?;
    let open = start + colon + 1 + rest[colon + 1..].find('"')? + 1;
    let close = open + text[open..].find('"')?;
    Some((text[open..close].to_string(), close + 1))
}

fn decode_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Every `datacoord-meta/` record of the fixture, by key.
fn go_records() -> BTreeMap<String, Bytes> {
    let mut records = BTreeMap::new();
    let mut at = 0;
    while let Some((key, after_key)) = string_field(FIXTURE, "key", at) {
        let (hex, after_value) =
            string_field(FIXTURE, "value_hex", after_key).expect("value_hex after key");
        at = after_value;
        if key.starts_with("datacoord-meta/") {
            records.insert(key, Bytes::from(decode_hex(&hex)));
        }
    }
    records
}

async fn loaded() -> (BTreeMap<String, Bytes>, Meta) {
    let records = go_records();
    let kv: Arc<dyn MetaKv> = Arc::new(MemoryKv::new());
    kv.multi_save_batched(
        records
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
    .await
    .expect("seed");
    let meta = Meta::load(Catalog::new(kv)).await.expect("load");
    (records, meta)
}

#[tokio::test]
async fn go_records_are_written_back_byte_for_byte() {
    let (records, meta) = loaded().await;
    let segments = meta.segments_in_states(&ALL_STATES);
    let segment_keys = records
        .keys()
        .filter(|key| key.starts_with("datacoord-meta/s/"))
        .count();
    assert_eq!(segments.len(), segment_keys);
    assert!(
        segments.len() >= 4,
        "fixture has too few segments: {}",
        segments.len()
    );

    let mut produced: BTreeMap<String, Bytes> = BTreeMap::new();
    for seg in &segments {
        let mut own = Catalog::log_records(seg);
        own.push(Catalog::segment_record(seg));
        for (key, value) in own {
            assert!(
                produced.insert(key.clone(), value).is_none(),
                "{key} produced twice"
            );
        }
    }
    for (channel, position) in meta.channel_checkpoints() {
        produced.insert(
            datacoord_meta::channel_checkpoint_key(&channel),
            Bytes::from(position.encode_to_vec()),
        );
        let flag = match meta.channel_removal(&channel) {
            ChannelRemoval::NonRemoved => "non-removed",
            ChannelRemoval::Removed => "removed",
            ChannelRemoval::Absent => continue,
        };
        produced.insert(
            datacoord_meta::channel_removal_key(&channel),
            Bytes::from(flag),
        );
    }

    let go_keys: Vec<&String> = records.keys().collect();
    let our_keys: Vec<&String> = produced.keys().collect();
    assert_eq!(our_keys, go_keys, "key sets differ");
    for (key, value) in &records {
        assert_eq!(&produced[key], value, "value of {key} differs from Go's");
    }
}

#[tokio::test]
async fn go_records_read_as_expected() {
    let (records, meta) = loaded().await;
    // The fixture is a flushed collection: every segment Flushed, with rows and both positions.
    for seg in meta.segments_in_states(&ALL_STATES) {
        assert_eq!(seg.state(), SegmentState::Flushed, "segment {}", seg.id);
        assert!(seg.num_of_rows > 0);
        assert_eq!(seg.num_of_rows, datacoord_meta::binlog_row_count(&seg));
        assert!(seg.start_position.is_some() && seg.dml_position.is_some());
        assert!(!seg.binlogs.is_empty() && !seg.statslogs.is_empty());
        // Fields in key order, as the walk returned them.
        let fields: Vec<String> = seg.binlogs.iter().map(|f| f.field_id.to_string()).collect();
        let mut sorted = fields.clone();
        sorted.sort();
        assert_eq!(fields, sorted);
    }
    let channels: Vec<String> = meta
        .channel_checkpoints()
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(channels.len(), 2);
    for channel in &channels {
        assert_eq!(meta.channel_removal(channel), ChannelRemoval::NonRemoved);
        assert_eq!(
            meta.channel_checkpoint(channel)
                .expect("checkpoint")
                .channel_name,
            *channel
        );
        let of_channel = meta.segments_of_channel(channel);
        assert!(!of_channel.is_empty());
        assert!(of_channel.iter().all(|seg| seg.insert_channel == *channel));
    }
    let total: i64 = meta
        .segments_in_states(&ALL_STATES)
        .iter()
        .map(|s| s.num_of_rows)
        .sum();
    let coll = meta.segments_in_states(&ALL_STATES)[0].collection_id;
    assert_eq!(meta.collection_row_count(coll), total);
    assert!(records.contains_key(
        "datacoord-meta/channel-removal/by-dev-rootcoord-dml_0_470734236623306770v0"
    ));
}

#[tokio::test]
async fn rebuilt_paths_follow_the_storage_layout() {
    let (records, meta) = loaded().await;
    let mut checked = 0;
    for (key, value) in &records {
        let parts: Vec<&str> = key.split('/').collect();
        let (dir, with_field) = match parts[1] {
            "binlog" => ("insert_log", true),
            "statslog" => ("stats_log", true),
            "deltalog" => ("delta_log", false),
            _ => continue,
        };
        let (coll, part, seg, field) = (parts[2], parts[3], parts[4], parts[5]);
        let stored = FieldBinlog::decode(value.clone()).expect("field binlog");
        let segment = meta
            .segment(seg.parse().expect("segment id"))
            .expect("segment loaded");
        let full = with_full_paths(&segment, "files");
        let lists = match parts[1] {
            "binlog" => &full.binlogs,
            "statslog" => &full.statslogs,
            _ => &full.deltalogs,
        };
        let listed = lists
            .iter()
            .find(|f| f.field_id.to_string() == field)
            .expect("field listed");
        assert_eq!(listed.binlogs.len(), stored.binlogs.len());
        for (binlog, stored) in listed.binlogs.iter().zip(&stored.binlogs) {
            assert!(stored.log_path.is_empty(), "Go stores no paths");
            let expected = if with_field {
                format!("files/{dir}/{coll}/{part}/{seg}/{field}/{}", stored.log_id)
            } else {
                format!("files/{dir}/{coll}/{part}/{seg}/{}", stored.log_id)
            };
            assert_eq!(binlog.log_path, expected);
            checked += 1;
        }
        // Memory keeps the stored form.
        assert!(
            segment
                .binlogs
                .iter()
                .chain(&segment.statslogs)
                .chain(&segment.deltalogs)
                .flat_map(|f| &f.binlogs)
                .all(|b| b.log_path.is_empty())
        );
    }
    assert!(checked > 20, "only {checked} paths checked");
    // The merged stats log is logID 1.
    let any = meta.segments_in_states(&ALL_STATES)[0].clone();
    let full = with_full_paths(&any, "/var/lib/milvus/data/");
    assert!(
        full.statslogs[0]
            .binlogs
            .iter()
            .any(|b| b.log_path.ends_with("/100/1")
                && b.log_path.starts_with("/var/lib/milvus/data/stats_log/"))
    );
}
