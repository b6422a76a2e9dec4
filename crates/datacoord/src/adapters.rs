//! The meta as the channel manager and the segment manager see it: both crates stand alone and
//! reach DataCoord's meta only through these small traits.

use std::sync::Arc;

use async_trait::async_trait;
use datacoord_cluster::{ChannelMetaProvider, ChannelSpec};
use datacoord_meta::{ChannelRemoval, Meta};
use datacoord_segments::SegmentStore;
use milvus_proto::common::SegmentState;
use milvus_proto::data::{SegmentInfo, VchannelInfo};
use milvus_types::{MilvusResult, SegmentId};

use crate::collections::Collections;
use crate::handler::{self, ChannelRef};

/// [`ChannelMetaProvider`] over the meta and the collection cache.
pub(crate) struct ChannelMeta {
    pub(crate) meta: Arc<Meta>,
    pub(crate) collections: Arc<Collections>,
}

#[async_trait]
impl ChannelMetaProvider for ChannelMeta {
    fn vchannel_info(&self, channel: &ChannelSpec) -> VchannelInfo {
        let channel = ChannelRef {
            name: &channel.name,
            collection_id: channel.collection_id,
            start_positions: &channel.start_positions,
            create_timestamp: channel.create_timestamp,
        };
        handler::data_vchan_positions(&self.meta, &self.collections, channel, 0)
    }

    fn should_drop(&self, vchannel: &str) -> bool {
        self.meta.channel_removal(vchannel) == ChannelRemoval::Removed
    }

    async fn finish_drop(&self, vchannel: &str) -> MilvusResult<()> {
        self.meta.finish_drop_channel(vchannel).await?;
        Ok(())
    }
}

/// [`SegmentStore`] over the meta.
pub(crate) struct SegmentMeta(pub(crate) Arc<Meta>);

#[async_trait]
impl SegmentStore for SegmentMeta {
    fn segment(&self, id: SegmentId) -> Option<Arc<SegmentInfo>> {
        self.0.segment(id)
    }

    fn segments_in_states(&self, states: &[SegmentState]) -> Vec<Arc<SegmentInfo>> {
        self.0.segments_in_states(states)
    }

    async fn add_segment(&self, segment: SegmentInfo) -> MilvusResult<()> {
        self.0.add_segment(segment).await?;
        Ok(())
    }

    async fn set_state(&self, id: SegmentId, state: SegmentState) -> MilvusResult<()> {
        self.0.set_state(id, state).await?;
        Ok(())
    }
}
