//! The gRPC face of milvus-datacoord: thin tonic adapters over `datacoord::Server`, the
//! `cluster`/`serverid` request checks, the metrics/health HTTP endpoints, and the process
//! wrapper (`Run` = init + start, graceful stop).

mod http;
mod runner;
mod service;
mod validation;

pub use http::router as http_router;
pub use runner::DataCoordProcess;
pub use service::DataCoordService;
pub use validation::{CLUSTER_KEY, RequestValidator, SERVER_ID_KEY};
