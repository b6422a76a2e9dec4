"""Raw gRPC access to Milvus coordinators from Python, without generated stubs.

Why no grpcio-tools stubs: pymilvus registers its own `common.proto`, `schema.proto` and
`milvus.proto` (a different milvus-proto revision) in protobuf's default descriptor pool; importing
stubs generated from our proto/ into the same process would collide on those file names. Instead,
protoc (Debian's protobuf-compiler) compiles proto/*.proto into a FileDescriptorSet cached at
.work/pyproto/milvus.fds, which is loaded into a PRIVATE DescriptorPool. Message classes come from
that pool, and calls go through grpc's generic `unary_unary` with bytes in and out.

Used by cluster.py (health probes), tests/e2e (malformed-input suite) and bench/startup.py.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
FDS_PATH = ROOT / ".work" / "pyproto" / "milvus.fds"

DATACOORD_SERVICE = "milvus.proto.data.DataCoord"
INDEXCOORD_SERVICE = "milvus.proto.index.IndexCoord"

# milvus.proto.common.StateCode values (facts of the wire schema).
STATE_NAMES = {0: "Initializing", 1: "Healthy", 2: "Abnormal", 3: "StandBy", 4: "Stopping"}
HEALTHY = 1
STANDBY = 3


def _descriptor_set() -> bytes:
    """Compiles proto/*.proto with protoc when the cached set is missing or older than a source."""
    sources = sorted(PROTO_DIR.glob("*.proto"))
    if not sources:
        raise RuntimeError(f"no .proto files under {PROTO_DIR}")
    newest = max(p.stat().st_mtime for p in sources)
    if not FDS_PATH.exists() or FDS_PATH.stat().st_mtime < newest:
        FDS_PATH.parent.mkdir(parents=True, exist_ok=True)
        tmp = FDS_PATH.with_suffix(f".tmp{os.getpid()}")
        done = subprocess.run(
            ["protoc", f"-I{PROTO_DIR}", "--include_imports", f"--descriptor_set_out={tmp}"]
            + [p.name for p in sources],
            cwd=PROTO_DIR,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"protoc failed on {PROTO_DIR}:\n{done.stderr}")
        os.replace(tmp, FDS_PATH)
    return FDS_PATH.read_bytes()


@functools.lru_cache(maxsize=1)
def pool() -> descriptor_pool.DescriptorPool:
    """The private descriptor pool holding our proto/ files."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(_descriptor_set())
    private = descriptor_pool.DescriptorPool()
    for file_proto in fds.file:
        private.Add(file_proto)
    return private


def message_class(full_name: str):
    """The Python message class of a fully qualified message name, e.g. `milvus.proto.milvus.ComponentStates`."""
    return message_factory.GetMessageClass(pool().FindMessageTypeByName(full_name))


@dataclasses.dataclass(frozen=True)
class Method:
    """One unary RPC of a service: its gRPC path and request/response message names."""

    service: str
    name: str
    input_type: str
    output_type: str

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.name}"


def methods(service: str) -> list[Method]:
    """Every RPC of a service as declared in proto/ (all Milvus coordinator RPCs are unary)."""
    svc = pool().FindServiceByName(service)
    return [
        Method(service, m.name, m.input_type.full_name, m.output_type.full_name)
        for m in svc.methods
        if not (m.client_streaming or m.server_streaming)
    ]


@dataclasses.dataclass(frozen=True)
class ComponentState:
    """The parts of a GetComponentStates answer the harness looks at."""

    state_code: int
    role: str
    node_id: int
    status_code: int
    status_reason: str

    @property
    def state_name(self) -> str:
        return STATE_NAMES.get(self.state_code, str(self.state_code))


def raw_unary(address: str, path: str, payload: bytes, timeout: float = 5.0) -> bytes:
    """One unary call with raw bytes; raises grpc.RpcError on a gRPC error status."""
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
        return call(payload, timeout=timeout)


def get_component_states(
    address: str, service: str = DATACOORD_SERVICE, timeout: float = 2.0
) -> ComponentState:
    """GetComponentStates over gRPC; raises grpc.RpcError when the server does not answer."""
    request = message_class("milvus.proto.milvus.GetComponentStatesRequest")()
    raw = raw_unary(address, f"/{service}/GetComponentStates", request.SerializeToString(), timeout)
    states = message_class("milvus.proto.milvus.ComponentStates").FromString(raw)
    return ComponentState(
        state_code=states.state.state_code,
        role=states.state.role,
        node_id=states.state.nodeID,
        status_code=states.status.code,
        status_reason=states.status.reason,
    )


def try_component_states(address: str, service: str = DATACOORD_SERVICE, timeout: float = 2.0):
    """Like get_component_states, but None when the server is unreachable or errors."""
    try:
        return get_component_states(address, service, timeout)
    except grpc.RpcError:
        return None
