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

Storage: a cluster stores its segment files on local disk (`localStorage.path`) or, with storage
"s3", on the s3-test-server process (`common.storageType: minio`, Go and ours alike). A module (or
test) marked `@pytest.mark.storages("local", "s3")` runs once per storage, ids `[local]`/`[s3]`;
every `[s3]` test runs after all the others (one storage switch per session). Unmarked modules run
on local. `E2E_STORAGE=s3` (or `local`) runs every module on that storage only (marked tests
without it are skipped). Tests see the files through `cluster.storage`
(list/exists/read/put/delete by key relative to the storage root), the same on both backends. Module fixtures that start the cluster take the `storage_kind` fixture and pass it
to `_holder.get(..., storage=storage_kind)`.
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


def default_storage() -> str:
    return os.environ.get("E2E_STORAGE") or "local"


def _require_s3_server() -> None:
    if not cluster_mod.S3_SERVER_BIN.is_file():
        message = (f"{cluster_mod.S3_SERVER_BIN} not built (cargo build -p milvus-storage --features testing "
                   "--bin s3-test-server)")
        if _strict():
            pytest.fail(message)
        pytest.skip(message)


class ClusterHolder:
    """One cluster for the session, restarted when a test left a process dead or another DataCoord active."""

    def __init__(self):
        self.cluster: cluster_mod.Cluster | None = None
        self.start_failure: Exception | None = None

    def get(self, overrides: dict[str, object] | None = None, storage: str | None = None) -> cluster_mod.Cluster:
        """The running cluster, (re)started when needed; `overrides` are extra milvus.yaml keys
        for every process of it (a cluster started with other overrides is replaced); `storage`
        "local" or "s3" (None: $E2E_STORAGE or local; fixtures of a module marked `storages` pass
        their `storage_kind`)."""
        _require_milvus()
        cmd, _label = datacoord_cmd()
        storage = storage or default_storage()
        if storage == "s3":
            _require_s3_server()
        wanted = {**(overrides or {}), **json.loads(os.environ.get("E2E_CONFIG_OVERRIDES") or "{}")}
        current = self.cluster
        alive = current is not None and all(p.alive() for p in current.procs.values())
        if (alive and self._under_test_active(current) and current.config_overrides == wanted
                and current.storage_kind == storage):
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
                storage=storage,
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


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("storages")
    if "storage_kind" not in metafunc.fixturenames or marker is None:
        return
    only = os.environ.get("E2E_STORAGE")
    kinds = [k for k in marker.args if not only or k == only]  # none left: pytest skips the test
    metafunc.parametrize("storage_kind", kinds, ids=kinds, indirect=True, scope="module")


@pytest.fixture(scope="module")
def storage_kind(request) -> str:
    """"local" or "s3": the storage this module's cluster runs on (see the module docstring)."""
    return getattr(request, "param", default_storage())


def pytest_collection_modifyitems(config, items):
    # Every S3 run after every local one, in module order: one switch of storage per session
    # instead of two cluster restarts per module that runs on both.
    def on_s3(item) -> bool:
        callspec = getattr(item, "callspec", None)
        return bool(callspec) and callspec.params.get("storage_kind") == "s3"

    items.sort(key=on_s3)
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
def cluster(_holder, storage_kind) -> cluster_mod.Cluster:
    """A running cluster whose DataCoord under test is alive and holds the session."""
    return _holder.get(storage=storage_kind)


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
