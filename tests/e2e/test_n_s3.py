"""(n) The whole cluster on S3-compatible storage: `common.storageType: minio` for every process,
against the s3-test-server process the harness starts (scripts/cluster.py, storage "s3").

The Go DataNode writes binlogs with minio-go, the C++ IndexNode writes index files with the AWS
SDK, the QueryNode reads both, and our DataCoord lists and deletes them with object_store: each
test checks the bucket through the S3 API (the `minio` Python client), never through the server's
data dir, and that nothing went to a local storage dir instead. The server's own claims (SigV4
checks, multipart upload, paged listings, empty-delimiter listings as minio clients send them,
range reads) are checked with a real client too.
"""

from __future__ import annotations

import io
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import cluster as cluster_mod
import compaction as cp
import datapath
import index as ix

pytestmark = [pytest.mark.needs_datacoord, pytest.mark.storages("s3")]

ALIAS = "e2e-s3"
VEC_INDEX = "vec_idx"
PARAMS = ix.vector_index_params("IVF_FLAT", nlist=16)
# Short GC settings (as test_l) so a dropped collection is collected within the test.
GC_CONFIG = {
    "dataCoord.gc.interval": 2,
    "dataCoord.gc.missingTolerance": 30,
    "dataCoord.gc.dropTolerance": 5,
}
GC_TIMEOUT = 60
LOG_AND_INDEX_DIRS = ("insert_log", "stats_log", "delta_log", "index_files")


@pytest.fixture(scope="module")
def s3(_holder, storage_kind):
    cluster = _holder.get(GC_CONFIG, storage=storage_kind)
    workloads: list[ix.IndexWorkload] = []
    with datapath.proxy_session(cluster, ALIAS, workloads):
        yield cluster, workloads


def _indexed_workload(cluster, workloads, prefix: str, seed: int) -> tuple[ix.IndexWorkload, cp.Ledger]:
    """Two flushed segments of >= 1024 rows (so the IndexNode builds files), an IVF_FLAT index."""
    workload = cp.new_workload(ALIAS, cluster.proxy_address, prefix, seed)
    workloads.append(workload)
    ledger = cp.Ledger()
    cp.flush_batches(workload, cluster.proxy_address, cluster.etcd_endpoint,
                     [[("_default", 1100)], [("_default", 1200)]], ledger)
    workload.create_index("vec", PARAMS, VEC_INDEX)
    index_id = ix.live_index_id(cluster.etcd_endpoint, workload.collection_id, VEC_INDEX)
    ix.wait_all_indexed(cluster.etcd_endpoint, workload.collection_id, [index_id])
    return workload, ledger


def _local_segment_files(cluster) -> list[str]:
    """Files in a log or index dir anywhere in the cluster's dir but the S3 server's data dir."""
    found = []
    for path in cluster.dir.rglob("*"):
        relative = path.relative_to(cluster.dir)
        if relative.parts[0] != "s3" and path.is_file() and set(relative.parts) & set(LOG_AND_INDEX_DIRS):
            found.append(str(path))
    return found


def test_datanode_and_indexnode_write_to_the_bucket_and_querynode_reads_it(s3):
    cluster, workloads = s3
    storage = cluster.storage
    assert storage.kind == "s3"
    workload, _ = _indexed_workload(cluster, workloads, "e2e_n_write", seed=51)
    coll = workload.collection_id

    logs = cp.referenced_log_files(cluster.etcd_endpoint, storage, coll)
    indexes = {k: b for k, b in cp.referenced_index_files(cluster.etcd_endpoint).items()
               if b in {r.buildID for r in ix.segment_indexes(cluster.etcd_endpoint, coll)}}
    assert any(k.startswith(f"insert_log/{coll}/") for k in logs), logs
    assert any(k.startswith(f"stats_log/{coll}/") for k in logs), logs
    assert indexes, "segments of >= 1024 rows have index files built by the IndexNode"
    # Straight from a ListObjectsV2 of the bucket: the objects sit under {rootPath}/.
    names = {o.object_name for o in storage.client.list_objects(storage.bucket, prefix="", recursive=True)}
    wanted = {f"{cluster_mod.S3_ROOT_PATH}/{k}" for k in [*logs, *indexes]}
    assert wanted <= names, sorted(wanted - names)[:5]
    # The DataCoord never writes a binlog or an index file: these came from the Go DataNode and the
    # C++ IndexNode, through the S3 server and nowhere else.
    assert not _local_segment_files(cluster)
    assert not cluster.storage_dir.exists() or not any(p.is_file() for p in cluster.storage_dir.rglob("*"))

    # The QueryNode loads the binlogs and index files back from the bucket.
    workload.collection().load(timeout=120)
    rows = workload.collection().query("", output_fields=["count(*)"], consistency_level="Strong",
                                       timeout=workload.timeout)
    assert rows[0]["count(*)"] == len(workload.vectors)
    workload.check_search_finds_itself(PARAMS)


def test_gc_removes_a_dropped_collection_from_the_bucket_and_keeps_the_rest(s3):
    from pymilvus import utility

    cluster, workloads = s3
    storage, endpoint = cluster.storage, cluster.etcd_endpoint
    dropped, _ = _indexed_workload(cluster, workloads, "e2e_n_drop", seed=52)
    kept, _ = _indexed_workload(cluster, workloads, "e2e_n_keep", seed=53)
    coll = dropped.collection_id
    builds = {r.buildID for r in ix.segment_indexes(endpoint, coll) if r.index_file_keys}
    prefixes = [f"{d}/{coll}/" for d in ("insert_log", "stats_log", "delta_log")]
    prefixes += [f"index_files/{b}/" for b in builds]
    before = [k for p in prefixes for k in storage.list(p)]
    assert builds and any(k.startswith("index_files/") for k in before), before
    kept_files = set(cp.referenced_log_files(endpoint, storage, kept.collection_id))
    assert kept_files

    utility.drop_collection(dropped.name, using=ALIAS, timeout=60)

    def collected():
        return not any(storage.list(p) for p in prefixes)

    try:
        cluster_mod.wait_for(f"collection {coll} removed from the bucket", collected, GC_TIMEOUT,
                             [cluster.procs["datacoord"]], interval=0.5)
    except TimeoutError:
        left = [storage.where(k) for p in prefixes for k in storage.list(p)]
        raise AssertionError(f"{len(left)} objects of dropped collection {coll} left: {left[:5]}") from None
    cp.check_referenced_files_exist(endpoint, storage)
    present = storage.list()
    assert kept_files <= set(present), sorted(kept_files - set(present))[:5]
    kept.collection().load(timeout=120)
    rows = kept.collection().query("", output_fields=["count(*)"], consistency_level="Strong", timeout=kept.timeout)
    assert rows[0]["count(*)"] == len(kept.vectors)


def test_server_checks_signatures(s3):
    from minio import Minio
    from minio.error import S3Error

    cluster, _ = s3
    storage = cluster.storage
    intruder = Minio(storage.endpoint, access_key=storage.access_key, secret_key="not-the-secret", secure=False)
    with pytest.raises(S3Error) as err:
        list(intruder.list_objects(storage.bucket, prefix="", recursive=True))
    assert err.value.code == "SignatureDoesNotMatch"
    with pytest.raises(S3Error):
        intruder.put_object(storage.bucket, "e2e_n_intruder", io.BytesIO(b"x"), 1)
    assert not storage.exists("e2e_n_intruder")


def test_listing_pages_multipart_and_range_reads(s3):
    cluster, _ = s3
    storage = cluster.storage
    # More than one ListObjectsV2 page (1000 keys): the client follows continuation tokens; minio
    # clients send `delimiter=` (empty) for a recursive listing, which must mean "no delimiter".
    keys = {f"e2e_n_paging/{i // 100}/{i:05d}" for i in range(1005)}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: storage.put(k, b""), keys))
    assert set(storage.list("e2e_n_paging/")) == keys
    # One level with a delimiter: the eleven "directories", no objects.
    top = storage.client.list_objects(storage.bucket, prefix=storage.full_path("e2e_n_paging/"))
    assert sorted(o.object_name for o in top) == sorted(storage.full_path(f"e2e_n_paging/{d}/") for d in range(11))

    # A multipart upload (two 5 MiB parts and a tail), then a range read across a part boundary.
    data = os.urandom(11 * 1024 * 1024)
    key = storage.full_path("e2e_n_multipart/object")
    result = storage.client.put_object(storage.bucket, key, io.BytesIO(data), len(data), part_size=5 * 1024 * 1024)
    assert result.etag.endswith("-3"), result.etag  # the ETag of a 3-part multipart upload
    assert storage.read("e2e_n_multipart/object") == data
    offset = 5 * 1024 * 1024 - 10
    response = storage.client.get_object(storage.bucket, key, offset=offset, length=20)
    try:
        assert response.read() == data[offset:offset + 20]
    finally:
        response.close()
        response.release_conn()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(storage.delete, [*keys, "e2e_n_multipart/object"]))
    assert not storage.list("e2e_n_paging/") and not storage.exists("e2e_n_multipart/object")


def test_helpers_match_between_s3_api_and_milvus_paths(s3):
    cluster, _ = s3
    storage = cluster.storage
    key = storage.put("e2e_n_helpers/a", b"hello", age_seconds=3600)
    listed = storage.list("e2e_n_helpers/")
    assert list(listed) == [key] and listed[key].size == 5
    # The backdated LastModified is what GC's missing tolerance compares against.
    assert listed[key].mtime < time.time() - 3000
    assert storage.key_of(storage.full_path(key)) == key
    storage.delete(key)
    assert not storage.exists(key)


# -- without a cluster ---------------------------------------------------------------------------


def test_s3_cluster_config_points_every_process_at_the_bucket(tmp_path):
    cluster = cluster_mod.Cluster("unit", storage="s3")
    cluster.ports.etcd = 2379
    cluster.storage = cluster_mod.S3Storage("127.0.0.1:9123", "ak", "sk", tmp_path)
    config = cluster.config_for(tmp_path / "datacoord")
    assert config["common"]["storageType"] == "minio"
    minio = config["minio"]
    assert (minio["address"], minio["port"], minio["accessKeyID"], minio["secretAccessKey"], minio["useSSL"],
            minio["bucketName"], minio["rootPath"]) == ("127.0.0.1", 9123, "ak", "sk", False, "milvus-e2e", "files")
    local = cluster_mod.Cluster("unit").config_for(tmp_path / "datacoord")
    assert local["common"]["storageType"] == "local"
    with pytest.raises(ValueError):
        cluster_mod.Cluster("unit", storage="minio")


def test_local_storage_view_uses_the_same_keys(tmp_path):
    storage = cluster_mod.LocalStorage(tmp_path)
    storage.put("index_files/123/1/2/3/key", b"abc", age_seconds=3600)
    storage.put("index_files/12/1/2/3/key", b"d")
    storage.put("insert_log/1/2/3/100/4", b"")
    # String prefixes, as Milvus lists: index_files/12 also matches index_files/123/...
    assert set(storage.list("index_files/12")) == {"index_files/123/1/2/3/key", "index_files/12/1/2/3/key"}
    assert set(storage.list("index_files/12/")) == {"index_files/12/1/2/3/key"}
    listed = storage.list("index_files/123/")["index_files/123/1/2/3/key"]
    assert listed.size == 3 and listed.mtime < time.time() - 3000
    assert storage.read("insert_log/1/2/3/100/4") == b"" and storage.exists("insert_log/1/2/3/100/4")
    assert storage.key_of(storage.full_path("insert_log/1/2/3/100/4")) == "insert_log/1/2/3/100/4"
    storage.delete("insert_log/1/2/3/100/4")
    assert not storage.exists("insert_log/1/2/3/100/4")
    assert cluster_mod.as_storage(tmp_path).list() == storage.list()
