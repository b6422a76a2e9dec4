"""Index workloads and the inspection helpers behind the real-cluster index tests.

Shared by tests/e2e/test_h_index.py and tests/e2e/test_i_index_restart.py. A workload is one
collection (INT64 pk `id`, FLOAT_VECTOR `vec`, INT64 `tag`) whose inserted rows are remembered, so
every check compares the cluster against the workload's own data: searches for stored vectors,
queries on pks and tags, row totals.

DataCoord's index metadata is read straight from etcd (FACTS-index-compaction-gc.md §1.2):
`field-index/{coll}/{indexID}` → index.FieldIndex and `segment-index/{coll}/{part}/{seg}/{build}` →
index.SegmentIndex, decoded with the private proto pool of milvus_grpc.py. Index files live in the
cluster's local storage at `{root}/index_files/{build}/{version}/{part}/{seg}/{key}` (§1.10).

Segment layouts are chosen so no automatic compaction can run: at most two Flushed segments per
(partition, channel) and all of them small, which produces no plan (§2.6); the checks still poll
until the metadata has settled instead of assuming it.
"""

from __future__ import annotations

import dataclasses
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster as cluster_mod  # noqa: E402
import datapath  # noqa: E402
import milvus_grpc  # noqa: E402

META_ROOT = datapath.META_ROOT
# milvus.proto.common.IndexState (wire facts).
INDEX_STATES = {0: "IndexStateNone", 1: "Unissued", 2: "InProgress", 3: "Finished", 4: "Failed", 5: "Retry"}
UNISSUED, IN_PROGRESS, FINISHED, FAILED = 1, 2, 3, 4
# indexCoord.segment.minSegmentNumRowsToEnableIndex: smaller segments are "built" without an IndexNode.
MIN_ROWS_TO_BUILD = 1024
# Index types DataCoord finishes without an IndexNode whatever the segment size.
NO_BUILD_TYPES = ("FLAT", "BIN_FLAT")


def index_state_name(code: int) -> str:
    return INDEX_STATES.get(code, str(code))


def vector_index_params(index_type: str, **params) -> dict:
    """pymilvus index params for a float-vector index, L2, with small build parameters."""
    defaults = {"IVF_FLAT": {"nlist": 16}, "HNSW": {"M": 8, "efConstruction": 64}, "FLAT": {}}[index_type]
    return {"index_type": index_type, "metric_type": "L2", "params": {**defaults, **params}}


def search_params(index_params: dict) -> dict:
    """Search params exact enough that a stored vector's nearest neighbour is itself."""
    index_type, params = index_params["index_type"], index_params.get("params", {})
    extra = {"IVF_FLAT": {"nprobe": params.get("nlist", 16)}, "HNSW": {"ef": 64}}.get(index_type, {})
    return {"metric_type": "L2", "params": extra}


# ---------------------------------------------------------------------------------------------
# etcd


def field_indexes(endpoint: str, collection_id: int) -> dict[int, object]:
    """The collection's `field-index/{coll}/{indexID}` values as index.FieldIndex, by indexID."""
    message = milvus_grpc.message_class("milvus.proto.index.FieldIndex")
    found = {}
    for key, value in datapath.etcd_range_prefix(endpoint, f"{META_ROOT}/field-index/{collection_id}/"):
        record = message.FromString(value)
        info = record.index_info
        if key.rsplit("/", 1)[1] != str(info.indexID) or info.collectionID != collection_id:
            raise AssertionError(f"etcd key {key} holds index {info.indexID} of collection {info.collectionID}")
        found[info.indexID] = record
    return found


def live_index_id(endpoint: str, collection_id: int, name: str) -> int:
    """The ID of the one non-deleted `field-index` record named `name`."""
    live = [i for i, r in field_indexes(endpoint, collection_id).items()
            if r.index_info.index_name == name and not r.deleted]
    if len(live) != 1:
        raise AssertionError(f"collection {collection_id}: live field-index records named {name}: {live}")
    return live[0]


def segment_indexes(endpoint: str, collection_id: int) -> list:
    """The collection's `segment-index/{coll}/{part}/{seg}/{build}` values as index.SegmentIndex."""
    message = milvus_grpc.message_class("milvus.proto.index.SegmentIndex")
    records = []
    for key, value in datapath.etcd_range_prefix(endpoint, f"{META_ROOT}/segment-index/{collection_id}/"):
        record = message.FromString(value)
        want = f"{META_ROOT}/segment-index/{record.collectionID}/{record.partitionID}/{record.segmentID}/{record.buildID}"
        if key != want or record.collectionID != collection_id:
            raise AssertionError(f"etcd key {key} holds the segment-index record {want}")
        records.append(record)
    return records


def describe_records(records) -> str:
    return ", ".join(
        f"seg {r.segmentID} idx {r.indexID} build {r.buildID}: {index_state_name(r.state)} rows {r.num_rows} "
        f"node {r.nodeID} v{r.index_version} keys {list(r.index_file_keys)}{' deleted' if r.deleted else ''}"
        for r in records) or "none"


def record_snapshot(records) -> dict:
    """What must not change when nothing rebuilds: build, version, state, files, per (segment, index)."""
    return {(r.segmentID, r.indexID): (r.buildID, r.index_version, r.state, tuple(r.index_file_keys), r.deleted)
            for r in records}


def index_file_key(record, key: str) -> str:
    """Where an index file of a segment-index record lives, relative to the storage root."""
    return (f"index_files/{record.buildID}/{record.index_version}/{record.partitionID}/"
            f"{record.segmentID}/{key}")


@dataclasses.dataclass
class IndexedState:
    """A settled view of one collection: Flushed segments and, per index, their segment-index records."""

    segments: list  # data.SegmentInfo, state Flushed
    records: dict[int, dict[int, list]]  # indexID -> segmentID -> records (live segments only)
    all_records: list

    @property
    def flushed_rows(self) -> int:
        return sum(s.num_of_rows for s in self.segments)

    def indexed_rows(self, index_id: int) -> int:
        """Σ num_rows of the Finished segment-index records of `index_id` on Flushed segments."""
        return sum(r.num_rows for rs in self.records.get(index_id, {}).values() for r in rs if r.state == FINISHED)


def indexed_state(endpoint: str, collection_id: int, index_ids: list[int]) -> IndexedState:
    segments = datapath.stored_segments(endpoint, collection_id)
    flushed = [s for s in segments if s.state == datapath.FLUSHED]
    live = {s.ID for s in flushed}
    all_records = segment_indexes(endpoint, collection_id)
    records: dict[int, dict[int, list]] = {i: {} for i in index_ids}
    for record in all_records:
        if record.indexID in records and record.segmentID in live:
            records[record.indexID].setdefault(record.segmentID, []).append(record)
    return IndexedState(flushed, records, all_records)


def wait_all_indexed(endpoint: str, collection_id: int, index_ids: list[int], timeout: float = 120.0) -> IndexedState:
    """Polls until no segment is unfinished and every Flushed segment has a Finished record per index."""
    deadline = time.monotonic() + timeout
    while True:
        segments = datapath.stored_segments(endpoint, collection_id)
        state = indexed_state(endpoint, collection_id, index_ids)
        unfinished = [s for s in segments if s.state in datapath.UNFINISHED]
        missing = [(i, s.ID) for i in index_ids for s in state.segments
                   if not any(r.state == FINISHED for r in state.records[i].get(s.ID, []))]
        if state.segments and not unfinished and not missing:
            return state
        if time.monotonic() > deadline:
            raise AssertionError(
                f"collection {collection_id} not indexed after {timeout:.0f}s: unfinished segments "
                f"{datapath.describe_segments(unfinished)}, (index, segment) without a Finished record {missing}; "
                f"segments {datapath.describe_segments(segments)}; records {describe_records(state.all_records)}")
        time.sleep(0.3)


def check_segment_indexes(state: IndexedState, index_id: int, index_type: str, storage) -> str:
    """Exactly one live record per Flushed segment, Finished, built by an IndexNode exactly when it
    had to be, and its files in `storage` (a `cluster.storage` view; None: not checked)."""
    problems = []
    present = cluster_mod.as_storage(storage).list("index_files/") if storage is not None else {}
    for segment in state.segments:
        mine = state.records[index_id].get(segment.ID, [])
        live = [r for r in mine if not r.deleted]
        if len(mine) != 1 or len(live) != 1:
            problems.append(f"segment {segment.ID}: {len(mine)} records ({len(live)} not deleted)")
            continue
        record = live[0]
        where = f"segment {segment.ID} ({segment.num_of_rows} rows) build {record.buildID}"
        if record.state != FINISHED or record.fail_reason:
            problems.append(f"{where}: {index_state_name(record.state)} {record.fail_reason!r}")
        if record.num_rows != segment.num_of_rows or record.partitionID != segment.partitionID:
            problems.append(f"{where}: record num_rows {record.num_rows} partition {record.partitionID}")
        if record.create_time != segment.ID:
            problems.append(f"{where}: create_time {record.create_time} is not the segment ID")
        if index_type in NO_BUILD_TYPES or segment.num_of_rows < MIN_ROWS_TO_BUILD:
            if record.index_file_keys or record.nodeID != 0 or record.index_version != 0 or record.serialize_size:
                problems.append(f"{where}: needs no build but has node {record.nodeID} v{record.index_version} "
                                f"keys {list(record.index_file_keys)} size {record.serialize_size}")
            continue
        if not record.index_file_keys or record.nodeID == 0 or record.index_version < 1:
            problems.append(f"{where}: built without files/node/version: node {record.nodeID} "
                            f"v{record.index_version} keys {list(record.index_file_keys)}")
        if storage is not None:
            missing = [index_file_key(record, k) for k in record.index_file_keys
                       if index_file_key(record, k) not in present]
            if missing:
                problems.append(f"{where}: index files missing: {missing}")
    if problems:
        raise AssertionError(f"index {index_id} ({index_type}): " + "; ".join(problems))
    built = sum(1 for rs in state.records[index_id].values() for r in rs if r.index_file_keys)
    return f"index {index_id}: {len(state.segments)} segments, {built} built on an IndexNode"


# ---------------------------------------------------------------------------------------------
# DataCoord RPCs


def datacoord_ok(address: str, method: str, **fields):
    response = datapath.datacoord_call(address, method, **fields)
    status = response if method in ("CreateIndex", "DropIndex") else response.status
    if status.code != 0 or status.error_code != 0:
        raise AssertionError(f"DataCoord {method}: code {status.code} error_code {status.error_code} {status.reason!r}")
    return response


def describe_index(address: str, collection_id: int, index_name: str = "") -> dict[str, object]:
    """DataCoord DescribeIndex as {index_name: IndexInfo}."""
    response = datacoord_ok(address, "DescribeIndex", collectionID=collection_id, index_name=index_name)
    return {info.index_name: info for info in response.index_infos}


def index_numbers(info) -> dict:
    """The fields of an IndexInfo a hand-over must not change."""
    return {"indexID": info.indexID, "fieldID": info.fieldID, "state": index_state_name(info.state),
            "total_rows": info.total_rows, "indexed_rows": info.indexed_rows,
            "pending_index_rows": info.pending_index_rows,
            "index_params": sorted((kv.key, kv.value) for kv in info.index_params),
            "type_params": sorted((kv.key, kv.value) for kv in info.type_params),
            "user_index_params": sorted((kv.key, kv.value) for kv in info.user_index_params)}


def wait_answers(what: str, call, timeout: float = 90.0):
    """Retries `call()` until it returns without raising (e.g. the proxy rediscovering a DataCoord)."""
    errors: list[str] = []

    def attempt():
        try:
            return (call(),)
        except Exception as err:  # noqa: BLE001 - any failure means "not yet"
            errors[:] = [f"{type(err).__name__}: {err}"]
            return None

    try:
        return cluster_mod.wait_for(what, attempt, timeout, interval=1.0)[0]
    except TimeoutError:
        raise AssertionError(f"{what}: still failing after {timeout:.0f}s: {errors}") from None


# ---------------------------------------------------------------------------------------------
# The workload


@dataclasses.dataclass
class IndexWorkload:
    """One collection and every row inserted into it (pk → vector, tag)."""

    name: str
    alias: str
    dim: int = 16
    shards: int = 1
    seed: int = 0
    timeout: int = 60  # pymilvus bounds its retries by `timeout` only when it is an int
    collection_id: int = 0
    partition_ids: dict[str, int] = dataclasses.field(default_factory=dict)
    vectors: dict[int, list[float]] = dataclasses.field(default_factory=dict)
    tags: dict[int, int] = dataclasses.field(default_factory=dict)
    batches: list[list[int]] = dataclasses.field(default_factory=list)  # pks of each insert call
    deleted: set[int] = dataclasses.field(default_factory=set)
    next_pk: int = 0

    def collection(self):
        from pymilvus import Collection

        return Collection(self.name, using=self.alias)

    def create(self, proxy_address: str, partitions: tuple[str, ...] = ()) -> None:
        from pymilvus import Collection, CollectionSchema, DataType, FieldSchema

        schema = CollectionSchema([
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=self.dim),
            FieldSchema("tag", DataType.INT64),
        ])
        collection = Collection(self.name, schema, using=self.alias, shards_num=self.shards, timeout=self.timeout)
        for partition in partitions:
            collection.create_partition(partition, timeout=self.timeout)
        self.refresh_ids(proxy_address)

    def refresh_ids(self, proxy_address: str) -> None:
        described = datapath.proxy_call(proxy_address, "DescribeCollection", "DescribeCollectionRequest",
                                        "DescribeCollectionResponse", collection_name=self.name)
        shown = datapath.proxy_call(proxy_address, "ShowPartitions", "ShowPartitionsRequest",
                                    "ShowPartitionsResponse", collection_name=self.name)
        self.collection_id = described.collectionID
        self.partition_ids = dict(zip(shown.partition_names, shown.partitionIDs))

    def field_id(self, proxy_address: str, field: str) -> int:
        described = datapath.proxy_call(proxy_address, "DescribeCollection", "DescribeCollectionRequest",
                                        "DescribeCollectionResponse", collection_name=self.name)
        return {f.name: f.fieldID for f in described.schema.fields}[field]

    def insert(self, count: int, partition: str = "_default") -> list[int]:
        rng = random.Random(self.seed * 100_003 + self.next_pk)
        ids = list(range(self.next_pk, self.next_pk + count))
        vectors = [[rng.random() for _ in range(self.dim)] for _ in ids]
        tags = [rng.randrange(50) for _ in ids]
        result = self.collection().insert([ids, vectors, tags], partition_name=partition, timeout=self.timeout)
        if result.insert_count != count:
            raise AssertionError(f"{self.name}/{partition}: insert_count {result.insert_count} != {count}")
        self.vectors.update(zip(ids, vectors))
        self.tags.update(zip(ids, tags))
        self.batches.append(ids)
        self.next_pk += count
        return ids

    def flush(self) -> None:
        self.collection().flush(timeout=self.timeout)

    @property
    def live_rows(self) -> int:
        return len(self.vectors) - len(self.deleted)

    def create_index(self, field: str, params: dict, index_name: str, wait: bool = True) -> None:
        """CreateIndex through the proxy; with `wait` pymilvus also polls until the index is built."""
        self.collection().create_index(field, params, index_name=index_name, timeout=self.timeout, sync=wait)

    def wait_index(self, index_name: str, timeout: int = 120) -> None:
        from pymilvus import connections, utility

        if not utility.wait_for_index_building_complete(self.name, index_name, timeout=timeout, using=self.alias):
            state = connections._fetch_handler(self.alias).get_index_state(self.name, index_name, timeout=30)
            raise AssertionError(f"{self.name}: index {index_name} failed to build: {state}")

    def samples(self, per_batch: int = 2) -> list[int]:
        """A few live pks from every insert batch, so every segment is searched."""
        rng = random.Random(self.seed)
        picked = []
        for batch in self.batches:
            live = [pk for pk in batch if pk not in self.deleted]
            picked += rng.sample(live, min(per_batch, len(live)))
        return picked

    def search_top1(self, pks: list[int], index_params: dict) -> dict[int, tuple[int, float]]:
        """pk → (top-1 id, distance) of searching each stored vector."""
        results = self.collection().search(
            [self.vectors[pk] for pk in pks], "vec", search_params(index_params), limit=1,
            consistency_level="Strong", timeout=self.timeout)
        found = {}
        for pk, hits in zip(pks, results):
            found[pk] = (hits[0].id, hits[0].distance) if len(hits) else (None, None)
        return found

    def search_ids(self, queries: list[list[float]], index_params: dict, limit: int = 5) -> list[list[int]]:
        """The top-`limit` ids of each query vector."""
        results = self.collection().search(queries, "vec", search_params(index_params), limit=limit,
                                           consistency_level="Strong", timeout=self.timeout)
        return [list(hits.ids) for hits in results]

    def random_queries(self, count: int = 5) -> list[list[float]]:
        rng = random.Random(self.seed + 7)
        return [[rng.random() for _ in range(self.dim)] for _ in range(count)]

    def check_search_finds_itself(self, index_params: dict, pks: list[int] | None = None) -> dict:
        pks = pks if pks is not None else self.samples()
        found = self.search_top1(pks, index_params)
        wrong = {pk: hit for pk, hit in found.items() if hit[0] != pk or abs(hit[1]) > 1e-4}
        if wrong:
            raise AssertionError(f"{self.name}: top-1 of a stored vector is not itself (pk → (id, distance)): {wrong}")
        return found

    def query_pks(self, pks: list[int]) -> set[int]:
        rows = self.collection().query(f"id in {sorted(pks)}", output_fields=["id"], consistency_level="Strong",
                                       timeout=self.timeout)
        return {row["id"] for row in rows}

    def query_tag(self, tag: int) -> set[int]:
        rows = self.collection().query(f"tag == {tag}", output_fields=["id", "tag"], consistency_level="Strong",
                                       timeout=self.timeout)
        wrong = [row for row in rows if row["tag"] != tag]
        if wrong:
            raise AssertionError(f"{self.name}: query tag == {tag} returned {wrong[:5]}")
        return {row["id"] for row in rows}

    def expected_with_tag(self, tag: int) -> set[int]:
        return {pk for pk, t in self.tags.items() if t == tag and pk not in self.deleted}

    def delete(self, pks: list[int]) -> None:
        self.collection().delete(f"id in {sorted(pks)}", timeout=self.timeout)
        self.deleted.update(pks)


def collection_name(prefix: str) -> str:
    return datapath.collection_names(prefix, 1)[0]
