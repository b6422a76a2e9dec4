//! Taking over the watch records of a real Milvus 2.3.5 cluster (Go DataCoord + datanode), as
//! captured in the proto crate's golden fixture.

use std::time::Duration;

use datacoord_cluster::ChannelConfig;
use datacoord_cluster::testing::{FakeProvider, TestCluster, TestEtcd};
use milvus_config::DataCoordConfig;
use milvus_proto::data::{ChannelWatchInfo, ChannelWatchState};
use prost::Message;

const FIXTURE: &str = include_str!("../../../proto/tests/fixtures/go-2.3.5/etcd-records.json");

/// (key relative to metaRoot, value) of every `channelwatch/` record in the fixture.
fn go_records() -> Vec<(String, Vec<u8>)> {
    let root: serde_json::Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
    let records: Vec<_> = root["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|record| record["family"] == "channelwatch/")
        .map(|record| {
            let hex = record["value_hex"].as_str().expect("value_hex");
            let value = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            (record["key"].as_str().expect("key").to_string(), value)
        })
        .collect();
    assert!(
        !records.is_empty(),
        "the fixture holds channelwatch records"
    );
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_and_keeps_settled_go_records() {
    let Some(env) = TestEtcd::connect().await else {
        return;
    };
    let records = go_records();
    for (key, value) in &records {
        env.kv.save(key, value.clone().into()).await.unwrap();
    }
    let config = ChannelConfig {
        watch_timeout: Duration::from_secs(10),
        auto_balance: false,
        balance_interval: Duration::ZERO,
        ..ChannelConfig::from_config(&DataCoordConfig::default())
    };
    let cluster = TestCluster::new(env, FakeProvider::new(), config).await;

    for (key, value) in &records {
        let info = ChannelWatchInfo::decode(value.as_slice()).unwrap();
        // The datanode's answer, as left in etcd.
        assert_eq!(info.state, ChannelWatchState::WatchSuccess as i32);
        let vchan = info.vchan.unwrap();
        let node: i64 = key.split('/').nth(1).unwrap().parse().unwrap();
        assert!(cluster.manager.matches(node, &vchan.channel_name), "{key}");
        let (_, spec) = cluster.manager.channel(&vchan.channel_name).unwrap();
        assert_eq!(spec.collection_id, vchan.collection_id);
        assert_eq!(spec.schema, info.schema, "schema survives the reload");
    }

    // The datanode is still online: settled records are left exactly as Go's cluster wrote them.
    let node: i64 = records[0].0.split('/').nth(1).unwrap().parse().unwrap();
    cluster.startup(vec![node]).await;
    assert!(!cluster.manager.has_running_timers());
    for (key, value) in &records {
        let stored = cluster.env.kv.load(key).await.unwrap();
        assert_eq!(stored.as_deref(), Some(value.as_slice()), "{key} untouched");
    }
    cluster.finish().await;
}
