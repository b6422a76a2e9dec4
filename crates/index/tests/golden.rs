//! Records captured from a real 2.3.5 cluster: our types read them and write them back byte for
//! byte, under the same keys, and a load of them answers as 2.3.5 would.

use std::sync::Arc;

use bytes::Bytes;
use datacoord_index::{
    FIELD_INDEX_PREFIX, Index, IndexCatalog, IndexMeta, SEGMENT_INDEX_PREFIX, SegmentIndex,
};
use milvus_metastore::{MemoryKv, MetaKv};
use milvus_proto::common::IndexState;
use prost::Message;

const FIXTURE: &str = include_str!("../../../proto/tests/fixtures/go-2.3.5/etcd-records.json");

fn records(family: &str) -> Vec<(String, Vec<u8>)> {
    let root: serde_json::Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
    root["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|record| record["family"] == family)
        .map(|record| {
            let hex = record["value_hex"].as_str().expect("hex");
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
                .collect();
            (record["key"].as_str().expect("key").to_string(), bytes)
        })
        .collect()
}

#[test]
fn field_index_records_round_trip_byte_for_byte() {
    let found = records(FIELD_INDEX_PREFIX);
    assert_eq!(found.len(), 2, "fixture has two field-index records");
    for (key, value) in found {
        let record = milvus_proto::index::FieldIndex::decode(value.as_slice()).expect("decode");
        let index = Index::from_record(record);
        assert_eq!(index.key(), key);
        assert_eq!(
            index.to_record().encode_to_vec(),
            value,
            "re-encoding of {key}"
        );
        // What 2.3.5 stores: no statistics in the record.
        assert!(index.create_time > 0);
        assert!(!index.index_name.is_empty());
    }
}

#[test]
fn segment_index_records_round_trip_byte_for_byte() {
    let found = records(SEGMENT_INDEX_PREFIX);
    assert_eq!(found.len(), 8, "fixture has eight segment-index records");
    for (key, value) in found {
        let record = milvus_proto::index::SegmentIndex::decode(value.as_slice()).expect("decode");
        let seg_index = SegmentIndex::from_record(record);
        assert_eq!(seg_index.key(), key);
        assert_eq!(
            seg_index.to_record().encode_to_vec(),
            value,
            "re-encoding of {key}"
        );
        // The 2.3.5 quirk: create_time is the segment ID.
        assert_eq!(seg_index.create_time, seg_index.segment_id as u64);
    }
}

#[tokio::test]
async fn go_records_load_and_answer() {
    let kv: Arc<dyn MetaKv> = Arc::new(MemoryKv::new());
    let mut all = records(FIELD_INDEX_PREFIX);
    all.extend(records(SEGMENT_INDEX_PREFIX));
    for (key, value) in &all {
        kv.save(key, Bytes::from(value.clone()))
            .await
            .expect("save");
    }
    let meta = IndexMeta::load(IndexCatalog::new(kv.clone()))
        .await
        .expect("load");
    let coll = 470734236623306770;
    let live = meta.live_indexes(coll, "");
    assert_eq!(live.len(), 2);
    assert_eq!(meta.live_indexes(coll, "vec_idx").len(), 1);
    assert_eq!(meta.all_segment_indexes().len(), 8);
    let seg = 470734236623506778;
    let of_seg = meta.segment_indexes_of(seg);
    assert_eq!(of_seg.len(), 2);
    assert!(
        of_seg
            .iter()
            .all(|s| s.state == IndexState::Finished && s.num_rows == 733)
    );
    // Rewriting every loaded record yields the stored bytes.
    for index in &live {
        meta.catalog().save_index(index).await.expect("save");
    }
    for seg_index in meta.all_segment_indexes() {
        meta.catalog()
            .save_segment_index(&seg_index)
            .await
            .expect("save");
    }
    for (key, value) in &all {
        assert_eq!(
            kv.load(key).await.expect("load").as_deref(),
            Some(value.as_slice()),
            "{key}"
        );
    }
}
