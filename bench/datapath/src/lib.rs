//! Data-path benchmark tools for a Milvus 2.3.5 DataCoord (the Go one or ours).
//!
//! * [`SynthSpec`] + [`write_segments`]: Flushed segments in the exact etcd layout the Go
//!   DataCoord writes (segment value with logs stripped, one key per insert binlog field, the pk
//!   stats log, an empty delta log), in batched transactions.
//! * [`run_assign_level`]: AssignSegmentID throughput and latency at one concurrency.
//! * [`run_recovery`]: GetRecoveryInfoV2 latency and the size of its answer.
//!
//! Every RPC carries the `cluster` and `serverid` metadata Go clients send ([`RoutingMetadata`]).

mod assign;
mod cli;
mod connect;
mod error;
mod latency;
mod recovery;
mod synth;
mod writer;

pub use assign::{AssignConfig, AssignLevelReport, run_assign_level};
pub use cli::{TargetArgs, init_tracing, ms_cell};
pub use connect::{
    CLUSTER_METADATA_KEY, DataCoordBenchClient, RoutingMetadata, SERVER_ID_METADATA_KEY,
    connect_datacoord, connect_etcd, parse_duration, read_server_id,
};
pub use error::{BenchError, BenchResult};
pub use latency::{ErrorTally, LatencySummary};
pub use recovery::{RecoveryConfig, RecoveryReport, run_recovery};
pub use synth::{
    BINLOG_FAMILY, DELTALOG_FAMILY, MAX_TXN_OPS, SEGMENT_FAMILY, STATSLOG_FAMILY, SynthSpec,
};
pub use writer::{WriteReport, write_segments};
