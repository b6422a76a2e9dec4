//! Metadata key-value store of the DataCoord port.
//!
//! [`MetaKv`] is the one transactional interface the catalog uses; [`MemoryKv`] and [`EtcdKv`]
//! implement it here (TiKV lives in `milvus-metastore-tikv`), and [`RootedKv`] confines any of
//! them under Milvus's `rootPath/metaSubPath`. Atomicity, prefix and timeout rules are on the
//! [`MetaKv`] docs. The conformance suite all backends pass is in `testing` (feature `testing`).

mod error;
mod etcd;
mod kv;
mod memory;
mod rooted;

#[cfg(feature = "testing")]
pub mod testing;

pub use error::{MetastoreError, MetastoreResult};
pub use etcd::{DEFAULT_REQUEST_TIMEOUT, EtcdKv};
pub use kv::{DEFAULT_MAX_TXN_OPS, DEFAULT_PAGE_SIZE, MetaKv, Page, WriteBatch};
pub use memory::MemoryKv;
pub use rooted::RootedKv;
