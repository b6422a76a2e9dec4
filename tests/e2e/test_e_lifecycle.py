"""(e) Process lifecycle of our DataCoord in the real cluster: SIGTERM is a graceful stop that
revokes the session lease at once (exit 0); losing the session makes it exit non-zero (2.3.5's
TriggerKill). Each test leaves ours dead; the next test's fixture restarts the cluster."""

import signal

import pytest

import cluster as cluster_mod

pytestmark = pytest.mark.needs_datacoord


def _our_session_keys(cluster, server_id):
    root = cluster_mod.SESSION_ROOT
    return {
        key: cluster_mod.etcd_get(cluster.etcd_endpoint, f"{root}/{key}")
        for key in (f"datacoord-{server_id}", f"indexcoord-{server_id}")
    }


def test_sigterm_stops_gracefully_and_revokes_the_session(cluster):
    session = cluster_mod.session_of(cluster.etcd_endpoint)
    assert session["Address"] == cluster.datacoord_address
    ours = session["ServerID"]
    assert all(v is not None for v in _our_session_keys(cluster, ours).values())

    proc = cluster.procs["datacoord"]
    proc.signal(signal.SIGTERM)
    code = proc.wait_exit(30)
    assert code == 0, f"exit code {code}\n{proc.log_tail()}"

    # A revoked lease takes every key it holds with it; after kill -9 they would stay for the TTL.
    leftovers = {k: v for k, v in _our_session_keys(cluster, ours).items() if v is not None}
    assert not leftovers, f"session keys outlived the graceful stop: {list(leftovers)}"
    current = cluster_mod.session_of(cluster.etcd_endpoint)
    assert current is None or current["ServerID"] != ours


def test_losing_the_session_exits_non_zero(cluster):
    session = cluster_mod.session_of(cluster.etcd_endpoint)
    assert session["Address"] == cluster.datacoord_address
    proc = cluster.procs["datacoord"]

    # What an operator's `milvus stop` cleanup, or an expired lease, does to the active key.
    cluster_mod.etcd_delete(cluster.etcd_endpoint, f"{cluster_mod.SESSION_ROOT}/datacoord")
    code = proc.wait_exit(60)
    assert code == 1, f"exit code {code}\n{proc.log_tail()}"


def test_we_take_over_from_the_go_datacoord(cluster):
    """Both directions of the hand-over: ours → Go (SIGTERM), then Go → ours (Go loses its key)."""
    import milvus_grpc

    ours = cluster.procs["datacoord"]
    ours.signal(signal.SIGTERM)
    assert ours.wait_exit(30) == 0
    go_session = cluster.wait_session(cluster.standby_address, 60, [cluster.procs["standalone"]])
    cluster.wait_healthy(cluster.standby_address, 60, [cluster.procs["standalone"]])

    # Ours comes back while Go is active: it must wait as StandBy, not fight for the key.
    restarted = cluster.start_datacoord(wait=False)
    state = cluster_mod.wait_for(
        "our restarted datacoord to answer",
        lambda: milvus_grpc.try_component_states(cluster.datacoord_address), 30, [restarted])
    assert state.state_name == "StandBy"
    assert cluster_mod.session_of(cluster.etcd_endpoint)["ServerID"] == go_session["ServerID"]

    # The Go datacoord loses its active key (its process stops itself, as 2.3.5 does): ours wins.
    cluster_mod.etcd_delete(cluster.etcd_endpoint, f"{cluster_mod.SESSION_ROOT}/datacoord")
    session = cluster.wait_session(cluster.datacoord_address, 60, [restarted])
    state = cluster.wait_healthy(cluster.datacoord_address, 60, [restarted])
    assert state.node_id == session["ServerID"] != go_session["ServerID"]
    # As in 2.3.5 the alias is forced over right after activation, so it may trail Healthy a little.
    cluster_mod.wait_for(
        "the indexcoord alias to follow the active datacoord",
        lambda: (cluster_mod.session_of(cluster.etcd_endpoint, "indexcoord") or {}).get("ServerID")
        == session["ServerID"],
        30, [restarted])
