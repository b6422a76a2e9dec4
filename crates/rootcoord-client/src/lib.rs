//! Client of Milvus 2.3.5's RootCoord for coordinator ports, and the two narrow views a
//! coordinator core uses: [`Broker`] (collection metadata) and [`Allocator`] (IDs, timestamps).
//!
//! [`RootCoordClient`] finds RootCoord through a [`RootCoordResolver`] (in production
//! [`EtcdResolver`], reading `session/rootcoord`), sends the `cluster`/`serverid` metadata the
//! server interceptors check, and retries like Go's `grpcclient`. Fakes for tests live behind the
//! `testing` feature. [`EstimatedClock`] reads RootCoord's clock without an RPC per reading.

mod broker;
mod client;
mod clock;
mod config;
mod error;
#[cfg(feature = "testing")]
mod fakes;
mod methods;
mod resolver;

pub use broker::{Allocator, BROKER_RPC_TIMEOUT, Broker, CoordinatorBroker, RootCoordAllocator};
pub use client::{
    CLUSTER_METADATA_KEY, RootCoordClient, SERVER_ID_METADATA_KEY, SOURCE_ID_METADATA_KEY,
};
pub use clock::EstimatedClock;
pub use config::{
    ClientConfig, DEFAULT_CLIENT_MAX_RECV_SIZE, DEFAULT_CLIENT_MAX_SEND_SIZE, DEFAULT_CLUSTER,
    DEFAULT_DIAL_TIMEOUT, DEFAULT_INITIAL_BACKOFF, DEFAULT_KEEP_ALIVE_TIME,
    DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_BACKOFF,
};
pub use error::RootCoordError;
#[cfg(feature = "testing")]
pub use fakes::{FakeAllocator, FakeBroker};
pub use resolver::{
    EtcdResolver, ROOTCOORD_ROLE, RootCoordResolver, RootCoordTarget, StaticResolver,
};
