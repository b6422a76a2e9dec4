//! DataCoord's segment manager as Milvus 2.3.5 runs it: row allocation to Growing segments
//! (AssignSegmentID, policy V1), the seal policies, allocation expiry, which Sealed segments are
//! flushable on a datanode time tick, and the runtime state 2.3.5 keeps only in memory
//! (`currRows`, allocations, `lastExpire`, `lastFlushTime`, `lastWrittenTime`).
//!
//! Persistent segment metadata is reached through [`SegmentStore`], so this crate stands alone;
//! the meta crate implements it. Test doubles live behind the `testing` feature.

mod config;
mod error;
mod manager;
mod policy;
mod schema;
mod store;
#[cfg(feature = "testing")]
mod testing;

pub use config::{Clock, FLUSH_INTERVAL, SegmentConfig, SystemClock};
pub use error::SegmentError;
pub use manager::{Allocation, SegmentManager, SegmentRuntime};
pub use policy::SealReason;
pub use schema::max_rows_per_segment;
pub use store::{SegmentStore, is_healthy, state_of};
#[cfg(feature = "testing")]
pub use testing::{ManualClock, MemorySegmentStore, sample_schema};
