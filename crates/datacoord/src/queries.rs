//! [`Queries`]: the read side of the data path (segment info, statistics, flush state, recovery
//! info), the collection-cache refresh and GcConfirm.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use datacoord_index::{IndexMeta, first_vector_field};
use datacoord_meta::{Meta, binlog_row_count, is_flush_state, is_healthy, with_full_paths};
use milvus_proto::common::{KeyValuePair, SegmentState};
use milvus_proto::data::{
    AlterCollectionRequest, FieldBinlog, GetFlushStateRequest, GetRecoveryInfoRequest,
    GetRecoveryInfoRequestV2, GetRecoveryInfoResponse, GetRecoveryInfoResponseV2,
    GetSegmentInfoRequest, GetSegmentInfoResponse, SegmentBinlogs, SegmentInfo, SegmentStateInfo,
};
use milvus_proto::internal::StringList;
use milvus_proto::msg::MsgPosition;
use milvus_rootcoord_client::Broker;
use milvus_types::{
    CollectionId, ErrorCode, FieldId, MilvusError, MilvusResult, PartitionId, SegmentId, Status,
};
use tracing::info;

use crate::channels::Channels;
use crate::collections::{CollectionInfo, Collections};
use crate::handler::{self, ChannelRef};

fn success() -> Option<Status> {
    Some(Status::default())
}

/// A copy for a response: full binlog paths, row count re-derived from binlogs when they say more.
fn response_segment(segment: &SegmentInfo, root: &str) -> SegmentInfo {
    let mut out = with_full_paths(segment, root);
    let rows = binlog_row_count(segment);
    if rows > 0 && rows != segment.num_of_rows {
        out.num_of_rows = rows;
    }
    out
}

/// Binlogs regrouped by field (a segment may carry several entries for one field).
fn group_by_field(logs: &[FieldBinlog]) -> Vec<FieldBinlog> {
    let mut grouped: BTreeMap<i64, FieldBinlog> = BTreeMap::new();
    for field in logs {
        grouped
            .entry(field.field_id)
            .or_insert_with(|| FieldBinlog {
                field_id: field.field_id,
                binlogs: Vec::new(),
            })
            .binlogs
            .extend(field.binlogs.iter().cloned());
    }
    grouped.into_values().collect()
}

/// What QueryCoord, proxies and RootCoord read about segments and channels.
pub struct Queries {
    pub(crate) meta: Arc<Meta>,
    pub(crate) index_meta: Arc<IndexMeta>,
    pub(crate) collections: Arc<Collections>,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) channels: Arc<dyn Channels>,
    /// The chunk manager's root: stored binlog paths are answered in full under it.
    pub(crate) storage_root: String,
    /// `indexCoord.segment.minSegmentNumRowsToEnableIndex`: smaller flushed segments count as
    /// indexed for recovery.
    pub(crate) min_rows_to_index: i64,
}

impl Queries {
    /// GetSegmentInfo: full segment infos (binlog paths included) and the checkpoints of their
    /// channels. One unknown ID fails the whole call, as in 2.3.5.
    pub fn get_segment_info(
        &self,
        request: GetSegmentInfoRequest,
    ) -> MilvusResult<GetSegmentInfoResponse> {
        let root = self.storage_root.as_str();
        let mut infos = Vec::with_capacity(request.segment_i_ds.len());
        let mut checkpoints: HashMap<String, MsgPosition> = HashMap::new();
        for id in request.segment_i_ds {
            let segment = if request.include_un_healthy {
                self.meta.segment(id)
            } else {
                self.meta.healthy_segment(id)
            }
            .ok_or_else(|| MilvusError::segment_not_found(id))?;
            let mut info = response_segment(&segment, root);
            if request.include_un_healthy
                && let Some(child) = self.meta.child_of(id)
            {
                // A compacted-away segment reports the deletes and position its result has
                // collected since, so a reader of the old segment misses nothing.
                let child = with_full_paths(&child, root);
                info.deltalogs.extend(child.deltalogs);
                info.dml_position = child.dml_position;
            }
            if !segment.insert_channel.is_empty() {
                checkpoints
                    .entry(segment.insert_channel.clone())
                    .or_insert_with(|| {
                        self.meta
                            .channel_checkpoint(&segment.insert_channel)
                            .unwrap_or_default()
                    });
            }
            infos.push(info);
        }
        Ok(GetSegmentInfoResponse {
            status: success(),
            infos,
            channel_checkpoint: checkpoints,
        })
    }

    /// GetSegmentStates: state and start position per ID; unknown or dropped → NotExist.
    pub fn get_segment_states(&self, ids: &[SegmentId]) -> MilvusResult<Vec<SegmentStateInfo>> {
        Ok(ids
            .iter()
            .map(|id| match self.meta.healthy_segment(*id) {
                Some(segment) => SegmentStateInfo {
                    segment_id: *id,
                    state: segment.state,
                    start_position: segment.start_position.clone(),
                    ..Default::default()
                },
                None => SegmentStateInfo {
                    segment_id: *id,
                    state: SegmentState::NotExist as i32,
                    ..Default::default()
                },
            })
            .collect())
    }

    /// GetInsertBinlogPaths: field IDs and full insert-log paths of a healthy segment.
    pub fn get_insert_binlog_paths(
        &self,
        segment_id: SegmentId,
    ) -> MilvusResult<(Vec<i64>, Vec<StringList>)> {
        let segment = self
            .meta
            .healthy_segment(segment_id)
            .ok_or_else(|| MilvusError::segment_not_found(segment_id))?;
        let segment = with_full_paths(&segment, &self.storage_root);
        let mut fields = Vec::with_capacity(segment.binlogs.len());
        let mut paths = Vec::with_capacity(segment.binlogs.len());
        for field in segment.binlogs {
            fields.push(field.field_id);
            paths.push(StringList {
                values: field.binlogs.into_iter().map(|b| b.log_path).collect(),
                status: success(),
            });
        }
        Ok((fields, paths))
    }

    /// GetCollectionStatistics: `row_count` = persisted rows of the collection's healthy segments.
    pub fn get_collection_statistics(
        &self,
        collection_id: CollectionId,
    ) -> MilvusResult<Vec<KeyValuePair>> {
        let rows = self.meta.collection_row_count(collection_id);
        Ok(vec![row_count(rows)])
    }

    /// GetPartitionStatistics: as above for the listed partitions (none = whole collection).
    pub fn get_partition_statistics(
        &self,
        collection_id: CollectionId,
        partitions: &[PartitionId],
    ) -> MilvusResult<Vec<KeyValuePair>> {
        let rows = if partitions.is_empty() {
            self.meta.collection_row_count(collection_id)
        } else {
            partitions
                .iter()
                .map(|p| self.meta.partition_row_count(collection_id, *p))
                .sum()
        };
        Ok(vec![row_count(rows)])
    }

    /// GetFlushedSegments: Flushing/Flushed IDs (plus Dropped when asked); partition < 0 = all.
    pub fn get_flushed_segments(
        &self,
        collection_id: CollectionId,
        partition_id: PartitionId,
        include_unhealthy: bool,
    ) -> MilvusResult<Vec<SegmentId>> {
        Ok(self
            .meta
            .segments_of_collection(collection_id)
            .iter()
            .filter(|s| partition_id < 0 || s.partition_id == partition_id)
            .filter(|s| {
                is_flush_state(s.state())
                    || (include_unhealthy && s.state == SegmentState::Dropped as i32)
            })
            .map(|s| s.id)
            .collect())
    }

    /// GetSegmentsByStates: healthy segments in any of `states`; partition < 0 = all.
    pub fn get_segments_by_states(
        &self,
        collection_id: CollectionId,
        partition_id: PartitionId,
        states: &[i32],
    ) -> MilvusResult<Vec<SegmentId>> {
        Ok(self
            .meta
            .segments_of_collection(collection_id)
            .iter()
            .filter(|s| partition_id < 0 || s.partition_id == partition_id)
            .filter(|s| is_healthy(s.state()) && states.contains(&s.state))
            .map(|s| s.id)
            .collect())
    }

    /// GetFlushState: the listed segments are flushed and every assigned channel's checkpoint
    /// passed `flush_ts`.
    pub fn get_flush_state(&self, request: &GetFlushStateRequest) -> MilvusResult<bool> {
        let unflushed = request.segment_i_ds.iter().any(|id| {
            self.meta
                .healthy_segment(*id)
                .is_some_and(|s| !is_flush_state(s.state()))
        });
        if unflushed {
            return Ok(false);
        }
        let channels = self.channels.channels_of_collection(request.collection_id);
        Ok(channels.iter().all(|(_, channel)| {
            self.meta
                .channel_checkpoint(channel)
                .is_some_and(|cp| cp.timestamp >= request.flush_ts)
        }))
    }

    /// GetFlushAllState: every channel of every collection (of `db_name`, when given) has a
    /// checkpoint at or after `flush_all_ts`.
    pub async fn get_flush_all_state(
        &self,
        db_name: &str,
        flush_all_ts: u64,
    ) -> MilvusResult<bool> {
        let mut databases = self.broker.list_databases().await?;
        if !db_name.is_empty() {
            // 2.3.5 validates the name but then checks every database; we check the one asked for.
            databases.retain(|d| d == db_name);
            if databases.is_empty() {
                return Err(
                    MilvusError::new(ErrorCode::DATABASE_NOT_FOUND).with_field("database", db_name)
                );
            }
        }
        for database in databases {
            for collection_id in self.broker.show_collections(&database).await? {
                let described = self
                    .broker
                    .describe_collection_internal(collection_id)
                    .await?;
                for channel in described.virtual_channel_names {
                    let flushed = self
                        .meta
                        .channel_checkpoint(&channel)
                        .is_some_and(|cp| cp.timestamp >= flush_all_ts);
                    if !flushed {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    }

    /// Whether a segment's build of the live index on `vector_field` (the collection's first
    /// vector field) is Finished. No schema or no index means not indexed.
    fn segment_indexed(&self, vector_field: Option<FieldId>, segment: &SegmentInfo) -> bool {
        let Some(field_id) = vector_field else {
            return false;
        };
        self.index_meta
            .segment_indexed(segment.collection_id, segment.id, field_id)
    }

    /// The first vector field of a cached collection's schema (the field recovery's index
    /// check looks at).
    fn vector_field(&self, collection_id: CollectionId) -> Option<FieldId> {
        let info = self.collections.cached(collection_id)?;
        first_vector_field(info.schema.as_ref()?)
    }

    /// GetRecoveryInfoV2 (querycoord's target refresh): channels as assigned to datanodes, and
    /// minimal infos of the flushed segments to load.
    pub async fn get_recovery_info_v2(
        &self,
        request: GetRecoveryInfoRequestV2,
    ) -> MilvusResult<GetRecoveryInfoResponseV2> {
        let collection_id = request.collection_id;
        info!(collection_id, partitions = ?request.partition_i_ds, "get recovery info request received");
        // Prime the cache: the seek position may fall back to the collection start position.
        let _ = self.collections.get(collection_id).await;
        let vector_field = self.vector_field(collection_id);
        let mut channels = Vec::new();
        let mut flushed = BTreeSet::new();
        // Flushed IDs come from these segments; reuse them instead of reading each one again.
        let mut known: HashMap<SegmentId, Arc<SegmentInfo>> = HashMap::new();
        for (_, name) in self.channels.channels_of_collection(collection_id) {
            let segments = handler::recovery_segments(&self.meta, &name, &request.partition_i_ds);
            let info = handler::query_vchan_positions(
                &self.meta,
                &self.collections,
                ChannelRef::bare(&name, collection_id),
                &segments,
                &|s| self.segment_indexed(vector_field, s),
                self.min_rows_to_index,
            );
            flushed.extend(info.flushed_segment_ids.iter().copied());
            known.extend(segments.into_iter().map(|s| (s.id, s)));
            channels.push(info);
        }
        let mut segments = Vec::with_capacity(flushed.len());
        for id in flushed {
            let segment = known
                .remove(&id)
                .or_else(|| self.meta.segment(id))
                .ok_or_else(|| MilvusError::segment_not_found(id))?;
            if !(is_flush_state(segment.state()) || segment.state == SegmentState::Dropped as i32)
                || segment.is_importing
            {
                continue;
            }
            if segment.binlogs.is_empty() {
                continue;
            }
            let rows = binlog_row_count(&segment);
            segments.push(SegmentInfo {
                id,
                partition_id: segment.partition_id,
                collection_id: segment.collection_id,
                insert_channel: segment.insert_channel.clone(),
                num_of_rows: if rows > 0 && rows != segment.num_of_rows {
                    rows
                } else {
                    segment.num_of_rows
                },
                ..Default::default()
            });
        }
        Ok(GetRecoveryInfoResponseV2 {
            status: success(),
            channels,
            segments,
        })
    }

    /// GetRecoveryInfo (V1, querycoord's fallback): channels from RootCoord, binlogs included.
    pub async fn get_recovery_info(
        &self,
        request: GetRecoveryInfoRequest,
    ) -> MilvusResult<GetRecoveryInfoResponse> {
        let collection_id = request.collection_id;
        let described = self
            .broker
            .describe_collection_internal(collection_id)
            .await?;
        let _ = self.collections.get(collection_id).await;
        let vector_field = self.vector_field(collection_id);
        let root = self.storage_root.as_str();
        let partitions = [request.partition_id];
        let mut channels = Vec::new();
        let mut flushed = BTreeSet::new();
        // Flushed IDs come from these segments; reuse them instead of reading each one again.
        let mut known: HashMap<SegmentId, Arc<SegmentInfo>> = HashMap::new();
        for name in &described.virtual_channel_names {
            let segments = handler::recovery_segments(&self.meta, name, &partitions);
            let info = handler::query_vchan_positions(
                &self.meta,
                &self.collections,
                ChannelRef::bare(name, collection_id),
                &segments,
                &|s| self.segment_indexed(vector_field, s),
                self.min_rows_to_index,
            );
            flushed.extend(info.flushed_segment_ids.iter().copied());
            known.extend(segments.into_iter().map(|s| (s.id, s)));
            channels.push(info);
        }
        let mut binlogs = Vec::with_capacity(flushed.len());
        for id in flushed {
            let segment = known
                .remove(&id)
                .or_else(|| self.meta.segment(id))
                .ok_or_else(|| MilvusError::segment_not_found(id))?;
            if !(is_flush_state(segment.state()) || segment.state == SegmentState::Dropped as i32)
                || segment.is_importing
                || segment.is_fake
                || segment.binlogs.is_empty()
            {
                continue;
            }
            let full = with_full_paths(&segment, root);
            let rows = binlog_row_count(&segment);
            binlogs.push(SegmentBinlogs {
                segment_id: id,
                field_binlogs: group_by_field(&full.binlogs),
                num_of_rows: if rows > 0 && rows != segment.num_of_rows {
                    rows
                } else {
                    segment.num_of_rows
                },
                statslogs: group_by_field(&full.statslogs),
                deltalogs: full.deltalogs,
                insert_channel: segment.insert_channel.clone(),
            });
        }
        Ok(GetRecoveryInfoResponse {
            status: success(),
            channels,
            binlogs,
        })
    }

    /// BroadcastAlteredCollection (RootCoord): refresh the cached collection.
    pub fn broadcast_altered_collection(
        &self,
        request: AlterCollectionRequest,
    ) -> MilvusResult<()> {
        self.collections.apply_altered(CollectionInfo {
            id: request.collection_id,
            schema: request.schema,
            start_positions: request.start_positions,
            properties: request.properties,
            created_at: 0,
        });
        Ok(())
    }

    /// GcConfirm (RootCoord): true once no segment key of the collection (partition) is left.
    pub async fn gc_confirm(
        &self,
        collection_id: CollectionId,
        partition_id: PartitionId,
    ) -> MilvusResult<bool> {
        Ok(self.meta.gc_confirm(collection_id, partition_id).await?)
    }
}

fn row_count(rows: i64) -> KeyValuePair {
    KeyValuePair {
        key: "row_count".to_string(),
        value: rows.to_string(),
    }
}
