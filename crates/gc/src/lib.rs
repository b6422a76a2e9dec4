//! DataCoord's garbage collector (Milvus 2.3.5, FACTS §3): a [`GarbageCollector`] that runs an
//! ordered list of [`GcStep`]s every `dataCoord.gc.interval`, with pause/resume and on-demand
//! runs, and the index steps ([`IndexGc`]): deleted `field-index` records, unused
//! `segment-index` records with their files, and unreferenced objects under `index_files/`.
//! The segment steps (clearEtcd, orphan binlog scan) slot in at their [`Stage`].

mod collector;
mod config;
mod error;
mod index;
mod segments;
mod step;
mod storage;

#[cfg(feature = "testing")]
pub mod testing;

pub use collector::{GarbageCollector, GcStats, RunOutcome, RunReport};
pub use config::GcConfig;
pub use error::{GcError, GcResult};
pub use index::IndexGc;
pub use segments::SegmentPresence;
pub use step::{GcStep, Stage, StepReport};
pub use storage::GcStorage;
