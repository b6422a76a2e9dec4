//! The persistent side of segments, as the manager sees it.

use std::sync::Arc;

use async_trait::async_trait;
use milvus_proto::common::SegmentState;
use milvus_proto::data::SegmentInfo;
use milvus_types::{MilvusResult, SegmentId};

/// Persistent segment metadata (the meta crate in production). Reads are cheap snapshots; writes
/// persist before they return.
#[async_trait]
pub trait SegmentStore: Send + Sync {
    /// The segment in any state, or `None` if unknown.
    fn segment(&self, id: SegmentId) -> Option<Arc<SegmentInfo>>;
    /// Every segment whose state is one of `states`.
    fn segments_in_states(&self, states: &[SegmentState]) -> Vec<Arc<SegmentInfo>>;
    /// Persists a new segment.
    async fn add_segment(&self, seg: SegmentInfo) -> MilvusResult<()>;
    /// Persists a state change with 2.3.5's SetState rules (no transition check; unknown → error
    /// unless the target is Dropped; already-unhealthy → no-op).
    async fn set_state(&self, id: SegmentId, state: SegmentState) -> MilvusResult<()>;
}

/// The state of a stored segment; unknown numbers read as `None` (unhealthy).
pub fn state_of(seg: &SegmentInfo) -> SegmentState {
    SegmentState::try_from(seg.state).unwrap_or(SegmentState::None)
}

/// "Healthy" as 2.3.5 means it: not None, NotExist or Dropped.
pub fn is_healthy(state: SegmentState) -> bool {
    !matches!(
        state,
        SegmentState::None | SegmentState::NotExist | SegmentState::Dropped
    )
}

/// A stored segment, if it is healthy.
pub(crate) fn healthy_segment(store: &dyn SegmentStore, id: SegmentId) -> Option<Arc<SegmentInfo>> {
    store.segment(id).filter(|seg| is_healthy(state_of(seg)))
}
