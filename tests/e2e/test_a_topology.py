"""(a) Our DataCoord is the active one: it holds the session, answers Healthy on both service names,
the standalone's Go DataCoord stands by, and the cluster serves pymilvus."""

import pytest

import cluster as cluster_mod
import milvus_grpc

pytestmark = pytest.mark.needs_datacoord


def test_session_key_holds_our_address_and_server_id(cluster):
    session = cluster_mod.session_of(cluster.etcd_endpoint)
    assert session is not None, f"no {cluster_mod.DATACOORD_SESSION_KEY} in etcd"
    assert session["ServerName"] == "datacoord"
    assert session["Address"] == cluster.datacoord_address
    assert isinstance(session["ServerID"], int) and session["ServerID"] > 0


def test_our_component_states_healthy_with_our_server_id(cluster):
    session = cluster_mod.session_of(cluster.etcd_endpoint)
    state = milvus_grpc.get_component_states(cluster.datacoord_address, milvus_grpc.DATACOORD_SERVICE)
    assert state.state_code == milvus_grpc.HEALTHY, state
    assert state.role == "datacoord"
    assert state.node_id == session["ServerID"]
    assert state.status_code == 0, state.status_reason


def test_component_states_via_index_coord_service_name(cluster):
    session = cluster_mod.session_of(cluster.etcd_endpoint)
    state = milvus_grpc.get_component_states(cluster.datacoord_address, milvus_grpc.INDEXCOORD_SERVICE)
    assert state.state_code == milvus_grpc.HEALTHY, state
    assert state.role == "datacoord"
    assert state.node_id == session["ServerID"]


def test_go_datacoord_in_standalone_stands_by(cluster):
    session = cluster_mod.session_of(cluster.etcd_endpoint)
    state = milvus_grpc.get_component_states(cluster.standby_address, milvus_grpc.DATACOORD_SERVICE)
    assert state.state_code == milvus_grpc.STANDBY, state
    assert state.node_id != session["ServerID"]


def test_pymilvus_server_version_and_list_collections(milvus):
    from pymilvus import utility

    assert utility.get_server_version(using=milvus).startswith("v2.3.5")
    assert isinstance(utility.list_collections(using=milvus), list)
