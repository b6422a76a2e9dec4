//! The DataCoord of milvus-datacoord: lifecycle and RPC logic, free of transport details.
//!
//! [`Server`] follows 2.3.5's `Init` → `Register` → `Start` → `Stop` (see README.md for what each
//! step does today and what is still missing). The gRPC adapters live in `datacoord-grpc-server`.

mod adapters;
mod clients;
mod collections;
mod datanodes;
mod datapath;
mod discovery;
mod garbage;
mod handler;
mod indexes;
mod metrics;
mod nodes;
mod queries;
mod server;
mod services;
mod state;
mod system_info;

pub use clients::{
    DataNodeClient, IndexNodeClient, NodeChannel, TargetMetadata, datanode_creator,
    indexnode_creator, node_channel,
};
pub use metrics::Metrics;
pub use server::{INDEXCOORD_ROLE, ROLE, Server};
pub use services::MetricsAnswer;
pub use system_info::{DataCoordTopology, SYSTEM_INFO_METRICS, parse_metric_type};
