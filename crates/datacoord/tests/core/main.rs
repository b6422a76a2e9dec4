//! The core's services in-process: memory `MetaKv`, local storage, RootCoord fakes, fake
//! channels, DataNodes and IndexNodes (`datacoord::testing::TestCore`); no etcd needed.

mod compaction;
mod datapath;
mod import;
mod indexes;
mod queries;
mod support;
