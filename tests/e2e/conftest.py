"""Fixtures for the real-cluster end-to-end suite.

The DataCoord under test is our binary, `$DATACOORD_BIN` (default target/debug/milvus-datacoord);
`DATACOORD_IMPL=go` runs the Go DataCoord in its place (to check the harness itself). Tests marked
`needs_datacoord` start the cluster: when the binary is missing they skip, or fail under
`MILVUS_TEST_STRICT=1`. `E2E_SESSION_TTL` overrides common.session.ttl (default: Milvus's 30 s);
`E2E_HEALTHY_AFTER_STANDALONE=1` waits for our Healthy only once the standalone is up.
`E2E_CLUSTER_NAME` (default e2e) names the cluster dir; with `CLUSTER_FREE_PORTS=1` two suites can
run side by side. A module that needs other milvus.yaml keys (e.g. short GC tolerances) asks
`_holder.get(overrides)`; the cluster is restarted whenever the wanted overrides change.
`E2E_CONFIG_OVERRIDES` (a JSON object of dotted milvus.yaml keys) is applied on top of those, e.g.
`'{"dataCoord.enableGarbageCollection": false}'` to see the GC tests fail.
Tests marked `ours_only` check what only our DataCoord does (e.g. compaction tasks that survive a
restart; 2.3.5 keeps them in memory): they are skipped, with that reason, when DATACOORD_IMPL=go.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import cluster as cluster_mod  # noqa: E402
import milvus_grpc  # noqa: E402


def _strict() -> bool:
    return os.environ.get("MILVUS_TEST_STRICT") == "1"


def datacoord_cmd() -> tuple[list[str], str]:
    """(command, label) of the DataCoord under test; skips/fails when it is not there."""
    if os.environ.get("DATACOORD_IMPL") == "go":
        return list(cluster_mod.GO_DATACOORD_CMD), "go"
    binary = Path(os.environ.get("DATACOORD_BIN", ROOT / "target" / "debug" / "milvus-datacoord"))
    if not binary.is_absolute():
        binary = ROOT / binary
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        message = f"DataCoord binary {binary} not built (set DATACOORD_BIN or DATACOORD_IMPL=go)"
        if _strict():
            pytest.fail(message)
        pytest.skip(message)
    return cluster_mod.our_datacoord_cmd(binary), "ours"


def _require_milvus() -> None:
    if not cluster_mod.MILVUS_BIN.exists():
        message = f"Milvus binary {cluster_mod.MILVUS_BIN} missing (run scripts/install-deps.sh)"
        if _strict():
            pytest.fail(message)
        pytest.skip(message)


class ClusterHolder:
    """One cluster for the session, restarted when a test left a process dead or another DataCoord active."""

    def __init__(self):
        self.cluster: cluster_mod.Cluster | None = None
        self.start_failure: Exception | None = None

    def get(self, overrides: dict[str, object] | None = None) -> cluster_mod.Cluster:
        """The running cluster, (re)started when needed; `overrides` are extra milvus.yaml keys
        for every process of it (a cluster started with other overrides is replaced)."""
        _require_milvus()
        cmd, _label = datacoord_cmd()
        wanted = {**(overrides or {}), **json.loads(os.environ.get("E2E_CONFIG_OVERRIDES") or "{}")}
        current = self.cluster
        alive = current is not None and all(p.alive() for p in current.procs.values())
        if alive and self._under_test_active(current) and current.config_overrides == wanted:
            return current
        if current is not None:
            current.stop()
        if self.start_failure is not None:
            # One failed start explains every later test; don't wait out its timeouts again.
            pytest.fail(f"the cluster failed to start earlier: {self.start_failure}")
        ttl = os.environ.get("E2E_SESSION_TTL")
        try:
            self.cluster = cluster_mod.Cluster(
                os.environ.get("E2E_CLUSTER_NAME", "e2e"), cmd, session_ttl=int(ttl) if ttl else None,
                healthy_first=os.environ.get("E2E_HEALTHY_AFTER_STANDALONE") != "1",
            )
            self.cluster.config_overrides.update(wanted)
            self.cluster.start()
        except Exception as err:
            self.start_failure = err
            raise
        return self.cluster

    @staticmethod
    def _under_test_active(cluster: cluster_mod.Cluster) -> bool:
        # A test that failed midway may leave every process alive but another DataCoord active
        # (e.g. the Go standby); the next test expects the one under test to hold the key.
        session = cluster_mod.session_of(cluster.etcd_endpoint)
        return bool(session) and session.get("Address") == cluster.datacoord_address

    def close(self):
        if self.cluster is not None:
            self.cluster.stop()


def pytest_collection_modifyitems(config, items):
    if os.environ.get("DATACOORD_IMPL") != "go":
        return
    skip = pytest.mark.skip(reason="ours_only: checks a guarantee 2.3.5's Go DataCoord does not give")
    for item in items:
        if item.get_closest_marker("ours_only"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def _holder():
    holder = ClusterHolder()
    yield holder
    holder.close()


@pytest.fixture
def cluster(_holder) -> cluster_mod.Cluster:
    """A running cluster whose DataCoord under test is alive and holds the session."""
    return _holder.get()


@pytest.fixture
def milvus(cluster):
    """A pymilvus connection alias to the cluster's proxy."""
    from pymilvus import connections

    alias = f"e2e-{os.getpid()}"
    connections.connect(alias, host="127.0.0.1", port=str(cluster.ports.proxy), timeout=30)
    yield alias
    connections.disconnect(alias)


@pytest.fixture
def grpc_api():
    return milvus_grpc
