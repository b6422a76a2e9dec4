//! Our `proto/*.proto` against the descriptors compiled into the real Milvus 2.3.5 binary.
//!
//! Go's protobuf runtime keeps every generated file's `FileDescriptorProto` gzip-compressed inside
//! the executable. We find those members by their gzip magic, inflate them, and keep the ones that
//! decode as a `milvus.proto.*` file. Every file we define must then match the real one in every
//! detail that reaches the wire or the etcd records (see [`diff`]).
//!
//! `MILVUS_BINARY` names the decompressed Go binary (`scripts/fetch-milvus.sh` puts it at
//! `.work/milvus/bin/milvus`). Without it the binary tests skip, or fail when `MILVUS_TEST_STRICT=1`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use prost::Message;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

/// Services of the real files that the DataCoord port has no use for and leaves out on purpose.
const OMITTED_SERVICES: &[&str] = &["MilvusService", "ProxyService", "Proxy"];

/// Upper bound for one inflated member; real descriptors are a few hundred KiB at most, and the cap
/// keeps a false gzip header in the binary from inflating garbage for long.
const MAX_INFLATED_BYTES: u64 = 8 << 20;

fn ours() -> FileDescriptorSet {
    FileDescriptorSet::decode(milvus_proto::FILE_DESCRIPTOR_SET)
        .expect("our descriptor set decodes")
}

/// The path in `MILVUS_BINARY`, or `None` (after printing why) when the test should skip.
fn milvus_binary() -> Option<PathBuf> {
    match std::env::var_os("MILVUS_BINARY") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ if std::env::var("MILVUS_TEST_STRICT").as_deref() == Ok("1") => {
            panic!("MILVUS_BINARY must name the Milvus 2.3.5 binary when MILVUS_TEST_STRICT=1")
        }
        _ => {
            eprintln!("skipping: MILVUS_BINARY not set");
            None
        }
    }
}

/// Every `milvus.proto.*` file descriptor embedded in `binary`, by file name.
fn extract_descriptors(binary: &[u8]) -> BTreeMap<String, FileDescriptorProto> {
    const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];
    let mut files: BTreeMap<String, FileDescriptorProto> = BTreeMap::new();
    let mut start = 0;
    while let Some(pos) = find(&binary[start..], &GZIP_MAGIC) {
        let member_start = start + pos;
        start = member_start + 1;
        let Some(inflated) = inflate(&binary[member_start..]) else {
            continue;
        };
        let Ok(file) = FileDescriptorProto::decode(inflated.as_slice()) else {
            continue;
        };
        if !file.name().ends_with(".proto") || !file.package().starts_with("milvus.proto") {
            continue;
        }
        if let Some(previous) = files.get(file.name()) {
            // The same file registered twice must be the same file, or "the real one" is ambiguous.
            assert_eq!(
                previous,
                &file,
                "{} embedded twice with different content",
                file.name()
            );
            continue;
        }
        files.insert(file.name().to_string(), file);
    }
    files
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn inflate(member: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(member)
        .take(MAX_INFLATED_BYTES)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

/// Compares each of our files with the real file of the same name; returns every difference.
fn compare_with_real(
    real: &BTreeMap<String, FileDescriptorProto>,
    ours: &FileDescriptorSet,
) -> Vec<String> {
    let mut differences = Vec::new();
    for our_file in &ours.file {
        match real.get(our_file.name()) {
            None => differences.push(format!("{}: not in the real binary", our_file.name())),
            Some(real_file) => {
                differences.extend(diff::files(real_file, our_file, OMITTED_SERVICES));
            }
        }
    }
    differences
}

#[test]
fn our_files_match_the_real_binary() {
    let Some(path) = milvus_binary() else { return };
    let binary = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let real = extract_descriptors(&binary);
    assert!(
        real.contains_key("data_coord.proto"),
        "no data_coord.proto descriptor found in {} (found: {:?})",
        path.display(),
        real.keys().collect::<Vec<_>>()
    );
    let ours = ours();
    assert!(!ours.file.is_empty());
    let differences = compare_with_real(&real, &ours);
    assert!(
        differences.is_empty(),
        "{} differences from Milvus 2.3.5:\n  {}",
        differences.len(),
        differences.join("\n  ")
    );
}

/// The shared `wire-schema.fds` was extracted the same way; agreeing with it checks the extractor
/// (nothing missed, nothing extra) and the diff in both directions.
#[test]
fn extraction_agrees_with_the_shared_wire_schema() {
    let Some(path) = milvus_binary() else { return };
    let fds_path = std::env::var_os("MILVUS_WIRE_SCHEMA_FDS").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/milvus-2.3.5/wire-schema.fds")
        },
        PathBuf::from,
    );
    let Ok(fds_bytes) = std::fs::read(&fds_path) else {
        eprintln!("skipping: {} not readable", fds_path.display());
        return;
    };
    let shared = FileDescriptorSet::decode(fds_bytes.as_slice()).expect("wire-schema.fds decodes");
    let binary = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let extracted = extract_descriptors(&binary);

    let shared_names: Vec<&str> = shared.file.iter().map(|f| f.name()).collect();
    let mut sorted_shared_names = shared_names.clone();
    sorted_shared_names.sort_unstable();
    let extracted_names: Vec<&str> = extracted.keys().map(String::as_str).collect();
    assert_eq!(extracted_names, sorted_shared_names);

    let mut differences = Vec::new();
    for shared_file in &shared.file {
        let extracted_file = &extracted[shared_file.name()];
        differences.extend(diff::files(extracted_file, shared_file, &[]));
        differences.extend(diff::files(shared_file, extracted_file, &[]));
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn gc_command_keeps_its_underscore_value_in_the_exported_descriptor() {
    let ours = ours();
    let data_coord = ours
        .file
        .iter()
        .find(|f| f.name() == "data_coord.proto")
        .expect("data_coord.proto is compiled");
    let gc_command = data_coord
        .enum_type
        .iter()
        .find(|e| e.name() == "GcCommand")
        .expect("datapb.GcCommand exists");
    let zero = gc_command
        .value
        .iter()
        .find(|v| v.number() == 0)
        .expect("GcCommand has a zero value");
    assert_eq!(zero.name(), "_");
}

/// The diff must notice each kind of change it claims to check; mutate our own descriptors and look.
#[test]
fn diff_reports_every_kind_of_change() {
    let ours = ours();
    let original = ours
        .file
        .iter()
        .find(|f| f.name() == "data_coord.proto")
        .expect("data_coord.proto is compiled")
        .clone();
    assert!(diff::files(&original, &original, &[]).is_empty());

    type Mutation = fn(&mut FileDescriptorProto);
    let mutations: Vec<(&str, Mutation)> = vec![
        ("package", |f| f.package = Some("milvus.proto.other".into())),
        ("field number", |f| {
            with_fields(f).field[0].number = Some(999)
        }),
        ("field type", |f| {
            let field = &mut with_fields(f).field[0];
            field.r#type = Some(if field.r#type == Some(12) { 9 } else { 12 });
        }),
        ("field label", |f| {
            let field = &mut with_fields(f).field[0];
            field.label = Some(if field.label == Some(3) { 1 } else { 3 });
        }),
        ("field type_name", |f| {
            let field = f
                .message_type
                .iter_mut()
                .flat_map(|m| m.field.iter_mut())
                .find(|x| x.type_name.is_some())
                .unwrap();
            field.type_name = Some(".milvus.proto.common.Other".into());
        }),
        ("proto3_optional", |f| {
            with_fields(f).field[0].proto3_optional = Some(true)
        }),
        ("oneof membership", |f| {
            let message = with_fields(f);
            message.oneof_decl.push(prost_types::OneofDescriptorProto {
                name: Some("injected".into()),
                options: None,
            });
            message.field[0].oneof_index = Some(message.oneof_decl.len() as i32 - 1);
        }),
        ("removed message", |f| {
            f.message_type.pop();
        }),
        ("enum value order", |f| f.enum_type[0].value.swap(0, 1)),
        ("enum value number", |f| {
            f.enum_type[0].value[1].number = Some(77)
        }),
        ("service method output", |f| {
            f.service[0].method[0].output_type = Some(".milvus.proto.common.Other".into());
        }),
        ("service streaming flag", |f| {
            f.service[0].method[0].server_streaming = Some(true)
        }),
        ("removed service", |f| {
            f.service.pop();
        }),
        ("map entry flag", |f| {
            let entry =
                find_map_entry(&mut f.message_type).expect("data_coord.proto has a map field");
            entry.options = None;
        }),
    ];
    for (what, mutate) in mutations {
        let mut changed = original.clone();
        mutate(&mut changed);
        let differences = diff::files(&original, &changed, &[]);
        assert!(!differences.is_empty(), "diff missed a change of {what}");
    }
}

/// The first top-level message that has fields.
fn with_fields(file: &mut FileDescriptorProto) -> &mut prost_types::DescriptorProto {
    file.message_type
        .iter_mut()
        .find(|m| !m.field.is_empty())
        .expect("a message with fields")
}

fn find_map_entry(
    messages: &mut [prost_types::DescriptorProto],
) -> Option<&mut prost_types::DescriptorProto> {
    for message in messages {
        let is_entry = message.options.as_ref().is_some_and(|o| o.map_entry());
        if is_entry {
            return Some(message);
        }
        if let Some(found) = find_map_entry(&mut message.nested_type) {
            return Some(found);
        }
    }
    None
}

/// Structural comparison of two `FileDescriptorProto`s, by what decides the encoding of a record.
mod diff {
    use std::collections::BTreeMap;

    use prost_types::{
        DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
        ServiceDescriptorProto,
    };

    /// Every difference of `ours` from `real`, one line each, prefixed with the element's path.
    /// Services in `omitted_services` may be absent from `ours`; present ones must match.
    pub fn files(
        real: &FileDescriptorProto,
        ours: &FileDescriptorProto,
        omitted_services: &[&str],
    ) -> Vec<String> {
        let mut out = Vec::new();
        let file = real.name();
        if real.package() != ours.package() {
            out.push(format!(
                "{file}: package {:?} != real {:?}",
                ours.package(),
                real.package()
            ));
        }
        messages(
            &format!("{file}:"),
            &real.message_type,
            &ours.message_type,
            &mut out,
        );
        enums(
            &format!("{file}:"),
            &real.enum_type,
            &ours.enum_type,
            &mut out,
        );
        fields(
            &format!("{file}: extension"),
            &real.extension,
            &[],
            &ours.extension,
            &[],
            &mut out,
        );
        services(
            file,
            &real.service,
            &ours.service,
            omitted_services,
            &mut out,
        );
        out
    }

    fn by_name<T>(items: &[T], name: impl Fn(&T) -> &str) -> BTreeMap<&str, &T> {
        items.iter().map(|item| (name(item), item)).collect()
    }

    /// Calls `both` for names present on both sides and reports the rest.
    fn pair_up<'a, T>(
        scope: &str,
        kind: &str,
        real: BTreeMap<&'a str, &'a T>,
        ours: BTreeMap<&'a str, &'a T>,
        out: &mut Vec<String>,
        mut both: impl FnMut(&str, &'a T, &'a T, &mut Vec<String>),
    ) {
        for (name, real_item) in &real {
            match ours.get(name) {
                Some(our_item) => both(name, real_item, our_item, out),
                None => out.push(format!("{scope} {kind} {name} missing from ours")),
            }
        }
        for name in ours.keys().filter(|name| !real.contains_key(*name)) {
            out.push(format!("{scope} {kind} {name} not in the real file"));
        }
    }

    fn messages(
        scope: &str,
        real: &[DescriptorProto],
        ours: &[DescriptorProto],
        out: &mut Vec<String>,
    ) {
        let real = by_name(real, |m| m.name());
        let ours = by_name(ours, |m| m.name());
        pair_up(
            scope,
            "message",
            real,
            ours,
            out,
            |name, real_msg, our_msg, out| {
                let path = format!("{scope} {name}");
                let real_entry = real_msg.options.as_ref().is_some_and(|o| o.map_entry());
                let our_entry = our_msg.options.as_ref().is_some_and(|o| o.map_entry());
                if real_entry != our_entry {
                    out.push(format!(
                        "{path}: map_entry {our_entry} != real {real_entry}"
                    ));
                }
                fields(
                    &path,
                    &real_msg.field,
                    &oneof_names(real_msg),
                    &our_msg.field,
                    &oneof_names(our_msg),
                    out,
                );
                messages(
                    &format!("{path}."),
                    &real_msg.nested_type,
                    &our_msg.nested_type,
                    out,
                );
                enums(
                    &format!("{path}."),
                    &real_msg.enum_type,
                    &our_msg.enum_type,
                    out,
                );
            },
        );
    }

    fn oneof_names(message: &DescriptorProto) -> Vec<&str> {
        message.oneof_decl.iter().map(|o| o.name()).collect()
    }

    /// The properties of a field that must agree, with the oneof given by name.
    fn field_shape<'a>(field: &'a FieldDescriptorProto, oneofs: &[&'a str]) -> String {
        let oneof = field.oneof_index.map(|i| {
            oneofs
                .get(i as usize)
                .copied()
                .unwrap_or("<bad oneof index>")
        });
        format!(
            "name={} type={:?} label={:?} type_name={:?} proto3_optional={} oneof={:?} extendee={:?}",
            field.name(),
            field.r#type(),
            field.label(),
            field.type_name(),
            field.proto3_optional(),
            oneof,
            field.extendee(),
        )
    }

    fn fields(
        scope: &str,
        real: &[FieldDescriptorProto],
        real_oneofs: &[&str],
        ours: &[FieldDescriptorProto],
        our_oneofs: &[&str],
        out: &mut Vec<String>,
    ) {
        let real: BTreeMap<i32, &FieldDescriptorProto> =
            real.iter().map(|f| (f.number(), f)).collect();
        let ours: BTreeMap<i32, &FieldDescriptorProto> =
            ours.iter().map(|f| (f.number(), f)).collect();
        for (number, real_field) in &real {
            let real_shape = field_shape(real_field, real_oneofs);
            match ours.get(number) {
                None => out.push(format!("{scope}: field #{number} ({real_shape}) missing")),
                Some(our_field) => {
                    let our_shape = field_shape(our_field, our_oneofs);
                    if our_shape != real_shape {
                        out.push(format!(
                            "{scope}: field #{number}\n      ours: {our_shape}\n      real: {real_shape}"
                        ));
                    }
                }
            }
        }
        for (number, our_field) in ours.iter().filter(|(n, _)| !real.contains_key(*n)) {
            let shape = field_shape(our_field, our_oneofs);
            out.push(format!(
                "{scope}: field #{number} ({shape}) not in the real file"
            ));
        }
    }

    fn enums(
        scope: &str,
        real: &[EnumDescriptorProto],
        ours: &[EnumDescriptorProto],
        out: &mut Vec<String>,
    ) {
        let real = by_name(real, |e| e.name());
        let ours = by_name(ours, |e| e.name());
        pair_up(
            scope,
            "enum",
            real,
            ours,
            out,
            |name, real_enum, our_enum, out| {
                let values = |e: &EnumDescriptorProto| -> Vec<(String, i32)> {
                    e.value
                        .iter()
                        .map(|v| (v.name().to_string(), v.number()))
                        .collect()
                };
                if values(real_enum) != values(our_enum) {
                    out.push(format!(
                        "{scope} enum {name}: values\n      ours: {:?}\n      real: {:?}",
                        values(our_enum),
                        values(real_enum)
                    ));
                }
            },
        );
    }

    fn services(
        file: &str,
        real: &[ServiceDescriptorProto],
        ours: &[ServiceDescriptorProto],
        omitted: &[&str],
        out: &mut Vec<String>,
    ) {
        let real_kept: Vec<ServiceDescriptorProto> = real
            .iter()
            .filter(|s| !omitted.contains(&s.name()))
            .cloned()
            .collect();
        for our_service in ours.iter().filter(|s| omitted.contains(&s.name())) {
            // An omitted service we do define after all must still be the real one.
            match real.iter().find(|s| s.name() == our_service.name()) {
                Some(real_service) => methods(file, real_service, our_service, out),
                None => out.push(format!(
                    "{file}: service {} not in the real file",
                    our_service.name()
                )),
            }
        }
        let ours_kept: Vec<&ServiceDescriptorProto> = ours
            .iter()
            .filter(|s| !omitted.contains(&s.name()))
            .collect();
        let real_map = by_name(&real_kept, |s| s.name());
        let ours_map: BTreeMap<&str, &ServiceDescriptorProto> =
            ours_kept.iter().map(|s| (s.name(), *s)).collect();
        pair_up(
            &format!("{file}:"),
            "service",
            real_map,
            ours_map,
            out,
            |_, real_service, our_service, out| {
                methods(file, real_service, our_service, out);
            },
        );
    }

    fn methods(
        file: &str,
        real: &ServiceDescriptorProto,
        ours: &ServiceDescriptorProto,
        out: &mut Vec<String>,
    ) {
        let shape = |s: &ServiceDescriptorProto| -> Vec<String> {
            s.method
                .iter()
                .map(|m| {
                    format!(
                        "{}({}{}) returns ({}{})",
                        m.name(),
                        if m.client_streaming() { "stream " } else { "" },
                        m.input_type(),
                        if m.server_streaming() { "stream " } else { "" },
                        m.output_type(),
                    )
                })
                .collect()
        };
        let (real_methods, our_methods) = (shape(real), shape(ours));
        for method in real_methods.iter().filter(|m| !our_methods.contains(m)) {
            out.push(format!(
                "{file}: service {}: real rpc {method} missing or different",
                real.name()
            ));
        }
        for method in our_methods.iter().filter(|m| !real_methods.contains(m)) {
            out.push(format!(
                "{file}: service {}: our rpc {method} not in the real file",
                ours.name()
            ));
        }
    }
}
