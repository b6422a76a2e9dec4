"""(g) The data path across DataCoord restarts and hand-overs: kill -9 of the DataCoord under test
between inserts and in the middle of a flush; Go → under-test and under-test → Go hand-overs in the
middle of a workload. Every case ends with exact counts through the proxy, every inserted row in
Flushed segments in etcd, and no segment left Growing, Sealed or Flushing.

Hand-overs to the DataCoord under test freeze the standalone while the session key changes hands
(datapath.hand_over): its own Go DataCoord stands by and would otherwise race for the key. Each
test leaves a DataCoord process dead, so the next test's fixture starts a fresh cluster.
"""

from __future__ import annotations

import threading

import pytest

import cluster as cluster_mod
import datapath

pytestmark = pytest.mark.needs_datacoord


def _workloads(milvus, cluster, prefix: str, count: int) -> list[datapath.CollectionWorkload]:
    names = datapath.collection_names(prefix, count)
    workloads = [datapath.CollectionWorkload(n, milvus, index=i) for i, n in enumerate(names)]
    for workload in workloads:
        workload.create(cluster.proxy_address)
    return workloads


def _round(workloads, flush: bool = True, endpoint: str | None = None) -> None:
    for workload in workloads:
        workload.insert_round()
    if not flush:
        return
    for workload in workloads:
        workload.flush()
        workload.check_after_flush(endpoint)


def _restart_after_kill_9(cluster) -> cluster_mod.Proc:
    return datapath.hand_over(
        cluster,
        stop=lambda: datapath.kill_9(cluster.procs["datacoord"]),
        start=lambda: cluster.start_datacoord(wait=False),
        old_address=cluster.datacoord_address,
        address=cluster.datacoord_address,
    )


def _drop_and_check(cluster, milvus, workloads) -> None:
    from pymilvus import utility

    victim, *others = workloads
    utility.drop_collection(victim.name, using=milvus, timeout=60)
    victim.wait_dropped_in_etcd(cluster.etcd_endpoint, timeout=60)
    for workload in others:
        workload.check_after_flush(cluster.etcd_endpoint)


def test_kill_9_between_inserts_and_mid_flush(cluster, milvus):
    (workload,) = _workloads(milvus, cluster, "e2e_g_kill", 1)
    endpoint = cluster.etcd_endpoint
    _round([workload], endpoint=endpoint)

    # Rows acknowledged but not flushed: only growing segments and the message stream hold them.
    _round([workload], flush=False)
    _restart_after_kill_9(cluster)
    datapath.wait_proxy_reaches_datacoord(workload)
    _round([workload], flush=False)

    # Kill as soon as the flush has sealed a segment, i.e. between the Flush RPC and the datanode's
    # SaveBinlogPaths; the flush call itself may then fail or complete, either is fine.
    outcome: dict[str, object] = {}

    def flush():
        try:
            workload.flush()
            outcome["flush"] = "completed"
        except Exception as err:  # noqa: BLE001 - recorded for the failure message only
            outcome["flush"] = f"{type(err).__name__}: {err}"

    flusher = threading.Thread(target=flush, daemon=True)
    flusher.start()
    sealed = cluster_mod.wait_for(
        "the flush to seal a segment",
        lambda: [s for s in datapath.stored_segments(endpoint, workload.collection_id)
                 if s.state in (datapath.SEALED, datapath.FLUSHING)],
        30, [cluster.procs["datacoord"]], interval=0.05)
    _restart_after_kill_9(cluster)
    flusher.join(180)

    datapath.wait_proxy_reaches_datacoord(workload)
    workload.flush()
    try:
        workload.check_after_flush(endpoint)
    except AssertionError as err:
        raise AssertionError(f"{err} (killed with {datapath.describe_segments(sealed)} sealed; "
                             f"interrupted flush: {outcome.get('flush', 'still running')})") from None
    assert datapath.active_datacoord(endpoint) == cluster.datacoord_address


def test_go_hands_over_to_the_datacoord_under_test(cluster, milvus):
    endpoint = cluster.etcd_endpoint
    go, go_address, standby = datapath.go_takes_over(cluster)

    workloads = _workloads(milvus, cluster, "e2e_g_from_go", 2)
    _round(workloads, endpoint=endpoint)
    _round(workloads, flush=False)  # growing segments written by Go, flushed by the one under test

    datapath.hand_over(cluster, stop=lambda: datapath.sigterm(go), start=lambda: standby,
                       old_address=go_address, address=cluster.datacoord_address)
    datapath.wait_proxy_reaches_datacoord(workloads[0])
    _round(workloads, endpoint=endpoint)
    _drop_and_check(cluster, milvus, workloads)
    assert datapath.active_datacoord(endpoint) == cluster.datacoord_address


def test_the_datacoord_under_test_hands_over_to_the_go_standby(cluster, milvus):
    endpoint = cluster.etcd_endpoint
    workloads = _workloads(milvus, cluster, "e2e_g_to_go", 2)
    _round(workloads, endpoint=endpoint)
    _round(workloads, flush=False)  # growing segments written by the one under test, flushed by Go

    standalone = cluster.procs["standalone"]
    datapath.sigterm(cluster.procs["datacoord"], grace=30)
    cluster.wait_session(cluster.standby_address, 60, [standalone])
    cluster.wait_healthy(cluster.standby_address, 60, [standalone])
    datapath.wait_proxy_reaches_datacoord(workloads[0])
    _round(workloads, endpoint=endpoint)
    _drop_and_check(cluster, milvus, workloads)
    assert datapath.active_datacoord(endpoint) == cluster.standby_address
