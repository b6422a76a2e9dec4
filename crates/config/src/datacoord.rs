//! Building [`DataCoordConfig`] from a [`ConfigMap`], with the derived values 2.3.5 computes
//! (root paths, prefixed channel names, the MinIO address).

use crate::defaults::{CLIENT_DOMAINS, DEFAULT_METRICS_PORT};
use crate::error::ConfigError;
use crate::map::ConfigMap;
use crate::reader::Reader;
use crate::sections::*;
use milvus_storage::{StorageConfig, StorageType};

impl DataCoordConfig {
    /// Reads every DataCoord setting from `map`; absent keys take the 2.3.5 code defaults.
    pub fn from_map(map: &ConfigMap) -> Result<Self, ConfigError> {
        let reader = Reader::new(map);
        build(&reader, map)
    }
}

impl Default for DataCoordConfig {
    /// The 2.3.5 code defaults (what Go runs with when no milvus.yaml is found).
    fn default() -> Self {
        Self::from_map(&ConfigMap::new()).expect("the code defaults form a valid configuration")
    }
}

fn build(r: &Reader<'_>, map: &ConfigMap) -> Result<DataCoordConfig, ConfigError> {
    Ok(DataCoordConfig {
        etcd: etcd(r)?,
        metastore: metastore(r)?,
        tikv: tikv(r)?,
        storage: storage(r)?,
        common: common(r)?,
        datacoord: datacoord(r)?,
        indexcoord: IndexCoordConfig {
            min_segment_num_rows_to_enable_index: r
                .int("indexCoord.segment.minSegmentNumRowsToEnableIndex")?,
            scheduler_interval: r.millis("indexCoord.scheduler.interval")?,
            bind_index_node: BindIndexNodeConfig {
                enable: r.bool("indexCoord.bindIndexNodeMode.enable")?,
                address: r.string("indexCoord.bindIndexNodeMode.address")?,
                with_cred: r.bool("indexCoord.bindIndexNodeMode.withCred")?,
                node_id: r.int("indexCoord.bindIndexNodeMode.nodeID")?,
            },
        },
        datanode: DataNodeKeys {
            binlog_max_size: r.int("dataNode.segment.binlog.maxsize")?,
            timetick_by_rpc: r.bool("datanode.timetick.byRPC")?,
        },
        rootcoord: RootCoordKeys {
            import_task_expiration: r.seconds("rootCoord.importTaskExpiration")?,
        },
        grpc_clients: GrpcClients {
            root_coord: grpc_client(r, CLIENT_DOMAINS[0])?,
            data_node: grpc_client(r, CLIENT_DOMAINS[1])?,
            index_node: grpc_client(r, CLIENT_DOMAINS[2])?,
        },
        log: LogConfig {
            level: r.string("log.level")?,
            file_root_path: r.string("log.file.rootPath")?,
            file_max_size_mb: r.int("log.file.maxSize")?,
            file_max_age_days: r.int("log.file.maxAge")?,
            file_max_backups: r.int("log.file.maxBackups")?,
            format: r.string("log.format")?,
            stdout: r.bool("log.stdout")?,
            grpc_level: r.string("grpc.log.level")?,
        },
        metrics_port: metrics_port(map),
    })
}

fn etcd(r: &Reader<'_>) -> Result<EtcdConfig, ConfigError> {
    let root_path = r.string("etcd.rootPath")?;
    let meta_sub_path = r.string("etcd.metaSubPath")?;
    let kv_sub_path = r.string("etcd.kvSubPath")?;
    let endpoints = r.list("etcd.endpoints")?;
    if endpoints.is_empty() {
        return Err(ConfigError::Empty {
            key: "etcd.endpoints",
        });
    }
    Ok(EtcdConfig {
        endpoints,
        meta_root_path: go_path_join(&[&root_path, &meta_sub_path]),
        kv_root_path: go_path_join(&[&root_path, &kv_sub_path]),
        root_path,
        meta_sub_path,
        kv_sub_path,
        request_timeout: r.millis("etcd.requestTimeout")?,
        use_embed: r.bool("etcd.use.embed")?,
        ssl: TlsConfig {
            enabled: r.bool("etcd.ssl.enabled")?,
            cert: r.string("etcd.ssl.tlsCert")?,
            key: r.string("etcd.ssl.tlsKey")?,
            ca_cert: r.string("etcd.ssl.tlsCACert")?,
        },
        tls_min_version: r.string("etcd.ssl.tlsMinVersion")?,
    })
}

fn metastore(r: &Reader<'_>) -> Result<MetastoreType, ConfigError> {
    // Compared exactly, as 2.3.5 does: `ETCD` is not accepted.
    match r.string("metastore.type")?.as_str() {
        "etcd" => Ok(MetastoreType::Etcd),
        "tikv" => Ok(MetastoreType::Tikv),
        other => Err(ConfigError::UnsupportedMetastore(other.to_string())),
    }
}

fn tikv(r: &Reader<'_>) -> Result<TikvConfig, ConfigError> {
    let root_path = r.string("tikv.rootPath")?;
    let meta_sub_path = r.string("tikv.metaSubPath")?;
    let kv_sub_path = r.string("tikv.kvSubPath")?;
    let endpoints = r.list("tikv.endpoints")?;
    if endpoints.is_empty() {
        return Err(ConfigError::Empty {
            key: "tikv.endpoints",
        });
    }
    Ok(TikvConfig {
        endpoints,
        meta_root_path: go_path_join(&[&root_path, &meta_sub_path]),
        kv_root_path: go_path_join(&[&root_path, &kv_sub_path]),
        root_path,
        meta_sub_path,
        kv_sub_path,
        request_timeout: r.millis("tikv.requestTimeout")?,
        snapshot_scan_size: r.int("tikv.snapshotScanSize")?,
        ssl: TlsConfig {
            enabled: r.bool("tikv.ssl.enabled")?,
            cert: r.string("tikv.ssl.tlsCert")?,
            key: r.string("tikv.ssl.tlsKey")?,
            ca_cert: r.string("tikv.ssl.tlsCACert")?,
        },
    })
}

fn storage(r: &Reader<'_>) -> Result<StorageConfig, ConfigError> {
    let raw_type = r.string("common.storageType")?;
    let storage_type: StorageType = raw_type
        .parse()
        .map_err(|_| ConfigError::UnsupportedStorage(raw_type.clone()))?;
    let port: u16 = r.int("minio.port")?;
    let address = r.string("minio.address")?;
    let address = if address.is_empty() || address.contains(':') {
        address
    } else {
        format!("{address}:{port}")
    };
    let root_path = r.string("minio.rootPath")?;
    let root_path = if root_path.is_empty() {
        root_path
    } else {
        go_path_clean(root_path.trim_start_matches('/'))
    };
    Ok(StorageConfig {
        storage_type,
        local_path: r.string("localStorage.path")?,
        address,
        port,
        access_key_id: r.string("minio.accessKeyID")?,
        secret_access_key: r.string("minio.secretAccessKey")?,
        use_ssl: r.bool("minio.useSSL")?,
        bucket_name: r.string("minio.bucketName")?,
        root_path,
        use_iam: r.bool("minio.useIAM")?,
        cloud_provider: r.string("minio.cloudProvider")?,
        iam_endpoint: r.string("minio.iamEndpoint")?,
        region: r.string("minio.region")?,
        use_virtual_host: r.bool("minio.useVirtualHost")?,
        request_timeout: r.millis("minio.requestTimeoutMs")?,
    })
}

fn common(r: &Reader<'_>) -> Result<CommonConfig, ConfigError> {
    let cluster_prefix = r.string("msgChannel.chanNamePrefix.cluster")?;
    let prefixed = |key: &str| -> Result<String, ConfigError> {
        Ok(format!("{cluster_prefix}-{}", r.string(key)?))
    };
    let channels = ChannelNames {
        datacoord_timetick: prefixed("msgChannel.chanNamePrefix.dataCoordTimeTick")?,
        datacoord_segment_info: prefixed("msgChannel.chanNamePrefix.dataCoordSegmentInfo")?,
        datacoord_sub_name: prefixed("msgChannel.subNamePrefix.dataCoordSubNamePrefix")?,
        datanode_sub_name: prefixed("msgChannel.subNamePrefix.dataNodeSubNamePrefix")?,
        datacoord_watch_sub_path: r.string("msgChannel.subNamePrefix.dataCoordWatchSubPath")?,
    };
    let entity_expiration_seconds: i64 = r.int("common.entityExpiration")?;
    Ok(CommonConfig {
        cluster_prefix: cluster_prefix.clone(),
        channels,
        session_ttl: r.seconds("common.session.ttl")?,
        session_retry_times: r.int("common.session.retryTimes")?,
        entity_expiration: u64::try_from(entity_expiration_seconds)
            .ok()
            .map(std::time::Duration::from_secs),
        pre_created_topic_enabled: r.bool("common.preCreatedTopic.enabled")?,
        pre_created_topic_timeticker: r.string("common.preCreatedTopic.timeticker")?,
    })
}

fn datacoord(r: &Reader<'_>) -> Result<DataCoordSection, ConfigError> {
    Ok(DataCoordSection {
        ip: r.string("dataCoord.ip")?,
        port: r.int("dataCoord.port")?,
        enable_active_standby: r.bool("dataCoord.enableActiveStandby")?,
        grpc: GrpcServerConfig {
            server_max_send_size: r.int("dataCoord.grpc.serverMaxSendSize")?,
            server_max_recv_size: r.int("dataCoord.grpc.serverMaxRecvSize")?,
        },
        channel: ChannelConfig {
            watch_timeout_interval: r.seconds("dataCoord.channel.watchTimeoutInterval")?,
            balance_silent_duration: r.seconds("dataCoord.channel.balanceSilentDuration")?,
            balance_interval: r.seconds("dataCoord.channel.balanceInterval")?,
            notify_channel_operation_timeout: r
                .seconds("dataCoord.channel.notifyChannelOperationTimeout")?,
        },
        auto_balance: r.bool("dataCoord.autoBalance")?,
        check_auto_balance_config_interval: r
            .seconds("dataCoord.checkAutoBalanceConfigInterval")?,
        segment: SegmentConfig {
            max_size_mb: r.float("dataCoord.segment.maxSize")?,
            disk_segment_max_size_mb: r.float("dataCoord.segment.diskSegmentMaxSize")?,
            seal_proportion: r.float("dataCoord.segment.sealProportion")?,
            assignment_expiration: r.millis("dataCoord.segment.assignmentExpiration")?,
            alloc_latest_expire_attempt: r.int("dataCoord.segment.allocLatestExpireAttempt")?,
            max_life: r.seconds("dataCoord.segment.maxLife")?,
            max_idle_time: r.seconds("dataCoord.segment.maxIdleTime")?,
            min_size_from_idle_to_sealed_mb: r
                .float("dataCoord.segment.minSizeFromIdleToSealed")?,
            max_binlog_file_number: r.int("dataCoord.segment.maxBinlogFileNumber")?,
            small_proportion: r.float("dataCoord.segment.smallProportion")?,
            compactable_proportion: r.float("dataCoord.segment.compactableProportion")?,
            expansion_rate: r.float("dataCoord.segment.expansionRate")?,
        },
        auto_upgrade_segment_index: r.bool("dataCoord.autoUpgradeSegmentIndex")?,
        enable_compaction: r.bool("dataCoord.enableCompaction")?,
        compaction: CompactionConfig {
            enable_auto_compaction: r.bool("dataCoord.compaction.enableAutoCompaction")?,
            index_based_compaction: r.bool("dataCoord.compaction.indexBasedCompaction")?,
            rpc_timeout: r.seconds("dataCoord.compaction.rpcTimeout")?,
            max_parallel_task_num: r.int("dataCoord.compaction.maxParallelTaskNum")?,
            worker_max_parallel_task_num: r.int("dataCoord.compaction.workerMaxParallelTaskNum")?,
            min_segment: r.int("dataCoord.compaction.min.segment")?,
            max_segment: r.int("dataCoord.compaction.max.segment")?,
            timeout_seconds: r.int("dataCoord.compaction.timeout")?,
            check_interval: r.seconds("dataCoord.compaction.check.interval")?,
            single_ratio_threshold: r.float("dataCoord.compaction.single.ratio.threshold")?,
            single_deltalog_max_size: r.int("dataCoord.compaction.single.deltalog.maxsize")?,
            single_expiredlog_max_size: r.int("dataCoord.compaction.single.expiredlog.maxsize")?,
            single_deltalog_max_num: r.int("dataCoord.compaction.single.deltalog.maxnum")?,
            global_interval: r.seconds("dataCoord.compaction.global.interval")?,
        },
        enable_garbage_collection: r.bool("dataCoord.enableGarbageCollection")?,
        gc: GcConfig {
            interval: r.seconds("dataCoord.gc.interval")?,
            missing_tolerance: r.seconds("dataCoord.gc.missingTolerance")?,
            drop_tolerance: r.seconds("dataCoord.gc.dropTolerance")?,
            remove_concurrent: r.int("dataCoord.gc.removeConcurrent")?,
        },
    })
}

fn grpc_client(r: &Reader<'_>, domain: &str) -> Result<GrpcClientConfig, ConfigError> {
    Ok(GrpcClientConfig {
        client_max_send_size: r.int(&format!("{domain}.grpc.clientMaxSendSize"))?,
        client_max_recv_size: r.int(&format!("{domain}.grpc.clientMaxRecvSize"))?,
        dial_timeout: r.millis("grpc.client.dialTimeout")?,
        keep_alive_time: r.millis("grpc.client.keepAliveTime")?,
        keep_alive_timeout: r.millis("grpc.client.keepAliveTimeout")?,
        max_attempts: r.int("grpc.client.maxMaxAttempts")?,
        initial_backoff: r.seconds("grpc.client.initialBackoff")?,
        max_backoff: r.seconds("grpc.client.maxBackoff")?,
        compression_enabled: r.bool("grpc.client.compressionEnabled")?,
    })
}

/// 2.3.5 reads the metrics port from the environment only and ignores a non-numeric value.
fn metrics_port(map: &ConfigMap) -> u16 {
    let Some(value) = map.env_var("METRICS_PORT") else {
        return DEFAULT_METRICS_PORT;
    };
    value.parse().unwrap_or_else(|_| {
        tracing::warn!(
            value,
            default = DEFAULT_METRICS_PORT,
            "METRICS_PORT is not a port number"
        );
        DEFAULT_METRICS_PORT
    })
}

/// Go's `path.Join`: non-empty elements joined by `/`, then cleaned; all empty gives "".
fn go_path_join(elements: &[&str]) -> String {
    let joined: Vec<&str> = elements.iter().copied().filter(|e| !e.is_empty()).collect();
    if joined.is_empty() {
        return String::new();
    }
    go_path_clean(&joined.join("/"))
}

/// Go's `path.Clean`: collapse `//`, drop `.`, resolve `..` lexically; empty gives ".".
fn go_path_clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            name => parts.push(name),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_string(),
        (false, false) => body,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::defaults::PARAMS;

    #[test]
    fn every_declared_key_is_read_and_nothing_else() {
        let map = ConfigMap::new();
        let reader = Reader::new(&map);
        build(&reader, &map).unwrap();
        let declared: BTreeSet<&str> = PARAMS.iter().map(|param| param.key).collect();
        assert_eq!(reader.keys_read(), declared);
        assert_eq!(declared.len(), PARAMS.len(), "a key is declared twice");
    }

    #[test]
    fn paths_are_joined_and_cleaned_like_go() {
        assert_eq!(go_path_join(&["by-dev", "meta"]), "by-dev/meta");
        assert_eq!(go_path_join(&["/by-dev/", "meta/"]), "/by-dev/meta");
        assert_eq!(go_path_join(&["", ""]), "");
        assert_eq!(go_path_clean("a//b/./c/../d"), "a/b/d");
        assert_eq!(go_path_clean("../x"), "../x");
        assert_eq!(go_path_clean("/../x"), "/x");
        assert_eq!(go_path_clean(""), ".");
    }
}
