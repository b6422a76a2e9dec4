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


def _segment(segment_id, state, rows, sources=(), compacted=False):
    message = milvus_grpc.message_class("milvus.proto.data.SegmentInfo")
    return message(ID=segment_id, collectionID=1, state=state, num_of_rows=rows, compactionFrom=list(sources),
                   compacted=compacted, createdByCompaction=bool(sources))


def test_compaction_checks_accept_a_consistent_outcome_and_catch_broken_ones():
    import pytest

    import compaction as cp

    flushed, dropped, flushing = 4, 6, 5
    ledger = cp.Ledger(pks={1: frozenset(range(0, 10)), 2: frozenset(range(10, 20)), 3: frozenset(range(20, 30))})
    deleted, inserted = {0, 1, 10}, set(range(30))
    good = [_segment(1, dropped, 10, compacted=True), _segment(2, dropped, 10, compacted=True),
            _segment(3, flushed, 10), _segment(9, flushed, 17, sources=(1, 2))]
    cp.check_lineage(good)
    cp.check_rows(good, ledger, deleted, inserted)
    cp.check_plans_match_etcd([((1, 2), 9)], good)

    broken = {
        "a source of two live segments": [*good, _segment(8, flushed, 7, sources=(1,))],
        "a source live beside its target": [_segment(1, flushed, 10), *good[1:]],
        "a source not marked compacted": [_segment(1, dropped, 10), *good[1:]],
    }
    for what, segments in broken.items():
        with pytest.raises(AssertionError):
            cp.check_lineage(segments)
            raise RuntimeError(f"check_lineage missed {what}")
    rows_broken = {
        "deletes not applied": [*good[:3], _segment(9, flushed, 20, sources=(1, 2))],
        "a pk in two live segments": [_segment(1, flushed, 10), *good[1:]],
        "a segment lost": good[:3],
        "an unfinished segment": [*good[:3], _segment(9, flushing, 17, sources=(1, 2))],
    }
    for what, segments in rows_broken.items():
        with pytest.raises(AssertionError):
            cp.check_rows(segments, ledger, deleted, inserted)
            raise RuntimeError(f"check_rows missed {what}")
    with pytest.raises(AssertionError):
        cp.check_plans_match_etcd([((1, 3), 9)], good)  # the target came from other sources
    with pytest.raises(AssertionError):
        cp.check_plans_match_etcd([((1, 2), 9)], [_segment(1, flushed, 10), *good[1:]])
