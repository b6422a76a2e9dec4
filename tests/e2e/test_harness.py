"""Checks of the harness itself (no cluster): config rendering and the proto pool."""

import cluster as cluster_mod
import milvus_grpc


def test_render_template_uses_value_then_default_then_empty():
    text = "a: {{ x(int): 1 }}\nb: {{ y: two }}\nc: {{ z }}\nd: {{ x }}"
    assert cluster_mod.render_template(text, {"x": 5}) == "a: 5\nb: two\nc: \nd: 5"


def test_milvus_config_topology(tmp_path):
    ports = cluster_mod.Ports(etcd=40001)
    config = cluster_mod.milvus_config(40001, tmp_path / "s", tmp_path / "w", ports, **{"dataCoord.port": 13334})
    assert config["etcd"]["use"]["embed"] is False
    assert config["etcd"]["endpoints"] == "127.0.0.1:40001"
    assert config["dataCoord"]["port"] == 13334
    assert config["dataCoord"]["enableActiveStandby"] is True
    assert config["common"]["storageType"] == "local"
    assert config["localStorage"]["path"] == str(tmp_path / "s")
    for section in ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode"):
        assert config[section]["ip"] == "127.0.0.1", section


def test_proto_pool_lists_both_services():
    datacoord = {m.name for m in milvus_grpc.methods(milvus_grpc.DATACOORD_SERVICE)}
    indexcoord = {m.name for m in milvus_grpc.methods(milvus_grpc.INDEXCOORD_SERVICE)}
    assert {"GetComponentStates", "AssignSegmentID", "Flush", "GetSegmentInfo"} <= datacoord
    assert {"GetComponentStates", "CreateIndex", "DropIndex", "DescribeIndex"} <= indexcoord


def test_cluster_processes_do_not_inherit_config_overrides(monkeypatch, tmp_path):
    # Milvus reads any environment variable as a config override; the test command exports
    # ETCD_ENDPOINTS for the Rust tests, which must not leak into the cluster.
    monkeypatch.setenv("ETCD_ENDPOINTS", "127.0.0.1:1")
    monkeypatch.setenv("DEPLOY_MODE", "STANDALONE")
    env = cluster_mod.base_env(tmp_path, 9999)
    assert "ETCD_ENDPOINTS" not in env and "DEPLOY_MODE" not in env
    assert env["MILVUSCONF"] == str(tmp_path / "configs") and env["METRICS_PORT"] == "9999"
