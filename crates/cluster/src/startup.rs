//! Startup reconciliation (FACTS D.5) and the background tasks: the answer/timer loop and the
//! balancer.

use std::collections::BTreeSet;
use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use milvus_proto::data::ChannelWatchState;
use milvus_types::NodeId;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::BUFFER_NODE;
use crate::error::{ClusterError, ClusterResult};
use crate::manager::{ChannelManager, OpState};
use crate::record;
use crate::timers::TimerKind;
use crate::watcher::WatchItem;

/// Items the watcher may queue ahead of the answer loop.
const WATCH_QUEUE: usize = 1024;

impl ChannelManager {
    /// Reconciles the loaded assignment with the datanodes online now, then starts following
    /// etcd (FACTS D.5):
    /// 1. nodes both stored and online: each record's state is replayed (ToWatch/Uncomplete and
    ///    ToRelease restart their timer, WatchFailure releases, ReleaseSuccess reassigns,
    ///    ReleaseFailure cleans up and reassigns);
    /// 2. online nodes not stored are added (register policy);
    /// 3. stored nodes not online are deleted (their channels move on);
    /// 4. channels flagged `removed` lose their record and flag.
    ///
    /// Then the watch loop (from the revision of the replayed listing, so no answer is lost),
    /// the timers and the balancer run as tasks that stop when `token` is cancelled (await
    /// [`ChannelManager::join`]). Call once.
    pub async fn startup(
        self: &Arc<Self>,
        online: Vec<NodeId>,
        token: CancellationToken,
    ) -> ClusterResult<()> {
        if self.started.swap(true, Ordering::SeqCst) {
            return Err(ClusterError::AlreadyStarted);
        }
        let revision = {
            let mut op_state = self.ops.lock().await;
            self.reconcile_nodes(&mut op_state, &online).await?
        };
        let (tx, rx) = mpsc::channel(WATCH_QUEUE);
        self.tasks.spawn(self.target.clone().run(
            revision + 1,
            tx,
            token.clone(),
            self.lost.clone(),
        ));
        self.tasks
            .spawn(Arc::clone(self).answer_loop(rx, token.clone()));
        if self.config.balance_interval.is_zero() {
            info!("balance interval is zero, background balancer not started");
        } else {
            self.tasks.spawn(Arc::clone(self).balance_loop(token));
        }
        Ok(())
    }

    /// Steps 1–4; returns the revision of the listing whose states were replayed.
    async fn reconcile_nodes(
        &self,
        op_state: &mut OpState,
        online: &[NodeId],
    ) -> ClusterResult<i64> {
        let old = self.read_store().node_ids();
        let online_set: BTreeSet<NodeId> = online
            .iter()
            .copied()
            .filter(|node| *node != BUFFER_NODE)
            .collect();
        let old_online: Vec<NodeId> = old
            .iter()
            .copied()
            .filter(|node| online_set.contains(node))
            .collect();
        let mut new_online: Vec<NodeId> = Vec::new();
        for node in online {
            if *node != BUFFER_NODE && !old.contains(node) && !new_online.contains(node) {
                new_online.push(*node);
            }
        }
        let offline: Vec<NodeId> = old
            .iter()
            .copied()
            .filter(|node| !online_set.contains(node))
            .collect();

        let (records, revision) = self.target.list().await?;
        for node in &old_online {
            self.replay_node(op_state, *node, &records).await?;
        }
        for node in &new_online {
            self.add_node_locked(op_state, *node).await?;
        }
        for node in &offline {
            self.delete_node_locked(op_state, *node).await?;
        }
        self.unwatch_dropped().await;
        info!(nodes = ?online, old_nodes = ?old, old_online = ?old_online, new_online = ?new_online,
            offline = ?offline, revision, "cluster start up");
        Ok(revision)
    }

    /// Acts on the stored states of one node that stayed online.
    async fn replay_node(
        &self,
        op_state: &mut OpState,
        node: NodeId,
        records: &[(String, Vec<u8>)],
    ) -> ClusterResult<()> {
        let prefix = record::node_prefix(&self.config.watch_subpath, node);
        for (key, value) in records.iter().filter(|(key, _)| key.starts_with(&prefix)) {
            let info = match record::decode(key, value) {
                Ok(info) => info,
                Err(err) => {
                    warn!(error = %err, "invalid watch info loaded");
                    continue;
                }
            };
            let channel = info
                .vchan
                .map(|vchan| vchan.channel_name)
                .unwrap_or_default();
            if self.read_store().get(node, &channel).is_none() {
                warn!(node_id = node, channel = %channel, "watch record of a channel not loaded, skipped");
                continue;
            }
            let state = ChannelWatchState::try_from(info.state);
            info!(node_id = node, channel = %channel, watch_state = record::state_name(info.state),
                "processing watch info");
            match state {
                Ok(ChannelWatchState::ToWatch | ChannelWatchState::Uncomplete) => {
                    self.start_replayed_timer(&channel, node, TimerKind::Watch);
                }
                Ok(ChannelWatchState::ToRelease) => {
                    self.start_replayed_timer(&channel, node, TimerKind::Release);
                }
                Ok(ChannelWatchState::WatchFailure) => {
                    self.release_locked(op_state, node, &channel).await?;
                }
                Ok(ChannelWatchState::ReleaseSuccess) => {
                    self.reassign_locked(op_state, node, &channel, false)
                        .await?;
                }
                Ok(ChannelWatchState::ReleaseFailure) => {
                    self.reassign_locked(op_state, node, &channel, true).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn start_replayed_timer(&self, channel: &str, node: NodeId, kind: TimerKind) {
        if self.lock_timers().start(channel, node, kind) {
            info!(node_id = node, channel, ?kind, "timer started");
            self.timers_changed.notify_one();
        }
    }

    /// Applies watched records and expired timers, one at a time, until cancelled or the
    /// watcher is gone.
    async fn answer_loop(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<WatchItem>,
        token: CancellationToken,
    ) {
        loop {
            let changed = self.timers_changed.notified();
            tokio::pin!(changed);
            // Registered before reading the deadline, so a timer started in between wakes us.
            changed.as_mut().enable();
            let deadline = self.lock_timers().next_deadline();
            let expiry = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => pending().await,
                }
            };
            tokio::select! {
                biased;
                () = token.cancelled() => break,
                item = rx.recv() => match item {
                    Some(WatchItem::Put { key, value }) => self.handle_record(&key, &value).await,
                    Some(WatchItem::Relisted(records)) => {
                        for (key, value) in records {
                            self.handle_record(&key, &value).await;
                        }
                    }
                    None => break,
                },
                () = expiry => self.fire_timers().await,
                () = &mut changed => {}
            }
        }
        info!("channel answer loop quit");
    }

    async fn balance_loop(self: Arc<Self>, token: CancellationToken) {
        let period = self.config.balance_interval;
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = token.cancelled() => break,
                _ = ticker.tick() => self.balance_once().await,
            }
        }
        info!("background checking channels loop quit");
    }
}
