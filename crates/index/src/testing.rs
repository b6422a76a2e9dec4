//! Test support (feature `testing`): [`FakeSegments`], an in-memory [`SegmentSource`], segment
//! and request builders, and [`store_differences`], which compares an [`IndexMeta`] with a
//! fresh load of its store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use milvus_proto::common::{KeyValuePair, SegmentState};
use milvus_proto::data::SegmentInfo;
use milvus_proto::index::CreateIndexRequest;
use milvus_types::{CollectionId, SegmentId};

use crate::catalog::{encode_index, encode_segment_index};
use crate::meta::IndexMeta;
use crate::service::SegmentSource;

/// Segments held in memory, as segment meta would answer.
#[derive(Debug, Default)]
pub struct FakeSegments {
    segments: Mutex<BTreeMap<SegmentId, Arc<SegmentInfo>>>,
}

impl FakeSegments {
    /// No segments.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a segment.
    pub fn put(&self, seg: SegmentInfo) {
        self.segments
            .lock()
            .expect("segments lock")
            .insert(seg.id, Arc::new(seg));
    }

    /// Forgets a segment (as GC does).
    pub fn remove(&self, id: SegmentId) {
        self.segments.lock().expect("segments lock").remove(&id);
    }
}

impl SegmentSource for FakeSegments {
    fn flushed_segments(&self, coll: CollectionId) -> Vec<Arc<SegmentInfo>> {
        self.segments
            .lock()
            .expect("segments lock")
            .values()
            .filter(|seg| seg.collection_id == coll && crate::service::is_indexable(seg))
            .cloned()
            .collect()
    }

    fn segment(&self, id: SegmentId) -> Option<Arc<SegmentInfo>> {
        self.segments
            .lock()
            .expect("segments lock")
            .get(&id)
            .cloned()
    }
}

/// A segment of `coll` (partition 2) in `state` with `rows` rows and `last_expire_time`.
pub fn segment(
    id: SegmentId,
    coll: CollectionId,
    state: SegmentState,
    rows: i64,
    last_expire_time: u64,
) -> SegmentInfo {
    SegmentInfo {
        id,
        collection_id: coll,
        partition_id: 2,
        insert_channel: format!("ch-{coll}"),
        num_of_rows: rows,
        state: state as i32,
        last_expire_time,
        ..SegmentInfo::default()
    }
}

/// Key/value pairs from `(key, value)` tuples.
pub fn pairs(items: &[(&str, &str)]) -> Vec<KeyValuePair> {
    items
        .iter()
        .map(|(key, value)| KeyValuePair {
            key: key.to_string(),
            value: value.to_string(),
        })
        .collect()
}

/// A CreateIndex request for an IVF_FLAT-like index with `nlist`.
pub fn create_request(
    coll: CollectionId,
    field: i64,
    name: &str,
    nlist: &str,
    timestamp: u64,
) -> CreateIndexRequest {
    CreateIndexRequest {
        collection_id: coll,
        field_id: field,
        index_name: name.to_string(),
        type_params: pairs(&[("dim", "8")]),
        index_params: pairs(&[
            ("index_type", "IVF_FLAT"),
            ("metric_type", "L2"),
            ("nlist", nlist),
        ]),
        timestamp,
        is_auto_index: false,
        user_index_params: pairs(&[
            ("index_type", "IVF_FLAT"),
            ("metric_type", "L2"),
            ("params", &format!("{{\"nlist\":{nlist}}}")),
        ]),
    }
}

/// How `meta` differs from a fresh load of its store (every index and segment index, and the
/// bytes each record in memory implies against the stored value). Empty when equal.
pub async fn store_differences(meta: &IndexMeta) -> Vec<String> {
    let mut differences = Vec::new();
    let reloaded = IndexMeta::load(meta.catalog().clone())
        .await
        .expect("reload of the store");
    let ours = meta.all_segment_indexes();
    let theirs = reloaded.all_segment_indexes();
    if ours != theirs {
        differences.push(format!(
            "segment indexes: memory {ours:?}, store {theirs:?}"
        ));
    }
    let kv = meta.catalog().kv();
    for seg_index in &ours {
        let stored = kv.load(&seg_index.key()).await.expect("load");
        if stored != Some(encode_segment_index(seg_index)) {
            differences.push(format!("key {}: differs from memory", seg_index.key()));
        }
    }
    let mut our_indexes = Vec::new();
    let mut their_indexes = Vec::new();
    for (key, _) in kv
        .load_all_with_prefix(crate::model::FIELD_INDEX_PREFIX)
        .await
        .expect("load prefix")
    {
        let (coll, id) = parse_index_key(&key);
        our_indexes.push(meta.index(coll, id));
        their_indexes.push(reloaded.index(coll, id));
        if let Some(index) = meta.index(coll, id) {
            let stored = kv.load(&key).await.expect("load");
            if stored != Some(encode_index(&index)) {
                differences.push(format!("key {key}: differs from memory"));
            }
        }
    }
    if our_indexes != their_indexes {
        differences.push(format!(
            "indexes: memory {our_indexes:?}, store {their_indexes:?}"
        ));
    }
    differences
}

/// Asserts [`store_differences`] is empty.
pub async fn assert_matches_store(meta: &IndexMeta) {
    let differences = store_differences(meta).await;
    assert!(
        differences.is_empty(),
        "memory differs from the store: {differences:#?}"
    );
}

fn parse_index_key(key: &str) -> (CollectionId, i64) {
    let rest = key
        .strip_prefix(crate::model::FIELD_INDEX_PREFIX)
        .expect("field-index key");
    let (coll, id) = rest.split_once('/').expect("two IDs");
    (
        coll.parse().expect("collection ID"),
        id.parse().expect("index ID"),
    )
}

/// A [`StaticEnv`](crate::StaticEnv) whose schema (for any collection) has a dim-8 float-vector
/// field for each of `vectors` and an Int64 field for each of `scalars`, so CreateIndex
/// requests built by [`create_request`] pass the parameter checks.
pub fn env_with_fields(
    vectors: impl IntoIterator<Item = i64>,
    scalars: impl IntoIterator<Item = i64>,
) -> crate::StaticEnv {
    use milvus_proto::schema::{CollectionSchema, DataType, FieldSchema};
    let field = |field_id: i64, data_type: DataType, type_params| FieldSchema {
        field_id,
        name: format!("f{field_id}"),
        data_type: data_type as i32,
        type_params,
        ..FieldSchema::default()
    };
    let mut fields: Vec<FieldSchema> = vectors
        .into_iter()
        .map(|id| field(id, DataType::FloatVector, pairs(&[("dim", "8")])))
        .collect();
    fields.extend(
        scalars
            .into_iter()
            .map(|id| field(id, DataType::Int64, Vec::new())),
    );
    crate::StaticEnv {
        schema: CollectionSchema {
            name: "c".into(),
            fields,
            ..CollectionSchema::default()
        },
        disk_index_supported: false,
    }
}
