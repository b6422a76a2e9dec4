"""Compaction and segment-GC helpers for the real-cluster tests and bench/compaction.py.

Shared by tests/e2e/test_k_compaction.py, test_l_gc.py, test_m_compaction_restart.py and
bench/compaction.py. Everything is checked from the outside, as the other helpers do: segment
records from etcd (`datacoord-meta/s/…` and the binlog/statslog/deltalog keys, FACTS-data-path C.1),
files in the cluster's local storage, and the compaction RPCs of the active DataCoord, the proxy
(pymilvus) and the DataNode.

Many small segments fast: a `Flush` RPC sent to the proxy without waiting seals the collection's
growing segments, so the next insert opens a new one (`flush_batches`); one blocking flush at the
end. Every batch gets its own row count, so each Flushed segment is matched to the batch it holds
by size, and a `Ledger` knows the primary keys of every segment: original ones from their batch,
compacted ones from their sources (`compactionFrom`, remembered after GC removed the sources).
That is what makes row counts checkable exactly: a compaction target must hold the rows of its
sources minus the deletes it applied, no primary key may live in two live segments, none may be lost.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster as cluster_mod  # noqa: E402
import datapath  # noqa: E402
import index as ix  # noqa: E402
import milvus_grpc  # noqa: E402

META_ROOT = datapath.META_ROOT
DATANODE_SERVICE = "milvus.proto.data.DataNode"
# milvus.proto.common.CompactionState (wire facts).
COMPACTION_STATES = {0: "UndefiedState", 1: "Executing", 2: "Completed"}
COMPLETED = 2
# Collection property read by 2.3.5's trigger for non-manual signals (FACTS §2.1).
AUTO_COMPACTION_PROPERTY = "collection.autocompaction.enabled"
# GcControl commands (data_coord.proto GcCommand).
GC_PAUSE, GC_RESUME = 1, 2
# The log families under datacoord-meta/ and the object-storage prefix each one's files live under.
LOG_FAMILIES = {"binlog": "insert_log", "statslog": "stats_log", "deltalog": "delta_log"}


# ---------------------------------------------------------------------------------------------
# Filling a collection with small segments of known contents


@dataclasses.dataclass
class Ledger:
    """The primary keys each segment of one collection holds."""

    pks: dict[int, frozenset[int]] = dataclasses.field(default_factory=dict)  # flushed from a batch
    sources: dict[int, tuple[int, ...]] = dataclasses.field(default_factory=dict)  # compacted: compactionFrom

    def learn(self, segments) -> None:
        """Remembers the lineage of every compacted segment in `segments` (etcd records)."""
        for segment in segments:
            if segment.compactionFrom:
                self.sources[segment.ID] = tuple(segment.compactionFrom)

    def contents(self, segment_id: int) -> frozenset[int]:
        """The primary keys ever inserted into the segment (deleted ones included)."""
        if segment_id in self.pks:
            return self.pks[segment_id]
        if segment_id not in self.sources:
            raise AssertionError(f"segment {segment_id} was neither flushed from a known batch nor compacted "
                                 f"from known segments")
        return frozenset().union(*(self.contents(source) for source in self.sources[segment_id]))


def flush_batches(workload: ix.IndexWorkload, proxy_address: str, endpoint: str,
                  rounds: list[list[tuple[str, int]]], ledger: Ledger) -> list[int]:
    """Inserts each round ((partition, rows) per batch), seals it with a Flush RPC that does not wait,
    then flushes and waits once; returns the new Flushed segments, and the ledger learns their pks.

    One shard only: a batch then lands in exactly one segment. Row counts must differ between the
    batches of one call (the new segments are matched to batches by size)."""
    known = {s.ID for s in datapath.stored_segments(endpoint, workload.collection_id)}
    batches: dict[tuple[int, int], list[int]] = {}  # (partition ID, rows) -> pks
    for batch_round in rounds:
        for partition, rows in batch_round:
            if any(r == rows for _, r in batches):
                raise ValueError(f"batch sizes must differ: {rows} rows twice")
            batches[(workload.partition_ids[partition], rows)] = workload.insert(rows, partition)
        datapath.proxy_call(proxy_address, "Flush", "FlushRequest", "FlushResponse",
                            collection_names=[workload.name])
    workload.flush()
    segments = wait_settled(endpoint, workload.collection_id)
    new = [s for s in segments if s.ID not in known]
    by_batch = {(s.partitionID, s.num_of_rows): s.ID for s in new if s.state == datapath.FLUSHED}
    if len(new) != len(batches) or set(by_batch) != set(batches):
        raise AssertionError(f"{workload.name}: expected one Flushed segment per batch "
                             f"(partition, rows) {sorted(batches)}, got {datapath.describe_segments(new)}")
    for key, pks in batches.items():
        ledger.pks[by_batch[key]] = frozenset(pks)
    return [by_batch[key] for key in batches]


def wait_settled(endpoint: str, collection_id: int, timeout: float = 60.0) -> list:
    """The collection's segment records once none is Growing, Sealed or Flushing."""
    def settled():
        segments = datapath.stored_segments(endpoint, collection_id)
        return segments if not any(s.state in datapath.UNFINISHED for s in segments) else None

    try:
        return cluster_mod.wait_for(f"collection {collection_id} segments settled", settled, timeout, interval=0.2)
    except TimeoutError:
        segments = datapath.stored_segments(endpoint, collection_id)
        raise AssertionError(f"collection {collection_id}: segments unfinished after {timeout:.0f}s: "
                             f"{datapath.describe_segments(segments)}") from None


def delta_entries(endpoint: str, collection_id: int, segment_ids=None) -> int:
    """Σ entries_num of the delta logs in etcd of the collection's segments (or of `segment_ids`)."""
    message = milvus_grpc.message_class("milvus.proto.data.FieldBinlog")
    prefix = f"{META_ROOT}/datacoord-meta/deltalog/{collection_id}/"
    total = 0
    for key, value in datapath.etcd_range_prefix(endpoint, prefix):
        segment_id = int(key[len(prefix):].split("/")[1])
        if segment_ids is None or segment_id in segment_ids:
            total += sum(b.entries_num for b in message.FromString(value).binlogs)
    return total


def delete_and_persist(workload: ix.IndexWorkload, endpoint: str, pks: list[int], segment_ids) -> None:
    """Deletes `pks`, flushes, and waits until delta logs of `segment_ids` in etcd hold them.

    A flush of a collection without growing rows returns before the DataNode has written its
    delete buffers; a plan made before that would not carry these deletes."""
    before = delta_entries(endpoint, workload.collection_id, segment_ids)
    workload.delete(pks)
    workload.flush()
    want = before + len(pks)
    cluster_mod.wait_for(f"{len(pks)} deletes of {workload.name} in delta logs",
                         lambda: delta_entries(endpoint, workload.collection_id, segment_ids) >= want, 60)


def new_workload(alias: str, proxy_address: str, prefix: str, seed: int, partitions=(), auto_compaction=True,
                 dim: int = 16) -> ix.IndexWorkload:
    """A one-shard collection; `auto_compaction=False` sets the collection property that keeps
    non-manual compaction away from it (manual compaction ignores it)."""
    workload = ix.IndexWorkload(ix.collection_name(prefix), alias, dim=dim, seed=seed)
    workload.create(proxy_address, partitions=tuple(partitions))
    if not auto_compaction:
        workload.collection().set_properties({AUTO_COMPACTION_PROPERTY: "false"}, timeout=workload.timeout)
    return workload


# ---------------------------------------------------------------------------------------------
# Checks on the segment records


def live(segments) -> list:
    return [s for s in segments if s.state != datapath.DROPPED]


def check_lineage(segments) -> str:
    """No segment is the source of two live segments, no source is live beside its live child, and
    every source of a live child is Dropped with compacted=true (while its record exists)."""
    by_id = {s.ID: s for s in segments}
    parent_of: dict[int, int] = {}
    problems = []
    for child in live(segments):
        for source in child.compactionFrom:
            if source in parent_of:
                problems.append(f"segment {source} is a source of live segments {parent_of[source]} and {child.ID}")
            parent_of[source] = child.ID
            record = by_id.get(source)
            if record is not None and (record.state != datapath.DROPPED or not record.compacted):
                problems.append(f"source {source} of live segment {child.ID} is {datapath.state_name(record.state)} "
                                f"compacted={record.compacted}")
    if problems:
        raise AssertionError("; ".join(problems) + f" (segments: {describe(segments)})")
    return f"{len(parent_of)} sources behind {sum(1 for s in live(segments) if s.compactionFrom)} live targets"


def check_rows(segments, ledger: Ledger, deleted: set[int], inserted: set[int]) -> str:
    """Every inserted pk lives in exactly one Flushed segment; a flushed segment holds all of its
    batch, a compacted one the rows of its sources minus `deleted` (the deletes persisted before
    it was planned); no segment is left unfinished."""
    ledger.learn(segments)
    problems = []
    unfinished = [s for s in segments if s.state in datapath.UNFINISHED]
    if unfinished:
        problems.append(f"unfinished segments {describe(unfinished)}")
    owner: dict[int, int] = {}
    for segment in segments:
        if segment.state != datapath.FLUSHED:
            continue
        pks = ledger.contents(segment.ID)
        for pk in pks:
            if pk in owner:
                problems.append(f"pk {pk} is in live segments {owner[pk]} and {segment.ID}")
                break
            owner[pk] = segment.ID
        want = len(pks - deleted) if segment.compactionFrom else len(pks)
        if segment.num_of_rows != want:
            origin = f" (compacted from {list(segment.compactionFrom)})" if segment.compactionFrom else ""
            problems.append(f"segment {segment.ID} has num_of_rows {segment.num_of_rows}, want {want}{origin}")
    lost = inserted - set(owner) - deleted
    if lost:
        problems.append(f"{len(lost)} live pks in no Flushed segment, e.g. {sorted(lost)[:5]}")
    if problems:
        raise AssertionError("; ".join(problems[:10]) + f" (segments: {describe(segments)})")
    return f"{len(owner)} pks in {sum(s.state == datapath.FLUSHED for s in segments)} Flushed segments"


def describe(segments) -> str:
    def one(s):
        origin = f"<-{list(s.compactionFrom)}" if s.compactionFrom else ""
        flag = " compacted" if s.compacted else ""
        return f"{s.ID}:{datapath.state_name(s.state)}:{s.num_of_rows}{origin}{flag}"

    return ", ".join(one(s) for s in sorted(segments, key=lambda s: s.ID)) or "none"


def check_plans_match_etcd(plans: list[tuple[tuple[int, ...], int]], segments) -> str:
    """Each plan's target is a live segment compacted from exactly the plan's sources, and every
    source is Dropped with compacted=true."""
    by_id = {s.ID: s for s in segments}
    problems = []
    for sources, target in plans:
        record = by_id.get(target)
        if record is None or record.state == datapath.DROPPED:
            problems.append(f"target {target} of plan {list(sources)} is {'missing' if record is None else 'Dropped'}")
            continue
        if sorted(record.compactionFrom) != sorted(sources) or not record.createdByCompaction:
            problems.append(f"target {target}: compactionFrom {list(record.compactionFrom)} "
                            f"createdByCompaction={record.createdByCompaction}, plan sources {list(sources)}")
        for source in sources:
            src = by_id.get(source)
            if src is None or src.state != datapath.DROPPED or not src.compacted:
                problems.append(f"source {source} of target {target}: "
                                f"{'missing' if src is None else datapath.state_name(src.state)}"
                                f"{'' if src is None else f' compacted={src.compacted}'}")
    if problems:
        raise AssertionError("; ".join(problems) + f" (segments: {describe(segments)})")
    return f"{len(plans)} plans match etcd"


# ---------------------------------------------------------------------------------------------
# Compaction RPCs: the active DataCoord and the DataNode


@dataclasses.dataclass(frozen=True)
class CompactionStatus:
    """A DataCoord GetCompactionState answer."""

    state: int
    executing: int
    completed: int
    failed: int
    timeout: int

    @property
    def state_name(self) -> str:
        return COMPACTION_STATES.get(self.state, str(self.state))


def compaction_state(address: str, compaction_id: int) -> CompactionStatus:
    response = datapath.datacoord_call(address, "GetCompactionState", compactionID=compaction_id)
    datapath.check_status(response, "GetCompactionState")
    return CompactionStatus(response.state, response.executingPlanNo, response.completedPlanNo,
                            response.failedPlanNo, response.timeoutPlanNo)


def compaction_plans(address: str, compaction_id: int) -> tuple[int, list[tuple[tuple[int, ...], int]]]:
    """GetCompactionStateWithPlans: (state, [(sources, target)]) with sources sorted."""
    response = datapath.datacoord_call(address, "GetCompactionStateWithPlans", compactionID=compaction_id)
    datapath.check_status(response, "GetCompactionStateWithPlans")
    return response.state, sorted((tuple(sorted(m.sources)), m.target) for m in response.mergeInfos)


def manual_compaction(address: str, collection_id: int) -> int:
    response = datapath.datacoord_call(address, "ManualCompaction", collectionID=collection_id)
    datapath.check_status(response, "ManualCompaction")
    return response.compactionID


def wait_compaction_completed(endpoint: str, compaction_id: int, timeout: float = 120.0) -> CompactionStatus:
    """Polls the active DataCoord (whoever holds the session) until the compaction is not Executing."""
    last: list[object] = [None]

    def done():
        try:
            status = compaction_state(datapath.active_datacoord(endpoint), compaction_id)
        except Exception as err:  # noqa: BLE001 - a DataCoord change in progress: retry
            last[0] = err
            return None
        last[0] = status
        return status if status.state == COMPLETED else None

    try:
        return cluster_mod.wait_for(f"compaction {compaction_id} completed", done, timeout, interval=0.3)
    except TimeoutError:
        raise AssertionError(f"compaction {compaction_id} not completed after {timeout:.0f}s: {last[0]}") from None


def datanode_plans(address: str) -> dict[int, tuple[int, int]]:
    """The DataNode's GetCompactionState: planID -> (state, result segment ID or 0)."""
    method = next(m for m in milvus_grpc.methods(DATANODE_SERVICE) if m.name == "GetCompactionState")
    request = milvus_grpc.message_class(method.input_type)()
    raw = milvus_grpc.raw_unary(address, method.path, request.SerializeToString(), 10)
    response = milvus_grpc.message_class(method.output_type).FromString(raw)
    datapath.check_status(response, "DataNode GetCompactionState")
    return {r.planID: (r.state, r.result.segmentID) for r in response.results}


# ---------------------------------------------------------------------------------------------
# Channel checkpoints


def channel_checkpoint(endpoint: str, vchannel: str) -> int | None:
    """The TSO of `datacoord-meta/channel-cp/{vchannel}`, or None."""
    raw = cluster_mod.etcd_get(endpoint, f"{META_ROOT}/datacoord-meta/channel-cp/{vchannel}")
    if raw is None:
        return None
    return milvus_grpc.message_class("milvus.proto.msg.MsgPosition").FromString(raw).timestamp


def physical_ms(ts: int) -> int:
    """Unix milliseconds of a TSO (the low 18 bits are the logical counter)."""
    return ts >> 18


def wait_checkpoint_after(endpoint: str, vchannel: str, unix_ms: int, timeout: float = 90.0) -> int:
    """Waits until the channel checkpoint's physical time passes `unix_ms`; returns the TSO."""
    def moved():
        ts = channel_checkpoint(endpoint, vchannel)
        return ts if ts is not None and physical_ms(ts) > unix_ms else None

    try:
        return cluster_mod.wait_for(f"checkpoint of {vchannel} past {unix_ms}", moved, timeout, interval=0.5)
    except TimeoutError:
        ts = channel_checkpoint(endpoint, vchannel)
        raise AssertionError(f"checkpoint of {vchannel} stuck at {ts} "
                             f"({None if ts is None else physical_ms(ts)} ms), wanted past {unix_ms}") from None


# ---------------------------------------------------------------------------------------------
# Garbage collection: RPCs, referenced files, planted orphans


def gc_confirm(address: str, collection_id: int, partition_id: int = -1) -> bool:
    response = datapath.datacoord_call(address, "GcConfirm", collection_id=collection_id, partition_id=partition_id)
    datapath.check_status(response, "GcConfirm")
    return response.gc_finished


def gc_control(address: str, command: int, **params) -> None:
    pairs = [{"key": k, "value": str(v)} for k, v in params.items()]
    status = datapath.datacoord_call(address, "GcControl", command=command, params=pairs)
    if status.code != 0 or status.error_code != 0:
        raise AssertionError(f"GcControl {command}: {status}")


def log_key(family: str, key: str, field_id: int, log_id: int) -> str:
    """The object of one log (relative to the storage root), from its etcd key
    `datacoord-meta/{family}/{c}/{p}/{s}/{field}`."""
    collection, partition, segment = key.split("/")[-4:-1]
    parts = [LOG_FAMILIES[family], collection, partition, segment]
    if family != "deltalog":  # delta paths have no field component (FACTS-data-path C.2)
        parts.append(str(field_id))
    return "/".join(parts + [str(log_id)])


def referenced_log_files(endpoint: str, storage, collection_id: int | None = None) -> dict[str, int]:
    """Every insert/stats/delta log object some segment record references (its key in `storage`,
    a `cluster.storage` view) -> its segment ID."""
    storage = cluster_mod.as_storage(storage)
    message = milvus_grpc.message_class("milvus.proto.data.FieldBinlog")
    found = {}
    scope = f"{collection_id}/" if collection_id is not None else ""
    for family in LOG_FAMILIES:
        prefix = f"{META_ROOT}/datacoord-meta/{family}/{scope}"
        for key, value in datapath.etcd_range_prefix(endpoint, prefix):
            field_binlog = message.FromString(value)
            for binlog in field_binlog.binlogs:
                object_key = (storage.key_of(binlog.log_path) if binlog.log_path
                              else log_key(family, key, field_binlog.fieldID, binlog.logID))
                found[object_key] = int(key.split("/")[-2])
    return found


def referenced_index_files(endpoint: str) -> dict[str, int]:
    """Every index file (its key in storage) a Finished segment-index record lists -> its build ID."""
    found = {}
    for _, value in datapath.etcd_range_prefix(endpoint, f"{META_ROOT}/segment-index/"):
        record = milvus_grpc.message_class("milvus.proto.index.SegmentIndex").FromString(value)
        if record.state == ix.FINISHED:
            for file_key in record.index_file_keys:
                found[ix.index_file_key(record, file_key)] = record.buildID
    return found


def check_referenced_files_exist(endpoint: str, storage) -> str:
    """GC's first rule: nothing a record in etcd references is gone from storage."""
    storage = cluster_mod.as_storage(storage)
    logs = referenced_log_files(endpoint, storage)
    indexes = referenced_index_files(endpoint)
    present = storage.list()  # one listing instead of a request per object on S3
    missing = [f"{storage.where(k)} (segment {s})" for k, s in logs.items() if k not in present]
    missing += [f"{storage.where(k)} (build {b})" for k, b in indexes.items() if k not in present]
    if missing:
        raise AssertionError(f"{len(missing)} files referenced by etcd are gone: {missing[:10]}")
    return f"{len(logs)} log files and {len(indexes)} index files referenced, all present"


def files_under(root: Path) -> list[Path]:
    """Local storage only; `cluster.storage.list(prefix)` works on every backend."""
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def plant(storage_dir: Path, relative: str, age_seconds: float) -> Path:
    """Writes a small object at `relative` under a local storage root with its mtime `age_seconds`
    ago; `cluster.storage.put(key, data, age_seconds)` works on every backend."""
    path = storage_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"planted by the e2e suite\n")
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))
    return path
