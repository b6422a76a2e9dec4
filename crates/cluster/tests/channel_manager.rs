//! The channel manager against a real etcd and fake 2.3.5 datanodes.
//!
//! Needs `ETCD_ENDPOINTS` (skips without it unless `MILVUS_TEST_STRICT=1`). Every test runs
//! under its own root and removes it at the end.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use datacoord_cluster::testing::{
    Behaviour, FakeProvider, ReleaseReply, TestCluster, TestEtcd, WAIT, WatchReply, channel_spec,
    wait_until,
};
use datacoord_cluster::{BUFFER_NODE, ChannelConfig, ChannelManager, ChannelSpec, ClusterError};
use milvus_config::DataCoordConfig;
use milvus_proto::common::KeyDataPair;
use milvus_proto::data::{ChannelWatchInfo, ChannelWatchState, VchannelInfo};
use milvus_proto::schema::CollectionSchema;
use tokio_util::sync::CancellationToken;

const SUBPATH: &str = "channelwatch";

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

/// Timers of `timeout`, no balancing unless a test asks for it.
fn config(timeout: Duration) -> ChannelConfig {
    ChannelConfig {
        watch_timeout: timeout,
        auto_balance: false,
        balance_interval: Duration::ZERO,
        ..ChannelConfig::from_config(&DataCoordConfig::default())
    }
}

async fn harness(config: ChannelConfig) -> Option<TestCluster> {
    init_tracing();
    let env = TestEtcd::connect().await?;
    Some(TestCluster::new(env, FakeProvider::new(), config).await)
}

fn names(specs: &[ChannelSpec]) -> Vec<&str> {
    specs.iter().map(|spec| spec.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_without_datanode_writes_buffer_record() {
    let Some(h) = harness(config(Duration::from_millis(300))).await else {
        return;
    };
    h.startup(vec![]).await;
    let schema = CollectionSchema {
        name: "coll".into(),
        ..CollectionSchema::default()
    };
    let spec = ChannelSpec {
        start_positions: vec![KeyDataPair {
            key: "by-dev-rootcoord-dml_0".into(),
            data: vec![1, 2, 3],
        }],
        schema: Some(schema.clone()),
        create_timestamp: 449_000_000_000_000_000,
        ..channel_spec(100, 0)
    };
    h.manager.watch(spec.clone()).await.unwrap();

    let records = h.records().await;
    assert_eq!(records.len(), 1);
    let info = &records[&(BUFFER_NODE, spec.name.clone())];
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - 60..=now + 1).contains(&info.start_ts),
        "startTs in seconds: {}",
        info.start_ts
    );
    assert_eq!(info.state, ChannelWatchState::ToWatch as i32);
    assert_eq!((info.timeout_ts, info.progress, info.op_id), (0, 0, 0));
    assert_eq!(info.schema.as_ref(), Some(&schema));
    let vchan = info.vchan.as_ref().unwrap();
    assert_eq!(vchan.channel_name, spec.name);
    assert_eq!(vchan.collection_id, 100);
    assert_eq!(vchan.seek_position.as_ref().unwrap().msg_id, vec![1, 2, 3]);

    assert!(h.manager.contains(&spec.name));
    assert_eq!(h.manager.node_of(&spec.name), None);
    assert!(!h.manager.matches(BUFFER_NODE, &spec.name));
    assert!(h.manager.channels_of_collection(100).is_empty());
    assert_eq!(
        h.manager.assignments()[&BUFFER_NODE],
        vec![spec.name.clone()]
    );
    assert!(!h.manager.has_running_timers(), "no timer for the buffer");

    // Known anywhere (here: buffer) → no-op: the record is not rewritten.
    let key = format!("{}/{SUBPATH}/{BUFFER_NODE}/{}", h.env.meta_root, spec.name);
    let version = || async {
        let response = h
            .env
            .client
            .kv_client()
            .get(key.as_str(), None)
            .await
            .unwrap();
        response.kvs()[0].version()
    };
    let before = version().await;
    h.manager.watch(spec.clone()).await.unwrap();
    assert_eq!(version().await, before);

    let again = h.manager.startup(vec![], h.token.clone()).await;
    assert!(
        matches!(again, Err(ClusterError::AlreadyStarted)),
        "{again:?}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_node_takes_buffered_channels() {
    let Some(mut h) = harness(config(Duration::from_secs(10))).await else {
        return;
    };
    h.startup(vec![]).await;
    let (a, b) = (channel_spec(1, 0), channel_spec(1, 1));
    h.manager.watch(a.clone()).await.unwrap();
    h.manager.watch(b.clone()).await.unwrap();
    h.wait_records(
        &[(BUFFER_NODE, &a.name), (BUFFER_NODE, &b.name)],
        ChannelWatchState::ToWatch,
    )
    .await;

    h.start_node(1, Behaviour::default()).await;
    h.manager.add_node(1).await.unwrap();
    h.wait_records(
        &[(1, &a.name), (1, &b.name)],
        ChannelWatchState::WatchSuccess,
    )
    .await;

    assert_eq!(h.manager.node_of(&a.name), Some(1));
    assert!(h.manager.matches(1, &b.name));
    assert!(h.manager.assignments()[&BUFFER_NODE].is_empty());
    assert_eq!(
        h.node(1).watched().into_iter().collect::<Vec<_>>(),
        vec![a.name.clone(), b.name.clone()]
    );
    wait_until("answers stop the timers", WAIT, || async {
        !h.manager.has_running_timers()
    })
    .await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_spreads_over_datanodes() {
    let Some(mut h) = harness(config(Duration::from_secs(10))).await else {
        return;
    };
    h.start_node(1, Behaviour::default()).await;
    h.start_node(2, Behaviour::default()).await;
    h.startup(vec![1, 2]).await;
    let specs: Vec<_> = (0..4).map(|shard| channel_spec(7, shard)).collect();
    for spec in &specs {
        h.manager.watch(spec.clone()).await.unwrap();
    }
    let n = names(&specs);
    // Least loaded first, ties by node id: 1, 2, 1, 2.
    h.wait_records(
        &[(1, n[0]), (2, n[1]), (1, n[2]), (2, n[3])],
        ChannelWatchState::WatchSuccess,
    )
    .await;
    let mut expected = vec![
        (1, n[0].to_string()),
        (1, n[2].to_string()),
        (2, n[1].to_string()),
        (2, n[3].to_string()),
    ];
    expected.sort();
    assert_eq!(h.manager.channels_of_collection(7), expected);
    assert!(h.manager.channels_of_collection(8).is_empty());
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_failure_releases_then_reassigns() {
    let Some(mut h) = harness(config(Duration::from_secs(10))).await else {
        return;
    };
    let failing = Behaviour {
        on_watch: WatchReply::Failure,
        on_release: ReleaseReply::Success,
    };
    h.start_node(1, failing).await;
    h.start_node(2, Behaviour::default()).await;
    h.startup(vec![1, 2]).await;
    let spec = channel_spec(3, 0);
    h.manager.watch(spec.clone()).await.unwrap();

    h.wait_records(&[(2, &spec.name)], ChannelWatchState::WatchSuccess)
        .await;
    assert_eq!(h.manager.node_of(&spec.name), Some(2));
    assert!(!h.manager.matches(1, &spec.name));
    assert_eq!(
        h.node(1).seen(),
        vec![
            (spec.name.clone(), ChannelWatchState::ToWatch),
            (spec.name.clone(), ChannelWatchState::ToRelease)
        ]
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_timeout_releases_then_reassigns() {
    let Some(mut h) = harness(config(Duration::from_millis(300))).await else {
        return;
    };
    let hung = Behaviour {
        on_watch: WatchReply::Silent,
        on_release: ReleaseReply::Success,
    };
    h.start_node(1, hung).await;
    h.start_node(2, Behaviour::default()).await;
    h.startup(vec![1, 2]).await;
    let spec = channel_spec(3, 0);
    h.manager.watch(spec.clone()).await.unwrap();

    h.wait_records(&[(2, &spec.name)], ChannelWatchState::WatchSuccess)
        .await;
    assert!(
        h.node(1)
            .seen()
            .contains(&(spec.name.clone(), ChannelWatchState::ToRelease))
    );
    assert!(h.node(2).watched().contains(&spec.name));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_timeout_cleans_up_and_reassigns() {
    let Some(mut h) = harness(config(Duration::from_millis(300))).await else {
        return;
    };
    let dead = Behaviour {
        on_watch: WatchReply::Silent,
        on_release: ReleaseReply::Silent,
    };
    h.start_node(1, dead).await;
    h.start_node(2, Behaviour::default()).await;
    h.startup(vec![1, 2]).await;
    let spec = channel_spec(3, 0);
    h.manager.watch(spec.clone()).await.unwrap();

    h.wait_records(&[(2, &spec.name)], ChannelWatchState::WatchSuccess)
        .await;
    assert_eq!(h.manager.node_of(&spec.name), Some(2));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_rewrites_keep_a_slow_node() {
    let Some(mut h) = harness(config(Duration::from_secs(1))).await else {
        return;
    };
    // 6 rewrites 400 ms apart: 2.4 s in all, far past the 1 s timeout without the tickles.
    let slow = Behaviour {
        on_watch: WatchReply::ProgressThenSuccess {
            rewrites: 6,
            interval: Duration::from_millis(400),
        },
        on_release: ReleaseReply::Success,
    };
    h.start_node(1, slow).await;
    h.start_node(2, Behaviour::default()).await;
    h.startup(vec![1, 2]).await;
    let spec = channel_spec(3, 0);
    h.manager.watch(spec.clone()).await.unwrap();

    h.wait_records(&[(1, &spec.name)], ChannelWatchState::WatchSuccess)
        .await;
    assert_eq!(
        h.node(1).seen(),
        vec![(spec.name.clone(), ChannelWatchState::ToWatch)],
        "never asked to release"
    );
    assert!(h.node(2).seen().is_empty());
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_node_hands_channels_on_then_to_buffer() {
    let Some(mut h) = harness(config(Duration::from_secs(10))).await else {
        return;
    };
    // 2 and 21: removing node 2's records must not touch node 21's.
    h.start_node(2, Behaviour::default()).await;
    h.start_node(21, Behaviour::default()).await;
    h.startup(vec![2, 21]).await;
    let specs: Vec<_> = (0..4).map(|shard| channel_spec(5, shard)).collect();
    for spec in &specs {
        h.manager.watch(spec.clone()).await.unwrap();
    }
    let n = names(&specs);
    h.wait_records(
        &[(2, n[0]), (21, n[1]), (2, n[2]), (21, n[3])],
        ChannelWatchState::WatchSuccess,
    )
    .await;

    h.stop_node(2).await;
    h.manager.delete_node(2).await.unwrap();
    h.wait_records(
        &[(21, n[0]), (21, n[1]), (21, n[2]), (21, n[3])],
        ChannelWatchState::WatchSuccess,
    )
    .await;
    assert!(!h.manager.assignments().contains_key(&2));

    h.stop_node(21).await;
    h.manager.delete_node(21).await.unwrap();
    h.wait_records(
        &[
            (BUFFER_NODE, n[0]),
            (BUFFER_NODE, n[1]),
            (BUFFER_NODE, n[2]),
            (BUFFER_NODE, n[3]),
        ],
        ChannelWatchState::ToWatch,
    )
    .await;
    assert_eq!(h.manager.node_of(n[0]), None);
    assert!(h.manager.contains(n[0]));
    assert!(!h.manager.has_running_timers());
    // Unknown node: nothing to do.
    h.manager.delete_node(99).await.unwrap();
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_channel_is_dropped_on_release_ack() {
    let Some(mut h) = harness(config(Duration::from_secs(10))).await else {
        return;
    };
    h.start_node(1, Behaviour::default()).await;
    h.start_node(2, Behaviour::default()).await;
    h.startup(vec![1, 2]).await;
    let spec = channel_spec(9, 0);
    h.manager.watch(spec.clone()).await.unwrap();
    h.wait_records(&[(1, &spec.name)], ChannelWatchState::WatchSuccess)
        .await;

    h.provider.mark_removed(&spec.name);
    h.manager.release(1, &spec.name).await.unwrap();
    h.wait_records(&[], ChannelWatchState::WatchSuccess).await;
    wait_until("finish_drop called", WAIT, || async {
        h.provider.finished() == vec![spec.name.clone()]
    })
    .await;
    assert!(!h.manager.contains(&spec.name));
    assert!(h.node(2).seen().is_empty(), "never reassigned");
    assert!(h.node(1).watched().is_empty());

    let missing = h.manager.release(1, &spec.name).await;
    assert!(
        matches!(missing, Err(ClusterError::ChannelNotFound { node: 1, .. })),
        "{missing:?}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_node_takes_its_share() {
    let balancing = ChannelConfig {
        auto_balance: true,
        ..config(Duration::from_secs(10))
    };
    let Some(mut h) = harness(balancing).await else {
        return;
    };
    h.start_node(1, Behaviour::default()).await;
    h.startup(vec![1]).await;
    let specs: Vec<_> = (0..4).map(|shard| channel_spec(4, shard)).collect();
    for spec in &specs {
        h.manager.watch(spec.clone()).await.unwrap();
    }
    let n = names(&specs);
    h.wait_records(
        &[(1, n[0]), (1, n[1]), (1, n[2]), (1, n[3])],
        ChannelWatchState::WatchSuccess,
    )
    .await;

    h.start_node(2, Behaviour::default()).await;
    h.manager.add_node(2).await.unwrap();
    // 4 channels over 2 nodes: node 1 releases its first two, which move to node 2.
    h.wait_records(
        &[(2, n[0]), (2, n[1]), (1, n[2]), (1, n[3])],
        ChannelWatchState::WatchSuccess,
    )
    .await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_balancer_moves_surplus() {
    init_tracing();
    let Some(env) = TestEtcd::connect().await else {
        return;
    };
    // As a previous DataCoord left it: node 1 holds 4, nodes 2 and 3 one each.
    let specs: Vec<_> = (0..6).map(|shard| channel_spec(6, shard)).collect();
    let n = names(&specs);
    let layout = [
        (1, n[0]),
        (1, n[1]),
        (1, n[2]),
        (1, n[3]),
        (2, n[4]),
        (3, n[5]),
    ];
    for (node, channel) in layout {
        let info = ChannelWatchInfo {
            vchan: Some(VchannelInfo {
                collection_id: 6,
                channel_name: channel.to_string(),
                ..VchannelInfo::default()
            }),
            state: ChannelWatchState::WatchSuccess as i32,
            ..ChannelWatchInfo::default()
        };
        env.put_record(SUBPATH, node, channel, &info).await;
    }
    let balancing = ChannelConfig {
        auto_balance: true,
        balance_interval: Duration::from_millis(200),
        balance_silent_duration: Duration::ZERO,
        ..config(Duration::from_secs(10))
    };
    let mut h = TestCluster::new(env, FakeProvider::new(), balancing).await;
    for node in [1, 2, 3] {
        h.start_node(node, Behaviour::default()).await;
    }
    h.startup(vec![1, 2, 3]).await;
    // avg 6/3 = 2; node 1 (4 > 3) releases its first channel, which goes to node 2 (the lower
    // id of the two least loaded); then 3/2/1 is balanced.
    h.wait_records(
        &[
            (2, n[0]),
            (1, n[1]),
            (1, n[2]),
            (1, n[3]),
            (2, n[4]),
            (3, n[5]),
        ],
        ChannelWatchState::WatchSuccess,
    )
    .await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reconciles_with_online_nodes() {
    let Some(mut h) = harness(config(Duration::from_secs(10))).await else {
        return;
    };
    h.start_node(1, Behaviour::default()).await;
    h.start_node(2, Behaviour::default()).await;
    h.startup(vec![1, 2]).await;
    let specs: Vec<_> = (0..4).map(|shard| channel_spec(11, shard)).collect();
    for spec in &specs {
        h.manager.watch(spec.clone()).await.unwrap();
    }
    let n = names(&specs);
    h.wait_records(
        &[(1, n[0]), (2, n[1]), (1, n[2]), (2, n[3])],
        ChannelWatchState::WatchSuccess,
    )
    .await;
    h.stop_manager().await;

    // While DataCoord is down: node 2 goes away, node 1 reports a watch failure on c0, c2 is
    // dropped, and node 3 comes up.
    h.stop_node(2).await;
    let mut failed = h.records().await[&(1, n[0].to_string())].clone();
    failed.state = ChannelWatchState::WatchFailure as i32;
    h.env.put_record(SUBPATH, 1, n[0], &failed).await;
    h.provider.mark_removed(n[2]);
    h.start_node(3, Behaviour::default()).await;

    let restarted = ChannelManager::new(
        config(Duration::from_secs(10)),
        h.env.kv.clone(),
        h.env.client.clone(),
        h.env.meta_root.clone(),
        h.provider.clone(),
    )
    .await
    .unwrap();
    let loaded = restarted.assignments();
    assert_eq!(loaded[&1], vec![n[0].to_string(), n[2].to_string()]);
    assert_eq!(loaded[&2], vec![n[1].to_string(), n[3].to_string()]);
    assert!(
        restarted
            .channel(n[0])
            .unwrap()
            .1
            .start_positions
            .is_empty()
    );

    let token = CancellationToken::new();
    restarted.startup(vec![1, 3], token.clone()).await.unwrap();
    // Node 2's channels spread over 3 then 1 (least loaded first); c0 is released by node 1 and
    // reassigned to node 3; c2 loses its record and flag.
    h.wait_records(
        &[(3, n[0]), (3, n[1]), (1, n[3])],
        ChannelWatchState::WatchSuccess,
    )
    .await;
    assert_eq!(h.provider.finished(), vec![n[2].to_string()]);
    let assignments = restarted.assignments();
    assert!(!assignments.contains_key(&2));
    assert_eq!(assignments[&1], vec![n[3].to_string()]);
    assert!(
        h.node(1)
            .seen()
            .contains(&(n[0].to_string(), ChannelWatchState::ToRelease))
    );

    token.cancel();
    restarted.join().await;
    h.finish().await;
}
