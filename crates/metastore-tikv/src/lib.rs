//! TiKV backend of the DataCoord metastore (`metastore.type: tikv`).
//!
//! Everything lives behind the cargo feature `tikv`, off by default because tikv-client brings
//! a second, older gRPC stack; without it this crate is empty. With it, [`TikvKv`] implements
//! [`milvus_metastore::MetaKv`] and passes the shared conformance suite (run when
//! `TIKV_PD_ENDPOINTS` is set).

#[cfg(feature = "tikv")]
mod tikv;

#[cfg(all(feature = "tikv", feature = "testing"))]
pub mod testing;

#[cfg(feature = "tikv")]
pub use tikv::{EMPTY_VALUE_SENTINEL, TikvKv};
