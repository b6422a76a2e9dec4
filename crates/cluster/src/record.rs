//! The watch records: key layout under metaRoot and the `data.ChannelWatchInfo` values.
//!
//! Keys are `{subpath}/{nodeID}/{vchannel}` (subpath default `channelwatch`, node id plain decimal,
//! the buffer node as `-9223372036854775808`). Values are protobuf `ChannelWatchInfo` as written by
//! 2.3.5 DataCoord (FACTS D.1): `vchan` from the meta provider, `startTs` in Unix **seconds**,
//! `state` ToWatch or ToRelease, `schema` when known, every other field zero.

use std::time::{SystemTime, UNIX_EPOCH};

use milvus_proto::data::{ChannelWatchInfo, ChannelWatchState, VchannelInfo};
use milvus_proto::schema::CollectionSchema;
use milvus_types::NodeId;
use prost::Message;

use crate::error::{ClusterError, ClusterResult};

/// `{subpath}/{node}/{channel}`.
pub(crate) fn channel_key(subpath: &str, node: NodeId, channel: &str) -> String {
    format!("{subpath}/{node}/{channel}")
}

/// `{subpath}/{node}/` — with the trailing `/`, so node 2 never matches node 21's keys (Go
/// deletes `channelwatch/{node}` without it, FACTS C.4).
pub(crate) fn node_prefix(subpath: &str, node: NodeId) -> String {
    format!("{subpath}/{node}/")
}

/// `{subpath}/`: every watch record.
pub(crate) fn all_prefix(subpath: &str) -> String {
    format!("{subpath}/")
}

/// The node of a watch key: its second-to-last `/`-separated element, as Go parses it.
pub(crate) fn parse_node(key: &str) -> ClusterResult<NodeId> {
    let mut parts = key.rsplit('/');
    let _channel = parts.next();
    let node = parts
        .next()
        .ok_or_else(|| invalid(key, "no node element"))?;
    node.parse::<NodeId>()
        .map_err(|err| invalid(key, format!("node element {node:?}: {err}")))
}

fn invalid(key: &str, reason: impl Into<String>) -> ClusterError {
    ClusterError::InvalidRecord {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Decodes a stored value; a record without `vchan` is refused, as Go's `parseWatchInfo` does.
pub(crate) fn decode(key: &str, value: &[u8]) -> ClusterResult<ChannelWatchInfo> {
    let info = ChannelWatchInfo::decode(value).map_err(|err| invalid(key, err.to_string()))?;
    if info.vchan.is_none() {
        return Err(invalid(key, "ChannelWatchInfo without vchan"));
    }
    Ok(info)
}

/// The value DataCoord writes for a channel entering `state` (ToWatch or ToRelease).
pub(crate) fn encode(
    vchan: VchannelInfo,
    state: ChannelWatchState,
    schema: Option<CollectionSchema>,
    start_ts: i64,
) -> Vec<u8> {
    debug_assert!(
        matches!(
            state,
            ChannelWatchState::ToWatch | ChannelWatchState::ToRelease
        ),
        "DataCoord only writes ToWatch / ToRelease"
    );
    ChannelWatchInfo {
        vchan: Some(vchan),
        start_ts,
        state: state as i32,
        timeout_ts: 0,
        schema,
        progress: 0,
        op_id: 0,
    }
    .encode_to_vec()
}

/// Wall-clock Unix seconds, the unit of `startTs`.
pub(crate) fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// What a datanode's answer (or a timer) means to DataCoord (Go's ack types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ack {
    WatchSuccess,
    WatchFailure,
    WatchTimeout,
    ReleaseSuccess,
    ReleaseFailure,
    ReleaseTimeout,
    Invalid,
}

impl Ack {
    /// The ack a stored state stands for. ToWatch/Uncomplete and ToRelease only reach this through
    /// timers (their PUTs are tickles), where they mean "no answer in time".
    pub(crate) fn of_state(state: i32) -> Self {
        match ChannelWatchState::try_from(state) {
            Ok(ChannelWatchState::WatchSuccess | ChannelWatchState::Complete) => Self::WatchSuccess,
            Ok(ChannelWatchState::WatchFailure) => Self::WatchFailure,
            Ok(ChannelWatchState::ReleaseSuccess) => Self::ReleaseSuccess,
            Ok(ChannelWatchState::ReleaseFailure) => Self::ReleaseFailure,
            Ok(ChannelWatchState::ToWatch | ChannelWatchState::Uncomplete) => Self::WatchTimeout,
            Ok(ChannelWatchState::ToRelease) => Self::ReleaseTimeout,
            Err(_) => Self::Invalid,
        }
    }

    pub(crate) fn is_timeout(self) -> bool {
        matches!(self, Self::WatchTimeout | Self::ReleaseTimeout)
    }
}

/// States a datanode is still working on: their PUTs only delay the channel's timer.
pub(crate) fn is_running_state(state: i32) -> bool {
    matches!(
        ChannelWatchState::try_from(state),
        Ok(ChannelWatchState::ToWatch
            | ChannelWatchState::ToRelease
            | ChannelWatchState::Uncomplete)
    )
}

/// Log name of a state number.
pub(crate) fn state_name(state: i32) -> &'static str {
    ChannelWatchState::try_from(state).map_or("Unknown", |state| state.as_str_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            channel_key(
                "channelwatch",
                crate::BUFFER_NODE,
                "by-dev-rootcoord-dml_1_7v0"
            ),
            "channelwatch/-9223372036854775808/by-dev-rootcoord-dml_1_7v0"
        );
        assert_eq!(node_prefix("channelwatch", 2), "channelwatch/2/");
        assert_eq!(
            parse_node("channelwatch/-9223372036854775808/ch").unwrap(),
            crate::BUFFER_NODE
        );
        assert_eq!(parse_node("by-dev/meta/channelwatch/21/ch").unwrap(), 21);
        assert!(parse_node("ch").is_err());
        assert!(parse_node("channelwatch/x/ch").is_err());
    }

    #[test]
    fn value_round_trip() {
        let vchan = VchannelInfo {
            collection_id: 7,
            channel_name: "ch".into(),
            flushed_segment_ids: vec![1, 2],
            ..VchannelInfo::default()
        };
        let bytes = encode(
            vchan.clone(),
            ChannelWatchState::ToWatch,
            None,
            1_700_000_000,
        );
        let info = decode("channelwatch/1/ch", &bytes).unwrap();
        assert_eq!(info.vchan, Some(vchan));
        assert_eq!(info.state, ChannelWatchState::ToWatch as i32);
        assert_eq!(info.start_ts, 1_700_000_000);
        assert_eq!((info.progress, info.timeout_ts, info.op_id), (0, 0, 0));

        let no_vchan = ChannelWatchInfo::default().encode_to_vec();
        assert!(decode("k", &no_vchan).is_err());
        assert!(decode("k", b"\xff\xff").is_err());
    }

    #[test]
    fn acks() {
        use ChannelWatchState as S;
        assert_eq!(Ack::of_state(S::Complete as i32), Ack::WatchSuccess);
        assert_eq!(Ack::of_state(S::WatchFailure as i32), Ack::WatchFailure);
        assert_eq!(Ack::of_state(S::ReleaseSuccess as i32), Ack::ReleaseSuccess);
        assert_eq!(Ack::of_state(S::ReleaseFailure as i32), Ack::ReleaseFailure);
        assert_eq!(Ack::of_state(S::Uncomplete as i32), Ack::WatchTimeout);
        assert_eq!(Ack::of_state(S::ToRelease as i32), Ack::ReleaseTimeout);
        assert_eq!(Ack::of_state(42), Ack::Invalid);
        assert!(is_running_state(S::Uncomplete as i32));
        assert!(!is_running_state(S::WatchSuccess as i32));
    }
}
