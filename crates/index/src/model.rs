//! The two record families of index metadata, relative to the meta root (`by-dev/meta`):
//!
//! | key | value |
//! |---|---|
//! | `field-index/{collectionID}/{indexID}` | `index.FieldIndex`: `index_info{collectionID, fieldID, index_name, indexID, type_params, index_params, is_auto_index, user_index_params}`, `deleted`, `create_time` (the request TSO). The statistics fields of `IndexInfo` are never stored. |
//! | `segment-index/{collectionID}/{partitionID}/{segmentID}/{buildID}` | `index.SegmentIndex`, every field; `create_time` holds the segment ID (2.3.5 quirk), `write_handoff` is always false |
//!
//! [`Index`] and [`SegmentIndex`] are what memory holds; `to_record`/`from_record` destructure
//! without `..`, so a new proto field is a compile error here.

use milvus_proto::common::{IndexState, KeyValuePair};
use milvus_proto::index::{FieldIndex, IndexInfo};
use milvus_types::{CollectionId, FieldId, IndexId, NodeId, PartitionId, SegmentId, UniqueId};

/// Prefix of the field-index family.
pub const FIELD_INDEX_PREFIX: &str = "field-index/";
/// Prefix of the segment-index family.
pub const SEGMENT_INDEX_PREFIX: &str = "segment-index/";

/// ID of one segment-index build task (a RootCoord ID).
pub type BuildId = UniqueId;

/// `field-index/{coll}/{index}`
pub fn field_index_key(coll: CollectionId, index_id: IndexId) -> String {
    format!("{FIELD_INDEX_PREFIX}{coll}/{index_id}")
}

/// `segment-index/{coll}/{part}/{seg}/{build}`
pub fn segment_index_key(
    coll: CollectionId,
    part: PartitionId,
    seg: SegmentId,
    build: BuildId,
) -> String {
    format!("{SEGMENT_INDEX_PREFIX}{coll}/{part}/{seg}/{build}")
}

/// One index of a collection (one per field at most, deleted ones aside).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index {
    /// Collection.
    pub collection_id: CollectionId,
    /// Indexed field.
    pub field_id: FieldId,
    /// Index ID (RootCoord ID).
    pub index_id: IndexId,
    /// Name, unique among the collection's live indexes.
    pub index_name: String,
    /// Type parameters (e.g. `dim`).
    pub type_params: Vec<KeyValuePair>,
    /// Index parameters as the proxy expanded them.
    pub index_params: Vec<KeyValuePair>,
    /// Whether the proxy chose the parameters (auto index).
    pub is_auto_index: bool,
    /// Parameters as the user gave them.
    pub user_index_params: Vec<KeyValuePair>,
    /// Marked by DropIndex; removed by GC.
    pub deleted: bool,
    /// The CreateIndex request timestamp.
    pub create_time: u64,
}

impl Index {
    /// Its etcd key.
    pub fn key(&self) -> String {
        field_index_key(self.collection_id, self.index_id)
    }

    /// The value 2.3.5 stores.
    pub fn to_record(&self) -> FieldIndex {
        let Index {
            collection_id,
            field_id,
            index_id,
            index_name,
            type_params,
            index_params,
            is_auto_index,
            user_index_params,
            deleted,
            create_time,
        } = self.clone();
        FieldIndex {
            index_info: Some(IndexInfo {
                collection_id,
                field_id,
                index_name,
                index_id,
                type_params,
                index_params,
                is_auto_index,
                user_index_params,
                ..IndexInfo::default()
            }),
            deleted,
            create_time,
        }
    }

    /// Reads a stored value (statistics fields of `IndexInfo`, never written, are dropped).
    pub fn from_record(record: FieldIndex) -> Self {
        let FieldIndex {
            index_info,
            deleted,
            create_time,
        } = record;
        let info = index_info.unwrap_or_default();
        Index {
            collection_id: info.collection_id,
            field_id: info.field_id,
            index_id: info.index_id,
            index_name: info.index_name,
            type_params: info.type_params,
            index_params: info.index_params,
            is_auto_index: info.is_auto_index,
            user_index_params: info.user_index_params,
            deleted,
            create_time,
        }
    }

    /// The value of `index_type` in the index parameters, "" when absent.
    pub fn index_type(&self) -> &str {
        index_type(&self.index_params)
    }
}

/// The value of `index_type` among `params`, "" when absent.
pub fn index_type(params: &[KeyValuePair]) -> &str {
    params
        .iter()
        .find(|kv| kv.key == "index_type")
        .map_or("", |kv| kv.value.as_str())
}

/// One build task: the index of one segment for one [`Index`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentIndex {
    /// Collection.
    pub collection_id: CollectionId,
    /// Partition.
    pub partition_id: PartitionId,
    /// Segment.
    pub segment_id: SegmentId,
    /// The segment's rows when the task was created.
    pub num_rows: i64,
    /// The index built.
    pub index_id: IndexId,
    /// Task ID.
    pub build_id: BuildId,
    /// IndexNode of the last assignment (0 if never assigned).
    pub node_id: NodeId,
    /// Bumped on every assignment; names the files' directory.
    pub index_version: i64,
    /// Task state.
    pub state: IndexState,
    /// Why the build failed.
    pub fail_reason: String,
    /// Base names of the index files.
    pub index_file_keys: Vec<String>,
    /// Marked when the segment or index went away; removed by GC.
    pub deleted: bool,
    /// The segment ID (2.3.5 stores it here).
    pub create_time: u64,
    /// Total size of the index files.
    pub serialize_size: u64,
    /// Always false in 2.3.5; kept as stored.
    pub write_handoff: bool,
    /// Index engine version the files were built with.
    pub current_index_version: i32,
}

impl SegmentIndex {
    /// Its etcd key.
    pub fn key(&self) -> String {
        segment_index_key(
            self.collection_id,
            self.partition_id,
            self.segment_id,
            self.build_id,
        )
    }

    /// The value 2.3.5 stores.
    pub fn to_record(&self) -> milvus_proto::index::SegmentIndex {
        let SegmentIndex {
            collection_id,
            partition_id,
            segment_id,
            num_rows,
            index_id,
            build_id,
            node_id,
            index_version,
            state,
            fail_reason,
            index_file_keys,
            deleted,
            create_time,
            serialize_size,
            write_handoff,
            current_index_version,
        } = self.clone();
        milvus_proto::index::SegmentIndex {
            collection_id,
            partition_id,
            segment_id,
            num_rows,
            index_id,
            build_id,
            node_id,
            index_version,
            state: state as i32,
            fail_reason,
            index_file_keys,
            deleted,
            create_time,
            serialize_size,
            write_handoff,
            current_index_version,
        }
    }

    /// Reads a stored value; an unknown state number reads as `IndexStateNone`.
    pub fn from_record(record: milvus_proto::index::SegmentIndex) -> Self {
        let state = record.state();
        let milvus_proto::index::SegmentIndex {
            collection_id,
            partition_id,
            segment_id,
            num_rows,
            index_id,
            build_id,
            node_id,
            index_version,
            state: _,
            fail_reason,
            index_file_keys,
            deleted,
            create_time,
            serialize_size,
            write_handoff,
            current_index_version,
        } = record;
        SegmentIndex {
            collection_id,
            partition_id,
            segment_id,
            num_rows,
            index_id,
            build_id,
            node_id,
            index_version,
            state,
            fail_reason,
            index_file_keys,
            deleted,
            create_time,
            serialize_size,
            write_handoff,
            current_index_version,
        }
    }

    /// Full object keys of the index files (FACTS 1.10): `{root}/index_files/{build}/{version}/
    /// {part}/{seg}/{key}`, joined as Go's `path.Join` (empty root → relative, no doubled `/`).
    pub fn file_paths(&self, root_path: &str) -> Vec<String> {
        let root = root_path.trim_end_matches('/');
        self.index_file_keys
            .iter()
            .map(|file_key| {
                let tail = format!(
                    "index_files/{}/{}/{}/{}/{}",
                    self.build_id, self.index_version, self.partition_id, self.segment_id, file_key
                );
                if root.is_empty() {
                    tail
                } else {
                    format!("{root}/{tail}")
                }
            })
            .collect()
    }
}
