//! The logic of the index RPCs (FACTS 1.3, 1.11, 1.12) over [`IndexMeta`]. The health check,
//! metrics and the conversion of [`IndexError`] to a `Status` belong to the gRPC layer.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use milvus_proto::common::{IndexState, SegmentState, Status};
use milvus_proto::data::SegmentInfo;
use milvus_proto::index::{
    CreateIndexRequest, DescribeIndexRequest, DropIndexRequest, GetIndexBuildProgressRequest,
    GetIndexBuildProgressResponse, GetIndexInfoRequest, GetIndexInfoResponse, GetIndexStateRequest,
    GetIndexStateResponse, GetIndexStatisticsRequest, GetSegmentIndexStateRequest,
    GetSegmentIndexStateResponse, IndexFilePathInfo, IndexInfo, SegmentIndexState,
};
use milvus_proto::schema::{CollectionSchema, DataType};
use milvus_rootcoord_client::Allocator;
use milvus_types::{CollectionId, FieldId, IndexId, MilvusResult, SegmentId, Timestamp};

use crate::error::{IndexError, IndexResult};
use crate::meta::IndexMeta;
use crate::model::{Index, index_type};
use crate::stats::{IndexStats, index_stats};

/// The index type that needs an IndexNode with a local disk.
pub const DISKANN: &str = "DISKANN";

/// What the index RPCs read from segment metadata.
pub trait SegmentSource: Send + Sync {
    /// The collection's segments in state Flushed or Flushing (any partition, importing or
    /// not): the set every statistic is computed over.
    fn flushed_segments(&self, coll: CollectionId) -> Vec<Arc<SegmentInfo>>;
    /// A segment in any state (Dropped ones too, until GC removes them).
    fn segment(&self, id: SegmentId) -> Option<Arc<SegmentInfo>>;
}

impl SegmentSource for datacoord_meta::Meta {
    fn flushed_segments(&self, coll: CollectionId) -> Vec<Arc<SegmentInfo>> {
        self.segments_of_collection(coll)
            .into_iter()
            .filter(|seg| datacoord_meta::is_flush_state(seg.state()))
            .collect()
    }

    fn segment(&self, id: SegmentId) -> Option<Arc<SegmentInfo>> {
        datacoord_meta::Meta::segment(self, id)
    }
}

/// What CreateIndex asks of the rest of the coordinator.
#[async_trait]
pub trait CreateIndexEnv: Send + Sync {
    /// The collection's schema (RootCoord `DescribeCollectionInternal`), to check the request
    /// against (and to name an unnamed index after its field).
    async fn collection_schema(&self, coll: CollectionId) -> MilvusResult<CollectionSchema>;
    /// Whether some IndexNode reports `enable_disk`; only called for a new DISKANN index.
    async fn disk_index_supported(&self) -> bool;
}

/// A [`CreateIndexEnv`] with the answers given up front.
#[derive(Clone, Debug, Default)]
pub struct StaticEnv {
    /// The schema returned for any collection.
    pub schema: CollectionSchema,
    /// Whether DISKANN can be built.
    pub disk_index_supported: bool,
}

#[async_trait]
impl CreateIndexEnv for StaticEnv {
    async fn collection_schema(&self, _coll: CollectionId) -> MilvusResult<CollectionSchema> {
        Ok(self.schema.clone())
    }

    async fn disk_index_supported(&self) -> bool {
        self.disk_index_supported
    }
}

/// Whether two parameter lists hold the same pairs, as 2.3.5 compares them: equal length and
/// every pair of `stored` present in `requested` (order ignored).
fn same_pairs(
    stored: &[milvus_proto::common::KeyValuePair],
    requested: &[milvus_proto::common::KeyValuePair],
) -> bool {
    stored.len() == requested.len()
        && stored.iter().all(|pair| {
            requested
                .iter()
                .any(|other| other.key == pair.key && other.value == pair.value)
        })
}

/// CreateIndex's idempotency rule: the same name on the same field with the same type and
/// user parameters (index parameters are not compared).
fn same_request(index: &Index, req: &CreateIndexRequest) -> bool {
    req.field_id == index.field_id
        && same_pairs(&index.type_params, &req.type_params)
        && same_pairs(&index.user_index_params, &req.user_index_params)
}

fn success() -> Option<Status> {
    Some(Status::default())
}

impl IndexMeta {
    /// CreateIndex (FACTS 1.3): resolves an empty name, applies the conflict rule against the
    /// live indexes, reuses the ID of an identical index or allocates one (refusing DISKANN
    /// when no IndexNode has a disk), and saves the record with `create_time` = the request
    /// timestamp (also when reused). Returns the index ID.
    pub async fn create_index(
        &self,
        mut req: CreateIndexRequest,
        allocator: &dyn Allocator,
        env: &dyn CreateIndexEnv,
    ) -> IndexResult<IndexId> {
        if req.collection_id <= 0 {
            return Err(IndexError::InvalidParameter(format!(
                "collection ID {}",
                req.collection_id
            )));
        }
        // Checked before anything is stored: an accepted index becomes IndexNode jobs.
        let schema = env
            .collection_schema(req.collection_id)
            .await
            .map_err(IndexError::Peer)?;
        crate::params::check_create_index(&req, &schema)?;
        if req.index_name.is_empty() {
            let on_field = self.live_field_indexes(req.collection_id, req.field_id, "");
            match on_field.as_slice() {
                [] => {
                    if let Some(field) = schema.fields.iter().find(|f| f.field_id == req.field_id) {
                        req.index_name = field.name.clone();
                    }
                }
                [only] => req.index_name = only.index_name.clone(),
                _ => {}
            }
        }
        let guard = self.lock_writer().await;
        let mut reused = None;
        for index in self.live_indexes(req.collection_id, "") {
            if index.index_name == req.index_name {
                if same_request(&index, &req) {
                    reused = Some(index.index_id);
                    break;
                }
                tracing::warn!(collection_id = req.collection_id, index_name = %req.index_name,
                    existing_field = index.field_id, field_id = req.field_id,
                    "create index refused: name taken by a different index");
                return Err(IndexError::DistinctIndexExists);
            }
            if index.field_id == req.field_id {
                tracing::warn!(collection_id = req.collection_id, field_id = req.field_id,
                    existing = %index.index_name, index_name = %req.index_name,
                    "create index refused: field already indexed");
                return Err(IndexError::FieldAlreadyIndexed);
            }
        }
        let index_id = match reused {
            Some(id) => id,
            None => {
                let id = allocator.alloc_id().await.map_err(IndexError::Peer)?;
                if index_type(&req.index_params) == DISKANN && !env.disk_index_supported().await {
                    return Err(IndexError::NotSupported(DISKANN.to_string()));
                }
                id
            }
        };
        let index = Index {
            collection_id: req.collection_id,
            field_id: req.field_id,
            index_id,
            index_name: req.index_name,
            type_params: req.type_params,
            index_params: req.index_params,
            is_auto_index: req.is_auto_index,
            user_index_params: req.user_index_params,
            deleted: false,
            create_time: req.timestamp,
        };
        self.save_index_locked(guard, index).await?;
        Ok(index_id)
    }

    fn matching(&self, coll: CollectionId, name: &str) -> IndexResult<Vec<Arc<Index>>> {
        let found = self.live_indexes(coll, name);
        if found.is_empty() {
            return Err(IndexError::NotFound(name.to_string()));
        }
        Ok(found)
    }

    fn the_one(&self, coll: CollectionId, name: &str) -> IndexResult<Arc<Index>> {
        let mut found = self.matching(coll, name)?;
        if found.len() > 1 {
            return Err(IndexError::Duplicate(name.to_string()));
        }
        Ok(found.remove(0))
    }

    fn info_with_stats(index: &Index, stats: IndexStats) -> IndexInfo {
        IndexInfo {
            collection_id: index.collection_id,
            field_id: index.field_id,
            index_name: index.index_name.clone(),
            index_id: index.index_id,
            type_params: index.type_params.clone(),
            index_params: index.index_params.clone(),
            indexed_rows: stats.indexed_rows,
            total_rows: stats.total_rows,
            state: stats.state as i32,
            index_state_fail_reason: stats.fail_reason,
            is_auto_index: index.is_auto_index,
            user_index_params: index.user_index_params.clone(),
            pending_index_rows: stats.pending_index_rows,
        }
    }

    /// Every live index of the collection matching `index_name` ("" = all), with its
    /// statistics at the timestamp `ts_of` picks for it.
    fn infos_with_stats(
        &self,
        source: &dyn SegmentSource,
        collection_id: CollectionId,
        index_name: &str,
        real_time: bool,
        ts_of: impl Fn(&Index) -> Timestamp,
    ) -> IndexResult<Vec<IndexInfo>> {
        let indexes = self.matching(collection_id, index_name)?;
        let segments = source.flushed_segments(collection_id);
        Ok(indexes
            .iter()
            .map(|index| {
                let stats = index_stats(self, source, index, &segments, real_time, ts_of(index));
                Self::info_with_stats(index, stats)
            })
            .collect())
    }

    /// DescribeIndex: every live index matching the name ("" = all), by index ID, with
    /// statistics at the request timestamp (or each index's create time when it is 0).
    pub fn describe_index(
        &self,
        source: &dyn SegmentSource,
        req: &DescribeIndexRequest,
    ) -> IndexResult<Vec<IndexInfo>> {
        self.infos_with_stats(source, req.collection_id, &req.index_name, false, |index| {
            if req.timestamp != 0 {
                req.timestamp
            } else {
                index.create_time
            }
        })
    }

    /// GetIndexStatistics: as DescribeIndex, but real-time (no lineage, no time filter on
    /// built segments) at each index's create time.
    pub fn get_index_statistics(
        &self,
        source: &dyn SegmentSource,
        req: &GetIndexStatisticsRequest,
    ) -> IndexResult<Vec<IndexInfo>> {
        self.infos_with_stats(source, req.collection_id, &req.index_name, true, |index| {
            index.create_time
        })
    }

    /// GetIndexState: the state and fail reason of the one matching index.
    pub fn get_index_state(
        &self,
        source: &dyn SegmentSource,
        req: &GetIndexStateRequest,
    ) -> IndexResult<GetIndexStateResponse> {
        let index = self.the_one(req.collection_id, &req.index_name)?;
        let segments = source.flushed_segments(req.collection_id);
        let stats = index_stats(self, source, &index, &segments, false, index.create_time);
        Ok(GetIndexStateResponse {
            status: success(),
            state: stats.state as i32,
            fail_reason: stats.fail_reason,
        })
    }

    /// GetIndexBuildProgress: indexed, total and pending rows of the one matching index.
    pub fn get_index_build_progress(
        &self,
        source: &dyn SegmentSource,
        req: &GetIndexBuildProgressRequest,
    ) -> IndexResult<GetIndexBuildProgressResponse> {
        let index = self.the_one(req.collection_id, &req.index_name)?;
        let segments = source.flushed_segments(req.collection_id);
        let stats = index_stats(self, source, &index, &segments, false, index.create_time);
        Ok(GetIndexBuildProgressResponse {
            status: success(),
            indexed_rows: stats.indexed_rows,
            total_rows: stats.total_rows,
            pending_index_rows: stats.pending_index_rows,
        })
    }

    /// GetSegmentIndexState: fails only when no live index matches the name; then, per
    /// requested segment and ignoring the name, the state over all live indexes (first
    /// missing build → Unissued, first unfinished build → its state and reason, else
    /// Finished; unknown segment → None with `segment is not exist with ID: {id}`).
    pub fn get_segment_index_state(
        &self,
        source: &dyn SegmentSource,
        req: &GetSegmentIndexStateRequest,
    ) -> IndexResult<GetSegmentIndexStateResponse> {
        let indexes = self.matching(req.collection_id, &req.index_name)?;
        let all_live = if req.index_name.is_empty() {
            indexes
        } else {
            self.live_indexes(req.collection_id, "")
        };
        let states = req
            .segment_i_ds
            .iter()
            .map(|&seg_id| {
                let mut entry = SegmentIndexState {
                    segment_id: seg_id,
                    state: IndexState::None as i32,
                    fail_reason: String::new(),
                };
                if source.segment(seg_id).is_none() {
                    entry.fail_reason = format!("segment is not exist with ID: {seg_id}");
                    return entry;
                }
                for index in &all_live {
                    match self.segment_index_of(seg_id, index.index_id) {
                        None => {
                            entry.state = IndexState::Unissued as i32;
                            break;
                        }
                        Some(seg_index) if seg_index.state != IndexState::Finished => {
                            entry.state = seg_index.state as i32;
                            entry.fail_reason = seg_index.fail_reason.clone();
                            break;
                        }
                        Some(_) => entry.state = IndexState::Finished as i32,
                    }
                }
                entry
            })
            .collect();
        Ok(GetSegmentIndexStateResponse {
            status: success(),
            states,
        })
    }

    /// GetIndexInfos (QueryCoord's index loading): an entry for every requested segment;
    /// `enable_index` when the segment exists and has a build of a live index; one file info
    /// per Finished build, paths under `root_path` (the object storage root).
    pub fn get_index_infos(
        &self,
        source: &dyn SegmentSource,
        req: &GetIndexInfoRequest,
        root_path: &str,
    ) -> GetIndexInfoResponse {
        let mut segment_info = HashMap::new();
        for &seg_id in &req.segment_i_ds {
            let mut entry = milvus_proto::index::SegmentInfo {
                collection_id: req.collection_id,
                segment_id: seg_id,
                enable_index: false,
                index_infos: Vec::new(),
            };
            if let Some(seg) = source.segment(seg_id) {
                for seg_index in self.segment_indexes_of(seg_id) {
                    let Some(index) = self
                        .index(seg.collection_id, seg_index.index_id)
                        .filter(|index| !index.deleted)
                    else {
                        continue;
                    };
                    entry.enable_index = true;
                    if seg_index.state != IndexState::Finished {
                        continue;
                    }
                    let mut params = index.index_params.clone();
                    params.extend(index.type_params.iter().cloned());
                    entry.index_infos.push(IndexFilePathInfo {
                        segment_id: seg_id,
                        field_id: index.field_id,
                        index_id: index.index_id,
                        build_id: seg_index.build_id,
                        index_name: index.index_name.clone(),
                        index_params: params,
                        index_file_paths: seg_index.file_paths(root_path),
                        serialized_size: seg_index.serialize_size,
                        index_version: seg_index.index_version,
                        num_rows: seg_index.num_rows,
                        current_index_version: seg_index.current_index_version,
                    });
                }
            }
            segment_info.insert(seg_id, entry);
        }
        GetIndexInfoResponse {
            status: success(),
            segment_info,
        }
    }

    /// DropIndex (FACTS 1.12): no match → Ok; several without `drop_all` → Duplicate; with
    /// partition IDs → Ok without change; else every match is marked deleted. Returns the IDs
    /// marked.
    pub async fn drop_index(&self, req: &DropIndexRequest) -> IndexResult<Vec<IndexId>> {
        let matching = self.live_indexes(req.collection_id, &req.index_name);
        if matching.is_empty() {
            return Ok(Vec::new());
        }
        if matching.len() > 1 && !req.drop_all {
            return Err(IndexError::Duplicate(req.index_name.clone()));
        }
        if !req.partition_i_ds.is_empty() {
            tracing::info!(
                collection_id = req.collection_id,
                "drop index of partitions: nothing to do"
            );
            return Ok(Vec::new());
        }
        let ids: Vec<IndexId> = matching.iter().map(|index| index.index_id).collect();
        self.mark_indexes_deleted(req.collection_id, &ids).await?;
        Ok(ids)
    }
}

/// The field 2.3.5 judges a segment "indexed" by: the first BinaryVector, FloatVector or
/// Float16Vector field in schema order (BFloat16Vector does not count in 2.3.5).
pub fn first_vector_field(schema: &CollectionSchema) -> Option<FieldId> {
    schema
        .fields
        .iter()
        .find(|field| {
            matches!(
                DataType::try_from(field.data_type),
                Ok(DataType::BinaryVector | DataType::FloatVector | DataType::Float16Vector)
            )
        })
        .map(|field| field.field_id)
}

/// Whether a segment is in a state 2.3.5 builds indexes for (Flushed or Flushing).
pub fn is_indexable(seg: &SegmentInfo) -> bool {
    matches!(seg.state(), SegmentState::Flushed | SegmentState::Flushing)
}

#[cfg(test)]
mod tests {
    use milvus_proto::schema::FieldSchema;

    use super::*;

    fn field(field_id: FieldId, data_type: DataType) -> FieldSchema {
        FieldSchema {
            field_id,
            data_type: data_type as i32,
            ..FieldSchema::default()
        }
    }

    #[test]
    fn first_vector_field_follows_schema_order() {
        let schema = CollectionSchema {
            fields: vec![
                field(100, DataType::Int64),
                field(101, DataType::BFloat16Vector),
                field(102, DataType::Float16Vector),
                field(103, DataType::FloatVector),
            ],
            ..CollectionSchema::default()
        };
        assert_eq!(first_vector_field(&schema), Some(102));
        let scalars = CollectionSchema {
            fields: vec![field(100, DataType::Int64), field(101, DataType::VarChar)],
            ..CollectionSchema::default()
        };
        assert_eq!(first_vector_field(&scalars), None);
    }
}
