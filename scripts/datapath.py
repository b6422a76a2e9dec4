"""The data-path workload and the inspection helpers behind it.

Shared by tests/e2e/test_f_datapath.py, tests/e2e/test_g_datapath_restart.py and run-workload.py.
The workload: collections with 2 partitions (`_default` + `p1`) and 2 shards; rounds of inserts into
every partition, each followed by `collection.flush()`. Expected row counts are tracked per partition
from what was inserted, so every check compares the cluster against the workload's own numbers.

Inspection goes around the proxy: DataCoord's metadata is read straight from etcd (the C.1 key
layout of FACTS-data-path.md, values decoded with the private proto pool of milvus_grpc.py), and
DataCoord RPCs are sent to the process that holds `by-dev/meta/session/datacoord`.
No load, search or index here: in 2.3.5 those need an index, which is outside the data path.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import random
import signal
import time
from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster as cluster_mod  # noqa: E402
import milvus_grpc  # noqa: E402

META_ROOT = "by-dev/meta"
PROXY_SERVICE = "milvus.proto.milvus.MilvusService"
DIM = 8
SHARDS = 2
PARTITIONS = ("_default", "p1")

# milvus.proto.common.SegmentState (wire facts).
SEGMENT_STATES = {0: "None", 1: "NotExist", 2: "Growing", 3: "Sealed", 4: "Flushed", 5: "Flushing",
                  6: "Dropped", 7: "Importing"}
GROWING, SEALED, FLUSHED, FLUSHING, DROPPED = 2, 3, 4, 5, 6
# After a flush no segment of the collection may stay in one of these.
UNFINISHED = frozenset({GROWING, SEALED, FLUSHING})
SEGMENT_NOT_FOUND = 600  # merr code of ErrSegmentNotFound


def state_name(code: int) -> str:
    return SEGMENT_STATES.get(code, str(code))


# ---------------------------------------------------------------------------------------------
# etcd


def etcd_range_prefix(endpoint: str, prefix: str) -> list[tuple[str, bytes]]:
    """Every (key, value) under `prefix`, sorted by key."""
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    answer = cluster_mod.etcd_call(
        endpoint, "kv/range", {"key": cluster_mod._b64(prefix), "range_end": cluster_mod._b64(end)})
    return [(base64.b64decode(kv["key"]).decode(), base64.b64decode(kv.get("value", "")))
            for kv in answer.get("kvs") or []]


def stored_segments(endpoint: str, collection_id: int) -> list:
    """The collection's `datacoord-meta/s/{coll}/{part}/{seg}` values as data.SegmentInfo messages."""
    info_class = milvus_grpc.message_class("milvus.proto.data.SegmentInfo")
    segments = []
    for key, value in etcd_range_prefix(endpoint, f"{META_ROOT}/datacoord-meta/s/{collection_id}/"):
        segment = info_class.FromString(value)
        # The key is the index DataCoord reloads from; a value filed under another ID is corrupt.
        if key.rsplit("/", 1)[1] != str(segment.ID) or segment.collectionID != collection_id:
            raise AssertionError(f"etcd key {key} holds segment {segment.ID} of collection {segment.collectionID}")
        segments.append(segment)
    return segments


def describe_segments(segments) -> str:
    return ", ".join(f"{s.ID}:{state_name(s.state)}:{s.num_of_rows}" for s in segments) or "none"


def channel_watch_keys(endpoint: str, vchannel: str) -> list[str]:
    """Keys `channelwatch/{node}/{vchannel}` for any node, buffer node included."""
    return [key for key, _ in etcd_range_prefix(endpoint, f"{META_ROOT}/channelwatch/")
            if key.rsplit("/", 1)[1] == vchannel]


def removal_flag(endpoint: str, vchannel: str) -> bytes | None:
    return cluster_mod.etcd_get(endpoint, f"{META_ROOT}/datacoord-meta/channel-removal/{vchannel}")


def etcd_revoke(endpoint: str, lease_id: int) -> None:
    cluster_mod.etcd_call(endpoint, "lease/revoke", {"ID": str(lease_id)})


@contextlib.contextmanager
def proxy_session(cluster, alias: str, workloads: list):
    """pymilvus connection `alias` to the cluster's proxy for a test module; on exit the
    collections of `workloads` (a list the module fills meanwhile; ones never created are
    skipped) are dropped and the alias disconnected."""
    from pymilvus import connections, utility

    connections.connect(alias, host="127.0.0.1", port=str(cluster.ports.proxy), timeout=30)
    try:
        yield
    finally:
        try:
            for workload in workloads:
                created = getattr(workload, "collection_id", True)
                if created and utility.has_collection(workload.name, using=alias, timeout=10):
                    utility.drop_collection(workload.name, using=alias, timeout=30)
        finally:
            connections.disconnect(alias)


# ---------------------------------------------------------------------------------------------
# gRPC: the proxy (for IDs pymilvus does not expose) and the active DataCoord


def proxy_call(address: str, method: str, request: str, response: str, **fields):
    """One MilvusService call; raises when the answer's status is not Success."""
    message = milvus_grpc.message_class(f"milvus.proto.milvus.{request}")(**fields)
    raw = milvus_grpc.raw_unary(address, f"/{PROXY_SERVICE}/{method}", message.SerializeToString(), timeout=30)
    answer = milvus_grpc.message_class(f"milvus.proto.milvus.{response}").FromString(raw)
    if answer.status.code != 0 or answer.status.error_code != 0:
        raise AssertionError(f"proxy {method}: {answer.status}")
    return answer


def active_datacoord(endpoint: str) -> str:
    session = cluster_mod.session_of(endpoint)
    if not session:
        raise AssertionError("no active datacoord session in etcd")
    return session["Address"]


def datacoord_call(address: str, method: str, timeout: float = 30, **fields):
    """One DataCoord RPC with request fields as keyword arguments; the decoded response (status unchecked)."""
    found = [m for m in milvus_grpc.methods(milvus_grpc.DATACOORD_SERVICE) if m.name == method]
    if not found:
        raise KeyError(f"DataCoord has no RPC {method}")
    request = milvus_grpc.message_class(found[0].input_type)(**fields)
    raw = milvus_grpc.raw_unary(address, found[0].path, request.SerializeToString(), timeout)
    return milvus_grpc.message_class(found[0].output_type).FromString(raw)


def check_status(response, what: str) -> None:
    status = response.status
    if status.code != 0 or status.error_code != 0:
        raise AssertionError(f"{what}: code {status.code} error_code {status.error_code} {status.reason!r}")


# ---------------------------------------------------------------------------------------------
# The workload


def rows_for(collection_index: int, partition_index: int, round_index: int) -> int:
    """Row counts that differ per collection, partition and round, so a mix-up shows in the totals."""
    return 120 + 40 * round_index + 30 * partition_index + 17 * collection_index


@dataclasses.dataclass
class CollectionWorkload:
    """One collection of the workload and the rows inserted into each of its partitions."""

    name: str
    alias: str
    index: int = 0
    timeout: int = 60  # pymilvus bounds its retries by `timeout` only when it is an int
    collection_id: int = 0
    vchannels: list[str] = dataclasses.field(default_factory=list)
    partition_ids: dict[str, int] = dataclasses.field(default_factory=dict)
    expected: dict[str, int] = dataclasses.field(default_factory=lambda: {p: 0 for p in PARTITIONS})
    next_pk: int = 0
    rounds: int = 0
    sample: tuple[int, list[float]] | None = None  # (pk, vector) of the first row inserted

    @property
    def total(self) -> int:
        return sum(self.expected.values())

    def collection(self):
        from pymilvus import Collection

        return Collection(self.name, using=self.alias)

    def create(self, proxy_address: str) -> None:
        from pymilvus import Collection, CollectionSchema, DataType, FieldSchema

        schema = CollectionSchema([
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
        ])
        collection = Collection(self.name, schema, using=self.alias, shards_num=SHARDS, timeout=self.timeout)
        for partition in PARTITIONS[1:]:
            collection.create_partition(partition, timeout=self.timeout)
        described = proxy_call(proxy_address, "DescribeCollection", "DescribeCollectionRequest",
                               "DescribeCollectionResponse", collection_name=self.name)
        shown = proxy_call(proxy_address, "ShowPartitions", "ShowPartitionsRequest", "ShowPartitionsResponse",
                           collection_name=self.name)
        self.collection_id = described.collectionID
        self.vchannels = list(described.virtual_channel_names)
        self.partition_ids = dict(zip(shown.partition_names, shown.partitionIDs))
        if len(self.vchannels) != SHARDS or set(self.partition_ids) != set(PARTITIONS):
            raise AssertionError(f"{self.name}: vchannels {self.vchannels}, partitions {self.partition_ids}")

    def insert_round(self) -> dict[str, int]:
        """Inserts one round into every partition; returns the rows per partition."""
        collection = self.collection()
        rng = random.Random(self.index * 1000 + self.rounds)
        inserted = {}
        for partition_index, partition in enumerate(PARTITIONS):
            count = rows_for(self.index, partition_index, self.rounds)
            ids = list(range(self.next_pk, self.next_pk + count))
            vectors = [[rng.random() for _ in range(DIM)] for _ in ids]
            if self.sample is None:
                self.sample = (ids[0], vectors[0])
            result = collection.insert([ids, vectors], partition_name=partition, timeout=self.timeout)
            if result.insert_count != count:
                raise AssertionError(f"{self.name}/{partition}: insert_count {result.insert_count} != {count}")
            self.next_pk += count
            self.expected[partition] += count
            inserted[partition] = count
        self.rounds += 1
        return inserted

    def flush(self) -> None:
        self.collection().flush(timeout=self.timeout)

    # -- checks (raise AssertionError with the numbers) --------------------------------------
    def row_counts(self, timeout: int | None = None) -> dict[str, int]:
        """num_entities of the collection ("total") and of each partition, through the proxy."""
        from pymilvus import connections

        handler = connections._fetch_handler(self.alias)
        timeout = timeout or self.timeout

        def row_count(stats) -> int:
            return int({s.key: s.value for s in stats}["row_count"])

        counts = {"total": row_count(handler.get_collection_stats(self.name, timeout=timeout))}
        for partition in PARTITIONS:
            counts[partition] = row_count(handler.get_partition_stats(self.name, partition, timeout=timeout))
        return counts

    def check_counts(self) -> str:
        """num_entities of the collection and of each partition equal the inserted rows."""
        got = self.row_counts()
        want = {"total": self.total, **self.expected}
        if got != want:
            raise AssertionError(f"{self.name}: num_entities {got} != inserted {want}")
        return f"{self.name}: {want}"

    def wait_segments_settled(self, endpoint: str, timeout: float = 30.0) -> list:
        """The stored segments once none is Growing, Sealed or Flushing (Flushing → Flushed is asynchronous)."""
        deadline = time.monotonic() + timeout
        while True:
            segments = stored_segments(endpoint, self.collection_id)
            unfinished = [s for s in segments if s.state in UNFINISHED]
            if not unfinished:
                return segments
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: segments still unfinished after {timeout:.0f}s: "
                                     f"{describe_segments(unfinished)} (all: {describe_segments(segments)})")
            time.sleep(0.2)

    def check_stored_rows(self, segments) -> str:
        """Σ num_of_rows of Flushed segments per partition (from etcd) equals the inserted rows."""
        by_id = {pid: name for name, pid in self.partition_ids.items()}
        got = {p: 0 for p in PARTITIONS}
        for segment in segments:
            if segment.partitionID not in by_id:
                raise AssertionError(f"{self.name}: segment {segment.ID} in unknown partition {segment.partitionID}")
            if segment.insert_channel not in self.vchannels:
                raise AssertionError(f"{self.name}: segment {segment.ID} on foreign channel {segment.insert_channel}")
            if segment.state == FLUSHED:
                got[by_id[segment.partitionID]] += segment.num_of_rows
            elif segment.state != DROPPED:
                raise AssertionError(f"{self.name}: segment {segment.ID} is {state_name(segment.state)}")
        if got != self.expected:
            raise AssertionError(f"{self.name}: Σ num_of_rows of Flushed segments in etcd {got} != inserted "
                                 f"{self.expected} ({describe_segments(segments)})")
        flushed = sum(s.state == FLUSHED for s in segments)
        return f"{self.name}: {flushed} Flushed segments, {self.total} rows"

    def check_after_flush(self, endpoint: str) -> str:
        """Counts through the proxy and the segments in etcd, after a completed flush."""
        self.check_counts()
        return self.check_stored_rows(self.wait_segments_settled(endpoint))

    def check_persistent_segment_infos(self) -> str:
        """The proxy's persistent-segment API reports Flushed segments holding every inserted row."""
        from pymilvus import connections

        infos = connections._fetch_handler(self.alias).get_persistent_segment_infos(self.name, timeout=self.timeout)
        flushed = [i for i in infos if i.state == FLUSHED]
        others = [(i.segmentID, state_name(i.state)) for i in infos if i.state not in (FLUSHED, DROPPED)]
        if others:
            raise AssertionError(f"{self.name}: persistent segments not Flushed: {others}")
        rows = sum(i.num_rows for i in flushed)
        if rows != self.total or any(i.collectionID != self.collection_id for i in flushed):
            raise AssertionError(f"{self.name}: persistent segment infos hold {rows} rows, inserted {self.total}")
        return f"{self.name}: {len(flushed)} segments, {rows} rows"

    def wait_dropped_in_etcd(self, endpoint: str, timeout: float = 60.0) -> str:
        """After drop_collection: channel watch keys and removal flags gone, every segment Dropped or removed."""
        deadline = time.monotonic() + timeout
        while True:
            left = {ch: channel_watch_keys(endpoint, ch) for ch in self.vchannels}
            left = {ch: keys for ch, keys in left.items() if keys}
            flags = {ch: removal_flag(endpoint, ch) for ch in self.vchannels}
            flags = {ch: flag for ch, flag in flags.items() if flag is not None}
            segments = stored_segments(endpoint, self.collection_id)
            alive = [s for s in segments if s.state != DROPPED]
            if not left and not flags and not alive:
                return f"{self.name}: channels released, {len(segments)} segments Dropped"
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} after drop ({timeout:.0f}s): channelwatch keys {left}, "
                                     f"removal flags {flags}, segments not Dropped {describe_segments(alive)}")
            time.sleep(0.5)


def collection_names(prefix: str, count: int) -> list[str]:
    stamp = f"{int(time.time())}_{random.randint(0, 9999)}"
    return [f"{prefix}_{stamp}_{i}" for i in range(count)]


def wait_proxy_reaches_datacoord(workload: CollectionWorkload, timeout: float = 90.0) -> None:
    """Polls num_entities (proxy → DataCoord GetCollectionStatistics) until it answers.

    After a DataCoord change the proxy rediscovers it lazily; inserting before that could fail
    midway, and a failed insert cannot be retried without risking duplicate rows.
    """
    def answers():
        try:
            workload.row_counts(timeout=5)
            return True
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False

    cluster_mod.wait_for("the proxy to reach the active datacoord", answers, timeout, interval=1.0)


# ---------------------------------------------------------------------------------------------
# DataCoord hand-over without the standalone's standby racing for the key


def session_leases(endpoint: str, server_id: int) -> list[int]:
    """LeaseIDs of the `datacoord` and `indexcoord` session keys still held by `server_id`."""
    leases = []
    for role in ("datacoord", "indexcoord"):
        session = cluster_mod.session_of(endpoint, role)
        if session and session.get("ServerID") == server_id and session.get("LeaseID"):
            leases.append(int(session["LeaseID"]))
    return leases


def hand_over(cluster: cluster_mod.Cluster, stop, start, old_address: str, address: str):
    """Replaces the active DataCoord at `old_address`: `stop()` ends it, `start()` returns the
    process that must win the key for `address`.

    The standalone's own Go DataCoord stands by and would grab `session/datacoord` the moment it is
    free, so the standalone is frozen (SIGSTOP) from the stop until the new process holds the key.
    The freeze must end well before the standalone's own session leases run out (their TTL minus
    one keepalive interval, TTL/3), so `stop()` has to be quick: a kill, or a SIGTERM with a short
    grace. What is left of the old process's session (a kill -9 leaves its leases alive for the
    TTL) is revoked, which is what the lease expiry would do later. Returns the new process once
    it answers Healthy.
    """
    budget = 0.6 * (cluster.session_ttl or 30)
    old = cluster_mod.session_of(cluster.etcd_endpoint) or {}
    # The old leases get revoked below: they must belong to the process `stop()` ends.
    if old.get("Address") != old_address:
        raise AssertionError(f"the active datacoord is {old.get('Address')}, not {old_address}")
    standalone = cluster.procs["standalone"]
    frozen_at = time.monotonic()
    standalone.signal(signal.SIGSTOP)
    try:
        stop()
        for lease in session_leases(cluster.etcd_endpoint, old.get("ServerID")):
            etcd_revoke(cluster.etcd_endpoint, lease)
        proc = start()
        remaining = budget - (time.monotonic() - frozen_at)
        cluster.wait_session(address, max(remaining, 2.0), [proc])
    finally:
        standalone.signal(signal.SIGCONT)
    cluster.wait_healthy(address, 90, [proc])
    cluster.save_state()
    return proc


def wait_state(address: str, state: int, proc: cluster_mod.Proc, timeout: float = 60) -> None:
    """Waits until the DataCoord at `address` reports `state` (milvus_grpc state codes)."""
    def reached():
        current = milvus_grpc.try_component_states(address)
        return current if current and current.state_code == state else None

    cluster_mod.wait_for(f"{address} in state {milvus_grpc.STATE_NAMES[state]}", reached, timeout, [proc])


def go_takes_over(cluster: cluster_mod.Cluster) -> tuple[cluster_mod.Proc, str, cluster_mod.Proc]:
    """A Go DataCoord becomes the active one and the one under test comes back as its standby.

    Returns (the Go process, its address, the standby under test)."""
    under_test = cluster.procs["datacoord"]
    go_address = f"127.0.0.1:{cluster_mod.free_port()}"
    go = cluster.start_datacoord(cluster_mod.GO_DATACOORD_CMD, name="go-datacoord",
                                 port=int(go_address.rsplit(":", 1)[1]),
                                 metrics_port=cluster_mod.free_port(), wait=False)
    wait_state(go_address, milvus_grpc.STANDBY, go)
    hand_over(cluster, stop=lambda: sigterm(under_test), start=lambda: go,
              old_address=cluster.datacoord_address, address=go_address)
    standby = cluster.start_datacoord(wait=False)
    wait_state(cluster.datacoord_address, milvus_grpc.STANDBY, standby)
    return go, go_address, standby


def sigterm(proc: cluster_mod.Proc, grace: float = 8.0) -> int | None:
    """SIGTERM, then SIGKILL if the process outstays `grace`; the exit code, None when killed."""
    proc.signal(signal.SIGTERM)
    code = proc.wait_exit(grace)
    if code is None:
        kill_9(proc)
    return code


def kill_9(proc: cluster_mod.Proc, timeout: float = 15.0) -> None:
    proc.signal(signal.SIGKILL)

    def gone():
        proc.reap()
        return not proc.alive()

    cluster_mod.wait_for(f"{proc.name} to die", gone, timeout)
