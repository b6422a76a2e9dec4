"""(p) Semantically hostile but well-formed requests to every RPC of DataCoord and IndexCoord.

test_c sends bytes that do not decode; this module sends requests that decode fine but lie: nil
sub-messages, zero/negative/huge IDs, the IDs of the cluster's real collections, segments and
channels with bad fields around them, empty and traversal paths, huge repeated fields, plus
hand-made cases aimed at what a DataCoord relays to the nodes (Import → datanode, WatchChannels →
channel watch info, CreateIndex → indexnode CreateJob, SaveBinlogPaths → binlogs querynodes read
and GC deletes). Afterwards the real datanode, indexnode, querynode and proxy must all still be
alive and answering, an insert + flush + search through the proxy must work, the DataCoord under
test must be Healthy and the segments and indexes that existed before must be unchanged.

The Go 2.3.5 DataCoord relays an Import without `import_task` to the datanode, whose handler
dereferences it and takes the standalone down: with DATACOORD_IMPL=go the liveness test is an
expected (strict) failure. `test_hostile_cases_rejected` (ours only) checks that every hand-made
case got an error status (or UNIMPLEMENTED while an RPC is not built).
"""

from __future__ import annotations

import os
import random

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor

import cluster as cluster_mod
import datapath
import milvus_grpc

pytestmark = pytest.mark.needs_datacoord

GO = os.environ.get("DATACOORD_IMPL") == "go"
ALIAS = "e2e-hostile"
CALL_TIMEOUT = 15.0
TRAVERSAL = "../../../../../../etc/passwd"
HUGE_REPEATED = 100_000
I64_MAX = 2**63 - 1
U64_MAX = 2**64 - 1
# Requests that, with real IDs, are legitimate admin changes (dropping segments, setting states,
# compacting, dropping indexes, pausing GC): sent with made-up IDs only.
LEGIT_WITH_REAL_IDS = frozenset({
    "MarkSegmentsDropped", "SetSegmentState", "ManualCompaction", "DropIndex", "GcControl",
    "UnsetIsImportingState", "Flush",
})
# milvus.yaml keys for this module: no automatic compaction, so the segments that exist before the
# hostile requests stay exactly as they were unless a request changed them.
OVERRIDES = {"dataCoord.compaction.enableAutoCompaction": False}

SERVICES = {
    "datanode": "milvus.proto.data.DataNode",
    "indexnode": "milvus.proto.index.IndexNode",
    "querynode": "milvus.proto.query.QueryNode",
    "proxy": "milvus.proto.proxy.Proxy",
}

ALL_METHODS = milvus_grpc.methods(milvus_grpc.DATACOORD_SERVICE) + milvus_grpc.methods(
    milvus_grpc.INDEXCOORD_SERVICE
)


class Real:
    """IDs of the cluster's real objects the hostile requests point at."""

    def __init__(self, main: datapath.CollectionWorkload, bare: datapath.CollectionWorkload, endpoint: str):
        self.main = main
        self.bare = bare
        self.collection_id = main.collection_id
        self.partition_id = main.partition_ids["_default"]
        self.channel = main.vchannels[0]
        segments = datapath.stored_segments(endpoint, main.collection_id)
        self.segment_id = next(s.ID for s in segments if s.insert_channel == self.channel)
        self.datanode_id = _session_id(endpoint, "datanode")


def _session_id(endpoint: str, role: str) -> int:
    """ServerID of the (only) node of `role` (its session key is `session/{role}-{id}`)."""
    import json

    sessions = datapath.etcd_range_prefix(endpoint, f"{datapath.META_ROOT}/session/{role}-")
    assert sessions, f"no {role} session in etcd"
    return int(json.loads(sessions[0][1])["ServerID"])


# ---------------------------------------------------------------------------------------------
# Generic hostile variants of any request, built from its descriptor


def _int_for(field: FieldDescriptor, mode: str, real: Real | None) -> int:
    unsigned = field.cpp_type in (FieldDescriptor.CPPTYPE_UINT32, FieldDescriptor.CPPTYPE_UINT64)
    bits32 = field.cpp_type in (FieldDescriptor.CPPTYPE_UINT32, FieldDescriptor.CPPTYPE_INT32)
    if mode == "negative":
        return 0 if unsigned else -1
    if mode == "huge":
        if unsigned:
            return 2**32 - 1 if bits32 else U64_MAX
        return 2**31 - 1 if bits32 else I64_MAX
    name = field.name.lower()
    if real is not None and not bits32 and not unsigned:
        if "collection" in name:
            return real.collection_id
        if "partition" in name:
            return real.partition_id
        if "segment" in name:
            return real.segment_id
    return 0 if unsigned else -7


def _string_for(field: FieldDescriptor, mode: str, real: Real | None) -> str:
    if mode == "huge":
        return "x" * 65_536
    if mode == "traversal":
        return TRAVERSAL
    if real is not None and "channel" in field.name.lower():
        return real.channel
    return ""


def fill(message, mode: str, real: Real | None, depth: int = 0):
    """Sets every field of `message` for `mode` (negative, huge, traversal, real-ids); nested
    messages up to depth 2, repeated fields with one element (HUGE_REPEATED ints when huge)."""
    for field in message.DESCRIPTOR.fields:
        repeated = field.label == FieldDescriptor.LABEL_REPEATED
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            container = getattr(message, field.name)
            if value_field.message_type is None:
                key_field = field.message_type.fields_by_name["key"]
                key = _string_for(key_field, mode, real) if key_field.type == FieldDescriptor.TYPE_STRING else -1
                value = _string_for(value_field, mode, real) if value_field.type == FieldDescriptor.TYPE_STRING else 0
                if isinstance(value, str) or value_field.cpp_type != FieldDescriptor.CPPTYPE_BOOL:
                    container[key] = value
        elif field.message_type is not None:
            if depth >= 2:
                continue
            target = getattr(message, field.name).add() if repeated else getattr(message, field.name)
            if field.message_type.full_name == "milvus.proto.common.MsgBase":
                target.sourceID = -1  # no such node
                continue
            fill(target, mode, real, depth + 1)
            target.SetInParent()
        elif field.type == FieldDescriptor.TYPE_ENUM:
            values = [v.number for v in field.enum_type.values]
            value = values[-1] if mode != "negative" else values[0]
            (getattr(message, field.name).append(value) if repeated else setattr(message, field.name, value))
        elif field.type == FieldDescriptor.TYPE_STRING:
            value = _string_for(field, mode, real)
            (getattr(message, field.name).append(value) if repeated else setattr(message, field.name, value))
        elif field.type == FieldDescriptor.TYPE_BYTES:
            value = b"\xff" * (65_536 if mode == "huge" else 3)
            (getattr(message, field.name).append(value) if repeated else setattr(message, field.name, value))
        elif field.type == FieldDescriptor.TYPE_BOOL:
            (getattr(message, field.name).append(True) if repeated else setattr(message, field.name, True))
        elif field.cpp_type in (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE):
            value = -1.0 if mode == "negative" else 1e300
            (getattr(message, field.name).append(value) if repeated else setattr(message, field.name, value))
        else:
            value = _int_for(field, mode, real)
            if repeated:
                getattr(message, field.name).extend([value] * (HUGE_REPEATED if mode == "huge" and depth == 0 else 1))
            else:
                setattr(message, field.name, value)
    return message


def generic_cases(method: milvus_grpc.Method, real: Real) -> list[tuple[str, bytes]]:
    cls = milvus_grpc.message_class(method.input_type)
    cases = [("empty", b"")]
    for mode in ("negative", "huge"):
        cases.append((mode, fill(cls(), mode, None).SerializeToString()))
    if method.name not in LEGIT_WITH_REAL_IDS:
        cases.append(("traversal", fill(cls(), "traversal", real).SerializeToString()))
        cases.append(("real-ids", fill(cls(), "real-ids", real).SerializeToString()))
    return cases


# ---------------------------------------------------------------------------------------------
# Hand-made cases: what a DataCoord relays to a node or persists for one


def _kv(**pairs) -> list[dict]:
    return [{"key": k, "value": str(v)} for k, v in pairs.items()]


def _binlogs(path: str, field_id: int = 100) -> list[dict]:
    return [{"fieldID": field_id, "binlogs": [{"entries_num": 10, "log_path": path, "logID": 0}]}]


def hand_made_cases(real: Real) -> list[tuple[str, str, dict]]:
    """(label, method, request fields); every one must be refused with an error status."""
    coll, part, seg, channel = real.collection_id, real.partition_id, real.segment_id, real.channel
    bare = real.bare
    vec_type = {"dim": str(datapath.DIM)}
    in_main = f"{coll}/{part}/{seg}"
    sneaky = f"../../../../../tmp/elsewhere/insert_log/{in_main}/100/424242"
    node = {"sourceID": real.datanode_id}
    cases = [
        # DataCoord → DataNode Import: a nil import task is what crashes a 2.3.5 datanode.
        ("import-nil-task", "Import", {}),
        ("import-no-collection", "Import", {"import_task": {"task_id": 1, "files": [TRAVERSAL]}}),
        ("import-traversal-files", "Import", {"import_task": {
            "collection_id": coll, "partition_id": part, "channel_names": [channel], "task_id": 2,
            "files": [TRAVERSAL, "/etc/shadow"], "row_based": True}}),
        ("save-import-nil-request", "SaveImportSegment", {"segment_id": seg, "channel_name": channel,
                                                          "collection_id": coll, "partition_id": part}),
        # RootCoord → channel watch info → DataNode.
        ("watch-nil-schema", "WatchChannels", {"collectionID": coll, "channelNames": [f"{channel}x"]}),
        ("watch-empty-name", "WatchChannels", {"collectionID": coll, "channelNames": [""],
                                               "schema": {"name": "h", "fields": [{"fieldID": 100, "name": "pk", "data_type": 5, "is_primary_key": True}]}}),
        ("watch-traversal-name", "WatchChannels", {"collectionID": coll, "channelNames": [TRAVERSAL],
                                                   "schema": {"name": "h", "fields": [{"fieldID": 100, "name": "pk", "data_type": 5, "is_primary_key": True}]}}),
        ("watch-collection-zero", "WatchChannels", {"collectionID": 0, "channelNames": ["by-dev-rootcoord-dml_0_0v0"],
                                                    "schema": {"name": "h", "fields": [{"fieldID": 100, "name": "pk", "data_type": 5, "is_primary_key": True}]}}),
        ("watch-foreign-position", "WatchChannels", {
            "collectionID": 4242, "channelNames": ["by-dev-rootcoord-dml_0_4242v0"],
            "start_positions": [{"key": "by-dev-rootcoord-dml_9", "data": b"\x01"}],
            "schema": {"name": "h", "fields": [{"fieldID": 100, "name": "pk", "data_type": 5, "is_primary_key": True}]}}),
        ("watch-no-fields", "WatchChannels", {"collectionID": 4243, "channelNames": ["by-dev-rootcoord-dml_0_4243v0"],
                                              "schema": {"name": "h"}}),
        # Allocation on a channel the collection does not have (it would be watched).
        ("assign-foreign-channel", "AssignSegmentID", {"segmentIDRequests": [
            {"count": 10, "channel_name": "by-dev-rootcoord-dml_0_1v0", "collectionID": coll, "partitionID": part}]}),
        ("assign-traversal-channel", "AssignSegmentID", {"segmentIDRequests": [
            {"count": 10, "channel_name": TRAVERSAL, "collectionID": coll, "partitionID": part}]}),
        # Binlogs: paths that leave the root, or that a non-owner reports.
        ("binlogs-no-channel-drop", "SaveBinlogPaths", {"base": node, "segmentID": seg, "collectionID": coll,
                                                        "flushed": True, "dropped": True}),
        ("binlogs-wrong-node", "SaveBinlogPaths", {"base": {"sourceID": 987654}, "segmentID": seg,
                                                   "collectionID": coll, "channel": channel,
                                                   "field2BinlogPaths": _binlogs(sneaky)}),
        ("binlogs-traversal-path", "SaveBinlogPaths", {"base": node, "segmentID": seg, "collectionID": coll,
                                                       "channel": channel, "field2BinlogPaths": _binlogs(sneaky)}),
        ("binlogs-absolute-delta", "SaveBinlogPaths", {"base": node, "segmentID": seg, "collectionID": coll,
                                                       "channel": channel,
                                                       "deltalogs": [{"binlogs": [{"entries_num": 1, "log_path": "/etc/424243"}]}]}),
        ("binlogs-stats-other-segment", "SaveBinlogPaths", {
            "base": node, "segmentID": seg, "collectionID": coll, "channel": channel,
            "field2StatslogPaths": _binlogs(f"files/stats_log/{coll}/{part}/{seg + 1}/100/424244")}),
        ("drop-channel-wrong-node", "DropVirtualChannel", {"base": {"sourceID": 987654}, "channel_name": channel,
                                                           "segments": [{"segmentID": seg}]}),
        # Index params the indexnode would choke on (the field has no index yet).
        ("index-unknown-type", "CreateIndex", {"collectionID": bare.collection_id, "fieldID": 101, "type_params": _kv(**vec_type),
                                               "index_params": _kv(index_type="NOT_AN_INDEX", metric_type="L2")}),
        ("index-bad-dim", "CreateIndex", {"collectionID": bare.collection_id, "fieldID": 101, "type_params": _kv(dim="abc"),
                                          "index_params": _kv(index_type="IVF_FLAT", metric_type="L2", nlist=16)}),
        ("index-negative-nlist", "CreateIndex", {"collectionID": bare.collection_id, "fieldID": 101, "type_params": _kv(**vec_type),
                                                 "index_params": _kv(index_type="IVF_FLAT", metric_type="L2", nlist=-1)}),
        ("index-absurd-nlist", "CreateIndex", {"collectionID": bare.collection_id, "fieldID": 101, "type_params": _kv(**vec_type),
                                               "index_params": _kv(index_type="IVF_FLAT", metric_type="L2", nlist=10**12)}),
        ("index-absurd-hnsw", "CreateIndex", {"collectionID": bare.collection_id, "fieldID": 101, "type_params": _kv(**vec_type),
                                              "index_params": _kv(index_type="HNSW", metric_type="L2", M=100000, efConstruction="x")}),
        ("index-bad-metric", "CreateIndex", {"collectionID": bare.collection_id, "fieldID": 101, "type_params": _kv(**vec_type),
                                             "index_params": _kv(index_type="FLAT", metric_type="BOGUS")}),
        ("index-pq-m-not-dividing", "CreateIndex", {"collectionID": bare.collection_id, "fieldID": 101, "type_params": _kv(**vec_type),
                                                    "index_params": _kv(index_type="IVF_PQ", metric_type="L2", nlist=16, m=3, nbits=8)}),
        ("index-unknown-field", "CreateIndex", {"collectionID": bare.collection_id, "fieldID": 999, "type_params": _kv(**vec_type),
                                                "index_params": _kv(index_type="FLAT", metric_type="L2")}),
        ("index-unknown-collection", "CreateIndex", {"collectionID": -3, "fieldID": 101,
                                                     "index_params": _kv(index_type="FLAT", metric_type="L2")}),
        ("index-scalar-vector-type", "CreateIndex", {"collectionID": bare.collection_id, "fieldID": 100,
                                                     "index_params": _kv(index_type="HNSW", metric_type="L2", M=8)}),
        # Compaction, flush, GC control with made-up IDs or values.
        ("compaction-negative", "ManualCompaction", {"collectionID": -1}),
        ("gc-pause-garbage", "GcControl", {"command": 1, "params": _kv(duration="abc")}),
    ]
    return cases


SERVICE_OF = {m.name: m for m in ALL_METHODS}


def _encode(method: str, fields: dict) -> bytes:
    return milvus_grpc.message_class(SERVICE_OF[method].input_type)(**fields).SerializeToString()


def _status_of(method: milvus_grpc.Method, raw: bytes):
    response = milvus_grpc.message_class(method.output_type).FromString(raw)
    if response.DESCRIPTOR.full_name == "milvus.proto.common.Status":
        return response
    return response.status if "status" in response.DESCRIPTOR.fields_by_name else None


# ---------------------------------------------------------------------------------------------
# Fixtures


class Run:
    def __init__(self, cluster):
        self.cluster = cluster
        self.outcomes: dict[str, str] = {}  # hand-made label → "ok" | "error <code> <reason>" | gRPC code
        self.generic_hangs: list[str] = []
        self.sent = False


@pytest.fixture(scope="module")
def run(_holder):
    from pymilvus import Collection, connections, utility

    cluster = _holder.get(OVERRIDES)
    connections.connect(ALIAS, host="127.0.0.1", port=str(cluster.ports.proxy), timeout=30)
    names = datapath.collection_names("e2e_p", 2)
    main = datapath.CollectionWorkload(names[0], ALIAS, index=0)
    bare = datapath.CollectionWorkload(names[1], ALIAS, index=1)
    state = Run(cluster)
    state.main, state.bare = main, bare
    try:
        for workload in (main, bare):
            workload.create(cluster.proxy_address)
            workload.insert_round()
            workload.flush()
            workload.wait_segments_settled(cluster.etcd_endpoint, timeout=60)
        collection = Collection(main.name, using=ALIAS)
        collection.create_index("vec", {"index_type": "FLAT", "metric_type": "L2", "params": {}}, timeout=60)
        collection.load(timeout=120)
        yield state
    finally:
        try:
            if all(p.alive() for p in cluster.procs.values()):
                for workload in (main, bare):
                    if workload.collection_id and utility.has_collection(workload.name, using=ALIAS, timeout=10):
                        utility.drop_collection(workload.name, using=ALIAS, timeout=30)
        finally:
            connections.disconnect(ALIAS)


def _segment_snapshot(endpoint: str, collection_id: int) -> dict[int, bytes]:
    return {s.ID: s.SerializeToString(deterministic=True) for s in datapath.stored_segments(endpoint, collection_id)}


def _differences(before: bytes, after: bytes | None) -> str:
    if after is None:
        return "gone from etcd"
    info_class = milvus_grpc.message_class("milvus.proto.data.SegmentInfo")
    old, new = info_class.FromString(before), info_class.FromString(after)
    fields = [f.name for f in old.DESCRIPTOR.fields if getattr(old, f.name) != getattr(new, f.name)]
    return ", ".join(f"{name}: {getattr(old, name)!r:.120} -> {getattr(new, name)!r:.120}" for name in fields)


def _index_snapshot(endpoint: str, collection_id: int) -> list[tuple[str, bytes]]:
    return datapath.etcd_range_prefix(endpoint, f"{datapath.META_ROOT}/field-index/{collection_id}/")


def _component_states(cluster) -> dict[str, str]:
    ports = {"datanode": cluster.ports.datanode, "indexnode": cluster.ports.indexnode,
             "querynode": cluster.ports.querynode, "proxy": cluster.ports.proxy_internal}
    states = {}
    for role, port in ports.items():
        state = milvus_grpc.try_component_states(f"127.0.0.1:{port}", SERVICES[role], timeout=5.0)
        states[role] = state.state_name if state else "unreachable"
    return states


def _send_all(run: Run, real: Real) -> None:
    address = run.cluster.datacoord_address
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        def call(method: milvus_grpc.Method, payload: bytes) -> str:
            stub = channel.unary_unary(method.path, request_serializer=None, response_deserializer=None)
            try:
                status = _status_of(method, stub(payload, timeout=CALL_TIMEOUT))
            except grpc.RpcError as err:
                return err.code().name
            if status is None or (status.code == 0 and status.error_code == 0):
                return "ok"
            return f"error {status.code} {status.reason[:160]}"

        for method in ALL_METHODS:
            for label, payload in generic_cases(method, real):
                if call(method, payload) == "DEADLINE_EXCEEDED":
                    run.generic_hangs.append(f"{method.name}/{label}")
        for label, name, fields in hand_made_cases(real):
            run.outcomes[label] = call(SERVICE_OF[name], _encode(name, fields))
        # Undo a pause a generic GcControl may have asked for (resume = command 2).
        call(SERVICE_OF["GcControl"], _encode("GcControl", {"command": 2}))
    run.sent = True


# ---------------------------------------------------------------------------------------------
# Tests


@pytest.mark.xfail(condition=GO, strict=True,
                   reason="the Go 2.3.5 DataCoord relays an Import without import_task to the datanode, "
                          "whose nil dereference takes the standalone down")
def test_hostile_payloads_leave_every_component_alive(run):
    from pymilvus import Collection

    cluster = run.cluster
    endpoint = cluster.etcd_endpoint
    real = Real(run.main, run.bare, endpoint)
    before = {c: _segment_snapshot(endpoint, c) for c in (real.collection_id, run.bare.collection_id)}
    indexes_before = _index_snapshot(endpoint, real.collection_id)

    _send_all(run, real)

    standalone = cluster.procs["standalone"]
    assert standalone.alive(), f"the standalone died; outcomes {run.outcomes}; log tail:\n{standalone.log_tail(60)}"
    datacoord = cluster.procs["datacoord"]
    assert datacoord.alive(), f"the DataCoord died; log {datacoord.log}:\n{datacoord.log_tail()}"
    assert not run.generic_hangs, f"no answer within {CALL_TIMEOUT}s: {run.generic_hangs}"
    states = _component_states(cluster)
    assert set(states.values()) == {"Healthy"}, f"components after hostile requests: {states}"

    # The data path still works end to end: insert + flush + count + search.
    main = run.main
    main.insert_round()
    main.flush()
    main.check_counts()
    pk, vector = main.sample
    hits = Collection(main.name, using=ALIAS).search(
        [vector], "vec", {"metric_type": "L2", "params": {}}, limit=1, timeout=60)
    assert hits[0].ids == [pk], f"search for row {pk} found {hits[0].ids}"

    assert standalone.alive(), f"the standalone died; log tail:\n{standalone.log_tail(60)}"
    states = _component_states(cluster)
    assert set(states.values()) == {"Healthy"}, f"components after the data round trip: {states}"
    state = milvus_grpc.get_component_states(cluster.datacoord_address)
    assert state.state_code == milvus_grpc.HEALTHY, state

    for collection_id, segments in before.items():
        after = _segment_snapshot(endpoint, collection_id)
        changed = {sid: _differences(value, after.get(sid)) for sid, value in segments.items() if after.get(sid) != value}
        assert not changed, f"collection {collection_id}: segments changed by hostile requests: {changed}"
    assert _index_snapshot(endpoint, real.collection_id) == indexes_before, "field-index records changed"


@pytest.mark.ours_only
def test_hostile_cases_rejected(run):
    if not run.sent:
        pytest.skip("the hostile requests were not sent (the previous test failed before)")
    accepted = {label: outcome for label, outcome in run.outcomes.items()
                if not (outcome.startswith("error") or outcome == "UNIMPLEMENTED")}
    assert not accepted, f"hostile requests answered without an error status: {accepted}"


def test_cases_cover_every_relay():
    # Guards against a proto/ change that renames a method the hand-made cases rely on.
    methods = {name for _label, name, _fields in hand_made_cases(_FakeReal())}
    assert methods <= set(SERVICE_OF), methods - set(SERVICE_OF)
    for needed in ("Import", "SaveImportSegment", "WatchChannels", "CreateIndex", "SaveBinlogPaths",
                   "AssignSegmentID", "DropVirtualChannel", "ManualCompaction", "GcControl"):
        assert needed in methods
    for label, name, fields in hand_made_cases(_FakeReal()):
        _encode(name, fields)  # raises on a field name the proto does not have
    for method in ALL_METHODS:
        labels = [label for label, _payload in generic_cases(method, _FakeReal())]
        assert labels[:3] == ["empty", "negative", "huge"], (method.name, labels)


class _FakeReal:
    collection_id, partition_id, segment_id, channel, datanode_id = 1, 2, 3, "by-dev-rootcoord-dml_0_1v0", 4

    class bare:  # noqa: N801 - stands in for a workload
        collection_id = 5
