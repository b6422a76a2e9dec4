//! Every key the DataCoord port reads, with the Milvus 2.3.5 code default and the rules attached
//! to it (fallback keys, "must not be empty"). This table is the only place defaults live; a unit
//! test checks that the typed config reads exactly these keys.
//!
//! Keys are spelled as in Go's `paramtable` (`dataCoord.gc.interval`); lookups normalise them, so
//! the spelling only matters for logs and documentation.

/// One configuration key as 2.3.5 declares it.
#[derive(Debug)]
pub(crate) struct Param {
    pub key: &'static str,
    /// The code default, used when neither the key nor a fallback key is set.
    pub default: &'static str,
    /// Keys consulted, in order, when `key` itself is not set.
    pub fallback: &'static [&'static str],
    /// 2.3.5 refuses to start when the resolved value is empty.
    pub non_empty: bool,
}

const fn p(key: &'static str, default: &'static str) -> Param {
    Param {
        key,
        default,
        fallback: &[],
        non_empty: false,
    }
}

const fn required(key: &'static str, default: &'static str) -> Param {
    Param {
        key,
        default,
        fallback: &[],
        non_empty: true,
    }
}

const fn with_fallback(
    key: &'static str,
    default: &'static str,
    fallback: &'static [&'static str],
) -> Param {
    Param {
        key,
        default,
        fallback,
        non_empty: false,
    }
}

/// gRPC client settings are per target role; these are the roles DataCoord calls.
pub(crate) const CLIENT_DOMAINS: &[&str] = &["rootCoord", "dataNode", "indexNode"];

pub(crate) static PARAMS: &[Param] = &[
    // etcd
    required("etcd.endpoints", "localhost:2379"),
    required("etcd.rootPath", "by-dev"),
    required("etcd.metaSubPath", "meta"),
    required("etcd.kvSubPath", "kv"),
    p("etcd.requestTimeout", "10000"),
    p("etcd.use.embed", "false"),
    p("etcd.ssl.enabled", "false"),
    p("etcd.ssl.tlsCert", ""),
    p("etcd.ssl.tlsKey", ""),
    p("etcd.ssl.tlsCACert", ""),
    p("etcd.ssl.tlsMinVersion", "1.3"),
    // metastore / TiKV
    p("metastore.type", "etcd"),
    required("tikv.endpoints", "localhost:2379"),
    required("tikv.rootPath", "by-dev"),
    required("tikv.metaSubPath", "meta"),
    required("tikv.kvSubPath", "kv"),
    p("tikv.requestTimeout", "10000"),
    p("tikv.snapshotScanSize", "256"),
    p("tikv.ssl.enabled", "false"),
    p("tikv.ssl.tlsCert", ""),
    p("tikv.ssl.tlsKey", ""),
    p("tikv.ssl.tlsCACert", ""),
    // storage
    p("common.storageType", "remote"),
    p("localStorage.path", "/var/lib/milvus/data"),
    p("minio.address", ""),
    required("minio.port", "9000"),
    p("minio.accessKeyID", "minioadmin"),
    p("minio.secretAccessKey", "minioadmin"),
    required("minio.useSSL", "false"),
    required("minio.bucketName", "a-bucket"),
    p("minio.rootPath", ""),
    p("minio.useIAM", "false"),
    p("minio.cloudProvider", "aws"),
    p("minio.iamEndpoint", ""),
    p("minio.region", ""),
    required("minio.useVirtualHost", "false"),
    p("minio.requestTimeoutMs", "10000"),
    // common: cluster prefix and channel names. The channel names are declared "non-empty" in Go
    // but checked after `{cluster}-` is prepended, so an unset name yields `by-dev-`, not an error.
    Param {
        key: "msgChannel.chanNamePrefix.cluster",
        default: "by-dev",
        fallback: &["common.chanNamePrefix.cluster"],
        non_empty: true,
    },
    with_fallback(
        "msgChannel.chanNamePrefix.dataCoordTimeTick",
        "",
        &["common.chanNamePrefix.dataCoordTimeTick"],
    ),
    with_fallback(
        "msgChannel.chanNamePrefix.dataCoordSegmentInfo",
        "",
        &["common.chanNamePrefix.dataCoordSegmentInfo"],
    ),
    with_fallback(
        "msgChannel.subNamePrefix.dataCoordSubNamePrefix",
        "",
        &["common.subNamePrefix.dataCoordSubNamePrefix"],
    ),
    with_fallback(
        "msgChannel.subNamePrefix.dataNodeSubNamePrefix",
        "",
        &["common.subNamePrefix.dataNodeSubNamePrefix"],
    ),
    required(
        "msgChannel.subNamePrefix.dataCoordWatchSubPath",
        "channelwatch",
    ),
    p("common.entityExpiration", "-1"),
    p("common.session.ttl", "60"),
    p("common.session.retryTimes", "30"),
    p("common.preCreatedTopic.enabled", "false"),
    p("common.preCreatedTopic.timeticker", ""),
    // dataCoord: server
    p("dataCoord.ip", ""),
    p("dataCoord.port", "19530"),
    p("dataCoord.enableActiveStandby", "false"),
    with_fallback(
        "dataCoord.grpc.serverMaxSendSize",
        "536870912",
        &["grpc.serverMaxSendSize"],
    ),
    with_fallback(
        "dataCoord.grpc.serverMaxRecvSize",
        "268435456",
        &["grpc.serverMaxRecvSize"],
    ),
    // dataCoord: channels and balance
    p("dataCoord.channel.watchTimeoutInterval", "120"),
    p("dataCoord.channel.balanceSilentDuration", "300"),
    p("dataCoord.channel.balanceInterval", "360"),
    p("dataCoord.channel.notifyChannelOperationTimeout", "5"),
    required("dataCoord.autoBalance", "true"),
    required("dataCoord.checkAutoBalanceConfigInterval", "10"),
    // dataCoord: segments
    p("dataCoord.segment.maxSize", "512"),
    p("dataCoord.segment.diskSegmentMaxSize", "512"),
    p("dataCoord.segment.sealProportion", "0.23"),
    p("dataCoord.segment.assignmentExpiration", "2000"),
    p("dataCoord.segment.allocLatestExpireAttempt", "200"),
    p("dataCoord.segment.maxLife", "86400"),
    p("dataCoord.segment.maxIdleTime", "600"),
    p("dataCoord.segment.minSizeFromIdleToSealed", "16.0"),
    p("dataCoord.segment.maxBinlogFileNumber", "32"),
    p("dataCoord.segment.smallProportion", "0.5"),
    p("dataCoord.segment.compactableProportion", "0.85"),
    p("dataCoord.segment.expansionRate", "1.25"),
    required("dataCoord.autoUpgradeSegmentIndex", "false"),
    // dataCoord: compaction
    p("dataCoord.enableCompaction", "true"),
    p("dataCoord.compaction.enableAutoCompaction", "true"),
    p("dataCoord.compaction.indexBasedCompaction", "true"),
    p("dataCoord.compaction.rpcTimeout", "10"),
    p("dataCoord.compaction.maxParallelTaskNum", "10"),
    p("dataCoord.compaction.workerMaxParallelTaskNum", "2"),
    p("dataCoord.compaction.min.segment", "3"),
    p("dataCoord.compaction.max.segment", "30"),
    p("dataCoord.compaction.timeout", "900"),
    p("dataCoord.compaction.check.interval", "10"),
    p("dataCoord.compaction.single.ratio.threshold", "0.2"),
    p("dataCoord.compaction.single.deltalog.maxsize", "2097152"),
    p("dataCoord.compaction.single.expiredlog.maxsize", "10485760"),
    p("dataCoord.compaction.single.deltalog.maxnum", "200"),
    p("dataCoord.compaction.global.interval", "60"),
    // dataCoord: garbage collection
    p("dataCoord.enableGarbageCollection", "true"),
    p("dataCoord.gc.interval", "3600"),
    p("dataCoord.gc.missingTolerance", "3600"),
    p("dataCoord.gc.dropTolerance", "10800"),
    p("dataCoord.gc.removeConcurrent", "32"),
    // indexCoord (served by DataCoord in 2.3)
    p("indexCoord.segment.minSegmentNumRowsToEnableIndex", "1024"),
    p("indexCoord.scheduler.interval", "1000"),
    p("indexCoord.bindIndexNodeMode.enable", "false"),
    p("indexCoord.bindIndexNodeMode.address", "localhost:22930"),
    p("indexCoord.bindIndexNodeMode.withCred", "false"),
    p("indexCoord.bindIndexNodeMode.nodeID", "0"),
    // keys of other roles that DataCoord acts on
    p("dataNode.segment.binlog.maxsize", "67108864"),
    p("datanode.timetick.byRPC", "true"),
    p("rootCoord.importTaskExpiration", "900"),
    // gRPC clients (per-domain sizes, shared dial and retry settings)
    with_fallback(
        "rootCoord.grpc.clientMaxSendSize",
        "268435456",
        &["grpc.clientMaxSendSize"],
    ),
    with_fallback(
        "rootCoord.grpc.clientMaxRecvSize",
        "536870912",
        &["grpc.clientMaxRecvSize"],
    ),
    with_fallback(
        "dataNode.grpc.clientMaxSendSize",
        "268435456",
        &["grpc.clientMaxSendSize"],
    ),
    with_fallback(
        "dataNode.grpc.clientMaxRecvSize",
        "536870912",
        &["grpc.clientMaxRecvSize"],
    ),
    with_fallback(
        "indexNode.grpc.clientMaxSendSize",
        "268435456",
        &["grpc.clientMaxSendSize"],
    ),
    with_fallback(
        "indexNode.grpc.clientMaxRecvSize",
        "536870912",
        &["grpc.clientMaxRecvSize"],
    ),
    p("grpc.client.dialTimeout", "200"),
    p("grpc.client.keepAliveTime", "10000"),
    p("grpc.client.keepAliveTimeout", "20000"),
    p("grpc.client.maxMaxAttempts", "10"),
    p("grpc.client.initialBackoff", "0.2"),
    p("grpc.client.maxBackoff", "10"),
    p("grpc.client.compressionEnabled", "false"),
    // log
    p("log.level", "info"),
    p("log.file.rootPath", ""),
    p("log.file.maxSize", "300"),
    p("log.file.maxAge", "10"),
    p("log.file.maxBackups", "20"),
    p("log.format", "text"),
    p("log.stdout", "true"),
    p("grpc.log.level", "WARNING"),
];

/// The metrics/health HTTP port when env `METRICS_PORT` is unset or not a number.
pub(crate) const DEFAULT_METRICS_PORT: u16 = 9091;

/// Every key DataCoord reads with its 2.3.5 code default (`""` where Go declares none), in the
/// spelling of Go's `paramtable`.
pub fn declared_keys() -> impl Iterator<Item = (&'static str, &'static str)> {
    PARAMS.iter().map(|param| (param.key, param.default))
}

/// The declaration of `key`; every key the typed config reads must be in [`PARAMS`].
pub(crate) fn param(key: &str) -> &'static Param {
    PARAMS
        .iter()
        .find(|param| param.key == key)
        .unwrap_or_else(|| panic!("config key {key} is not declared in defaults.rs"))
}
