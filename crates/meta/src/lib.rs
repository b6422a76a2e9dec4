//! DataCoord's segment metadata: the Milvus 2.3.5 etcd layout ([`Catalog`]; the key families
//! are catalogued in `src/keys.rs`) and the in-memory index over it ([`Meta`]).
//!
//! Segments are held once each, with their logs in the stored logID form (no paths): the few
//! that change often (Growing, Sealed, Flushing, Importing) as `Arc<SegmentInfo>`, the bulk
//! (Flushed, Dropped) in a compact private encoding (~120 bytes each) that reads rebuild into
//! a fresh `Arc<SegmentInfo>`. [`with_full_paths`] rebuilds paths for responses. Reads are
//! synchronous; writes persist first, then update memory, one at a time.

mod catalog;
mod codec;
mod compact;
mod compaction_writes;
mod error;
mod index;
mod keys;
mod loader;
mod logs;
mod merge;
mod meta;
mod segment_writes;
mod validate;

#[cfg(feature = "testing")]
pub mod testing;

pub use catalog::Catalog;
pub use compaction_writes::{
    CommitOutcome, CommitRefusal, CompactionCommit, CompactionSource, late_deltalogs,
};
pub use error::{MetaError, MetaResult};
pub use index::ChannelRemoval;
pub use keys::{
    CHANNEL_CHECKPOINT_PREFIX, CHANNEL_REMOVAL_PREFIX, LogKind, META_PREFIX, SEGMENT_PREFIX,
    channel_checkpoint_key, channel_removal_key, log_key, segment_key,
};
pub use logs::{
    binlog_row_count, is_flush_state, is_healthy, segment_binlog_size, with_full_paths,
};
pub use meta::Meta;
pub use segment_writes::{BinlogUpdate, DroppedSegment};
pub use validate::{LogOwner, check_pchannel_name, check_reported_logs, check_vchannel};
