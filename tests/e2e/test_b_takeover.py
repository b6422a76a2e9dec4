"""(b) kill -9 of our DataCoord: the Go standby in the standalone takes over the session and the
cluster keeps answering. Leaves ours dead; the next test's fixture restarts the cluster."""

import time

import pytest

import cluster as cluster_mod
import milvus_grpc

pytestmark = pytest.mark.needs_datacoord


def test_kill_9_go_standby_takes_over(cluster, milvus):
    from pymilvus import utility

    before = cluster_mod.session_of(cluster.etcd_endpoint)
    assert before["Address"] == cluster.datacoord_address

    cluster.kill("datacoord")
    cluster_mod.wait_for("our datacoord to die", lambda: not cluster.procs["datacoord"].alive(), 10)

    # The dead process's lease lives up to common.session.ttl; then the standby wins the key.
    ttl = cluster.session_ttl or 30
    after = cluster.wait_session(cluster.standby_address, ttl + 60, [cluster.procs["standalone"]])
    assert after["ServerID"] != before["ServerID"]

    state = cluster.wait_healthy(cluster.standby_address, 60, [cluster.procs["standalone"]])
    assert state.role == "datacoord"
    assert state.node_id == after["ServerID"]

    deadline = time.monotonic() + 30
    while True:
        try:
            collections = utility.list_collections(using=milvus, timeout=10)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    assert isinstance(collections, list)
