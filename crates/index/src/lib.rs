//! DataCoord's index metadata: the Milvus 2.3.5 `field-index/` and `segment-index/` records
//! ([`IndexCatalog`]; the layout is catalogued in `src/model.rs`), held in memory by
//! [`IndexMeta`] (by collection, by segment, by build ID), and the logic of the index RPCs
//! (CreateIndex, DescribeIndex, GetIndexStatistics, GetIndexState, GetSegmentIndexState,
//! GetIndexBuildProgress, GetIndexInfos, DropIndex) as methods on [`IndexMeta`] over a
//! [`SegmentSource`]. Writes persist first, then update memory, one at a time.

mod catalog;
mod error;
mod meta;
mod model;
mod params;
mod service;
mod stats;

#[cfg(feature = "testing")]
pub mod testing;

pub use catalog::{ALTER_INDEXES_CHUNK, IndexCatalog, encode_index, encode_segment_index};
pub use error::{IndexError, IndexResult};
pub use meta::{FinishedTask, IndexMeta};
pub use model::{
    BuildId, FIELD_INDEX_PREFIX, Index, SEGMENT_INDEX_PREFIX, SegmentIndex, field_index_key,
    index_type, segment_index_key,
};
pub use service::{
    CreateIndexEnv, DISKANN, SegmentSource, StaticEnv, first_vector_field, is_indexable,
};
pub use stats::{IndexStats, index_stats, lineage_indexed_rows};
