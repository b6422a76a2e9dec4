"""(j) Disk quota: the binlog sizes DataCoord reports in GetMetrics' `quota_metrics` drive RootCoord's
quota center, which denies writes to a collection whose logs outgrow its disk quota.

The sizes are checked against etcd (Σ `log_size` of every insert, delete and stats log of the
collection's healthy segments), then the real proxy must refuse an insert into the collection once
its `collection.diskProtection.diskQuota.mb` property is below that size, keep accepting inserts into
another collection, and accept them again once the quota is raised.
"""

from __future__ import annotations

import json
import time

import pytest

import cluster as cluster_mod
import datapath

pytestmark = pytest.mark.needs_datacoord

ALIAS = "e2e-quota"
QUOTA_KEY = "collection.diskProtection.diskQuota.mb"
# RootCoord's quota center collects every 3 s (quotaAndLimits.quotaCenterCollectInterval) and
# proxies pick new rates up on its next push.
DENY_TIMEOUT = 60


def stored_log_size(endpoint: str, collection_id: int) -> tuple[int, int]:
    """(Σ log_size over the logs of the healthy segments in etcd, number of logs counted)."""
    healthy = {s.ID for s in datapath.stored_segments(endpoint, collection_id)
               if s.state not in (0, 1, datapath.DROPPED)}
    field_binlog = datapath.milvus_grpc.message_class("milvus.proto.data.FieldBinlog")
    size = logs = 0
    for family in ("binlog", "deltalog", "statslog"):
        prefix = f"{datapath.META_ROOT}/datacoord-meta/{family}/{collection_id}/"
        for key, value in datapath.etcd_range_prefix(endpoint, prefix):
            segment_id = int(key[len(prefix):].split("/")[1])
            if segment_id not in healthy:
                continue
            for binlog in field_binlog.FromString(value).binlogs:
                size += binlog.log_size
                logs += 1
    return size, logs


def quota_metrics(cluster) -> dict:
    response = datapath.datacoord_call(cluster.datacoord_address, "GetMetrics",
                                       request=json.dumps({"metric_type": "system_info"}))
    datapath.check_status(response, "GetMetrics")
    return json.loads(response.response)["cluster"]["self"]["quota_metrics"]


def insert_error(workload: datapath.CollectionWorkload) -> str | None:
    """None when one insert into the collection succeeds, else the error text."""
    try:
        workload.insert_round()
    except Exception as err:  # pymilvus raises MilvusException with the proxy's reason
        return str(err)
    return None


@pytest.fixture(scope="module")
def workloads(_holder):
    cluster = _holder.get()
    names = datapath.collection_names("e2e_j", 2)
    made = [datapath.CollectionWorkload(name, ALIAS, index=i) for i, name in enumerate(names)]
    with datapath.proxy_session(cluster, ALIAS, made):
        yield cluster, made


def test_quota_metrics_match_etcd_and_drive_disk_protection(workloads):
    cluster, (limited, other) = workloads
    endpoint = cluster.etcd_endpoint
    for workload in (limited, other):
        workload.create(cluster.proxy_address)
    for _ in range(2):
        limited.insert_round()
        limited.flush()
    limited.check_after_flush(endpoint)

    size, logs = stored_log_size(endpoint, limited.collection_id)
    assert size > 0 and logs > 0, "the flushed collection has no logs with a size in etcd"

    def reported():
        metrics = quota_metrics(cluster)
        sizes = {int(k): v for k, v in (metrics.get("CollectionBinlogSize") or {}).items()}
        return metrics if sizes.get(limited.collection_id) == size else None

    metrics = cluster_mod.wait_for(f"quota_metrics report {size} bytes for the collection", reported, 20,
                                   [cluster.procs["datacoord"]])
    sizes = {int(k): v for k, v in metrics["CollectionBinlogSize"].items()}
    assert metrics["TotalBinlogSize"] == sum(sizes.values()), metrics
    # A collection with no flushed segment yet has no logs; it shows 0 or not at all.
    assert sizes.get(other.collection_id, 0) == 0, metrics

    # A quota of half the stored bytes: the quota center must deny writes to this collection only.
    collection = limited.collection()
    collection.set_properties({QUOTA_KEY: size / 2 / (1024 * 1024)}, timeout=30)
    deadline = time.monotonic() + DENY_TIMEOUT
    while (error := insert_error(limited)) is None:
        assert time.monotonic() < deadline, f"inserts still accepted {DENY_TIMEOUT}s after the quota"
        time.sleep(1)
    assert "disk quota" in error.lower(), error
    assert insert_error(other) is None, "another collection must keep accepting inserts"

    # Raised again: writes are accepted once the quota center recalculates.
    collection.set_properties({QUOTA_KEY: 1024.0}, timeout=30)
    deadline = time.monotonic() + DENY_TIMEOUT
    while (error := insert_error(limited)) is not None:
        assert time.monotonic() < deadline, f"inserts still refused {DENY_TIMEOUT}s after raising the quota: {error}"
        time.sleep(1)
