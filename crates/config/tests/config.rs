//! Loading behaviour that does not need the real template: code defaults, env overrides, empty
//! and invalid values, fallbacks, and where the file is looked for.

use std::time::Duration;

use milvus_config::{
    ConfigError, ConfigMap, ConfigSearch, DataCoordConfig, LoadedConfig, MetastoreType, StorageType,
};
use milvus_types::ErrorCode;

fn from_yaml(yaml: &str, env: &[(&str, &str)]) -> Result<DataCoordConfig, ConfigError> {
    let map = ConfigMap::from_yaml(yaml, "test.yaml")?.with_env(env.iter().copied());
    DataCoordConfig::from_map(&map)
}

#[test]
fn code_defaults_without_a_file() {
    let no_env: [(&str, &str); 0] = [];
    let loaded = LoadedConfig::from_parts(None, no_env).unwrap();
    assert!(loaded.file.is_none());
    let config = loaded.datacoord;
    assert_eq!(config, DataCoordConfig::default());

    // Values from FACTS §6 ("code default" column), where they differ from the shipped yaml.
    assert_eq!(config.datacoord.port, 19530);
    assert_eq!(config.common.session_ttl, Duration::from_secs(60));
    assert_eq!(
        config.datacoord.channel.watch_timeout_interval,
        Duration::from_secs(120)
    );
    assert_eq!(config.datacoord.segment.disk_segment_max_size_mb, 512.0);
    assert_eq!(config.datacoord.grpc.server_max_recv_size, 268_435_456);
    assert_eq!(config.storage.storage_type, StorageType::Remote);
    assert_eq!(config.storage.address, "");
    assert_eq!(config.storage.root_path, "");
    // And the rest of the common ones.
    assert_eq!(config.etcd.endpoints, ["localhost:2379"]);
    assert_eq!(config.etcd.meta_root_path, "by-dev/meta");
    assert_eq!(config.etcd.request_timeout, Duration::from_millis(10_000));
    assert_eq!(config.metastore, MetastoreType::Etcd);
    assert_eq!(config.common.cluster_prefix, "by-dev");
    assert_eq!(config.common.channels.datacoord_timetick, "by-dev-");
    assert_eq!(
        config.common.channels.datacoord_watch_sub_path,
        "channelwatch"
    );
    assert_eq!(config.datacoord.gc.interval, Duration::from_secs(3600));
    assert_eq!(
        config.datacoord.gc.drop_tolerance,
        Duration::from_secs(10800)
    );
    assert_eq!(
        config.datacoord.compaction.single_deltalog_max_size,
        2 * 1024 * 1024
    );
    assert_eq!(config.datacoord.compaction.timeout_seconds, 900);
    assert_eq!(
        config.datacoord.segment.assignment_expiration,
        Duration::from_millis(2000)
    );
    assert_eq!(config.indexcoord.min_segment_num_rows_to_enable_index, 1024);
    assert_eq!(
        config.indexcoord.scheduler_interval,
        Duration::from_millis(1000)
    );
    assert_eq!(
        config.rootcoord.import_task_expiration,
        Duration::from_secs(900)
    );
    assert_eq!(
        config.grpc_clients.index_node.client_max_recv_size,
        536_870_912
    );
    assert_eq!(config.log.level, "info");
    assert!(config.log.stdout);
    assert_eq!(config.metrics_port, 9091);
}

#[test]
fn environment_beats_yaml_in_any_spelling() {
    let yaml = "dataCoord:\n  gc:\n    interval: 100\netcd:\n  endpoints: [a:1, b:2]\n";
    let from_file = from_yaml(yaml, &[]).unwrap();
    assert_eq!(from_file.datacoord.gc.interval, Duration::from_secs(100));
    assert_eq!(from_file.etcd.endpoints, ["a:1", "b:2"]);

    let overridden = from_yaml(
        yaml,
        &[
            ("DATACOORD_GC_INTERVAL", "7"),
            ("ETCD_ENDPOINTS", "127.0.0.1:23790"),
        ],
    )
    .unwrap();
    assert_eq!(overridden.datacoord.gc.interval, Duration::from_secs(7));
    assert_eq!(overridden.etcd.endpoints, ["127.0.0.1:23790"]);
}

#[test]
fn metrics_port_comes_from_the_environment_only() {
    let yaml = "metrics:\n  port: 1234\n";
    assert_eq!(from_yaml(yaml, &[]).unwrap().metrics_port, 9091);
    assert_eq!(
        from_yaml(yaml, &[("METRICS_PORT", "9100")])
            .unwrap()
            .metrics_port,
        9100
    );
    assert_eq!(
        from_yaml(yaml, &[("METRICS_PORT", "nine")])
            .unwrap()
            .metrics_port,
        9091
    );
}

#[test]
fn empty_values() {
    // A string key keeps the empty value; a typed key falls back to its default.
    let config = from_yaml(
        "minio:\n  rootPath:\n  address: \"\"\ndataCoord:\n  ip:\n  gc:\n    interval:\n",
        &[],
    )
    .unwrap();
    assert_eq!(config.storage.root_path, "");
    assert_eq!(config.storage.address, "");
    assert_eq!(config.datacoord.ip, "");
    assert_eq!(config.datacoord.gc.interval, Duration::from_secs(3600));

    // Keys 2.3.5 declares non-empty refuse to start.
    for (yaml, key) in [
        ("etcd:\n  rootPath:\n", "etcd.rootPath"),
        ("etcd:\n  endpoints: \"\"\n", "etcd.endpoints"),
        ("minio:\n  bucketName:\n", "minio.bucketName"),
        (
            "common:\n  chanNamePrefix:\n    cluster:\n",
            "msgChannel.chanNamePrefix.cluster",
        ),
        ("dataCoord:\n  autoBalance:\n", "dataCoord.autoBalance"),
    ] {
        match from_yaml(yaml, &[]) {
            Err(ConfigError::Empty { key: reported }) => assert_eq!(reported, key),
            other => panic!("{key}: expected Empty, got {other:?}"),
        }
    }
}

#[test]
fn metastore_type_must_be_etcd_or_tikv() {
    let tikv = from_yaml("metastore:\n  type: tikv\n", &[]).unwrap();
    assert_eq!(tikv.metastore, MetastoreType::Tikv);
    for bad in ["mysql", "ETCD", "\"\""] {
        let result = from_yaml(&format!("metastore:\n  type: {bad}\n"), &[]);
        assert!(
            matches!(result, Err(ConfigError::UnsupportedMetastore(_))),
            "{bad}: {result:?}"
        );
    }
}

#[test]
fn storage_type_must_be_known() {
    let minio = from_yaml("common:\n  storageType: minio\n", &[]).unwrap();
    assert_eq!(minio.storage.storage_type, StorageType::Minio);
    let result = from_yaml("common:\n  storageType: opendal\n", &[]);
    assert!(matches!(result, Err(ConfigError::UnsupportedStorage(ref t)) if t == "opendal"));
}

#[test]
fn invalid_values_name_their_key() {
    let error = from_yaml("dataCoord:\n  port: abc\n", &[]).unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::Invalid {
                key: "dataCoord.port",
                ..
            }
        ),
        "{error:?}"
    );
    let error = from_yaml("dataCoord:\n  gc:\n    interval: -5\n", &[]).unwrap_err();
    assert!(matches!(
        error,
        ConfigError::Invalid {
            key: "dataCoord.gc.interval",
            ..
        }
    ));
    let error = from_yaml("dataCoord:\n  enableCompaction: yes\n", &[]).unwrap_err();
    assert!(matches!(
        error,
        ConfigError::Invalid {
            key: "dataCoord.enableCompaction",
            ..
        }
    ));
    let milvus_error: milvus_types::MilvusError = error.into();
    assert_eq!(milvus_error.code(), ErrorCode::PARAMETER_INVALID);
}

#[test]
fn fallback_keys() {
    let yaml = "msgChannel:\n  chanNamePrefix:\n    cluster: primary\ncommon:\n  chanNamePrefix:\n    \
                cluster: secondary\n    dataCoordTimeTick: tt\ngrpc:\n  serverMaxRecvSize: 1000\n  \
                clientMaxSendSize: 2000\ndataNode:\n  grpc:\n    clientMaxSendSize: 3000\n";
    let config = from_yaml(yaml, &[]).unwrap();
    assert_eq!(config.common.cluster_prefix, "primary");
    assert_eq!(config.common.channels.datacoord_timetick, "primary-tt");
    assert_eq!(config.datacoord.grpc.server_max_recv_size, 1000);
    assert_eq!(config.grpc_clients.root_coord.client_max_send_size, 2000);
    assert_eq!(config.grpc_clients.data_node.client_max_send_size, 3000);
}

#[test]
fn derived_values() {
    let yaml = "etcd:\n  rootPath: /tenant/\n  metaSubPath: meta/\nminio:\n  address: s3-host\n  \
                port: 9100\n  rootPath: /a//b/\ncommon:\n  entityExpiration: 30\n";
    let config = from_yaml(yaml, &[]).unwrap();
    assert_eq!(config.etcd.meta_root_path, "/tenant/meta");
    assert_eq!(config.storage.address, "s3-host:9100");
    assert_eq!(config.storage.root_path, "a/b");
    assert_eq!(
        config.common.entity_expiration,
        Some(Duration::from_secs(30))
    );
    let with_port = from_yaml("minio:\n  address: h:1\n  port: 9100\n", &[]).unwrap();
    assert_eq!(with_port.storage.address, "h:1");
}

#[test]
fn unknown_keys_are_tolerated_and_shown() {
    let yaml = "etcd:\n  someFutureKey: 5\nnotMilvus:\n  x: 1\n";
    let map = ConfigMap::from_yaml(yaml, "test.yaml").unwrap();
    assert!(DataCoordConfig::from_map(&map).is_ok());
    let shown = map.entries_matching("futurekey");
    assert_eq!(
        shown,
        [
            ("etcd.somefuturekey".to_string(), "5".to_string()),
            ("etcdsomefuturekey".to_string(), "5".to_string()),
        ]
    );
    assert!(map.entries_matching("notmilvus").is_empty());
}

#[test]
fn config_file_search_order() {
    let root = tempfile::tempdir().unwrap();
    let write = |relative: &str| {
        let path = root.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "dataCoord:\n  port: 1\n").unwrap();
        path
    };
    let beside_install = write("install/configs/milvus.yaml");
    let mut search = ConfigSearch {
        explicit: None,
        milvusconf_dir: Some(root.path().join("conf-env")),
        working_dir: Some(root.path().join("work")),
        executable: Some(root.path().join("install/bin/milvus-datacoord")),
    };
    // MILVUSCONF and the working dir have no file: fall through to the install directory.
    assert_eq!(search.locate().unwrap(), Some(beside_install));

    let in_working_dir = write("work/configs/milvus.yaml");
    assert_eq!(search.locate().unwrap(), Some(in_working_dir));

    let in_milvusconf = write("conf-env/milvus.yaml");
    assert_eq!(search.locate().unwrap(), Some(in_milvusconf));

    let explicit = write("elsewhere/custom.yaml");
    search.explicit = Some(explicit.clone());
    assert_eq!(search.locate().unwrap(), Some(explicit));
    search.explicit = Some(root.path().join("elsewhere"));
    assert!(matches!(search.locate(), Err(ConfigError::NotFound { .. })));
    search.explicit = Some(root.path().join("conf-env"));
    assert_eq!(
        search.locate().unwrap(),
        Some(root.path().join("conf-env/milvus.yaml"))
    );

    let empty = ConfigSearch {
        working_dir: Some(root.path().join("nothing-here")),
        ..ConfigSearch::default()
    };
    assert_eq!(empty.locate().unwrap(), None);
}
