//! Milvus 2.3.5 wire protocol as generated from `proto/*.proto`.
//!
//! Module names follow the Go package aliases a Milvus engineer knows (`commonpb` → [`common`],
//! `datapb` → [`data`], `indexpb` → [`index`], ...). Every message, field number and type equals the
//! 2.3.5 descriptors; `tests/conformance.rs` checks that against the real binary.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// `milvus.proto.common`
pub mod common {
    tonic::include_proto!("milvus.proto.common");
}
/// `milvus.proto.schema`
pub mod schema {
    tonic::include_proto!("milvus.proto.schema");
}
/// `milvus.proto.feder`
pub mod feder {
    tonic::include_proto!("milvus.proto.feder");
}
/// `milvus.proto.msg`
pub mod msg {
    tonic::include_proto!("milvus.proto.msg");
}
/// `milvus.proto.milvus`
pub mod milvus {
    tonic::include_proto!("milvus.proto.milvus");
}
/// `milvus.proto.internal`
pub mod internal {
    tonic::include_proto!("milvus.proto.internal");
}
/// `milvus.proto.etcd`
pub mod etcd {
    tonic::include_proto!("milvus.proto.etcd");
}
/// `milvus.proto.proxy`
pub mod proxy {
    tonic::include_proto!("milvus.proto.proxy");
}
/// `milvus.proto.index`
pub mod index {
    tonic::include_proto!("milvus.proto.index");
}
/// `milvus.proto.data`
pub mod data {
    tonic::include_proto!("milvus.proto.data");
}
/// `milvus.proto.rootcoord`
pub mod rootcoord {
    tonic::include_proto!("milvus.proto.rootcoord");
}

/// The encoded `FileDescriptorSet` of everything above, as compiled from `proto/`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/milvus_descriptor_set.bin"));
