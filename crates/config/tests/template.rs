//! The milvus.yaml template shipped with the real Milvus 2.3.5 (`scripts/fetch-milvus.sh` unpacks
//! it to `.work/milvus/config.yaml.template`; env `MILVUS_CONFIG_TEMPLATE` overrides the path).
//! Without it these tests skip, or fail when `MILVUS_TEST_STRICT=1`.

use std::path::PathBuf;
use std::time::Duration;

use milvus_config::{
    ConfigMap, DataCoordConfig, LoadedConfig, MetastoreType, Source, StorageType, declared_keys,
    normalize_key, render_template,
};
use serde_yaml_ng::Value;

/// Values for the placeholders that have no default in the template.
const OVERRIDES: &[(&str, &str)] = &[
    ("etcd_data_dir", "/tmp/conf-test/etcd"),
    ("local_storage_dir", "/tmp/conf-test/data"),
    ("rocksmq_data_dir", "/tmp/conf-test/rdb"),
    ("system_log_path", "/tmp/conf-test/logs"),
];

fn rendered_template() -> Option<String> {
    let path = std::env::var_os("MILVUS_CONFIG_TEMPLATE").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../.work/milvus/config.yaml.template")
        },
        PathBuf::from,
    );
    match std::fs::read_to_string(&path) {
        Ok(template) => Some(render_template(&template, OVERRIDES)),
        Err(error) if std::env::var("MILVUS_TEST_STRICT").as_deref() == Ok("1") => {
            panic!(
                "MILVUS_TEST_STRICT=1 but {} is unreadable: {error}",
                path.display()
            )
        }
        Err(_) => {
            eprintln!(
                "skipping: {} not found (run scripts/fetch-milvus.sh)",
                path.display()
            );
            None
        }
    }
}

fn load(yaml: &str, env: &[(&str, &str)]) -> LoadedConfig {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("milvus.yaml");
    std::fs::write(&file, yaml).unwrap();
    LoadedConfig::from_parts(Some(&file), env.iter().copied()).unwrap()
}

#[test]
fn rendering_leaves_no_placeholder() {
    let Some(rendered) = rendered_template() else {
        return;
    };
    assert!(!rendered.contains("{{"), "unrendered placeholder left");
    assert!(rendered.contains("port: 13333"));
}

#[test]
fn typed_values_are_the_templates() {
    let Some(rendered) = rendered_template() else {
        return;
    };
    let config = load(&rendered, &[]).datacoord;

    assert_eq!(config.etcd.endpoints, ["localhost:2379"]);
    assert_eq!(config.etcd.meta_root_path, "by-dev/meta");
    assert!(config.etcd.use_embed);
    assert_eq!(config.etcd.tls_min_version, "1.3");
    assert_eq!(config.metastore, MetastoreType::Etcd);
    assert_eq!(config.tikv.endpoints, ["127.0.0.1:2389"]);

    assert_eq!(config.storage.storage_type, StorageType::Local);
    assert_eq!(config.storage.local_path, "/tmp/conf-test/data");
    assert_eq!(config.storage.address, "localhost:9000");
    assert_eq!(config.storage.root_path, "files");
    assert_eq!(config.storage.bucket_name, "a-bucket");
    assert_eq!(config.storage.region, "");

    // The template has no msgChannel section: the common.* fallbacks apply.
    assert_eq!(config.common.cluster_prefix, "by-dev");
    assert_eq!(
        config.common.channels.datacoord_timetick,
        "by-dev-datacoord-timetick-channel"
    );
    assert_eq!(
        config.common.channels.datacoord_segment_info,
        "by-dev-segment-info-channel"
    );
    assert_eq!(
        config.common.channels.datacoord_sub_name,
        "by-dev-dataCoord"
    );
    assert_eq!(config.common.channels.datanode_sub_name, "by-dev-dataNode");
    assert_eq!(
        config.common.channels.datacoord_watch_sub_path,
        "channelwatch"
    );
    assert_eq!(config.common.session_ttl, Duration::from_secs(30));
    assert_eq!(config.common.session_retry_times, 30);
    assert_eq!(config.common.entity_expiration, None);
    assert_eq!(
        config.common.pre_created_topic_timeticker,
        "timetick-channel"
    );

    assert_eq!(config.datacoord.port, 13333);
    assert_eq!(config.datacoord.ip, "");
    assert!(!config.datacoord.enable_active_standby);
    assert_eq!(config.datacoord.grpc.server_max_send_size, 536_870_912);
    assert_eq!(config.datacoord.grpc.server_max_recv_size, 536_870_912);
    assert_eq!(
        config.datacoord.channel.watch_timeout_interval,
        Duration::from_secs(300)
    );
    assert_eq!(config.datacoord.segment.disk_segment_max_size_mb, 2048.0);
    assert_eq!(config.datacoord.segment.seal_proportion, 0.23);
    assert_eq!(
        config.datacoord.segment.min_size_from_idle_to_sealed_mb,
        16.0
    );
    assert_eq!(
        config.datacoord.gc.drop_tolerance,
        Duration::from_secs(10800)
    );

    assert_eq!(config.indexcoord.bind_index_node.address, "localhost:22930");
    assert_eq!(
        config.grpc_clients.root_coord.client_max_recv_size,
        268_435_456
    );
    assert_eq!(
        config.grpc_clients.data_node.initial_backoff,
        Duration::from_millis(200)
    );
    assert_eq!(config.log.file_root_path, "/tmp/conf-test/logs");
    assert_eq!(config.log.grpc_level, "WARNING");
}

/// Finds `dotted` in the parsed template the way a reader of the yaml would: section by section,
/// ignoring case.
fn template_scalar<'a>(root: &'a Value, dotted: &str) -> Option<&'a Value> {
    let mut node = root;
    for part in dotted.split('.') {
        let mapping = node.as_mapping()?;
        node = mapping.iter().find_map(|(key, value)| {
            key.as_str()
                .filter(|k| k.eq_ignore_ascii_case(part))
                .map(|_| value)
        })?;
    }
    (!node.is_mapping()).then_some(node)
}

fn plain_string(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => text.clone(),
        Value::Sequence(items) => items.iter().map(plain_string).collect::<Vec<_>>().join(","),
        other => panic!("unexpected value {other:?}"),
    }
}

/// Catches a misspelt key: every key we read that the template sets must resolve from the file,
/// to the template's value.
#[test]
fn every_key_we_read_that_the_template_sets_comes_from_it() {
    let Some(rendered) = rendered_template() else {
        return;
    };
    let root: Value = serde_yaml_ng::from_str(&rendered).unwrap();
    let loaded = load(&rendered, &[]);
    let mut found = 0;
    for (key, _) in declared_keys() {
        let Some(expected) = template_scalar(&root, key) else {
            continue;
        };
        found += 1;
        assert_eq!(loaded.source_of(key), Some(Source::File), "{key}");
        let expected = plain_string(expected);
        let actual = loaded.get(key).unwrap();
        // Numbers may be spelt differently (2.0 vs 2); compare those numerically.
        let same_number = matches!(
            (actual.parse::<f64>(), expected.parse::<f64>()),
            (Ok(a), Ok(b)) if a == b
        );
        assert!(
            actual == expected || same_number,
            "{key}: {actual:?} != template {expected:?}"
        );
    }
    assert!(
        found >= 60,
        "only {found} of our keys found in the template"
    );
}

fn leaves(node: &Value, prefix: &str, out: &mut Vec<String>) {
    let Some(mapping) = node.as_mapping() else {
        out.push(prefix.to_string());
        return;
    };
    for (key, value) in mapping {
        let key = key.as_str().expect("string keys");
        let path = if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        };
        leaves(value, &path, out);
    }
}

/// The other direction: each key of the sections DataCoord owns or depends on, as the template
/// spells it, must be one we read (a misspelling on our side would otherwise go unnoticed when
/// the template value equals the code default).
#[test]
fn every_template_key_of_our_sections_is_read() {
    const SECTIONS: &[&str] = &[
        "dataCoord",
        "indexCoord",
        "etcd",
        "metastore",
        "tikv",
        "minio",
        "localStorage",
        "log",
    ];
    /// Keys of those sections that DataCoord has no use for.
    const NOT_READ: &[&str] = &[
        "dataCoord.grpc.clientMaxSendSize", // settings for clients *of* DataCoord
        "dataCoord.grpc.clientMaxRecvSize",
        "etcd.log.level", // embedded etcd only
        "etcd.log.path",
        "etcd.data.dir",
        "minio.logLevel", // the Go MinIO SDK's log level
    ];
    let Some(rendered) = rendered_template() else {
        return;
    };
    let root: Value = serde_yaml_ng::from_str(&rendered).unwrap();
    let mut template_keys = Vec::new();
    leaves(&root, "", &mut template_keys);
    let declared: Vec<String> = declared_keys().map(|(key, _)| normalize_key(key)).collect();
    let unread: Vec<&String> = template_keys
        .iter()
        .filter(|key| SECTIONS.contains(&key.split('.').next().unwrap()))
        .filter(|key| !NOT_READ.contains(&key.as_str()))
        .filter(|key| !declared.contains(&normalize_key(key)))
        .collect();
    assert!(
        unread.is_empty(),
        "template keys we do not read: {unread:?}"
    );
}

#[test]
fn environment_overrides_the_template() {
    let Some(rendered) = rendered_template() else {
        return;
    };
    let loaded = load(
        &rendered,
        &[
            ("DATACOORD_GC_INTERVAL", "60"),
            ("ETCD_ENDPOINTS", "127.0.0.1:23790,127.0.0.1:23791"),
            ("dataCoord.port", "23333"),
            ("METRICS_PORT", "19091"),
        ],
    );
    let config = &loaded.datacoord;
    assert_eq!(config.datacoord.gc.interval, Duration::from_secs(60));
    assert_eq!(
        config.etcd.endpoints,
        ["127.0.0.1:23790", "127.0.0.1:23791"]
    );
    assert_eq!(config.datacoord.port, 23333);
    assert_eq!(config.metrics_port, 19091);
    // Untouched keys still come from the file.
    assert_eq!(config.common.session_ttl, Duration::from_secs(30));

    let shown = loaded.entries_matching("gc.interval");
    assert!(
        shown.contains(&("datacoord.gc.interval".to_string(), "60".to_string())),
        "{shown:?}"
    );
}

#[test]
fn the_template_differs_from_the_code_defaults_where_the_facts_say() {
    let Some(rendered) = rendered_template() else {
        return;
    };
    let from_template =
        DataCoordConfig::from_map(&ConfigMap::from_yaml(&rendered, "t").unwrap()).unwrap();
    let defaults = DataCoordConfig::default();
    assert_eq!(defaults.datacoord.port, 19530);
    assert_ne!(from_template.datacoord.port, defaults.datacoord.port);
    assert_ne!(
        from_template.common.session_ttl,
        defaults.common.session_ttl
    );
    assert_ne!(
        from_template.datacoord.channel.watch_timeout_interval,
        defaults.datacoord.channel.watch_timeout_interval
    );
    assert_eq!(from_template.datacoord.gc, defaults.datacoord.gc);
}
