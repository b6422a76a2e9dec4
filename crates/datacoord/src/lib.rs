//! The DataCoord of milvus-datacoord: lifecycle and RPC logic, free of transport details.
//!
//! [`Server`] follows 2.3.5's `Init` → `Register` → `Start` → `Stop` and answers the
//! component RPCs; once active it owns the per-feature services the other RPCs call
//! ([`DataPath`], [`Queries`], [`Indexes`], [`ImportService`], [`GcService`]), handed out by
//! [`Server::data_path`] & co. after their health check. README.md has the module map and how
//! a feature crate plugs in. The gRPC adapters live in `datacoord-grpc-server`.

mod adapters;
mod background;
mod channels;
mod clients;
mod collections;
mod compaction;
mod component;
mod datanodes;
mod datapath;
mod discovery;
mod flush;
mod garbage;
mod handler;
mod import;
mod indexes;
mod indexnodes;
mod init;
mod metrics;
mod monitor;
mod nodes;
mod queries;
mod server;
mod services;
mod state;
mod system_info;
#[cfg(feature = "testing")]
pub mod testing;

pub use clients::{
    DataNodeClient, IndexNodeClient, NodeChannel, TargetMetadata, datanode_creator,
    indexnode_creator, node_channel,
};
pub use compaction::CompactionService;
pub use component::MetricsAnswer;
pub use datacoord_import::ImportService;
pub use datanodes::DataNodes;
pub use datapath::DataPath;
pub use flush::{FlushListener, FlushedSegment};
pub use garbage::GcService;
pub use indexes::Indexes;
pub use metrics::Metrics;
pub use queries::Queries;
pub use server::{INDEXCOORD_ROLE, ROLE, Server};
pub use services::Services;
pub use system_info::{DataCoordTopology, SYSTEM_INFO_METRICS, parse_metric_type};
