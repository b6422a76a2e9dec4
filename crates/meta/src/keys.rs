//! The etcd key layout of DataCoord's segment metadata (Milvus 2.3.5), relative to `metaRoot`
//! (`etcd.rootPath/etcd.metaSubPath`, `by-dev/meta` by default; TiKV uses the same keys).
//!
//! | key | value |
//! |---|---|
//! | `datacoord-meta/s/{coll}/{part}/{seg}` | `data.SegmentInfo` with `binlogs`, `statslogs`, `deltalogs` empty |
//! | `datacoord-meta/binlog/{coll}/{part}/{seg}/{field}` | `data.FieldBinlog`: the field's whole insert-log list, logID form |
//! | `datacoord-meta/deltalog/{coll}/{part}/{seg}/{field}` | `data.FieldBinlog` of delete logs (field normally 0) |
//! | `datacoord-meta/statslog/{coll}/{part}/{seg}/{field}` | `data.FieldBinlog` of pk stats logs |
//! | `datacoord-meta/channel-cp/{vchannel}` | `msg.MsgPosition` |
//! | `datacoord-meta/channel-removal/{vchannel}` | text `non-removed` or `removed` |
//!
//! "logID form": every `Binlog` keeps its sizes, timestamps and `logID`; `log_path` is empty
//! (rebuilt from the chunk-manager root when answering RPCs). IDs are plain decimal.
//!
//! Prefixes built here end with `/`, so segment 1 never matches segment 10 (2.3.5 omits the
//! slash in some prefix deletes and walks; the result differs only in that latent bug).

use milvus_types::{CollectionId, FieldId, PartitionId, SegmentId};

/// Root of every key family of this crate.
pub const META_PREFIX: &str = "datacoord-meta";
/// Walk prefix of segment records.
pub const SEGMENT_PREFIX: &str = "datacoord-meta/s/";
/// Prefix of channel checkpoints.
pub const CHANNEL_CHECKPOINT_PREFIX: &str = "datacoord-meta/channel-cp/";
/// Prefix of channel removal flags.
pub const CHANNEL_REMOVAL_PREFIX: &str = "datacoord-meta/channel-removal/";
/// Removal flag value: the channel is watched and alive.
pub const NON_REMOVED_FLAG: &str = "non-removed";
/// Removal flag value: the channel was dropped, cleanup pending.
pub const REMOVED_FLAG: &str = "removed";

/// The three kinds of log files a segment lists, each stored under its own key family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogKind {
    /// Insert binlogs (`binlogs`, key family `binlog`, files under `insert_log`).
    Insert,
    /// Delete logs (`deltalogs`, key family `deltalog`, files under `delta_log`).
    Delta,
    /// Primary-key stats logs (`statslogs`, key family `statslog`, files under `stats_log`).
    Stats,
}

impl LogKind {
    /// All kinds, in the order the catalog writes them.
    pub const ALL: [LogKind; 3] = [LogKind::Insert, LogKind::Delta, LogKind::Stats];

    /// The key family prefix, with trailing `/`.
    pub fn key_prefix(self) -> &'static str {
        match self {
            LogKind::Insert => "datacoord-meta/binlog/",
            LogKind::Delta => "datacoord-meta/deltalog/",
            LogKind::Stats => "datacoord-meta/statslog/",
        }
    }

    /// The same kind in the storage layout (which names the files' directory).
    pub fn binlog_kind(self) -> milvus_storage::BinlogKind {
        match self {
            LogKind::Insert => milvus_storage::BinlogKind::Insert,
            LogKind::Delta => milvus_storage::BinlogKind::Delta,
            LogKind::Stats => milvus_storage::BinlogKind::Stats,
        }
    }
}

/// `datacoord-meta/s/{coll}/{part}/{seg}`
pub fn segment_key(coll: CollectionId, part: PartitionId, seg: SegmentId) -> String {
    format!("{SEGMENT_PREFIX}{coll}/{part}/{seg}")
}

/// `datacoord-meta/{binlog|deltalog|statslog}/{coll}/{part}/{seg}/{field}`
pub fn log_key(
    kind: LogKind,
    coll: CollectionId,
    part: PartitionId,
    seg: SegmentId,
    field: FieldId,
) -> String {
    format!("{}{coll}/{part}/{seg}/{field}", kind.key_prefix())
}

/// Prefix of every log key of one kind of one segment, with trailing `/`.
pub fn segment_log_prefix(
    kind: LogKind,
    coll: CollectionId,
    part: PartitionId,
    seg: SegmentId,
) -> String {
    format!("{}{coll}/{part}/{seg}/", kind.key_prefix())
}

/// Prefix of the segment records of a collection (`part == None`) or of one partition.
pub fn segments_prefix(coll: CollectionId, part: Option<PartitionId>) -> String {
    match part {
        None => format!("{SEGMENT_PREFIX}{coll}/"),
        Some(part) => format!("{SEGMENT_PREFIX}{coll}/{part}/"),
    }
}

/// `datacoord-meta/channel-cp/{vchannel}`
pub fn channel_checkpoint_key(vchannel: &str) -> String {
    format!("{CHANNEL_CHECKPOINT_PREFIX}{vchannel}")
}

/// `datacoord-meta/channel-removal/{vchannel}`
pub fn channel_removal_key(vchannel: &str) -> String {
    format!("{CHANNEL_REMOVAL_PREFIX}{vchannel}")
}

/// The IDs named by a log key: `(coll, part, seg)` after the kind's prefix. Like 2.3.5, only the
/// first three components are required; the field comes from the value.
pub(crate) fn parse_log_key(
    kind: LogKind,
    key: &str,
) -> Option<(CollectionId, PartitionId, SegmentId)> {
    let mut ids = key.strip_prefix(kind.key_prefix())?.split('/');
    let coll = ids.next()?.parse().ok()?;
    let part = ids.next()?.parse().ok()?;
    let seg = ids.next()?.parse().ok()?;
    Some((coll, part, seg))
}

/// Orders field IDs as their keys sort (decimal strings, byte order), which is the order a
/// prefix walk returns them in: `0, 1, 100, 101, 2`.
pub(crate) fn field_key_order(a: FieldId, b: FieldId) -> std::cmp::Ordering {
    a.to_string().cmp(&b.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(segment_key(1, 2, 3), "datacoord-meta/s/1/2/3");
        assert_eq!(
            log_key(LogKind::Stats, 1, 2, 3, 100),
            "datacoord-meta/statslog/1/2/3/100"
        );
        assert_eq!(
            segment_log_prefix(LogKind::Delta, 1, 2, 3),
            "datacoord-meta/deltalog/1/2/3/"
        );
        assert_eq!(segments_prefix(1, None), "datacoord-meta/s/1/");
        assert_eq!(segments_prefix(1, Some(-1)), "datacoord-meta/s/1/-1/");
        assert_eq!(channel_checkpoint_key("v0"), "datacoord-meta/channel-cp/v0");
        assert_eq!(
            channel_removal_key("v0"),
            "datacoord-meta/channel-removal/v0"
        );
        // The segment walk must not see the stats family, which shares the `s` initial.
        assert!(!log_key(LogKind::Stats, 1, 2, 3, 4).starts_with(SEGMENT_PREFIX));
    }

    #[test]
    fn log_keys_parse() {
        let key = log_key(LogKind::Insert, 10, -2, 30, 100);
        assert_eq!(parse_log_key(LogKind::Insert, &key), Some((10, -2, 30)));
        assert_eq!(parse_log_key(LogKind::Delta, &key), None);
        assert_eq!(
            parse_log_key(LogKind::Insert, "datacoord-meta/binlog/1/2/3"),
            Some((1, 2, 3))
        );
        assert_eq!(
            parse_log_key(LogKind::Insert, "datacoord-meta/binlog/1/x/3/4"),
            None
        );
        assert_eq!(
            parse_log_key(LogKind::Insert, "datacoord-meta/binlog/1/2"),
            None
        );
    }

    #[test]
    fn fields_sort_like_keys() {
        let mut fields = vec![101, 2, 0, 100, 1];
        fields.sort_by(|a, b| field_key_order(*a, *b));
        assert_eq!(fields, vec![0, 1, 100, 101, 2]);
    }
}
