//! Settings of the channel manager and their Milvus 2.3.5 defaults.

use std::time::Duration;

use milvus_types::NodeId;

/// The pseudo node holding channels no datanode watches (Go's `bufferID = math.MinInt64`).
/// Its keys are persisted like any other: `channelwatch/-9223372036854775808/{vchannel}`.
pub const BUFFER_NODE: NodeId = i64::MIN;

/// Default of `msgChannel.subNamePrefix.dataCoordWatchSubPath`.
pub const DEFAULT_WATCH_SUBPATH: &str = "channelwatch";

/// Channel manager settings. [`Default`] gives the values of the shipped 2.3.5 `milvus.yaml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Key family of watch records, relative to metaRoot
    /// (`msgChannel.subNamePrefix.dataCoordWatchSubPath`, default `channelwatch`).
    pub watch_subpath: String,
    /// How long a datanode may take to answer a ToWatch / ToRelease before DataCoord acts on its
    /// own (`dataCoord.channel.watchTimeoutInterval`: 300 s in milvus.yaml, 120 s code default).
    /// Zero disables the timers.
    pub watch_timeout: Duration,
    /// Quiet time needed before the background balancer moves anything
    /// (`dataCoord.channel.balanceSilentDuration`, 300 s).
    pub balance_silent_duration: Duration,
    /// Period of the background balancer (`dataCoord.channel.balanceInterval`, 360 s); zero
    /// disables it.
    pub balance_interval: Duration,
    /// `dataCoord.autoBalance` (true): rebalance when a datanode joins and in the background.
    pub auto_balance: bool,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            watch_subpath: DEFAULT_WATCH_SUBPATH.to_string(),
            watch_timeout: Duration::from_secs(300),
            balance_silent_duration: Duration::from_secs(300),
            balance_interval: Duration::from_secs(360),
            auto_balance: true,
        }
    }
}
