"""(d) Our METRICS_PORT serves /healthz and /metrics like Go's."""

import pytest

import cluster as cluster_mod

pytestmark = pytest.mark.needs_datacoord


def test_healthz_ok(cluster):
    status, body = cluster_mod.http_get(f"{cluster.datacoord_metrics_url}/healthz")
    assert (status, body.strip()) == (200, "OK")


def test_metrics_has_num_node(cluster):
    status, body = cluster_mod.http_get(f"{cluster.datacoord_metrics_url}/metrics")
    assert status == 200
    assert "milvus_num_node" in body
