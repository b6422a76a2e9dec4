//! [`SegmentPresence`]: the one question GC asks segment metadata in the index steps.

use datacoord_meta::Meta;
use milvus_types::SegmentId;

/// Whether a segment is still in segment metadata, in any state (Dropped included, until the
/// clearEtcd step collects it), as 2.3.5's `GetSegment`.
pub trait SegmentPresence: Send + Sync {
    /// True while segment metadata holds `id`.
    fn segment_exists(&self, id: SegmentId) -> bool;
}

impl SegmentPresence for Meta {
    fn segment_exists(&self, id: SegmentId) -> bool {
        self.segment(id).is_some()
    }
}
