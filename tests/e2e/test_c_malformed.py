"""(c) Malformed input on every RPC of DataCoord and IndexCoord: random bytes and truncated valid
messages sent as raw gRPC payloads. Each call must end with a response or a gRPC error before the
deadline (DEADLINE_EXCEEDED counts as a hang), and the server must stay alive and Healthy."""

import random

import grpc
import pytest

from google.protobuf.descriptor import FieldDescriptor

import milvus_grpc

pytestmark = pytest.mark.needs_datacoord

CALL_TIMEOUT = 10.0

ALL_METHODS = milvus_grpc.methods(milvus_grpc.DATACOORD_SERVICE) + milvus_grpc.methods(
    milvus_grpc.INDEXCOORD_SERVICE
)


def _scalar(field: FieldDescriptor, rng: random.Random):
    if field.type == FieldDescriptor.TYPE_ENUM:
        values = [v.number for v in field.enum_type.values]
        return values[-1]
    if field.type == FieldDescriptor.TYPE_STRING:
        return f"e2e-{rng.randint(0, 999)}"
    if field.type == FieldDescriptor.TYPE_BYTES:
        return bytes(rng.randrange(256) for _ in range(8))
    if field.type == FieldDescriptor.TYPE_BOOL:
        return True
    if field.cpp_type in (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE):
        return 1.5
    return rng.randint(1, 1_000_000)


def fill(message, rng: random.Random, depth: int = 0):
    """Sets every field (one element for repeated/map fields, nested messages up to depth 3)."""
    for field in message.DESCRIPTOR.fields:
        repeated = field.label == FieldDescriptor.LABEL_REPEATED
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_field = field.message_type.fields_by_name["key"]
            value_field = field.message_type.fields_by_name["value"]
            container = getattr(message, field.name)
            key = _scalar(key_field, rng)
            if value_field.message_type is not None:
                if depth < 3:
                    fill(container[key], rng, depth + 1)
            else:
                container[key] = _scalar(value_field, rng)
        elif field.message_type is not None:
            if depth >= 3:
                continue
            target = getattr(message, field.name).add() if repeated else getattr(message, field.name)
            fill(target, rng, depth + 1)
            if not repeated and not target.ListFields():
                target.SetInParent()
        elif repeated:
            getattr(message, field.name).append(_scalar(field, rng))
        else:
            setattr(message, field.name, _scalar(field, rng))
    return message


def payloads(method: milvus_grpc.Method) -> list[tuple[str, bytes]]:
    rng = random.Random(method.path)
    cases = [(f"random-{n}", bytes(rng.randrange(256) for _ in range(n))) for n in (1, 7, 64, 1024)]
    # Hand-made encodings that are invalid on purpose: an unterminated varint, a length prefix far
    # past the end, a group start tag (deprecated wire type 3) and a reserved wire type (7).
    cases += [
        ("bad-varint", b"\x08" + b"\xff" * 11),
        ("overlong-length", b"\x0a\xff\xff\xff\xff\x07abc"),
        ("group-tag", b"\x0b\x08\x01"),
        ("wire-type-7", b"\x0f\x00"),
    ]
    valid = fill(milvus_grpc.message_class(method.input_type)(), rng).SerializeToString()
    if len(valid) > 1:
        for cut in sorted({1, len(valid) // 3, len(valid) // 2, len(valid) - 1}):
            cases.append((f"truncated-{cut}/{len(valid)}", valid[:cut]))
    return cases


@pytest.mark.parametrize("method", ALL_METHODS, ids=lambda m: f"{m.service.rsplit('.', 1)[1]}.{m.name}")
def test_malformed_payloads_answered_and_server_survives(cluster, method):
    outcomes = []
    hangs = []
    with grpc.insecure_channel(cluster.datacoord_address) as channel:
        call = channel.unary_unary(method.path, request_serializer=None, response_deserializer=None)
        for label, payload in payloads(method):
            try:
                call(payload, timeout=CALL_TIMEOUT)
                outcomes.append((label, "response"))
            except grpc.RpcError as err:
                outcomes.append((label, err.code().name))
                if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    hangs.append(label)
    assert not hangs, f"{method.path} did not answer within {CALL_TIMEOUT}s for {hangs}; outcomes {outcomes}"

    proc = cluster.procs["datacoord"]
    assert proc.alive(), f"datacoord died after {method.path}; log {proc.log}:\n{proc.log_tail()}"
    state = milvus_grpc.get_component_states(cluster.datacoord_address)
    assert state.state_code == milvus_grpc.HEALTHY, (method.path, state, outcomes)


def test_every_rpc_of_both_services_is_covered():
    # Guards against a proto/ change that silently drops methods from the parametrisation above.
    names = {(m.service, m.name) for m in ALL_METHODS}
    assert (milvus_grpc.DATACOORD_SERVICE, "Flush") in names
    assert (milvus_grpc.INDEXCOORD_SERVICE, "CreateIndex") in names
    assert len(names) == len(ALL_METHODS)
