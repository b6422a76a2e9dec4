//! IDs and hybrid timestamps (TSO) as Milvus uses them.

/// Any ID handed out by RootCoord's allocator.
pub type UniqueId = i64;
/// `collectionID`
pub type CollectionId = i64;
/// `partitionID`; `-1` means "all partitions" where an RPC allows it.
pub type PartitionId = i64;
/// `segmentID`
pub type SegmentId = i64;
/// `fieldID`
pub type FieldId = i64;
/// `indexID`
pub type IndexId = i64;
/// A session ServerID (`nodeID` on the wire).
pub type NodeId = i64;
/// Hybrid timestamp: `physical_ms << 18 | logical`.
pub type Timestamp = u64;

const LOGICAL_BITS: u32 = 18;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;

/// Builds a TSO from physical milliseconds since the Unix epoch and a logical counter.
pub fn compose_ts(physical_ms: u64, logical: u64) -> Timestamp {
    (physical_ms << LOGICAL_BITS) | (logical & LOGICAL_MASK)
}

/// Splits a TSO into (physical milliseconds, logical counter).
pub fn parse_ts(ts: Timestamp) -> (u64, u64) {
    (ts >> LOGICAL_BITS, ts & LOGICAL_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tso_round_trips() {
        let ts = compose_ts(1_700_000_000_123, 42);
        assert_eq!(parse_ts(ts), (1_700_000_000_123, 42));
        // A real 2.3.5 timestamp from an etcd dump decodes to a 2023 wall-clock time.
        let (ms, _) = parse_ts(446_200_000_000_000_000);
        assert!((1_600_000_000_000..1_800_000_000_000).contains(&ms), "{ms}");
    }
}
