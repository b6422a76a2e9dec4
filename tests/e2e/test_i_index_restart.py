"""(i) Indexes across DataCoord restarts and hand-overs: a kill -9 of the DataCoord under test while
the IndexNode is building, and Go → under-test → Go hand-overs with built indexes.

Every case ends with each index Finished on every Flushed segment, exactly one segment-index record
per (segment, index) in etcd, none left Unissued or InProgress, and searches that find stored
vectors. Hand-overs freeze the standalone while the session key changes hands (datapath.hand_over),
as in test_g.
"""

from __future__ import annotations

import pytest

import cluster as cluster_mod
import datapath
import index as ix

pytestmark = pytest.mark.needs_datacoord

VEC_INDEX = "vec_idx"


def _workload(milvus, cluster, prefix: str, seed: int, layout, dim: int = 16) -> ix.IndexWorkload:
    """A collection filled flush by flush; `layout` is a list of [(partition, rows), ...] per flush."""
    workload = ix.IndexWorkload(ix.collection_name(prefix), milvus, dim=dim, seed=seed)
    partitions = sorted({p for flush in layout for p, _ in flush} - {"_default"})
    workload.create(cluster.proxy_address, partitions=tuple(partitions))
    for flush in layout:
        for partition, rows in flush:
            workload.insert(rows, partition)
        workload.flush()
    return workload


def _check_built(cluster, workload: ix.IndexWorkload, index_id: int, index_type: str) -> ix.IndexedState:
    state = ix.wait_all_indexed(cluster.etcd_endpoint, workload.collection_id, [index_id])
    ix.check_segment_indexes(state, index_id, index_type, cluster.storage)
    assert state.flushed_rows == state.indexed_rows(index_id) == workload.live_rows
    left = [r for r in state.all_records if r.state in (ix.UNISSUED, ix.IN_PROGRESS)]
    assert not left, f"records left unfinished: {ix.describe_records(left)}"
    return state


def _build_load_and_search(cluster, workload: ix.IndexWorkload, params: dict, index_type: str) -> int:
    """Creates the vector index, waits for it, checks the build, loads and searches; its index ID."""
    workload.create_index("vec", params, VEC_INDEX)
    workload.wait_index(VEC_INDEX)
    index_id = ix.live_index_id(cluster.etcd_endpoint, workload.collection_id, VEC_INDEX)
    _check_built(cluster, workload, index_id, index_type)
    workload.collection().load(timeout=120)
    workload.check_search_finds_itself(params)
    return index_id


def _progress(workload: ix.IndexWorkload) -> dict:
    """index_building_progress through the proxy, retried while it rediscovers the DataCoord."""
    from pymilvus import utility

    return ix.wait_answers(
        f"index_building_progress of {workload.name}",
        lambda: utility.index_building_progress(workload.name, VEC_INDEX, using=workload.alias, timeout=10))


class Observed:
    """What a DataCoord change must leave as it was: DataCoord's and the proxy's view of the index,
    the segment-index records, and search results."""

    def __init__(self, cluster, workload: ix.IndexWorkload, params: dict):
        address = datapath.active_datacoord(cluster.etcd_endpoint)
        described = ix.describe_index(address, workload.collection_id)
        self.numbers = {name: ix.index_numbers(info) for name, info in described.items()}
        progress = ix.datacoord_ok(address, "GetIndexBuildProgress", collectionID=workload.collection_id,
                                   index_name=VEC_INDEX)
        self.build_progress = (progress.indexed_rows, progress.total_rows, progress.pending_index_rows)
        self.progress = _progress(workload)
        self.records = ix.record_snapshot(ix.segment_indexes(cluster.etcd_endpoint, workload.collection_id))
        self.top1 = workload.search_top1(workload.samples(), params)
        self.neighbours = workload.search_ids(workload.random_queries(), params)

    def as_dict(self) -> dict:
        return dict(vars(self))


def _check_unchanged(before: Observed, cluster, workload: ix.IndexWorkload, params: dict, where: str) -> None:
    after = Observed(cluster, workload, params)
    for field, value in before.as_dict().items():
        assert getattr(after, field) == value, f"{workload.name} {field} changed {where}"


def test_kill_9_while_building_then_every_index_finishes(cluster, milvus):
    endpoint = cluster.etcd_endpoint
    layout = [[("_default", 1500), ("p1", 1300), ("p2", 1200)], [("_default", 1100), ("p1", 500)]]
    workload = _workload(milvus, cluster, "e2e_i_kill", seed=11, layout=layout, dim=32)
    params = ix.vector_index_params("HNSW")
    workload.create_index("vec", params, VEC_INDEX, wait=False)
    index_id = ix.live_index_id(endpoint, workload.collection_id, VEC_INDEX)

    # Kill as soon as the IndexNode has a task: one record InProgress, the others typically Unissued.
    def building():
        records = ix.segment_indexes(endpoint, workload.collection_id)
        return records if any(r.state == ix.IN_PROGRESS for r in records) else None

    at_kill = cluster_mod.wait_for("a segment index InProgress", building, 60, [cluster.procs["datacoord"]],
                                   interval=0.02)
    datapath.hand_over(
        cluster,
        stop=lambda: datapath.kill_9(cluster.procs["datacoord"]),
        start=lambda: cluster.start_datacoord(wait=False),
        old_address=cluster.datacoord_address,
        address=cluster.datacoord_address,
    )
    killed = f"(killed with {ix.describe_records(at_kill)})"

    ix.wait_answers("the index to finish after the restart", lambda: workload.wait_index(VEC_INDEX), 180)
    try:
        state = _check_built(cluster, workload, index_id, "HNSW")
    except AssertionError as err:
        raise AssertionError(f"{err} {killed}") from None
    assert len(state.segments) == sum(len(flush) for flush in layout), killed
    assert set(ix.field_indexes(endpoint, workload.collection_id)) == {index_id}
    assert _progress(workload) == {"total_rows": workload.live_rows, "indexed_rows": workload.live_rows,
                                   "pending_index_rows": 0}

    workload.collection().load(timeout=120)
    workload.check_search_finds_itself(params)
    assert datapath.active_datacoord(endpoint) == cluster.datacoord_address


def test_indexes_survive_hand_overs_go_to_under_test_and_back(cluster, milvus):
    endpoint = cluster.etcd_endpoint
    go, go_address, standby = datapath.go_takes_over(cluster)

    # Built under Go.
    layout = [[("_default", 1400), ("p1", 700)], [("_default", 1200)]]
    first = _workload(milvus, cluster, "e2e_i_go_built", seed=21, layout=layout)
    first_params = ix.vector_index_params("IVF_FLAT", nlist=32)
    _build_load_and_search(cluster, first, first_params, "IVF_FLAT")
    under_go = Observed(cluster, first, first_params)
    assert under_go.progress == {"total_rows": first.live_rows, "indexed_rows": first.live_rows,
                                 "pending_index_rows": 0}

    datapath.hand_over(cluster, stop=lambda: datapath.sigterm(go), start=lambda: standby,
                       old_address=go_address, address=cluster.datacoord_address)
    _check_unchanged(under_go, cluster, first, first_params, "after the hand-over from Go")

    # Built under the DataCoord under test.
    second = _workload(milvus, cluster, "e2e_i_built_here", seed=22, layout=layout)
    second_params = ix.vector_index_params("HNSW")
    second_id = _build_load_and_search(cluster, second, second_params, "HNSW")
    under_test_first = Observed(cluster, first, first_params)
    under_test_second = Observed(cluster, second, second_params)

    # Back to Go: the standalone's own DataCoord, standing by, takes over.
    standalone = cluster.procs["standalone"]
    datapath.sigterm(standby, grace=30)
    cluster.wait_session(cluster.standby_address, 60, [standalone])
    cluster.wait_healthy(cluster.standby_address, 60, [standalone])
    _check_unchanged(under_test_first, cluster, first, first_params, "after the hand-over back to Go")
    _check_unchanged(under_test_second, cluster, second, second_params, "after the hand-over back to Go")
    _check_built(cluster, second, second_id, "HNSW")
    assert datapath.active_datacoord(endpoint) == cluster.standby_address
