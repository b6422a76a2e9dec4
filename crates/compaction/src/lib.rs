//! DataCoord's compaction for Milvus 2.3.5 (FACTS `FACTS-index-compaction-gc.md` §2,
//! `FACTS-compaction-datanode.md`): triggers (flush, periodic global, manual), 2.3.5's plan
//! arithmetic ([`policy`]), and tasks that run on the DataNode watching the plan's channel,
//! persisted before they are sent so a restart resumes them, committed atomically.
//!
//! [`CompactionEngine`] is the one entry point: [`CompactionEngine::load`] resumes the persisted
//! tasks, [`CompactionEngine::start`] runs the poller and the signal loop, and its methods are
//! the triggers, the RPC logic and what GC asks. DataNodes are reached through
//! [`CompactionNodes`]; results are committed with `datacoord_meta::Meta::complete_compaction`.

mod commit;
mod config;
mod dispatch;
mod engine;
mod metrics;
mod nodes;
pub mod policy;
mod poll;
mod record;
mod service;
mod tasks;
mod trigger;
mod validate;

#[cfg(feature = "testing")]
pub mod testing;

pub use config::CompactionConfig;
pub use engine::{CompactionDeps, CompactionEngine, EngineVersion};
pub use metrics::compacted_segment_size_opts;
pub use nodes::{CompactionNodes, node_not_registered};
pub use record::{COMPACTION_TASK_PREFIX, CompactionTaskRecord, TaskState, compaction_task_key};
