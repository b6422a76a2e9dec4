//! synth-meta's writer against a real etcd (`ETCD_ENDPOINTS`; required when
//! `MILVUS_TEST_STRICT=1`): every key lands, values decode, and the batching respects etcd's
//! transaction limit. Each test uses its own random root and deletes it afterwards.

use std::time::{SystemTime, UNIX_EPOCH};

use datacoord_bench::{SynthSpec, connect_etcd, read_server_id, write_segments};
use etcd_client::{DeleteOptions, GetOptions, KvClient};
use milvus_proto::data::SegmentInfo;
use prost::Message;

fn etcd_endpoint() -> Option<String> {
    let endpoints = std::env::var("ETCD_ENDPOINTS").unwrap_or_default();
    match endpoints.split(',').map(str::trim).find(|e| !e.is_empty()) {
        Some(endpoint) => Some(endpoint.to_string()),
        None if std::env::var("MILVUS_TEST_STRICT").is_ok_and(|v| v == "1") => {
            panic!("ETCD_ENDPOINTS is not set but MILVUS_TEST_STRICT=1 requires etcd")
        }
        None => {
            println!("skipping: ETCD_ENDPOINTS not set");
            None
        }
    }
}

fn unique_root() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("test-{}-{nanos:x}/meta", std::process::id())
}

async fn count(kv: &mut KvClient, prefix: &str) -> i64 {
    kv.get(
        prefix,
        Some(GetOptions::new().with_prefix().with_count_only()),
    )
    .await
    .expect("count")
    .count()
}

async fn cleanup(kv: &mut KvClient, root: &str) {
    let top = root.split('/').next().expect("root");
    kv.delete(format!("{top}/"), Some(DeleteOptions::new().with_prefix()))
        .await
        .expect("cleanup");
}

fn spec(root: &str, segments: u64) -> SynthSpec {
    SynthSpec {
        meta_root: root.to_string(),
        collection_id: 7,
        partition_id: 8,
        channels: vec!["dml_0_7v0".into(), "dml_1_7v1".into()],
        segments,
        field_ids: vec![0, 1, 100, 101],
        pk_field_id: 100,
        start_id: 5_000,
        rows_per_segment: 2000,
        max_row_num: 9_586_980,
        datanode_id: 2,
        base_ts: 1 << 50,
    }
}

#[tokio::test]
async fn writes_every_key_of_every_segment() {
    let Some(endpoint) = etcd_endpoint() else {
        return;
    };
    let mut kv = connect_etcd(&endpoint).await.expect("etcd");
    let root = unique_root();
    // 61 segments × 7 keys: several full transactions (18 segments each) and a partial one.
    let spec = spec(&root, 61);
    let report = write_segments(&kv, &spec, 4).await.expect("write");
    assert_eq!(report.keys, 61 * 7);
    assert_eq!(report.txns, 4);

    let segments = count(&mut kv, &format!("{root}/datacoord-meta/s/")).await;
    let binlogs = count(&mut kv, &format!("{root}/datacoord-meta/binlog/")).await;
    let statslogs = count(&mut kv, &format!("{root}/datacoord-meta/statslog/")).await;
    let deltalogs = count(&mut kv, &format!("{root}/datacoord-meta/deltalog/")).await;
    let all = count(&mut kv, &format!("{root}/")).await;

    let answer = kv
        .get(
            format!("{root}/datacoord-meta/s/"),
            Some(GetOptions::new().with_prefix()),
        )
        .await
        .expect("read back");
    let mut ids: Vec<i64> = answer
        .kvs()
        .iter()
        .map(|entry| {
            let info = SegmentInfo::decode(entry.value()).expect("SegmentInfo");
            assert!(
                entry
                    .key_str()
                    .expect("utf8")
                    .ends_with(&format!("/7/8/{}", info.id))
            );
            info.id
        })
        .collect();
    cleanup(&mut kv, &root).await;

    assert_eq!(
        (segments, binlogs, statslogs, deltalogs, all),
        (61, 61 * 4, 61, 61, 61 * 7)
    );
    ids.sort_unstable();
    let expected: Vec<i64> = (0..61).map(|i| spec.segment_id(i)).collect();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn rejects_a_spec_before_writing_anything() {
    let Some(endpoint) = etcd_endpoint() else {
        return;
    };
    let mut kv = connect_etcd(&endpoint).await.expect("etcd");
    let root = unique_root();
    let mut too_wide = spec(&root, 3);
    too_wide.field_ids = (0..200).collect();
    assert!(write_segments(&kv, &too_wide, 2).await.is_err());
    assert!(write_segments(&kv, &spec(&root, 3), 0).await.is_err());
    let written = count(&mut kv, &format!("{root}/")).await;
    cleanup(&mut kv, &root).await;
    assert_eq!(written, 0);
}

#[tokio::test]
async fn reads_the_server_id_of_the_active_session() {
    let Some(endpoint) = etcd_endpoint() else {
        return;
    };
    let mut kv = connect_etcd(&endpoint).await.expect("etcd");
    let root = unique_root();
    assert!(
        read_server_id(&mut kv, &root).await.is_err(),
        "no session yet"
    );
    let session = r#"{"ServerID":17,"ServerName":"datacoord","Address":"127.0.0.1:13333","Exclusive":true,"TriggerKill":true,"Version":"2.3.5","IndexEngineVersion":{}}"#;
    kv.put(format!("{root}/session/datacoord"), session, None)
        .await
        .expect("put");
    let id = read_server_id(&mut kv, &root).await;
    kv.put(format!("{root}/session/datacoord"), "not json", None)
        .await
        .expect("put");
    let garbled = read_server_id(&mut kv, &root).await;
    cleanup(&mut kv, &root).await;
    assert_eq!(id.expect("server id"), 17);
    assert!(garbled.is_err());
}
