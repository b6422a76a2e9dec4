//! Generates the Rust types and tonic services from `proto/*.proto` at build time.
//!
//! protoc comes from the system (the test scripts install Debian's `protobuf-compiler`; etcd-client
//! needs it as well). The descriptor set protoc produces is kept verbatim for the conformance test;
//! code is generated from a copy in which enum values that are not Rust identifiers are renamed.

use std::path::PathBuf;
use std::process::Command;

use prost::Message;
use prost_types::FileDescriptorSet;

const FILES: &[&str] = &[
    "common.proto",
    "schema.proto",
    "feder.proto",
    "msg.proto",
    "milvus.proto",
    "internal.proto",
    "etcd_meta.proto",
    "proxy.proto",
    "index_coord.proto",
    "data_coord.proto",
    "root_coord.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    for file in FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let fds_path = out_dir.join("milvus_descriptor_set.bin");
    let protoc = std::env::var("PROTOC").unwrap_or_else(|_| "protoc".to_string());
    let status = Command::new(&protoc)
        .current_dir(&manifest_dir)
        .arg("-I.")
        .arg(format!("--descriptor_set_out={}", fds_path.display()))
        .args(FILES)
        .status()
        .map_err(|e| format!("running {protoc} (install protobuf-compiler): {e}"))?;
    if !status.success() {
        return Err(format!("{protoc} failed: {status}").into());
    }
    let mut fds = FileDescriptorSet::decode(std::fs::read(&fds_path)?.as_slice())?;
    rename_non_identifier_enum_values(&mut fds);

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Clients are built from a Channel we configure ourselves (timeouts, metadata); this also
        // avoids the generated `connect` constructor clashing with rpcs named `Connect`.
        .build_transport(false)
        // Methods a server does not override answer gRPC UNIMPLEMENTED, which 2.3.5 Go clients map
        // to "service unimplemented" and do not retry.
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}

/// `datapb.GcCommand` has a value literally named `_`, which prost would emit as a Rust variant.
/// Only the Rust name changes; the number on the wire and the descriptor we export stay as they are.
fn rename_non_identifier_enum_values(fds: &mut FileDescriptorSet) {
    for file in &mut fds.file {
        for enum_type in &mut file.enum_type {
            for value in &mut enum_type.value {
                if value.name() == "_" {
                    value.name = Some("Unspecified".to_string());
                }
            }
        }
    }
}
