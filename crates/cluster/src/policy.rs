//! The 2.3.5 "V1 average" policies (FACTS D.4) as pure functions over the store.
//!
//! Go sorts nodes held in a map with unstable sorts, so its tie order is arbitrary; here ties are
//! broken by ascending node id, which is one of the orders Go may produce. Ops come out in a
//! fixed order (Delete first, then Adds in order of first use) so results are reproducible.

use milvus_types::NodeId;

use crate::config::BUFFER_NODE;
use crate::store::{ChannelOp, ChannelSpec, ChannelStore};

/// What registering a node asks for.
#[derive(Debug, PartialEq)]
pub(crate) enum Registration {
    /// Buffered channels move to the new node (written as ToWatch).
    Buffered(Vec<ChannelOp>),
    /// Channels to release from loaded nodes (written as ToRelease on their current node; the
    /// release acks then reassign them, normally to the new node).
    Balance(Vec<ChannelOp>),
    /// Nothing to move.
    Nothing,
}

/// Real nodes with their channel counts, least loaded first (ties: lower id first).
fn nodes_ascending(store: &ChannelStore, exclude: Option<NodeId>) -> Vec<(NodeId, usize)> {
    let mut nodes: Vec<_> = store
        .real_nodes()
        .filter(|(node, _)| Some(*node) != exclude)
        .map(|(node, channels)| (node, channels.len()))
        .collect();
    nodes.sort_by_key(|(node, count)| (*count, *node));
    nodes
}

/// Groups `(node, channel)` picks into one Add op per node, in order of each node's first pick.
fn group_adds(picks: Vec<(NodeId, ChannelSpec)>) -> Vec<ChannelOp> {
    let mut ops: Vec<ChannelOp> = Vec::new();
    for (node, channel) in picks {
        match ops.iter_mut().find(|op| op.node == node) {
            Some(op) => op.channels.push(channel),
            None => ops.push(ChannelOp::add(node, vec![channel])),
        }
    }
    ops
}

/// Hands out channels round-robin over `nodes` in their given order.
fn round_robin(nodes: &[(NodeId, usize)], channels: Vec<ChannelSpec>) -> Vec<ChannelOp> {
    debug_assert!(!nodes.is_empty());
    let picks = channels
        .into_iter()
        .enumerate()
        .map(|(i, channel)| (nodes[i % nodes.len()].0, channel))
        .collect();
    group_adds(picks)
}

/// AverageAssignPolicy: channels not yet known anywhere (buffer included) go round-robin to the
/// datanodes, least loaded first, or all to the buffer when there is no datanode.
pub(crate) fn assign(store: &ChannelStore, channels: &[ChannelSpec]) -> Vec<ChannelOp> {
    let mut fresh: Vec<ChannelSpec> = Vec::new();
    for channel in channels {
        let known = store.find(&channel.name).is_some()
            || fresh.iter().any(|picked| picked.name == channel.name);
        if !known {
            fresh.push(channel.clone());
        }
    }
    if fresh.is_empty() {
        return Vec::new();
    }
    let nodes = nodes_ascending(store, None);
    if nodes.is_empty() {
        return vec![ChannelOp::add(BUFFER_NODE, fresh)];
    }
    round_robin(&nodes, fresh)
}

/// AvgAssignRegisterPolicy for `node`, which the store already lists.
pub(crate) fn register(store: &ChannelStore, node: NodeId) -> Registration {
    let buffered = store.channels_of(BUFFER_NODE).to_vec();
    if !buffered.is_empty() {
        return Registration::Buffered(vec![
            ChannelOp::delete(BUFFER_NODE, buffered.clone()),
            ChannelOp::add(node, buffered),
        ]);
    }
    let node_count = store.node_ids().len().max(1);
    let mut others: Vec<(NodeId, &[ChannelSpec])> = store
        .real_nodes()
        .filter(|(other, _)| *other != node)
        .collect();
    let total: usize = others.iter().map(|(_, channels)| channels.len()).sum();
    let per_node = total / node_count;
    if per_node == 0 || others.is_empty() {
        return Registration::Nothing;
    }
    // Most loaded first; the i-th pick takes channel i / len of node i % len.
    others.sort_by_key(|(other, channels)| (std::cmp::Reverse(channels.len()), *other));
    let mut picks = Vec::new();
    for i in 0..per_node {
        let (other, channels) = others[i % others.len()];
        if let Some(channel) = channels.get(i / others.len()) {
            picks.push((other, channel.clone()));
        }
    }
    if picks.is_empty() {
        return Registration::Nothing;
    }
    Registration::Balance(group_adds(picks))
}

/// AvgAssignUnregisteredChannels: every channel of `node` goes round-robin to the other
/// datanodes (least loaded first), or to the buffer when none is left.
pub(crate) fn deregister(store: &ChannelStore, node: NodeId) -> Vec<ChannelOp> {
    let channels = store.channels_of(node).to_vec();
    let mut ops = vec![ChannelOp::delete(node, channels.clone())];
    let others = nodes_ascending(store, Some(node));
    if others.is_empty() {
        ops.push(ChannelOp::add(BUFFER_NODE, channels));
    } else if !channels.is_empty() {
        ops.extend(round_robin(&others, channels));
    }
    ops
}

/// AverageReassignPolicy: moves `channels` off `origin` to the other datanodes, filling the least
/// loaded up to the ceiling average; `None` when no other datanode exists.
pub(crate) fn reassign(
    store: &ChannelStore,
    origin: NodeId,
    channels: &[ChannelSpec],
) -> Option<Vec<ChannelOp>> {
    let candidates = nodes_ascending(store, Some(origin));
    if candidates.is_empty() {
        return None;
    }
    let load: usize = candidates.iter().map(|(_, count)| count).sum();
    let average = (load + channels.len()).div_ceil(candidates.len());
    let mut picks: Vec<(NodeId, ChannelSpec)> = Vec::new();
    for channel in channels {
        let adding = |node: NodeId| picks.iter().filter(|(picked, _)| *picked == node).count();
        let target = candidates
            .iter()
            .find(|(node, count)| count + adding(*node) < average)
            .unwrap_or(&candidates[0])
            .0;
        picks.push((target, channel.clone()));
    }
    let mut ops = vec![ChannelOp::delete(origin, channels.to_vec())];
    ops.extend(group_adds(picks));
    Some(ops)
}

/// AvgBalanceChannelPolicy: a node holding more than average + 1 channels releases its first
/// `count - average - 1` channels (written as ToRelease on that node).
pub(crate) fn balance(store: &ChannelStore) -> Vec<ChannelOp> {
    let nodes: Vec<_> = store.real_nodes().collect();
    if nodes.is_empty() {
        return Vec::new();
    }
    let total: usize = nodes.iter().map(|(_, channels)| channels.len()).sum();
    let average = total / nodes.len();
    nodes
        .into_iter()
        .filter(|(_, channels)| channels.len() > average + 1)
        .map(|(node, channels)| {
            let surplus = channels.len() - average - 1;
            ChannelOp::add(node, channels[..surplus].to_vec())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{OpKind, spec};

    /// A store with the given nodes and `count` channels each, named `n{node}-{i}`.
    fn store_with(nodes: &[(NodeId, usize)]) -> ChannelStore {
        let mut store = ChannelStore::default();
        for (node, count) in nodes {
            store.add_node(*node);
            let channels = (0..*count)
                .map(|i| spec(&format!("n{node}-{i}"), 1))
                .collect();
            store.apply(&ChannelOp::add(*node, channels));
        }
        store
    }

    fn names(op: &ChannelOp) -> Vec<&str> {
        op.channels.iter().map(|c| c.name.as_str()).collect()
    }

    fn summary(ops: &[ChannelOp]) -> Vec<(OpKind, NodeId, Vec<&str>)> {
        ops.iter().map(|op| (op.kind, op.node, names(op))).collect()
    }

    #[test]
    fn assign_without_datanodes_goes_to_buffer() {
        let store = ChannelStore::default();
        let ops = assign(&store, &[spec("a", 1), spec("b", 1)]);
        assert_eq!(
            summary(&ops),
            vec![(OpKind::Add, BUFFER_NODE, vec!["a", "b"])]
        );
    }

    #[test]
    fn assign_ignores_known_channels_anywhere() {
        let mut store = store_with(&[(1, 1)]);
        store.apply(&ChannelOp::add(BUFFER_NODE, vec![spec("buffered", 1)]));
        assert!(assign(&store, &[spec("n1-0", 1)]).is_empty());
        assert!(assign(&store, &[spec("buffered", 1)]).is_empty());
        let ops = assign(&store, &[spec("n1-0", 1), spec("new", 1), spec("new", 1)]);
        assert_eq!(summary(&ops), vec![(OpKind::Add, 1, vec!["new"])]);
    }

    #[test]
    fn assign_round_robin_least_loaded_first() {
        let store = store_with(&[(1, 3), (2, 1), (3, 1)]);
        let channels: Vec<_> = ["a", "b", "c", "d"].iter().map(|n| spec(n, 9)).collect();
        let ops = assign(&store, &channels);
        // Order: node 2 (1, lower id), node 3 (1), node 1 (3), then node 2 again.
        assert_eq!(
            summary(&ops),
            vec![
                (OpKind::Add, 2, vec!["a", "d"]),
                (OpKind::Add, 3, vec!["b"]),
                (OpKind::Add, 1, vec!["c"]),
            ]
        );
    }

    #[test]
    fn register_takes_the_whole_buffer() {
        let mut store = store_with(&[(1, 2)]);
        store.apply(&ChannelOp::add(
            BUFFER_NODE,
            vec![spec("x", 1), spec("y", 1)],
        ));
        store.add_node(7);
        let Registration::Buffered(ops) = register(&store, 7) else {
            panic!("expected buffered moves");
        };
        assert_eq!(
            summary(&ops),
            vec![
                (OpKind::Delete, BUFFER_NODE, vec!["x", "y"]),
                (OpKind::Add, 7, vec!["x", "y"]),
            ]
        );
    }

    #[test]
    fn register_releases_from_most_loaded() {
        // 9 channels on 2 nodes; with the new node 3 nodes: 3 per node to release.
        let mut store = store_with(&[(1, 3), (2, 6)]);
        store.add_node(5);
        let Registration::Balance(ops) = register(&store, 5) else {
            panic!("expected releases");
        };
        // Most loaded first: picks (2, idx0), (1, idx0), (2, idx1).
        assert_eq!(
            summary(&ops),
            vec![
                (OpKind::Add, 2, vec!["n2-0", "n2-1"]),
                (OpKind::Add, 1, vec!["n1-0"]),
            ]
        );
    }

    #[test]
    fn register_skips_picks_beyond_a_node_and_small_clusters() {
        // 5 channels, 3 nodes with the new one: 1 per node, the first pick from node 1.
        let mut store = store_with(&[(1, 5), (2, 0)]);
        store.add_node(3);
        let Registration::Balance(ops) = register(&store, 3) else {
            panic!("expected releases");
        };
        assert_eq!(summary(&ops), vec![(OpKind::Add, 1, vec!["n1-0"])]);

        // 6 channels over 3 nodes: 2 picks, node 1 idx 0 then node 2 idx 0, which node 2 lacks:
        // that pick is skipped, not re-picked elsewhere.
        let mut store = store_with(&[(1, 6), (2, 0)]);
        store.add_node(3);
        let Registration::Balance(ops) = register(&store, 3) else {
            panic!("expected releases");
        };
        assert_eq!(summary(&ops), vec![(OpKind::Add, 1, vec!["n1-0"])]);

        let mut store = store_with(&[(1, 1)]);
        store.add_node(2);
        assert_eq!(register(&store, 2), Registration::Nothing);
        let mut lonely = ChannelStore::default();
        lonely.add_node(1);
        assert_eq!(register(&lonely, 1), Registration::Nothing);
    }

    #[test]
    fn deregister_spreads_or_buffers() {
        let store = store_with(&[(1, 3), (2, 2), (3, 0)]);
        let ops = deregister(&store, 1);
        assert_eq!(
            summary(&ops),
            vec![
                (OpKind::Delete, 1, vec!["n1-0", "n1-1", "n1-2"]),
                (OpKind::Add, 3, vec!["n1-0", "n1-2"]),
                (OpKind::Add, 2, vec!["n1-1"]),
            ]
        );

        let store = store_with(&[(4, 2)]);
        let ops = deregister(&store, 4);
        assert_eq!(
            summary(&ops),
            vec![
                (OpKind::Delete, 4, vec!["n4-0", "n4-1"]),
                (OpKind::Add, BUFFER_NODE, vec!["n4-0", "n4-1"]),
            ]
        );
    }

    #[test]
    fn reassign_fills_to_ceiling_average() {
        // Candidates 2 (1 channel), 3 (3 channels); moving 2: avg = ceil(6/2) = 3.
        let store = store_with(&[(1, 2), (2, 1), (3, 3)]);
        let moving = store.channels_of(1).to_vec();
        let ops = reassign(&store, 1, &moving).unwrap();
        assert_eq!(
            summary(&ops),
            vec![
                (OpKind::Delete, 1, vec!["n1-0", "n1-1"]),
                (OpKind::Add, 2, vec!["n1-0", "n1-1"]),
            ]
        );

        // Every candidate at or above the average: the least loaded takes it.
        let store = store_with(&[(1, 1), (2, 4), (3, 4)]);
        let moving = store.channels_of(1).to_vec();
        let ops = reassign(&store, 1, &moving).unwrap();
        assert_eq!(ops[1].node, 2);

        // Equal load: the lower node id first.
        let store = store_with(&[(1, 1), (5, 2), (3, 2)]);
        let moving = store.channels_of(1).to_vec();
        assert_eq!(reassign(&store, 1, &moving).unwrap()[1].node, 3);

        let store = store_with(&[(1, 1)]);
        assert!(reassign(&store, 1, &[spec("n1-0", 1)]).is_none());
    }

    #[test]
    fn balance_releases_surplus_above_average_plus_one() {
        // total 10 over 3 nodes: avg 3; node 1 has 7 > 4 → releases its first 3.
        let store = store_with(&[(1, 7), (2, 2), (3, 1)]);
        let ops = balance(&store);
        assert_eq!(
            summary(&ops),
            vec![(OpKind::Add, 1, vec!["n1-0", "n1-1", "n1-2"])]
        );
        assert!(balance(&store_with(&[(1, 3), (2, 1)])).is_empty());
        assert!(balance(&ChannelStore::default()).is_empty());
    }
}
