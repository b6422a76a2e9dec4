//! DataCoord's channel manager (Milvus 2.3.5): which datanode watches which DML vchannel.
//!
//! The assignment lives in etcd as `channelwatch/{nodeID}/{vchannel}` records holding
//! `data.ChannelWatchInfo` (FACTS D). DataCoord writes ToWatch / ToRelease with plain puts;
//! datanodes answer WatchSuccess / WatchFailure / ReleaseSuccess by compare-and-swap and rewrite
//! progress while starting. [`ChannelManager`] keeps the in-memory mirror, applies the 2.3.5
//! "V1 average" policies, reacts to answers and answer timeouts, and stays compatible with real
//! 2.3.5 datanodes and with a Go DataCoord taking over the same keys. Channels without a
//! datanode sit on the pseudo node [`BUFFER_NODE`].

mod changes;
mod config;
mod error;
mod manager;
mod policy;
mod record;
mod startup;
mod store;
mod timers;
mod watcher;
mod write;

#[cfg(feature = "testing")]
pub mod testing;

pub use config::{BUFFER_NODE, ChannelConfig};
pub use error::{ClusterError, ClusterResult};
pub use manager::{ChannelManager, ChannelMetaProvider};
pub use store::ChannelSpec;
