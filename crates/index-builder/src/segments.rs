//! [`SegmentView`]: what the builder reads of segment metadata.

use std::sync::Arc;

use milvus_proto::common::SegmentState;
use milvus_proto::data::SegmentInfo;
use milvus_types::{CollectionId, SegmentId};

/// Segment metadata as the builder needs it. Binlogs may be in the stored log-ID form; the
/// builder rebuilds full paths with `datacoord_meta::with_full_paths`.
pub trait SegmentView: Send + Sync {
    /// A segment in any state (Dropped ones too, until GC removes them).
    fn segment(&self, id: SegmentId) -> Option<Arc<SegmentInfo>>;
    /// The collection's segments in state Flushed or Flushing.
    fn flushed_segments_of(&self, coll: CollectionId) -> Vec<Arc<SegmentInfo>>;
    /// Every segment in state Flushed or Flushing.
    fn all_flushed_segments(&self) -> Vec<Arc<SegmentInfo>>;
}

impl SegmentView for datacoord_meta::Meta {
    fn segment(&self, id: SegmentId) -> Option<Arc<SegmentInfo>> {
        datacoord_meta::Meta::segment(self, id)
    }

    fn flushed_segments_of(&self, coll: CollectionId) -> Vec<Arc<SegmentInfo>> {
        self.segments_of_collection(coll)
            .into_iter()
            .filter(|seg| datacoord_meta::is_flush_state(seg.state()))
            .collect()
    }

    fn all_flushed_segments(&self) -> Vec<Arc<SegmentInfo>> {
        self.segments_in_states(&[SegmentState::Flushed, SegmentState::Flushing])
    }
}
