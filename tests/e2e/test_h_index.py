"""(h) Indexes through the DataCoord under test: build, describe, progress, drop/re-create, scalar
indexes and CreateIndex conflicts, checked through pymilvus, DataCoord's own RPCs and the
`field-index/` and `segment-index/` records in etcd, and the index files in object storage.

Every collection has one shard and two partitions flushed twice: segments of 1500 and 1300 rows
(real builds on the IndexNode), 1100 and 600 rows (the 600-row one is below
minSegmentNumRowsToEnableIndex, so DataCoord finishes it without a build). The main collection
(module fixture `main`) is shared by the tests after the hello-world ones, in file order.
"""

from __future__ import annotations

import pytest

import cluster as cluster_mod
import datapath
import index as ix

pytestmark = [pytest.mark.needs_datacoord, pytest.mark.storages("local", "s3")]

ALIAS = "e2e-index"
VEC_INDEX = "vec_idx"
TAG_INDEX = "tag_idx"
# (partition, rows) per flush; see the module doc.
LAYOUT = ((("_default", 1500), ("p1", 600)), (("_default", 1300), ("p1", 1100)))
INDEX_NOT_FOUND = 700


def _fill(workload: ix.IndexWorkload) -> None:
    for flush in LAYOUT:
        for partition, rows in flush:
            workload.insert(rows, partition)
        workload.flush()


class Run:
    """The module's connection and collections, dropped at the end."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.workloads: list[ix.IndexWorkload] = []

    def new(self, prefix: str, seed: int) -> ix.IndexWorkload:
        workload = ix.IndexWorkload(ix.collection_name(prefix), ALIAS, seed=seed)
        self.workloads.append(workload)
        workload.create(self.cluster.proxy_address, partitions=("p1",))
        _fill(workload)
        return workload

    def datacoord(self) -> str:
        address = datapath.active_datacoord(self.cluster.etcd_endpoint)
        assert address == self.cluster.datacoord_address, f"the active datacoord is {address}, not the one under test"
        return address


@pytest.fixture(scope="module")
def run(_holder, storage_kind):
    state = Run(_holder.get(storage=storage_kind))
    with datapath.proxy_session(state.cluster, ALIAS, state.workloads):
        yield state


class Main:
    """The shared collection and the params of its current vector index."""

    def __init__(self, workload: ix.IndexWorkload, params: dict):
        self.workload = workload
        self.params = params


@pytest.fixture(scope="module")
def main(run):
    params = ix.vector_index_params("IVF_FLAT", nlist=16)
    workload = run.new("e2e_h_main", seed=99)
    workload.create_index("vec", params, VEC_INDEX)
    workload.wait_index(VEC_INDEX)
    return Main(workload, params)


@pytest.mark.parametrize("index_type", ["IVF_FLAT", "HNSW", "FLAT"])
def test_hello_world_per_index_type(run, cluster, index_type):
    from pymilvus import utility

    endpoint = cluster.etcd_endpoint
    workload = run.new(f"e2e_h_{index_type.lower()}", seed=len(run.workloads))
    params = ix.vector_index_params(index_type)
    workload.create_index("vec", params, VEC_INDEX)
    workload.wait_index(VEC_INDEX)

    index_id = ix.live_index_id(endpoint, workload.collection_id, VEC_INDEX)
    state = ix.wait_all_indexed(endpoint, workload.collection_id, [index_id])
    sizes = sorted(s.num_of_rows for s in state.segments)
    assert sizes == sorted(rows for flush in LAYOUT for _, rows in flush), ix.describe_records(state.all_records)
    assert state.flushed_rows == workload.live_rows
    ix.check_segment_indexes(state, index_id, index_type, cluster.storage)
    stray = [r for r in state.all_records if r.indexID != index_id]
    assert not stray, f"records of unknown indexes: {ix.describe_records(stray)}"

    collection = workload.collection()
    collection.load(timeout=120)
    workload.check_search_finds_itself(params)
    samples = workload.samples()
    assert workload.query_pks(samples) == set(samples)
    victims = samples[::2]
    workload.delete(victims)
    assert workload.query_pks(victims) == set()
    gone = {pk: hit for pk, hit in workload.search_top1(victims, params).items() if hit[0] == pk}
    assert not gone, f"deleted rows still found by search: {gone}"
    assert workload.query_pks(samples) == set(samples) - set(victims)
    collection.release(timeout=60)

    utility.drop_collection(workload.name, using=ALIAS, timeout=60)
    # Dropping the collection drops its indexes (RootCoord → DataCoord DropIndex, drop_all).
    def index_dropped():
        record = ix.field_indexes(endpoint, workload.collection_id).get(index_id)
        return record is None or record.deleted

    cluster_mod.wait_for(f"index {index_id} marked deleted after the drop", index_dropped, 60)


def test_progress_matches_etcd_and_datacoord_rpcs(run, cluster, main):
    from pymilvus import utility

    endpoint, workload = cluster.etcd_endpoint, main.workload
    index_id = ix.live_index_id(endpoint, workload.collection_id, VEC_INDEX)
    state = ix.wait_all_indexed(endpoint, workload.collection_id, [index_id])
    ix.check_segment_indexes(state, index_id, "IVF_FLAT", cluster.storage)
    want = {"total_rows": state.flushed_rows, "indexed_rows": state.indexed_rows(index_id), "pending_index_rows": 0}
    assert want["total_rows"] == want["indexed_rows"] == workload.live_rows, want
    assert utility.index_building_progress(workload.name, VEC_INDEX, using=ALIAS, timeout=30) == want

    address = run.datacoord()
    vec_field = workload.field_id(cluster.proxy_address, "vec")
    described = ix.describe_index(address, workload.collection_id)
    assert set(described) == {VEC_INDEX}
    info = described[VEC_INDEX]
    assert (info.indexID, info.fieldID, info.collectionID) == (index_id, vec_field, workload.collection_id)
    assert ix.index_state_name(info.state) == "Finished" and not info.index_state_fail_reason
    assert {k: getattr(info, k) for k in want} == want
    params = {kv.key: kv.value for kv in info.index_params}
    assert (params.get("index_type"), params.get("metric_type"), params.get("nlist")) == ("IVF_FLAT", "L2", "16")
    assert {kv.key: kv.value for kv in info.type_params} == {"dim": str(workload.dim)}

    statistics = ix.datacoord_ok(address, "GetIndexStatistics", collectionID=workload.collection_id)
    assert [(i.index_name, i.total_rows, i.indexed_rows, i.pending_index_rows) for i in statistics.index_infos] == \
        [(VEC_INDEX, want["total_rows"], want["indexed_rows"], 0)]
    progress = ix.datacoord_ok(address, "GetIndexBuildProgress", collectionID=workload.collection_id,
                               index_name=VEC_INDEX)
    assert {k: getattr(progress, k) for k in want} == want
    index_state = ix.datacoord_ok(address, "GetIndexState", collectionID=workload.collection_id)
    assert ix.index_state_name(index_state.state) == "Finished"
    missing = datapath.datacoord_call(address, "GetIndexState", collectionID=workload.collection_id,
                                         index_name="no_such_index")
    assert missing.status.code == INDEX_NOT_FOUND, missing.status

    segment_ids = [s.ID for s in state.segments]
    unknown = max(segment_ids) + 1_000_003
    states = ix.datacoord_ok(address, "GetSegmentIndexState", collectionID=workload.collection_id,
                             index_name=VEC_INDEX, segmentIDs=segment_ids + [unknown])
    got = {s.segmentID: ix.index_state_name(s.state) for s in states.states}
    assert got == {**{i: "Finished" for i in segment_ids}, unknown: "IndexStateNone"}

    infos = ix.datacoord_ok(address, "GetIndexInfos", collectionID=workload.collection_id, segmentIDs=segment_ids)
    assert set(infos.segment_info) == set(segment_ids)
    for segment_id, segment_info in infos.segment_info.items():
        (record,) = state.records[index_id][segment_id]
        assert segment_info.enable_index, segment_id
        paths = [cluster.storage.full_path(ix.index_file_key(record, k)) for k in record.index_file_keys]
        assert [(i.indexID, i.buildID, i.fieldID, i.index_name, i.index_version, i.num_rows, list(i.index_file_paths))
                for i in segment_info.index_infos] == \
            [(index_id, record.buildID, vec_field, VEC_INDEX, record.index_version, record.num_rows, paths)]

    # Rows in a growing segment are not part of an index's total until they are flushed.
    workload.collection().create_partition("p2", timeout=60)
    workload.insert(300, "p2")
    assert utility.index_building_progress(workload.name, VEC_INDEX, using=ALIAS, timeout=30) == want
    workload.flush()
    state = ix.wait_all_indexed(endpoint, workload.collection_id, [index_id])
    ix.check_segment_indexes(state, index_id, "IVF_FLAT", cluster.storage)
    after = {"total_rows": workload.live_rows, "indexed_rows": workload.live_rows, "pending_index_rows": 0}
    assert state.flushed_rows == state.indexed_rows(index_id) == workload.live_rows
    assert utility.index_building_progress(workload.name, VEC_INDEX, using=ALIAS, timeout=30) == after


def test_index_metrics_match_etcd(run, cluster, main):
    """index_task_count on /metrics counts the collection's segment-index records by state."""
    import re

    endpoint, workload = cluster.etcd_endpoint, main.workload
    records = [r for r in ix.segment_indexes(endpoint, workload.collection_id) if not r.deleted]
    assert records, "the progress test built an index"
    want = {name: sum(1 for r in records if ix.index_state_name(r.state) == state)
            for name, state in [("unissued", "Unissued"), ("in-progress", "InProgress"),
                                ("finished", "Finished"), ("failed", "Failed")]}
    status, body = cluster_mod.http_get(f"{cluster.datacoord_metrics_url}/metrics")
    assert status == 200
    got = {}
    pattern = re.compile(r'^milvus_datacoord_index_task_count\{(?P<labels>[^}]*)\} (?P<value>\S+)$')
    for line in body.splitlines():
        match = pattern.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("collection_id") == str(workload.collection_id):
            got[labels["index_task_status"]] = int(float(match["value"]))
    assert got == want, (got, want)
    assert re.search(r"^milvus_datacoord_index_node_num [1-9]", body, re.M), "an IndexNode is registered"


def test_drop_and_recreate_with_other_params(run, cluster, main):
    from pymilvus import utility

    endpoint, workload = cluster.etcd_endpoint, main.workload
    collection = workload.collection()
    old_id = ix.live_index_id(endpoint, workload.collection_id, VEC_INDEX)
    old_builds = {r.buildID for r in ix.segment_indexes(endpoint, workload.collection_id) if r.indexID == old_id}

    collection.release(timeout=60)
    collection.drop_index(index_name=VEC_INDEX, timeout=60)
    old = ix.field_indexes(endpoint, workload.collection_id)[old_id]
    assert old.deleted, old  # kept, marked deleted, until GC (dataCoord.gc.interval is an hour)
    assert not collection.has_index(index_name=VEC_INDEX)
    missing = datapath.datacoord_call(run.datacoord(), "DescribeIndex", collectionID=workload.collection_id,
                                      index_name=VEC_INDEX)
    assert missing.status.code == INDEX_NOT_FOUND, missing.status

    main.params = ix.vector_index_params("IVF_FLAT", nlist=64)
    workload.create_index("vec", main.params, VEC_INDEX)
    workload.wait_index(VEC_INDEX)
    new_id = ix.live_index_id(endpoint, workload.collection_id, VEC_INDEX)
    assert new_id != old_id
    assert ix.field_indexes(endpoint, workload.collection_id)[old_id].deleted
    state = ix.wait_all_indexed(endpoint, workload.collection_id, [new_id])
    ix.check_segment_indexes(state, new_id, "IVF_FLAT", cluster.storage)
    new_builds = {r.buildID for rs in state.records[new_id].values() for r in rs}
    assert not new_builds & old_builds, "the new index reused build IDs of the dropped one"

    info = ix.describe_index(run.datacoord(), workload.collection_id)[VEC_INDEX]
    assert info.indexID == new_id
    assert {kv.key: kv.value for kv in info.index_params}.get("nlist") == "64"
    assert utility.index_building_progress(workload.name, VEC_INDEX, using=ALIAS, timeout=30) == \
        {"total_rows": workload.live_rows, "indexed_rows": workload.live_rows, "pending_index_rows": 0}
    collection.load(timeout=120)
    workload.check_search_finds_itself(main.params)


def test_scalar_index_on_int64_field(run, cluster, main):
    endpoint, workload = cluster.etcd_endpoint, main.workload
    collection = workload.collection()
    collection.release(timeout=60)
    workload.create_index("tag", {"index_type": "STL_SORT"}, TAG_INDEX)
    workload.wait_index(TAG_INDEX)

    tag_id = ix.live_index_id(endpoint, workload.collection_id, TAG_INDEX)
    vec_id = ix.live_index_id(endpoint, workload.collection_id, VEC_INDEX)
    state = ix.wait_all_indexed(endpoint, workload.collection_id, [vec_id, tag_id])
    ix.check_segment_indexes(state, tag_id, "STL_SORT", cluster.storage)
    ix.check_segment_indexes(state, vec_id, "IVF_FLAT", cluster.storage)

    assert collection.index(index_name=TAG_INDEX).params == {"index_type": "STL_SORT"}
    described = ix.describe_index(run.datacoord(), workload.collection_id)
    assert set(described) == {VEC_INDEX, TAG_INDEX}
    info = described[TAG_INDEX]
    assert (info.indexID, info.fieldID) == (tag_id, workload.field_id(cluster.proxy_address, "tag"))
    assert {kv.key: kv.value for kv in info.index_params}.get("index_type") == "STL_SORT"
    assert (info.total_rows, info.indexed_rows, info.pending_index_rows) == (workload.live_rows, workload.live_rows, 0)
    assert ix.index_state_name(info.state) == "Finished"

    collection.load(timeout=120)
    for tag in (0, 7, 49):
        assert workload.query_tag(tag) == workload.expected_with_tag(tag), tag
    workload.check_search_finds_itself(main.params)


def test_create_index_is_idempotent_and_one_index_per_field(run, cluster, main):
    from pymilvus.exceptions import MilvusException

    endpoint, workload = cluster.etcd_endpoint, main.workload
    before = {i: r.index_info.index_name for i, r in ix.field_indexes(endpoint, workload.collection_id).items()
              if not r.deleted}
    records = ix.record_snapshot(ix.segment_indexes(endpoint, workload.collection_id))

    for _ in range(2):
        workload.create_index("vec", main.params, VEC_INDEX)
    with pytest.raises(MilvusException) as other_name:
        workload.create_index("vec", main.params, "another_vec_idx")
    assert "creating multiple indexes on same field is not supported" in str(other_name.value)
    other_params = ix.vector_index_params("IVF_FLAT", nlist=main.params["params"]["nlist"] * 2)
    with pytest.raises(MilvusException) as same_name:
        workload.create_index("vec", other_params, VEC_INDEX)
    assert "at most one distinct index is allowed per field" in str(same_name.value)

    after = {i: r.index_info.index_name for i, r in ix.field_indexes(endpoint, workload.collection_id).items()
             if not r.deleted}
    assert after == before
    assert ix.record_snapshot(ix.segment_indexes(endpoint, workload.collection_id)) == records
    info = ix.describe_index(run.datacoord(), workload.collection_id, VEC_INDEX)[VEC_INDEX]
    assert {kv.key: kv.value for kv in info.index_params}.get("nlist") == str(main.params["params"]["nlist"])
    assert ix.index_state_name(info.state) == "Finished"


def test_gc_control_pause_and_resume(cluster):
    """GcControl answers as 2.3.5 does: old-style statuses for bad requests, success otherwise."""
    address = datapath.active_datacoord(cluster.etcd_endpoint)

    def control(command: int, **params):
        pairs = [{"key": k, "value": v} for k, v in params.items()]
        return datapath.datacoord_call(address, "GcControl", command=command, params=pairs)

    missing = control(1)
    assert (missing.error_code, missing.code, missing.reason) == (1, 0, "pause duration param not found"), missing
    bad = control(1, duration="soon")
    assert bad.error_code == 1 and bad.reason.startswith("pause duration not valid"), bad
    unknown = control(0)
    assert (unknown.error_code, unknown.reason) == (1, "unknown gc command: 0"), unknown
    for answer in (control(1, duration="60"), control(2)):
        assert (answer.error_code, answer.code, answer.reason) == (0, 0, ""), answer
