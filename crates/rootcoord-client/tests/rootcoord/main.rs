//! Integration tests: a real tonic RootCoord in-process, fakes, and the etcd resolver.

mod broker;
mod client;
mod etcd;
mod fakes;
mod support;
