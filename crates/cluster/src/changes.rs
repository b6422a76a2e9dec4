//! The assignment changes, each run under the operation lock: node join/leave, watch, release,
//! reassign, datanode answers and timeouts, background balance.

use milvus_proto::data::ChannelWatchState;
use milvus_types::NodeId;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::BUFFER_NODE;
use crate::error::{ClusterError, ClusterResult};
use crate::manager::{ChannelManager, OpState};
use crate::policy::{self, Registration};
use crate::record::{self, Ack};
use crate::store::{ChannelOp, ChannelSpec};
use crate::timers::TimerKind;

fn names(channels: &[ChannelSpec]) -> Vec<&str> {
    channels
        .iter()
        .map(|channel| channel.name.as_str())
        .collect()
}

fn describe(ops: &[ChannelOp]) -> String {
    ops.iter()
        .map(|op| format!("{:?}({}: {:?})", op.kind, op.node, names(&op.channels)))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ChannelManager {
    pub(crate) async fn add_node_locked(
        &self,
        op_state: &mut OpState,
        node: NodeId,
    ) -> ClusterResult<()> {
        if node == BUFFER_NODE {
            warn!(
                node_id = node,
                "the buffer node id is not a datanode, ignored"
            );
            return Ok(());
        }
        let registration = {
            let mut store = self.write_store();
            store.add_node(node);
            policy::register(&store, node)
        };
        match registration {
            Registration::Buffered(ops) => {
                info!(node_id = node, updates = %describe(&ops), "register node, taking buffered channels");
                self.update_with_timer(op_state, ops, ChannelWatchState::ToWatch)
                    .await
            }
            _ if !self.config.auto_balance => {
                info!(
                    node_id = node,
                    "auto balance disabled, skip reassignment for balance"
                );
                Ok(())
            }
            Registration::Balance(ops) => {
                info!(node_id = node, updates = %describe(&ops), "register node, releasing channels for balance");
                self.update_with_timer(op_state, ops, ChannelWatchState::ToRelease)
                    .await
            }
            Registration::Nothing => {
                info!(node_id = node, "register node with no reassignment");
                Ok(())
            }
        }
    }

    pub(crate) async fn delete_node_locked(
        &self,
        op_state: &mut OpState,
        node: NodeId,
    ) -> ClusterResult<()> {
        let (channels, ops) = {
            let store = self.read_store();
            if node == BUFFER_NODE || !store.has_node(node) {
                return Ok(());
            }
            let channels = store.channels_of(node).to_vec();
            (channels, policy::deregister(&store, node))
        };
        // We have no MQ client; a Go DataCoord would unsubscribe the node's subscriptions here.
        info!(node_id = node, channels = ?names(&channels),
            "mq unsubscribe of the deregistered node skipped (no mq client)");
        info!(node_id = node, updates = %describe(&ops), "deregister node");
        {
            let mut timers = self.lock_timers();
            for channel in &channels {
                timers.stop(&channel.name);
            }
        }
        self.update_with_timer(op_state, ops, ChannelWatchState::ToWatch)
            .await?;
        self.kv
            .remove_with_prefix(&record::node_prefix(&self.config.watch_subpath, node))
            .await?;
        self.write_store().remove_node(node);
        Ok(())
    }

    pub(crate) async fn watch_locked(
        &self,
        op_state: &mut OpState,
        spec: ChannelSpec,
    ) -> ClusterResult<()> {
        let ops = policy::assign(&self.read_store(), std::slice::from_ref(&spec));
        if ops.is_empty() {
            debug!(channel = %spec.name, "channel already assigned, watch is a no-op");
            return Ok(());
        }
        info!(channel = %spec.name, collection_id = spec.collection_id, updates = %describe(&ops),
            "try to update channel watch info with ToWatch state");
        let result = self
            .update_with_timer(op_state, ops, ChannelWatchState::ToWatch)
            .await;
        if let Err(err) = &result {
            warn!(channel = %spec.name, error = %err, "fail to update channel watch info with ToWatch state");
        }
        result
    }

    pub(crate) async fn release_locked(
        &self,
        op_state: &mut OpState,
        node: NodeId,
        channel: &str,
    ) -> ClusterResult<()> {
        let spec = self
            .read_store()
            .get(node, channel)
            .cloned()
            .ok_or_else(|| Self::not_found(node, channel))?;
        self.update_with_timer(
            op_state,
            vec![ChannelOp::add(node, vec![spec])],
            ChannelWatchState::ToRelease,
        )
        .await
    }

    /// Moves a released channel off `origin` (Go's Reassign, or CleanupAndReassign when
    /// `cleanup`): a channel marked removed is just unassigned and its drop finished; otherwise
    /// AverageReassignPolicy, falling back to `origin` itself when it is the only datanode.
    pub(crate) async fn reassign_locked(
        &self,
        op_state: &mut OpState,
        origin: NodeId,
        channel: &str,
        cleanup: bool,
    ) -> ClusterResult<()> {
        let spec = self
            .read_store()
            .get(origin, channel)
            .cloned()
            .ok_or_else(|| Self::not_found(origin, channel))?;
        if cleanup {
            info!(
                node_id = origin,
                channel,
                collection_id = spec.collection_id,
                "mq unsubscribe before reassign skipped (no mq client)"
            );
        }
        if self.provider.should_drop(channel) {
            info!(
                node_id = origin,
                channel,
                collection_id = spec.collection_id,
                "remove channel assignment"
            );
            self.write_ops(
                &[ChannelOp::delete(origin, vec![spec])],
                ChannelWatchState::ToWatch,
            )
            .await?;
            self.provider.finish_drop(channel).await.map_err(|source| {
                ClusterError::FinishDrop {
                    channel: channel.to_string(),
                    source,
                }
            })?;
            info!(channel, "removed channel assignment");
            return Ok(());
        }
        let ops = {
            let store = self.read_store();
            policy::reassign(&store, origin, std::slice::from_ref(&spec))
        };
        let ops = match ops {
            Some(ops) => ops,
            None => {
                warn!(
                    node_id = origin,
                    channel,
                    "failed to reassign channel to other nodes, assigning to the original datanode"
                );
                vec![ChannelOp::add(origin, vec![spec])]
            }
        };
        info!(old_node_id = origin, updates = %describe(&ops), "channel manager reassigning channels");
        self.update_with_timer(op_state, ops, ChannelWatchState::ToWatch)
            .await
    }

    /// Reacts to a datanode answer or an expired timer (Go's processAck).
    pub(crate) async fn process_ack(
        &self,
        op_state: &mut OpState,
        ack: Ack,
        node: NodeId,
        channel: &str,
    ) {
        if !ack.is_timeout() {
            let mut timers = self.lock_timers();
            // An answer stops the channel's timer only when that timer waits on the answering
            // node: a late answer from a node the channel already left must not cancel the
            // timer of its new node.
            if timers.node_of(channel) == Some(node) {
                timers.stop(channel);
            }
        }
        let outcome = match ack {
            Ack::Invalid => {
                warn!(node_id = node, channel, "detected invalid ack");
                Ok(())
            }
            Ack::WatchSuccess => {
                info!(
                    node_id = node,
                    channel, "datanode successfully watched channel"
                );
                Ok(())
            }
            Ack::WatchFailure | Ack::WatchTimeout => {
                warn!(
                    node_id = node,
                    channel,
                    ?ack,
                    "datanode watch channel failed or timeout, will release"
                );
                self.release_locked(op_state, node, channel).await
            }
            Ack::ReleaseFailure | Ack::ReleaseTimeout => {
                warn!(
                    node_id = node,
                    channel,
                    ?ack,
                    "datanode release channel failed or timeout, will cleanup and reassign"
                );
                self.reassign_locked(op_state, node, channel, true).await
            }
            Ack::ReleaseSuccess => {
                info!(
                    node_id = node,
                    channel, "datanode release channel successfully, will reassign"
                );
                self.reassign_locked(op_state, node, channel, false).await
            }
        };
        if let Err(err) = outcome {
            warn!(node_id = node, channel, ?ack, error = %err, "fail to respond to channel ack");
        }
    }

    /// A PUT on a watch record, from the live watch or a re-list.
    pub(crate) async fn handle_record(&self, key: &str, value: &[u8]) {
        let info = match record::decode(key, value) {
            Ok(info) => info,
            Err(err) => {
                warn!(error = %err, "fail to parse watch info");
                return;
            }
        };
        let channel = info
            .vchan
            .map(|vchan| vchan.channel_name)
            .unwrap_or_default();
        if record::is_running_state(info.state) {
            if self.lock_timers().reset(&channel) {
                debug!(channel = %channel, progress = info.progress, "tickle update, timer delay");
            }
            return;
        }
        let node = match record::parse_node(key) {
            Ok(node) => node,
            Err(err) => {
                warn!(error = %err, "fail to parse node from key");
                return;
            }
        };
        let mut op_state = self.ops.lock().await;
        self.process_ack(&mut op_state, Ack::of_state(info.state), node, &channel)
            .await;
    }

    /// Turns expired timers into timeout acks.
    pub(crate) async fn fire_timers(&self) {
        let mut op_state = self.ops.lock().await;
        let expired = self.lock_timers().take_expired(Instant::now());
        for timer in expired {
            let ack = match timer.kind {
                TimerKind::Watch => Ack::WatchTimeout,
                TimerKind::Release => Ack::ReleaseTimeout,
            };
            warn!(node_id = timer.node, channel = %timer.channel, ?ack, timeout = ?self.config.watch_timeout,
                "timeout and stop timer: wait for channel ack timeout");
            self.process_ack(&mut op_state, ack, timer.node, &timer.channel)
                .await;
        }
    }

    /// One background balance round (only when quiet: no timer running and nothing written for
    /// `balance_silent_duration`).
    pub(crate) async fn balance_once(&self) {
        if !self.config.auto_balance {
            info!("auto balance disabled, skip auto bg check balance");
            return;
        }
        let mut op_state = self.ops.lock().await;
        let silent = self.lock_timers().is_empty()
            && op_state.last_active.elapsed() >= self.config.balance_silent_duration;
        if !silent {
            info!("channel manager is not silent, skip channel balance this round");
            return;
        }
        let ops = policy::balance(&self.read_store());
        if ops.is_empty() {
            debug!("channels balanced, nothing to release");
            return;
        }
        info!(to_release = %describe(&ops), "channel manager bg check balance");
        if let Err(err) = self
            .update_with_timer(&mut op_state, ops, ChannelWatchState::ToRelease)
            .await
        {
            warn!(error = %err, "channel store update error");
        }
    }

    /// Startup step 4: channels whose removal flag is `removed` lose their record and flag.
    pub(crate) async fn unwatch_dropped(&self) {
        let dropped: Vec<(NodeId, ChannelSpec)> = {
            let store = self.read_store();
            store
                .all_nodes()
                .flat_map(|(node, channels)| {
                    channels
                        .iter()
                        .filter(|channel| self.provider.should_drop(&channel.name))
                        .map(move |channel| (node, channel.clone()))
                })
                .collect()
        };
        for (node, channel) in dropped {
            let name = channel.name.clone();
            info!(node_id = node, channel = %name, "remove channel assignment of a dropped channel");
            if let Err(err) = self
                .write_ops(
                    &[ChannelOp::delete(node, vec![channel])],
                    ChannelWatchState::ToWatch,
                )
                .await
            {
                warn!(channel = %name, error = %err, "unable to remove channel");
                continue;
            }
            self.lock_timers().stop(&name);
            if let Err(err) = self.provider.finish_drop(&name).await {
                warn!(channel = %name, error = %err, "finish drop failed when unwatching dropped channels");
            }
        }
    }
}
