//! DataCoord's garbage collector (Milvus 2.3.5, FACTS §3): a [`GarbageCollector`] that runs an
//! ordered list of [`GcStep`]s every `dataCoord.gc.interval`, with pause/resume and on-demand
//! runs, and the steps themselves: [`ClearEtcdStep`] (Dropped segments and their files,
//! checkpoints of gone channels), the index steps of [`IndexGc`] (deleted `field-index`
//! records, unused `segment-index` records with their files, unreferenced objects under
//! `index_files/`) and [`ScanStep`] (orphan insert/stats/delta objects, streamed).

mod clear_etcd;
mod collector;
mod config;
mod error;
mod index;
mod remove;
mod scan;
mod segments;
mod step;
mod storage;

#[cfg(feature = "testing")]
pub mod testing;

pub use clear_etcd::{ClearEtcdStep, CollectionSchemas};
pub use collector::{GarbageCollector, GcStats, RunOutcome, RunReport};
pub use config::GcConfig;
pub use error::{GcError, GcResult};
pub use index::IndexGc;
pub use scan::{PendingCompactions, ScanStep};
pub use segments::SegmentPresence;
pub use step::{GcStep, Stage, StepReport};
pub use storage::GcStorage;
