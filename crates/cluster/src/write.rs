//! Writing channel ops: etcd first (≤ 64 channel ops per transaction), then memory and timers.

use std::collections::HashMap;

use bytes::Bytes;
use milvus_proto::data::ChannelWatchState;
use tokio::time::Instant;
use tracing::{debug, error, info};

use crate::config::BUFFER_NODE;
use crate::error::ClusterResult;
use crate::manager::{ChannelManager, OpState};
use crate::record;
use crate::store::{ChannelOp, OpKind};
use crate::timers::TimerKind;

/// Channel ops per etcd transaction (Go's `maxOperationsPerTxn`).
pub(crate) const MAX_CHANNEL_OPS_PER_TXN: usize = 64;

/// Splits `ops` into transactions: all in one when they touch at most `limit` channels, else
/// one op per channel with each channel's ops kept in the same transaction, packed up to
/// `limit` (Go's `ChannelStore.Update`). Channels keep their order of first appearance.
pub(crate) fn split_into_txns(ops: &[ChannelOp], limit: usize) -> Vec<Vec<ChannelOp>> {
    let total: usize = ops.iter().map(|op| op.channels.len()).sum();
    if total <= limit {
        return vec![ops.to_vec()];
    }
    let mut per_channel: Vec<(String, Vec<ChannelOp>)> = Vec::new();
    for op in ops {
        for channel in &op.channels {
            let single = ChannelOp {
                kind: op.kind,
                node: op.node,
                channels: vec![channel.clone()],
            };
            match per_channel
                .iter_mut()
                .find(|(name, _)| *name == channel.name)
            {
                Some((_, group)) => group.push(single),
                None => per_channel.push((channel.name.clone(), vec![single])),
            }
        }
    }
    let mut txns = Vec::new();
    let mut current: Vec<ChannelOp> = Vec::new();
    for (_, group) in per_channel {
        if !current.is_empty() && current.len() + group.len() > limit {
            txns.push(std::mem::take(&mut current));
        }
        current.extend(group);
    }
    if !current.is_empty() {
        txns.push(current);
    }
    txns
}

fn timer_kind(state: ChannelWatchState) -> TimerKind {
    match state {
        ChannelWatchState::ToRelease => TimerKind::Release,
        _ => TimerKind::Watch,
    }
}

impl ChannelManager {
    /// Writes `ops` with Add records in `state`, marks the manager active (the balancer waits
    /// for quiet), and returns the first failure. Go's `updateWithTimer`.
    pub(crate) async fn update_with_timer(
        &self,
        op_state: &mut OpState,
        ops: Vec<ChannelOp>,
        state: ChannelWatchState,
    ) -> ClusterResult<()> {
        let result = self.write_ops(&ops, state).await;
        op_state.last_active = Instant::now();
        result
    }

    /// Writes `ops` transaction by transaction. After each successful transaction memory
    /// mirrors it and timers start for the Add records of real nodes; a failed transaction
    /// leaves memory as etcd has it (re-read when the write may have been applied).
    pub(crate) async fn write_ops(
        &self,
        ops: &[ChannelOp],
        state: ChannelWatchState,
    ) -> ClusterResult<()> {
        let limit = MAX_CHANNEL_OPS_PER_TXN.min(self.kv.max_txn_ops()).max(1);
        for txn in split_into_txns(ops, limit) {
            self.write_txn(&txn, state).await?;
        }
        Ok(())
    }

    async fn write_txn(&self, txn: &[ChannelOp], state: ChannelWatchState) -> ClusterResult<()> {
        let start_ts = record::unix_seconds();
        let subpath = &self.config.watch_subpath;
        // Keyed by key: a channel added twice to one node is written once (Go builds a map).
        let mut saves: HashMap<String, Bytes> = HashMap::new();
        let mut removals: Vec<String> = Vec::new();
        for op in txn {
            for channel in &op.channels {
                let key = record::channel_key(subpath, op.node, &channel.name);
                match op.kind {
                    OpKind::Add => {
                        let vchan = self.provider.vchannel_info(channel);
                        let value = record::encode(vchan, state, channel.schema.clone(), start_ts);
                        saves.insert(key, Bytes::from(value));
                    }
                    OpKind::Delete => removals.push(key),
                }
            }
        }
        if saves.is_empty() && removals.is_empty() {
            return Ok(());
        }
        let save_list: Vec<(String, Bytes)> = saves
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        match self.kv.multi_save_and_remove(save_list, removals).await {
            Ok(()) => {
                self.apply_written(txn, state, |_| true);
                Ok(())
            }
            Err(err) if err.maybe_applied() => {
                self.reconcile(txn, state, &saves).await;
                Err(err.into())
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Mirrors written ops in memory and starts timers for the Add records of real nodes for
    /// which `started(key)` holds.
    fn apply_written(
        &self,
        txn: &[ChannelOp],
        state: ChannelWatchState,
        started: impl Fn(&str) -> bool,
    ) {
        {
            let mut store = self.write_store();
            for op in txn {
                store.apply(op);
            }
        }
        let kind = timer_kind(state);
        let mut timers = self.lock_timers();
        let mut any_started = false;
        for op in txn {
            if op.kind != OpKind::Add || op.node == BUFFER_NODE {
                continue;
            }
            for channel in &op.channels {
                let key = record::channel_key(&self.config.watch_subpath, op.node, &channel.name);
                if !started(&key) {
                    continue;
                }
                if timers.start(&channel.name, op.node, kind) {
                    any_started = true;
                    info!(node_id = op.node, channel = %channel.name, watch_state = state.as_str_name(),
                        timeout = ?self.config.watch_timeout, "timer started");
                } else {
                    debug!(node_id = op.node, channel = %channel.name, "zero watch timeout, no timer");
                }
            }
        }
        drop(timers);
        if any_started {
            self.timers_changed.notify_one();
        }
    }

    /// After a write that may or may not have been applied, reads every touched key back and
    /// makes memory match: an Add counts where its key exists (its timer only when the value
    /// is still ours), a Delete where its key is gone. When even that read fails, memory may
    /// differ from etcd and the owner is told through `lost`.
    async fn reconcile(
        &self,
        txn: &[ChannelOp],
        state: ChannelWatchState,
        written: &HashMap<String, Bytes>,
    ) {
        let subpath = &self.config.watch_subpath;
        let mut applied_ops = Vec::new();
        let mut ours = Vec::new();
        for op in txn {
            for channel in &op.channels {
                let key = record::channel_key(subpath, op.node, &channel.name);
                let current = match self.kv.load(&key).await {
                    Ok(current) => current,
                    Err(err) => {
                        error!(key = %key, error = %err,
                            "cannot re-read a channel watch record after an uncertain write; memory may differ from etcd");
                        self.lost.cancel();
                        return;
                    }
                };
                let applied = match (op.kind, &current) {
                    (OpKind::Add, Some(value)) => {
                        if written.get(&key) == Some(value) {
                            ours.push(key.clone());
                        }
                        true
                    }
                    (OpKind::Delete, None) => true,
                    _ => false,
                };
                if applied {
                    applied_ops.push(ChannelOp {
                        kind: op.kind,
                        node: op.node,
                        channels: vec![channel.clone()],
                    });
                }
            }
        }
        info!(
            applied = applied_ops.len(),
            "channel ops reconciled after an uncertain write"
        );
        self.apply_written(&applied_ops, state, |key| ours.iter().any(|own| own == key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::spec;

    #[test]
    fn small_sets_stay_in_one_txn() {
        let ops = vec![
            ChannelOp::delete(1, vec![spec("a", 1), spec("b", 1)]),
            ChannelOp::add(2, vec![spec("a", 1), spec("b", 1)]),
        ];
        assert_eq!(split_into_txns(&ops, 4), vec![ops.clone()]);
    }

    #[test]
    fn large_sets_split_by_channel() {
        let channels: Vec<_> = (0..5).map(|i| spec(&format!("c{i}"), 1)).collect();
        let ops = vec![
            ChannelOp::delete(1, channels.clone()),
            ChannelOp::add(2, channels),
        ];
        let txns = split_into_txns(&ops, 4);
        // Two ops per channel; 4 per txn: c0+c1, c2+c3, c4.
        assert_eq!(txns.len(), 3);
        for txn in &txns {
            assert!(txn.len() <= 4);
            // A channel's delete and add share a transaction.
            for op in txn {
                let name = &op.channels[0].name;
                let same: Vec<_> = txn.iter().filter(|o| &o.channels[0].name == name).collect();
                assert_eq!(same.len(), 2, "{name}");
            }
        }
        let names: Vec<_> = txns
            .iter()
            .flatten()
            .filter(|op| op.kind == OpKind::Add)
            .map(|op| op.channels[0].name.clone())
            .collect();
        assert_eq!(names, ["c0", "c1", "c2", "c3", "c4"]);
    }
}
