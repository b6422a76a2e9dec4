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
