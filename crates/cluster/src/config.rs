//! Settings of the channel manager, from the loaded configuration.

use std::time::Duration;

use milvus_config::DataCoordConfig;
use milvus_types::NodeId;

/// The pseudo node holding channels no datanode watches (Go's `bufferID = math.MinInt64`).
/// Its keys are persisted like any other: `channelwatch/-9223372036854775808/{vchannel}`.
pub const BUFFER_NODE: NodeId = i64::MIN;

/// Channel manager settings, read once from the loaded configuration
/// ([`ChannelConfig::from_config`]; its 2.3.5 defaults live in `milvus-config`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Key family of watch records, relative to metaRoot
    /// (`msgChannel.subNamePrefix.dataCoordWatchSubPath`, `channelwatch`).
    pub watch_subpath: String,
    /// How long a datanode may take to answer a ToWatch / ToRelease before DataCoord acts on its
    /// own (`dataCoord.channel.watchTimeoutInterval`). Zero disables the timers.
    pub watch_timeout: Duration,
    /// Quiet time needed before the background balancer moves anything
    /// (`dataCoord.channel.balanceSilentDuration`).
    pub balance_silent_duration: Duration,
    /// Period of the background balancer (`dataCoord.channel.balanceInterval`); zero disables
    /// it.
    pub balance_interval: Duration,
    /// `dataCoord.autoBalance`: rebalance when a datanode joins and in the background.
    pub auto_balance: bool,
}

impl ChannelConfig {
    /// The channel manager's settings in `config`.
    pub fn from_config(config: &DataCoordConfig) -> Self {
        let channel = &config.datacoord.channel;
        Self {
            watch_subpath: config.common.channels.datacoord_watch_sub_path.clone(),
            watch_timeout: channel.watch_timeout_interval,
            balance_silent_duration: channel.balance_silent_duration,
            balance_interval: channel.balance_interval,
            auto_balance: config.datacoord.auto_balance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_comes_from_its_key() {
        let mut config = DataCoordConfig::default();
        config.common.channels.datacoord_watch_sub_path = "watch".to_string();
        config.datacoord.channel.watch_timeout_interval = Duration::from_secs(1);
        config.datacoord.channel.balance_silent_duration = Duration::from_secs(2);
        config.datacoord.channel.balance_interval = Duration::from_secs(3);
        config.datacoord.auto_balance = false;
        assert_eq!(
            ChannelConfig::from_config(&config),
            ChannelConfig {
                watch_subpath: "watch".to_string(),
                watch_timeout: Duration::from_secs(1),
                balance_silent_duration: Duration::from_secs(2),
                balance_interval: Duration::from_secs(3),
                auto_balance: false,
            }
        );
    }
}
