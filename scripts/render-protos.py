#!/usr/bin/env python3
"""Render our proto/*.proto files from a FileDescriptorSet of the Milvus 2.3.5 wire schema.

The wire schema (names, numbers, types, labels) is a fact we must match byte-for-byte on the wire;
the text layout here is ours. Run once by hand when the schema set changes:

    python3 scripts/render-protos.py ../shared/milvus-2.3.5/wire-schema.fds proto/
"""
import sys
from google.protobuf import descriptor_pb2 as d

# Files reachable from the services we serve (DataCoord, IndexCoord) or call (RootCoord, DataNode,
# IndexNode), plus what datacoord stores in etcd.
FILES = [
    "common.proto", "schema.proto", "feder.proto", "msg.proto", "milvus.proto", "internal.proto",
    "etcd_meta.proto", "proxy.proto", "index_coord.proto", "data_coord.proto", "root_coord.proto",
]
# Services whose messages we need but whose RPCs we neither serve nor call.
SKIP_SERVICES = {"MilvusService", "ProxyService", "Proxy"}

F = d.FieldDescriptorProto
SCALAR = {
    F.TYPE_DOUBLE: "double", F.TYPE_FLOAT: "float", F.TYPE_INT64: "int64", F.TYPE_UINT64: "uint64",
    F.TYPE_INT32: "int32", F.TYPE_FIXED64: "fixed64", F.TYPE_FIXED32: "fixed32", F.TYPE_BOOL: "bool",
    F.TYPE_STRING: "string", F.TYPE_BYTES: "bytes", F.TYPE_UINT32: "uint32", F.TYPE_SFIXED32: "sfixed32",
    F.TYPE_SFIXED64: "sfixed64", F.TYPE_SINT32: "sint32", F.TYPE_SINT64: "sint64",
}


def type_of(field):
    if field.type in SCALAR:
        return SCALAR[field.type]
    return field.type_name  # fully qualified, leading dot


def render_enum(enum, ind):
    out = [f"{ind}enum {enum.name} {{"]
    numbers = [v.number for v in enum.value]
    if len(numbers) != len(set(numbers)) or enum.options.allow_alias:
        out.append(f"{ind}  option allow_alias = true;")
    for v in enum.value:
        out.append(f"{ind}  {v.name} = {v.number};")
    out.append(f"{ind}}}")
    return out


def render_message(msg, ind):
    out = [f"{ind}message {msg.name} {{"]
    maps = {n.name: n for n in msg.nested_type if n.options.map_entry}
    for e in msg.enum_type:
        out += render_enum(e, ind + "  ")
    for n in msg.nested_type:
        if not n.options.map_entry:
            out += render_message(n, ind + "  ")
    real_oneofs = {}
    for f in msg.field:
        if f.HasField("oneof_index") and not f.proto3_optional:
            real_oneofs.setdefault(f.oneof_index, []).append(f)
    emitted_oneofs = set()
    for f in msg.field:
        if f.HasField("oneof_index") and not f.proto3_optional:
            idx = f.oneof_index
            if idx in emitted_oneofs:
                continue
            emitted_oneofs.add(idx)
            out.append(f"{ind}  oneof {msg.oneof_decl[idx].name} {{")
            for of in real_oneofs[idx]:
                out.append(f"{ind}    {type_of(of)} {of.name} = {of.number};")
            out.append(f"{ind}  }}")
            continue
        entry = maps.get(f.type_name.rsplit(".", 1)[-1]) if f.type == F.TYPE_MESSAGE else None
        if entry is not None and f.label == F.LABEL_REPEATED:
            k, v = entry.field[0], entry.field[1]
            out.append(f"{ind}  map<{type_of(k)}, {type_of(v)}> {f.name} = {f.number};")
            continue
        label = "repeated " if f.label == F.LABEL_REPEATED else ("optional " if f.proto3_optional else "")
        # Field options (e.g. `deprecated`) are not part of the wire; leaving them out keeps the
        # generated Rust free of deprecation warnings on fields we must still fill (Status.error_code).
        out.append(f"{ind}  {label}{type_of(f)} {f.name} = {f.number};")
    for r in msg.reserved_range:
        out.append(f"{ind}  reserved {r.start} to {r.end - 1};")
    out.append(f"{ind}}}")
    return out


def render_file(fd):
    out = [
        "// Milvus 2.3.5 wire schema, as milvus-datacoord speaks it.",
        "// Names, numbers, types and labels must equal the 2.3.5 descriptors (see proto/README.md).",
        'syntax = "proto3";',
        f"package {fd.package};",
        "",
    ]
    for dep in fd.dependency:
        out.append(f'import "{dep}";')
    out.append("")
    for e in fd.enum_type:
        out += render_enum(e, "")
        out.append("")
    for m in fd.message_type:
        out += render_message(m, "")
        out.append("")
    by_extendee = {}
    for x in fd.extension:
        by_extendee.setdefault(x.extendee, []).append(x)
    for extendee, xs in by_extendee.items():
        out.append(f"extend {extendee} {{")
        for x in xs:
            out.append(f"  {type_of(x)} {x.name} = {x.number};")
        out.append("}")
        out.append("")
    for s in fd.service:
        if s.name in SKIP_SERVICES:
            continue
        out.append(f"service {s.name} {{")
        for m in s.method:
            cs = "stream " if m.client_streaming else ""
            ss = "stream " if m.server_streaming else ""
            out.append(f"  rpc {m.name}({cs}{m.input_type}) returns ({ss}{m.output_type});")
        out.append("}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main():
    fds = d.FileDescriptorSet()
    with open(sys.argv[1], "rb") as fh:
        fds.ParseFromString(fh.read())
    by_name = {f.name: f for f in fds.file}
    for name in FILES:
        with open(f"{sys.argv[2].rstrip('/')}/{name}", "w") as fh:
            fh.write(render_file(by_name[name]))


if __name__ == "__main__":
    main()
