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


def _call(cluster, method, request_type, response_type, **fields):
    import milvus_grpc

    request = milvus_grpc.message_class(request_type)(**fields)
    raw = milvus_grpc.raw_unary(
        cluster.datacoord_address, f"/{milvus_grpc.DATACOORD_SERVICE}/{method}",
        request.SerializeToString(), timeout=20)
    return milvus_grpc.message_class(response_type).FromString(raw)


def test_check_health_reaches_the_real_datanode(cluster):
    # Our DataNode client (with cluster/serverid metadata) against the Go datanode of the standalone.
    def answer():
        response = _call(cluster, "CheckHealth", "milvus.proto.milvus.CheckHealthRequest",
                         "milvus.proto.milvus.CheckHealthResponse")
        return response if response.isHealthy else None

    response = cluster_mod.wait_for("CheckHealth healthy", answer, 60, [cluster.procs["datacoord"]])
    assert response.status.code == 0 and list(response.reasons) == []


def test_system_info_includes_the_real_nodes(cluster):
    import json

    def topology():
        response = _call(cluster, "GetMetrics", "milvus.proto.milvus.GetMetricsRequest",
                         "milvus.proto.milvus.GetMetricsResponse",
                         request=json.dumps({"metric_type": "system_info"}))
        assert response.status.code == 0, response.status.reason
        data = json.loads(response.response)
        nodes = data["cluster"]["connected_data_nodes"] + data["cluster"]["connected_index_nodes"]
        return (response, data) if len(nodes) >= 2 else None

    response, data = cluster_mod.wait_for("datanode and indexnode in system_info", topology, 60,
                                          [cluster.procs["datacoord"]])
    assert response.component_name == f"datacoord{data['cluster']['self']['id']}"
    for node in data["cluster"]["connected_data_nodes"] + data["cluster"]["connected_index_nodes"]:
        # Filled from the node's own GetMetrics answer, through our client.
        assert node["has_error"] is False, node["error_reason"]
        assert node["type"] in ("datanode", "indexnode")
        assert node["hardware_infos"]["cpu_core_count"] >= 1
