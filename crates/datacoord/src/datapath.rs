//! [`DataPath`]: the write side of the data path (channels, allocation, time ticks, binlogs,
//! flush) and the segment-state admin RPCs.

use std::collections::BTreeMap;
use std::sync::Arc;

use datacoord_cluster::ChannelSpec;
use datacoord_meta::{
    BinlogUpdate, DroppedSegment, LogKind, LogOwner, Meta, check_pchannel_name,
    check_reported_logs, check_vchannel,
};
use datacoord_segments::SegmentManager;
use milvus_proto::common::SegmentState;
use milvus_proto::data::{
    AssignSegmentIdRequest, DropVirtualChannelRequest, DropVirtualChannelSegment, FieldBinlog,
    FlushRequest, FlushResponse, ReportDataNodeTtMsgsRequest, SaveBinlogPathsRequest,
    SegmentIdAssignment, SegmentInfo, UpdateChannelCheckpointRequest,
    UpdateSegmentStatisticsRequest, WatchChannelsRequest,
};
use milvus_rootcoord_client::Allocator;
use milvus_types::{Backoff, ErrorCode, MilvusError, MilvusResult, NodeId, SegmentId, parse_ts};
use prometheus::GaugeVec;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::background::Background;
use crate::channels::Channels;
use crate::collections::Collections;
use crate::datanodes::{self, DataNodes};

/// Flush → FlushChannels attempts (2.3.5: 60 with `retry.Do`'s backoff, about three minutes).
const FLUSH_CHANNELS_ATTEMPTS: u32 = 60;

fn source_id(base: &Option<milvus_proto::common::MsgBase>) -> NodeId {
    base.as_ref().map(|b| b.source_id).unwrap_or_default()
}

/// The data-path RPCs DataNodes, proxies and RootCoord send: WatchChannels, AssignSegmentID,
/// Flush, ReportDataNodeTtMsgs, UpdateSegmentStatistics, UpdateChannelCheckpoint,
/// SaveBinlogPaths, DropVirtualChannel, SetSegmentState, MarkSegmentsDropped.
pub struct DataPath {
    pub(crate) node_id: NodeId,
    pub(crate) meta: Arc<Meta>,
    pub(crate) segments: Arc<SegmentManager>,
    pub(crate) channels: Arc<dyn Channels>,
    pub(crate) datanodes: Arc<dyn DataNodes>,
    pub(crate) allocator: Arc<dyn Allocator>,
    pub(crate) collections: Arc<Collections>,
    /// Segments whose binlogs were saved with `flushed`, on their way to Flushed.
    pub(crate) flush_tx: mpsc::Sender<SegmentId>,
    /// Where the fire-and-forget FlushSegments calls run.
    pub(crate) background: Background,
    /// `milvus_datacoord_consume_datanode_tt_lag_ms`.
    pub(crate) tt_lag: GaugeVec,
    /// The chunk manager's root: reported log paths must lie under it (`check_reported_logs`).
    pub(crate) storage_root: String,
}

impl DataPath {
    /// WatchChannels (RootCoord, at collection creation): assign each channel, then mark it
    /// existing. Stops at the first failure; earlier channels stay watched, as in 2.3.5.
    pub async fn watch_channels(&self, request: WatchChannelsRequest) -> MilvusResult<()> {
        info!(
            collection_id = request.collection_id,
            channels = ?request.channel_names,
            "receive watch channels request"
        );
        check_watch_request(&request)?;
        for name in &request.channel_names {
            let spec = ChannelSpec {
                name: name.clone(),
                collection_id: request.collection_id,
                start_positions: request.start_positions.clone(),
                schema: request.schema.clone(),
                create_timestamp: request.create_timestamp,
            };
            self.channels
                .watch(spec)
                .await
                .map_err(|e| e.wrap(format!("watch channel {name}")))?;
            self.meta.mark_channel_added(name).await?;
            info!(channel = %name, "NON remove flag tombstone added");
        }
        Ok(())
    }

    /// AssignSegmentID: rows for proxies (and import tasks). A request that cannot be served is
    /// left out of the answer; the call itself succeeds, as 2.3.5 does.
    pub async fn assign_segment_id(
        &self,
        request: AssignSegmentIdRequest,
    ) -> MilvusResult<Vec<SegmentIdAssignment>> {
        // Each request may start a watch of its channel: nothing is watched unless all are sound.
        for r in &request.segment_id_requests {
            check_vchannel(&r.channel_name, r.collection_id)?;
            if r.partition_id < 0 {
                return Err(MilvusError::parameter_invalid(
                    "a partition ID ≥ 0",
                    r.partition_id,
                ));
            }
        }
        let mut assignments = Vec::with_capacity(request.segment_id_requests.len());
        for r in request.segment_id_requests {
            let collection = match self.collections.get(r.collection_id).await {
                Ok(collection) => Some(collection),
                Err(err) => {
                    warn!(collection_id = r.collection_id, error = %err, "cannot get collection schema");
                    None
                }
            };
            let spec = ChannelSpec {
                name: r.channel_name.clone(),
                collection_id: r.collection_id,
                start_positions: Vec::new(),
                schema: collection.as_ref().and_then(|c| c.schema.clone()),
                create_timestamp: 0,
            };
            if let Err(err) = self.channels.watch(spec).await {
                warn!(channel = %r.channel_name, error = %err, "watch channel on assign failed");
            }
            let Some(schema) = collection.as_ref().and_then(|c| c.schema.as_ref()) else {
                continue;
            };
            let allocations = if r.is_import {
                self.segments
                    .alloc_import_segment(
                        r.collection_id,
                        r.partition_id,
                        &r.channel_name,
                        i64::from(r.count),
                        r.import_task_id,
                        schema,
                    )
                    .await
                    .map(|a| vec![a])
            } else {
                self.segments
                    .alloc_segment(
                        r.collection_id,
                        r.partition_id,
                        &r.channel_name,
                        i64::from(r.count),
                        schema,
                    )
                    .await
            };
            match allocations {
                Ok(allocations) => {
                    assignments.extend(allocations.into_iter().map(|a| SegmentIdAssignment {
                        seg_id: a.segment_id,
                        channel_name: r.channel_name.clone(),
                        count: a.num_of_rows as u32,
                        collection_id: r.collection_id,
                        partition_id: r.partition_id,
                        expire_time: a.expire_time,
                        status: Some(milvus_types::Status::default()),
                    }))
                }
                Err(err) => {
                    warn!(
                        collection_id = r.collection_id,
                        partition_id = r.partition_id,
                        channel = %r.channel_name,
                        error = %err,
                        "failed to alloc segment"
                    );
                }
            }
        }
        Ok(assignments)
    }

    /// Flush: seal the collection's segments and ask its datanodes to flush their channels up
    /// to a fresh timestamp. Segments become Flushed later, through the time-tick path.
    pub async fn flush(&self, request: FlushRequest) -> MilvusResult<FlushResponse> {
        let collection_id = request.collection_id;
        info!(
            collection_id,
            db_id = request.db_id,
            is_import = request.is_import,
            "receive flush request"
        );
        let ts = self.allocator.alloc_timestamp().await?;
        let (physical_ms, _) = parse_ts(ts);
        let sealed = self
            .segments
            .seal_all_segments(collection_id, &request.segment_i_ds, request.is_import)
            .await
            .map_err(|e| e.wrap(format!("failed to flush collection {collection_id}")))?;
        let flushing: Vec<SegmentId> = self
            .meta
            .segments_of_collection(collection_id)
            .iter()
            .filter(|s| datacoord_meta::is_flush_state(s.state()) && !sealed.contains(&s.id))
            .map(|s| s.id)
            .collect();
        let flushed_channels = milvus_types::retry(
            Backoff::RETRY_DO,
            || self.flush_channels_once(collection_id, ts),
            |err, attempt| {
                if err.code() == ErrorCode::SERVICE_UNIMPLEMENTED
                    || attempt >= FLUSH_CHANNELS_ATTEMPTS
                {
                    return false;
                }
                info!(collection_id, attempt, error = %err, "flush channels failed, retrying");
                true
            },
        )
        .await;
        let flush_ts = match flushed_channels {
            Ok(()) => ts,
            Err(err) if err.code() == ErrorCode::SERVICE_UNIMPLEMENTED => {
                warn!(
                    collection_id,
                    "datanode has no FlushChannels, flush_ts set to 0"
                );
                0
            }
            Err(err) => return Err(err),
        };
        info!(collection_id, sealed = ?sealed, flushing = ?flushing, flush_ts, "flush response with segments");
        Ok(FlushResponse {
            status: Some(milvus_types::Status::default()),
            db_id: request.db_id,
            collection_id,
            segment_i_ds: sealed,
            flush_segment_i_ds: flushing,
            time_of_seal: (physical_ms / 1000) as i64,
            flush_ts,
        })
    }

    async fn flush_channels_once(&self, collection_id: i64, ts: u64) -> MilvusResult<()> {
        let mut by_node: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
        for (node, channel) in self.channels.channels_of_collection(collection_id) {
            by_node.entry(node).or_default().push(channel);
        }
        for (node, channels) in by_node {
            if let Some(channel) = channels.iter().find(|c| !self.channels.matches(node, c)) {
                return Err(MilvusError::channel_not_found(channel));
            }
            datanodes::flush_channels(self.datanodes.as_ref(), self.node_id, node, ts, channels)
                .await?;
        }
        Ok(())
    }

    /// ReportDataNodeTtMsgs: each datanode's time tick per channel drives allocation expiry,
    /// sealing and FlushSegments for that channel.
    pub async fn report_datanode_tt_msgs(
        &self,
        request: ReportDataNodeTtMsgsRequest,
    ) -> MilvusResult<()> {
        for msg in request.msgs {
            let node = source_id(&msg.base);
            let channel = msg.channel_name;
            if !self.channels.matches(node, &channel) {
                warn!(node_id = node, %channel, "node is not matched with channel");
                continue;
            }
            let lag_ms = {
                let (physical_ms, _) = parse_ts(msg.timestamp);
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis() as i64;
                now_ms - physical_ms as i64
            };
            self.tt_lag
                .with_label_values(&[
                    &self.node_id.to_string(),
                    crate::handler::physical_channel(&channel),
                ])
                .set(lag_ms as f64);
            let stats: Vec<(SegmentId, i64)> = msg
                .segments_stats
                .iter()
                .map(|s| (s.segment_id, s.num_rows))
                .collect();
            self.segments.update_segment_stats(&stats);
            let flushable = self
                .segments
                .flushable_on_tick(&channel, msg.timestamp)
                .await
                .map_err(|e| {
                    MilvusError::new(ErrorCode::SERVICE_INTERNAL)
                        .with_desc(format!("fail to handle Datanode Timetick Msg: {e}"))
                })?;
            let segments: Vec<_> = flushable
                .iter()
                .filter_map(|id| self.meta.healthy_segment(*id))
                .collect();
            let Some(first) = segments.first() else {
                continue;
            };
            let collection_id = first.collection_id;
            let ids: Vec<SegmentId> = segments.iter().map(|s| s.id).collect();
            info!(node_id = node, %channel, segments = ?ids, "start flushing segments");
            let datanodes = self.datanodes.clone();
            let datacoord_id = self.node_id;
            // Fire and forget: a lost FlushSegments is re-sent on a later tick while still Sealed.
            self.background.spawn(async move {
                if let Err(err) = datanodes::flush_segments(
                    datanodes.as_ref(),
                    datacoord_id,
                    node,
                    collection_id,
                    &channel,
                    ids,
                )
                .await
                {
                    warn!(node_id = node, %channel, error = %err, "flush segments failed");
                }
            });
        }
        Ok(())
    }

    /// UpdateSegmentStatistics: row counts seen by datanodes (memory only).
    pub fn update_segment_statistics(
        &self,
        request: UpdateSegmentStatisticsRequest,
    ) -> MilvusResult<()> {
        let stats: Vec<(SegmentId, i64)> = request
            .stats
            .iter()
            .map(|s| (s.segment_id, s.num_rows))
            .collect();
        self.segments.update_segment_stats(&stats);
        Ok(())
    }

    /// UpdateChannelCheckpoint: the channel's consumed position only moves forward.
    pub async fn update_channel_checkpoint(
        &self,
        request: UpdateChannelCheckpointRequest,
    ) -> MilvusResult<()> {
        let position = request
            .position
            .ok_or_else(|| MilvusError::parameter_invalid("a position", "none"))?;
        self.meta
            .update_channel_checkpoint(&request.v_channel, position)
            .await?;
        Ok(())
    }

    /// SaveBinlogPaths: a datanode synced (or flushed, or dropped) a segment.
    pub async fn save_binlog_paths(&self, request: SaveBinlogPathsRequest) -> MilvusResult<()> {
        let node = source_id(&request.base);
        let segment_id = request.segment_id;
        info!(
            node_id = node,
            collection_id = request.collection_id,
            segment_id,
            flushed = request.flushed,
            dropped = request.dropped,
            "receive SaveBinlogPaths request"
        );
        if !request.importing && !self.channels.matches(node, &request.channel) {
            return Err(MilvusError::channel_not_found(&request.channel).with_field("node", node));
        }
        let Some(segment) = self.meta.segment(segment_id) else {
            return Err(MilvusError::segment_not_found(segment_id));
        };
        self.check_binlog_request(&request, &segment)?;
        if segment.state == SegmentState::Dropped as i32 {
            info!(segment_id, "save binlogs of a dropped segment ignored");
            return Ok(());
        }
        if !datacoord_meta::is_healthy(segment.state()) {
            return Err(MilvusError::segment_not_found(segment_id));
        }
        if request.dropped {
            self.segments.drop_segment(segment_id);
        }
        let update = BinlogUpdate {
            segment_id,
            flushed: request.flushed,
            dropped: request.dropped,
            importing: request.importing,
            import_rows: self.segments.curr_rows(segment_id),
            binlogs: request.field2_binlog_paths,
            statslogs: request.field2_statslog_paths,
            deltalogs: request.deltalogs,
            checkpoints: request.check_points,
            start_positions: request.start_positions,
        };
        self.meta.save_binlog_paths(update).await?;
        info!(segment_id, "flush segment with meta");
        if request.flushed {
            self.segments.drop_segment(segment_id);
            self.enqueue_flushed(segment_id);
        }
        Ok(())
    }

    fn enqueue_flushed(&self, segment_id: SegmentId) {
        if let Err(err) = self.flush_tx.try_send(segment_id) {
            // The startup scan picks Flushing segments up again, so nothing is lost; but say so.
            warn!(segment_id, error = %err, "flush queue full or closed; segment stays Flushing until restart");
        }
    }

    /// DropVirtualChannel (datanode, after a drop-collection message): every segment of the
    /// channel becomes Dropped, the channel is marked removed and released.
    pub async fn drop_virtual_channel(
        &self,
        request: DropVirtualChannelRequest,
    ) -> MilvusResult<()> {
        let node = source_id(&request.base);
        let channel = request.channel_name;
        info!(node_id = node, %channel, "receive DropVirtualChannel request");
        if !self.channels.matches(node, &channel) {
            return Err(MilvusError::channel_not_found(&channel).with_field("node", node));
        }
        self.check_dropped_segments(&channel, &request.segments)?;
        let reported = request
            .segments
            .into_iter()
            .map(|s| DroppedSegment {
                segment_id: s.segment_id,
                binlogs: s.field2_binlog_paths,
                statslogs: s.field2_statslog_paths,
                deltalogs: s.deltalogs,
                start_position: s.start_position,
                checkpoint: s.check_point,
                num_of_rows: s.num_of_rows,
            })
            .collect();
        self.meta.drop_channel_segments(&channel, reported).await?;
        info!(%channel, "DropVChannel plan to remove");
        if let Err(err) = self.channels.release(node, &channel).await {
            warn!(node_id = node, %channel, error = %err, "release dropped channel failed");
        }
        self.segments.drop_segments_of_channel(&channel);
        info!(%channel, "DropChannel succeeded");
        Ok(())
    }

    /// SetSegmentState: no transition check (2.3.5 has none); persisted at once.
    pub async fn set_segment_state(&self, segment_id: SegmentId, state: i32) -> MilvusResult<()> {
        let state = SegmentState::try_from(state)
            .map_err(|_| MilvusError::parameter_invalid("a segment state", state))?;
        self.meta.set_state(segment_id, state).await?;
        Ok(())
    }

    /// MarkSegmentsDropped (deprecated): stops at the first failure.
    pub async fn mark_segments_dropped(&self, ids: &[SegmentId]) -> MilvusResult<()> {
        for id in ids {
            self.meta.set_state(*id, SegmentState::Dropped).await?;
            self.segments.drop_segment(*id);
        }
        Ok(())
    }
}

// Validation of what becomes a datanode's channel watch or a segment's logs (README "Rejected
// input"): a datanode dereferences the watch info it is handed, querynodes read and GC deletes
// the files the logs name.
impl DataPath {
    /// SaveBinlogPaths must come from the segment's own collection and, unless importing, its
    /// own channel; every log must be the segment's own file and start positions may only
    /// touch segments of that channel.
    fn check_binlog_request(
        &self,
        request: &SaveBinlogPathsRequest,
        segment: &SegmentInfo,
    ) -> MilvusResult<()> {
        if request.collection_id != segment.collection_id {
            return Err(MilvusError::parameter_invalid(
                format!("collection {}", segment.collection_id),
                format!("collection {}", request.collection_id),
            )
            .with_field("segment", segment.id));
        }
        if !request.importing && request.channel != segment.insert_channel {
            return Err(MilvusError::parameter_invalid(
                format!("channel {}", segment.insert_channel),
                format!("channel {:?}", request.channel),
            )
            .with_field("segment", segment.id));
        }
        for start in &request.start_positions {
            if let Some(other) = self.meta.segment(start.segment_id)
                && other.insert_channel != segment.insert_channel
            {
                return Err(MilvusError::parameter_invalid(
                    format!("start positions of channel {}", segment.insert_channel),
                    format!("segment {} of {}", other.id, other.insert_channel),
                ));
            }
        }
        self.check_logs(
            segment,
            &request.field2_binlog_paths,
            &request.field2_statslog_paths,
            &request.deltalogs,
        )
    }

    /// DropVirtualChannel may report only segments of the dropped channel, with their own logs.
    fn check_dropped_segments(
        &self,
        channel: &str,
        reported: &[DropVirtualChannelSegment],
    ) -> MilvusResult<()> {
        for report in reported {
            // Unknown segments are skipped by meta; known ones must be this channel's.
            let Some(segment) = self.meta.segment(report.segment_id) else {
                continue;
            };
            if segment.insert_channel != channel {
                return Err(MilvusError::parameter_invalid(
                    format!("segments of channel {channel}"),
                    format!("segment {} of {}", segment.id, segment.insert_channel),
                ));
            }
            self.check_logs(
                &segment,
                &report.field2_binlog_paths,
                &report.field2_statslog_paths,
                &report.deltalogs,
            )?;
        }
        Ok(())
    }

    fn check_logs(
        &self,
        segment: &SegmentInfo,
        binlogs: &[FieldBinlog],
        statslogs: &[FieldBinlog],
        deltalogs: &[FieldBinlog],
    ) -> MilvusResult<()> {
        let owner = LogOwner {
            collection_id: segment.collection_id,
            partition_id: segment.partition_id,
            segment_id: segment.id,
        };
        for (kind, logs) in [
            (LogKind::Insert, binlogs),
            (LogKind::Stats, statslogs),
            (LogKind::Delta, deltalogs),
        ] {
            check_reported_logs(&self.storage_root, owner, kind, logs).inspect_err(|err| {
                warn!(segment_id = segment.id, error = %err, "reported logs refused");
            })?;
        }
        Ok(())
    }
}

/// WatchChannels: what a datanode needs to start a flow graph on each channel, all checked
/// before any channel is watched.
fn check_watch_request(request: &WatchChannelsRequest) -> MilvusResult<()> {
    if request.channel_names.is_empty() {
        return Err(MilvusError::parameter_invalid("channel names", "none"));
    }
    let mut pchannels = Vec::with_capacity(request.channel_names.len());
    for (i, name) in request.channel_names.iter().enumerate() {
        check_vchannel(name, request.collection_id)?;
        if request.channel_names[..i].contains(name) {
            return Err(MilvusError::parameter_invalid(
                "distinct channel names",
                format!("{name} twice"),
            ));
        }
        pchannels.push(crate::handler::physical_channel(name));
    }
    let Some(schema) = &request.schema else {
        return Err(MilvusError::parameter_invalid(
            "a collection schema",
            "none",
        ));
    };
    let primary_keys = schema.fields.iter().filter(|f| f.is_primary_key).count();
    if primary_keys != 1 {
        return Err(MilvusError::parameter_invalid(
            "a schema with one primary key field",
            format!(
                "{} fields, {primary_keys} primary keys",
                schema.fields.len()
            ),
        ));
    }
    for position in &request.start_positions {
        check_pchannel_name(&position.key)?;
        if !pchannels.contains(&position.key.as_str()) {
            return Err(MilvusError::parameter_invalid(
                "start positions of the requested channels",
                format!("position for {}", position.key),
            ));
        }
    }
    Ok(())
}
