//! The write side of the data path: channels, allocation, time ticks, binlogs, flush.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use datacoord_cluster::ChannelSpec;
use datacoord_meta::{BinlogUpdate, DroppedSegment};
use milvus_proto::common::SegmentState;
use milvus_proto::data::{
    AssignSegmentIdRequest, DropVirtualChannelRequest, FlushRequest, FlushResponse,
    ReportDataNodeTtMsgsRequest, SaveBinlogPathsRequest, SegmentIdAssignment,
    UpdateChannelCheckpointRequest, UpdateSegmentStatisticsRequest, WatchChannelsRequest,
};
use milvus_types::{ErrorCode, MilvusError, MilvusResult, NodeId, SegmentId, parse_ts};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::datanodes;
use crate::server::{Active, Server};

/// Flush → FlushChannels attempts (2.3.5: 60, about three minutes).
const FLUSH_CHANNELS_ATTEMPTS: u32 = 60;
const FLUSH_CHANNELS_INITIAL_BACKOFF: Duration = Duration::from_millis(200);
const FLUSH_CHANNELS_MAX_BACKOFF: Duration = Duration::from_secs(3);
const POST_FLUSH_INITIAL_BACKOFF: Duration = Duration::from_millis(200);
const POST_FLUSH_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Capacity of the flush queue (2.3.5's flushCh).
pub(crate) const FLUSH_QUEUE: usize = 1024;

fn source_id(base: &Option<milvus_proto::common::MsgBase>) -> NodeId {
    base.as_ref().map(|b| b.source_id).unwrap_or_default()
}

impl Server {
    /// The active parts, or ServiceNotReady unless Healthy.
    pub(crate) fn healthy(&self) -> MilvusResult<&Active> {
        self.check_healthy()?;
        self.active
            .get()
            .ok_or_else(|| MilvusError::internal("datacoord is healthy but not initialised"))
    }

    /// WatchChannels (RootCoord, at collection creation): assign each channel, then mark it
    /// existing. Stops at the first failure; earlier channels stay watched, as in 2.3.5.
    pub async fn watch_channels(&self, request: WatchChannelsRequest) -> MilvusResult<()> {
        let active = self.healthy()?;
        info!(
            collection_id = request.collection_id,
            channels = ?request.channel_names,
            "receive watch channels request"
        );
        for name in &request.channel_names {
            let spec = ChannelSpec {
                name: name.clone(),
                collection_id: request.collection_id,
                start_positions: request.start_positions.clone(),
                schema: request.schema.clone(),
                create_timestamp: request.create_timestamp,
            };
            active
                .channels
                .watch(spec)
                .await
                .map_err(|e| MilvusError::from(e).wrap(format!("watch channel {name}")))?;
            active.meta.mark_channel_added(name).await?;
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
        let active = self.healthy()?;
        let mut assignments = Vec::with_capacity(request.segment_id_requests.len());
        for r in request.segment_id_requests {
            let collection = match active.collections.get(r.collection_id).await {
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
            if let Err(err) = active.channels.watch(spec).await {
                warn!(channel = %r.channel_name, error = %err, "watch channel on assign failed");
            }
            let Some(schema) = collection.as_ref().and_then(|c| c.schema.as_ref()) else {
                continue;
            };
            let allocations = if r.is_import {
                active
                    .segments
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
                active
                    .segments
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
        let active = self.healthy()?;
        let collection_id = request.collection_id;
        info!(
            collection_id,
            db_id = request.db_id,
            is_import = request.is_import,
            "receive flush request"
        );
        let ts = active.allocator.alloc_timestamp().await?;
        let (physical_ms, _) = parse_ts(ts);
        let sealed = active
            .segments
            .seal_all_segments(collection_id, &request.segment_i_ds, request.is_import)
            .await
            .map_err(|e| e.wrap(format!("failed to flush collection {collection_id}")))?;
        let flushing: Vec<SegmentId> = active
            .meta
            .segments_of_collection(collection_id)
            .iter()
            .filter(|s| datacoord_meta::is_flush_state(s.state()) && !sealed.contains(&s.id))
            .map(|s| s.id)
            .collect();
        let mut flush_ts = ts;
        let mut backoff = FLUSH_CHANNELS_INITIAL_BACKOFF;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.flush_channels_once(active, collection_id, ts).await {
                Ok(()) => break,
                Err(err) if err.code() == ErrorCode::SERVICE_UNIMPLEMENTED => {
                    warn!(
                        collection_id,
                        "datanode has no FlushChannels, flush_ts set to 0"
                    );
                    flush_ts = 0;
                    break;
                }
                Err(err) if attempt >= FLUSH_CHANNELS_ATTEMPTS => return Err(err),
                Err(err) => {
                    info!(collection_id, attempt, error = %err, "flush channels failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(FLUSH_CHANNELS_MAX_BACKOFF);
                }
            }
        }
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

    async fn flush_channels_once(
        &self,
        active: &Active,
        collection_id: i64,
        ts: u64,
    ) -> MilvusResult<()> {
        let mut by_node: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
        for (node, channel) in active.channels.channels_of_collection(collection_id) {
            by_node.entry(node).or_default().push(channel);
        }
        for (node, channels) in by_node {
            if let Some(channel) = channels.iter().find(|c| !active.channels.matches(node, c)) {
                return Err(MilvusError::channel_not_found(channel));
            }
            datanodes::flush_channels(&active.datanodes, self.server_id(), node, ts, channels)
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
        let active = self.healthy()?;
        for msg in request.msgs {
            let node = source_id(&msg.base);
            let channel = msg.channel_name;
            if !active.channels.matches(node, &channel) {
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
            self.metrics
                .datanode_tt_lag_ms
                .with_label_values(&[
                    &self.server_id().to_string(),
                    crate::handler::physical_channel(&channel),
                ])
                .set(lag_ms as f64);
            let stats: Vec<(SegmentId, i64)> = msg
                .segments_stats
                .iter()
                .map(|s| (s.segment_id, s.num_rows))
                .collect();
            active.segments.update_segment_stats(&stats);
            let flushable = active
                .segments
                .flushable_on_tick(&channel, msg.timestamp)
                .await
                .map_err(|e| {
                    MilvusError::new(ErrorCode::SERVICE_INTERNAL)
                        .with_desc(format!("fail to handle Datanode Timetick Msg: {e}"))
                })?;
            let segments: Vec<_> = flushable
                .iter()
                .filter_map(|id| active.meta.healthy_segment(*id))
                .collect();
            let Some(first) = segments.first() else {
                continue;
            };
            let collection_id = first.collection_id;
            let ids: Vec<SegmentId> = segments.iter().map(|s| s.id).collect();
            info!(node_id = node, %channel, segments = ?ids, "start flushing segments");
            let datanodes = active.datanodes.clone();
            let datacoord_id = self.server_id();
            // Fire and forget: a lost FlushSegments is re-sent on a later tick while still Sealed.
            self.spawn_task(async move {
                if let Err(err) = datanodes::flush_segments(
                    &datanodes,
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
        let active = self.healthy()?;
        let stats: Vec<(SegmentId, i64)> = request
            .stats
            .iter()
            .map(|s| (s.segment_id, s.num_rows))
            .collect();
        active.segments.update_segment_stats(&stats);
        Ok(())
    }

    /// UpdateChannelCheckpoint: the channel's consumed position only moves forward.
    pub async fn update_channel_checkpoint(
        &self,
        request: UpdateChannelCheckpointRequest,
    ) -> MilvusResult<()> {
        let active = self.healthy()?;
        let position = request
            .position
            .ok_or_else(|| MilvusError::parameter_invalid("a position", "none"))?;
        active
            .meta
            .update_channel_checkpoint(&request.v_channel, position)
            .await?;
        Ok(())
    }

    /// SaveBinlogPaths: a datanode synced (or flushed, or dropped) a segment.
    pub async fn save_binlog_paths(&self, request: SaveBinlogPathsRequest) -> MilvusResult<()> {
        let active = self.healthy()?;
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
        if !request.importing
            && !request.channel.is_empty()
            && !active.channels.matches(node, &request.channel)
        {
            return Err(MilvusError::channel_not_found(&request.channel).with_field("node", node));
        }
        let Some(segment) = active.meta.segment(segment_id) else {
            return Err(MilvusError::segment_not_found(segment_id));
        };
        if segment.state == SegmentState::Dropped as i32 {
            info!(segment_id, "save binlogs of a dropped segment ignored");
            return Ok(());
        }
        if !datacoord_meta::is_healthy(segment.state()) {
            return Err(MilvusError::segment_not_found(segment_id));
        }
        if request.dropped {
            active.segments.drop_segment(segment_id);
        }
        let update = BinlogUpdate {
            segment_id,
            flushed: request.flushed,
            dropped: request.dropped,
            importing: request.importing,
            import_rows: active.segments.curr_rows(segment_id),
            binlogs: request.field2_binlog_paths,
            statslogs: request.field2_statslog_paths,
            deltalogs: request.deltalogs,
            checkpoints: request.check_points,
            start_positions: request.start_positions,
        };
        active.meta.save_binlog_paths(update).await?;
        info!(segment_id, "flush segment with meta");
        if request.flushed {
            active.segments.drop_segment(segment_id);
            self.enqueue_flushed(active, segment_id);
        }
        Ok(())
    }

    fn enqueue_flushed(&self, active: &Active, segment_id: SegmentId) {
        if let Err(err) = active.flush_tx.try_send(segment_id) {
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
        let active = self.healthy()?;
        let node = source_id(&request.base);
        let channel = request.channel_name;
        info!(node_id = node, %channel, "receive DropVirtualChannel request");
        if !active.channels.matches(node, &channel) {
            return Err(MilvusError::channel_not_found(&channel).with_field("node", node));
        }
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
        active
            .meta
            .drop_channel_segments(&channel, reported)
            .await?;
        info!(%channel, "DropVChannel plan to remove");
        if let Err(err) = active.channels.release(node, &channel).await {
            warn!(node_id = node, %channel, error = %err, "release dropped channel failed");
        }
        active.segments.drop_segments_of_channel(&channel);
        info!(%channel, "DropChannel succeeded");
        Ok(())
    }
}

/// The flush loop: a segment whose binlogs were saved with `flushed` goes Flushing → Flushed.
/// Flushing segments found at start-up are re-queued first, so a crash between the two states
/// never strands a segment.
pub(crate) async fn run_flush_loop(
    server: Arc<Server>,
    mut rx: mpsc::Receiver<SegmentId>,
    token: CancellationToken,
) {
    let Some(active) = server.active.get() else {
        return;
    };
    let pending: Vec<SegmentId> = active
        .meta
        .segments_in_states(&[SegmentState::Flushing])
        .iter()
        .map(|s| s.id)
        .collect();
    for segment_id in pending {
        post_flush(active, segment_id, &token).await;
    }
    loop {
        let segment_id = tokio::select! {
            _ = token.cancelled() => return,
            next = rx.recv() => match next {
                Some(id) => id,
                None => return,
            },
        };
        post_flush(active, segment_id, &token).await;
    }
}

async fn post_flush(active: &Active, segment_id: SegmentId, token: &CancellationToken) {
    let mut backoff = POST_FLUSH_INITIAL_BACKOFF;
    loop {
        match active
            .meta
            .set_state(segment_id, SegmentState::Flushed)
            .await
        {
            Ok(()) => {
                if let Some(segment) = active.meta.segment(segment_id) {
                    active
                        .flushed_rows
                        .inc_by(segment.num_of_rows.max(0) as u64);
                }
                info!(segment_id, "flush segment done");
                active.index_builder.on_segment_flushed(segment_id);
                return;
            }
            Err(err) => {
                // The segment stays Flushing (and is re-queued at the next start) until this
                // write lands; keep trying while the store is unavailable.
                warn!(segment_id, error = %MilvusError::from(err), "post flush failed, retrying");
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(POST_FLUSH_MAX_BACKOFF);
            }
        }
    }
}
