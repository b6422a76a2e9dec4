//! DataCoord's bulk insert as Milvus 2.3.5 runs it (FACTS-index-compaction-gc §4), driven by
//! RootCoord's import manager: [`ImportService::import`] relays an import task to a free
//! DataNode, [`ImportService::save_import_segment`] hands an imported segment to the DataNode
//! watching its channel and saves its binlogs, [`ImportService::unset_is_importing_state`]
//! ends the import for its segments. The DataNodes are reached through [`ImportNodes`], the
//! core's segments through [`ImportSegments`]. Allocation of Importing segments, their sealing
//! and expiry live in `datacoord-segments`; [`ImportCleaner`] expires the Importing segments of
//! import tasks RootCoord recorded as failed.

mod cleaner;
mod ports;
mod service;
mod validate;

#[cfg(feature = "testing")]
pub mod testing;

pub use cleaner::{FailedImport, ImportCleaner, ImportTasks, ImportingSegments};
pub use ports::{ImportNodes, ImportSegments};
pub use service::{ADD_IMPORT_SEGMENT_TIMEOUT, IMPORT_TIMEOUT, ImportService};
