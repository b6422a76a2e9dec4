//! DataCoord's index builder for Milvus 2.3.5 (FACTS `FACTS-index-compaction-gc.md` §1.4–1.10):
//! creates the segment-index records Flushed/Flushing segments lack ([`IndexBuilder::sweep`],
//! [`IndexBuilder::on_segment_flushed`], [`IndexBuilder::on_index_created`]) and schedules
//! the build tasks on IndexNodes ([`IndexBuilder::run_once`], [`IndexBuilder::start`]).
//! IndexNodes are reached through [`IndexNodes`], segments read through [`SegmentView`],
//! records kept in `datacoord_index::IndexMeta`.

mod assign;
mod builder;
mod config;
mod creator;
mod error;
mod nodes;
mod round;
mod segments;
mod task;

#[cfg(feature = "testing")]
pub mod testing;

pub use builder::IndexBuilder;
pub use config::{
    BuilderConfig, DEFAULT_CREATE_INDEX_CHECK_INTERVAL, EngineVersion, INDEX_FILES_DIR,
    NODE_RPC_TIMEOUT,
};
pub use error::{BuilderError, BuilderResult};
pub use nodes::{IndexNodes, node_not_registered};
pub use round::RoundSummary;
pub use segments::SegmentView;
pub use task::{TaskCounts, TaskState};
