"""(l) Garbage collection by the DataCoord under test, with short GC settings (GC_CONFIG) for every
process of the cluster: orphan objects in storage, compaction sources, a dropped collection, and
the GcConfirm RPC RootCoord asks before it forgets a dropped collection (it re-asks only every
~20 min, so the test asks DataCoord directly).

Every test ends with GC's first rule: every file a record in etcd references still exists
(insert/stats/delta logs of every segment, Dropped ones included, and the files of every Finished
segment index). Orphans are planted with an old last-modified time (`cluster.storage.put` with an
age, on local disk and on S3 alike) instead of waiting out the missing tolerance; a fresh one shows the tolerance is respected.

The missing tolerance stays above the compaction check interval (10 s): 2.3.5 commits a plan's
output only at the next check, and its scan would delete output files older than the tolerance
that no record references yet. The last test (`ours_only`) gives the DataCoord under test a
2 s tolerance to check that ours does not.
"""

from __future__ import annotations

import random
import time

import pytest

import cluster as cluster_mod
import compaction as cp
import datapath
import index as ix

pytestmark = [pytest.mark.needs_datacoord, pytest.mark.storages("local", "s3")]

ALIAS = "e2e-gc"
VEC_INDEX = "vec_idx"
PARAMS = ix.vector_index_params("IVF_FLAT", nlist=16)
MISSING_TOLERANCE = 30
GC_CONFIG = {
    "dataCoord.gc.interval": 2,
    "dataCoord.gc.missingTolerance": MISSING_TOLERANCE,
    "dataCoord.gc.dropTolerance": 5,
}
# A few GC rounds plus their listings on 2 busy cores.
GC_TIMEOUT = 60
OLD = 2 * 24 * 3600  # seconds: far past any tolerance
PLANTED = b"planted by the e2e suite\n"


class Run:
    def __init__(self, cluster):
        self.cluster = cluster
        self.workloads: list[ix.IndexWorkload] = []

    def new(self, prefix: str, seed: int, partitions=(), auto_compaction=True) -> ix.IndexWorkload:
        workload = cp.new_workload(ALIAS, self.cluster.proxy_address, prefix, seed, partitions, auto_compaction)
        self.workloads.append(workload)
        return workload

    def datacoord(self) -> str:
        address = datapath.active_datacoord(self.cluster.etcd_endpoint)
        assert address == self.cluster.datacoord_address, f"the active datacoord is {address}, not the one under test"
        return address


@pytest.fixture(scope="module")
def run(_holder, storage_kind):
    state = Run(_holder.get(GC_CONFIG, storage=storage_kind))
    with datapath.proxy_session(state.cluster, ALIAS, state.workloads):
        yield state


@pytest.fixture
def gc_cluster(run, _holder, storage_kind):
    """The module's cluster, still running with GC_CONFIG and the one under test active."""
    cluster = _holder.get(GC_CONFIG, storage=storage_kind)
    assert cluster is run.cluster, "the cluster was restarted in the middle of the GC tests"
    return cluster


def _count(workload: ix.IndexWorkload) -> int:
    rows = workload.collection().query("", output_fields=["count(*)"], consistency_level="Strong",
                                       timeout=workload.timeout)
    return rows[0]["count(*)"]


def _count_entities(workload: ix.IndexWorkload) -> int:
    from pymilvus import connections

    stats = connections._fetch_handler(workload.alias).get_collection_stats(workload.name, timeout=5)
    return int({s.key: s.value for s in stats}["row_count"])


def _wait_gone(what: str, storage, keys, timeout: float = GC_TIMEOUT) -> None:
    keys = list(keys)

    def gone():
        return not any(storage.exists(k) for k in keys)

    try:
        cluster_mod.wait_for(what, gone, timeout, interval=0.5)
    except TimeoutError:
        raise AssertionError(f"{what}: still there after {timeout:.0f}s: "
                             f"{[storage.where(k) for k in keys if storage.exists(k)]}") from None


def _wait_one_gc_round(storage, collection_id: int) -> None:
    """Plants an old orphan and waits until a GC round removed it: a whole round (clearEtcd first)
    ran after this call."""
    orphan = storage.put(f"stats_log/{collection_id}/1/{random.randrange(10**15, 10**16)}/100/1", PLANTED, OLD)
    _wait_gone("a GC round to remove a planted orphan", storage, [orphan])


def test_orphans_are_removed_and_referenced_files_kept(run, gc_cluster):
    cluster, endpoint, storage = gc_cluster, gc_cluster.etcd_endpoint, gc_cluster.storage
    workload = run.new("e2e_l_orphans", seed=41)
    ledger = cp.Ledger()
    segments = cp.flush_batches(workload, cluster.proxy_address, endpoint,
                                [[("_default", 1100)], [("_default", 700)]], ledger)
    workload.create_index("vec", PARAMS, VEC_INDEX)
    cp.delete_and_persist(workload, endpoint, sorted(ledger.pks[segments[0]])[:50], set(segments))

    coll, part = workload.collection_id, workload.partition_ids["_default"]
    live_segment = segments[0]
    ghost = random.randrange(10**15, 10**16)  # no segment has this ID
    removed = [
        storage.put(f"insert_log/{coll}/{part}/{ghost}/100/{ghost + 1}", PLANTED, OLD),
        storage.put(f"stats_log/{coll}/{part}/{ghost}/100/{ghost + 2}", PLANTED, OLD),
        storage.put(f"delta_log/{coll}/{part}/{ghost}/{ghost + 3}", PLANTED, OLD),
        # Stats and delta logs nobody references are garbage even under a live segment.
        storage.put(f"stats_log/{coll}/{part}/{live_segment}/100/{ghost + 4}", PLANTED, OLD),
        storage.put(f"delta_log/{coll}/{part}/{live_segment}/{ghost + 5}", PLANTED, OLD),
    ]
    kept = [
        # 2.3.5 keeps any insert log of a segment that has a record.
        storage.put(f"insert_log/{coll}/{part}/{live_segment}/100/{ghost + 6}", PLANTED, OLD),
        # Not the layout of a log: GC cannot tell whose it is.
        storage.put("insert_log/e2e_not_a_log", PLANTED, OLD),
        storage.put(f"delta_log/{coll}/{part}/e2e_not_a_segment/{ghost + 7}", PLANTED, OLD),
        # Outside insert_log/, stats_log/, delta_log/ and index_files/: never GC's to delete.
        storage.put(f"e2e_other_data/{coll}/{part}/{ghost}/100/{ghost + 8}", PLANTED, OLD),
    ]
    young = storage.put(f"insert_log/{coll}/{part}/{ghost}/101/{ghost + 9}", PLANTED, 0)

    _wait_gone("old orphan logs removed by GC", storage, removed)
    _wait_one_gc_round(storage, coll)
    still = [storage.where(k) for k in kept + [young] if not storage.exists(k)]
    assert not still, f"GC deleted files it must keep: {still}"
    cp.check_referenced_files_exist(endpoint, storage)

    # The fresh orphan goes once it is older than the missing tolerance.
    storage.put(young, PLANTED, MISSING_TOLERANCE + 60)
    _wait_gone("an orphan past the missing tolerance removed", storage, [young])
    assert all(storage.exists(k) for k in kept), [storage.where(k) for k in kept if not storage.exists(k)]

    workload.collection().load(timeout=120)
    assert _count(workload) == workload.live_rows
    cp.check_referenced_files_exist(endpoint, storage)


def test_compaction_sources_are_collected_only_once_the_target_is_indexed(run, gc_cluster):
    cluster, endpoint, storage = gc_cluster, gc_cluster.etcd_endpoint, gc_cluster.storage
    workload = run.new("e2e_l_sources", seed=42, auto_compaction=False)
    ledger = cp.Ledger()
    sources = cp.flush_batches(workload, cluster.proxy_address, endpoint,
                               [[("_default", 300 + 4 * i)] for i in range(12)], ledger)
    workload.create_index("vec", PARAMS, VEC_INDEX)
    source_files = {k for k, s in cp.referenced_log_files(endpoint, storage, workload.collection_id).items()
                    if s in sources}
    assert source_files and all(storage.exists(k) for k in source_files)

    # Paused, GC cannot collect the sources between the commit and the index drop below.
    address = run.datacoord()
    cp.gc_control(address, cp.GC_PAUSE, duration=600)
    try:
        collection = workload.collection()
        collection.compact(timeout=60)
        collection.wait_for_compaction_completed(timeout=180)
        plans = [(tuple(sorted(p.sources)), p.target) for p in collection.get_compaction_plans(timeout=30).plans]
        segments = cp.wait_settled(endpoint, workload.collection_id)
        cp.check_plans_match_etcd(plans, segments)
        assert sorted(s for srcs, _ in plans for s in srcs) == sorted(sources), cp.describe(segments)
        targets = {t for _, t in plans}
        # Without a vector index the target can never be indexed, so its sources must stay.
        collection.drop_index(index_name=VEC_INDEX, timeout=60)
        # The other rule that keeps a source: the channel checkpoint has not passed its dml
        # position yet (an idle channel's checkpoint moves once a minute). A flush moves it, so
        # only the missing index keeps the sources below.
        workload.flush()
        channel = segments[0].insert_channel
        newest = max(s.dml_position.timestamp for s in segments if s.ID in sources)
        cp.wait_checkpoint_after(endpoint, channel, cp.physical_ms(newest))
    finally:
        cp.gc_control(address, cp.GC_RESUME)
    for _ in range(2):
        _wait_one_gc_round(storage, workload.collection_id)
    segments = datapath.stored_segments(endpoint, workload.collection_id)
    kept = {s.ID for s in segments if s.state == datapath.DROPPED and s.compacted}
    assert kept == set(sources), f"sources collected before their target was indexed: {cp.describe(segments)}"
    gone = [storage.where(k) for k in source_files if not storage.exists(k)]
    assert not gone, f"files of uncollected sources deleted: {gone}"
    cp.check_referenced_files_exist(endpoint, storage)

    workload.create_index("vec", PARAMS, VEC_INDEX)
    index_id = ix.live_index_id(endpoint, workload.collection_id, VEC_INDEX)
    state = ix.wait_all_indexed(endpoint, workload.collection_id, [index_id])
    assert {s.ID for s in state.segments} == targets, cp.describe(state.segments)
    ix.check_segment_indexes(state, index_id, "IVF_FLAT", storage)

    def collected():
        left = {s.ID for s in datapath.stored_segments(endpoint, workload.collection_id)} & set(sources)
        return not left

    cluster_mod.wait_for("the sources' records collected once the target is indexed", collected, GC_TIMEOUT,
                         [cluster.procs["datacoord"]], interval=0.5)
    _wait_gone("the sources' files removed", storage, source_files)
    records = datapath.etcd_range_prefix(endpoint, f"{cp.META_ROOT}/segment-index/{workload.collection_id}/")
    left = [k for k, _ in records if int(k.split("/")[-2]) in sources]
    assert not left, f"segment-index records of collected sources: {left}"
    segments = cp.wait_settled(endpoint, workload.collection_id)
    cp.check_rows(segments, ledger, deleted=set(), inserted=set(workload.vectors))
    cp.check_referenced_files_exist(endpoint, storage)
    workload.collection().load(timeout=120)
    assert _count(workload) == len(workload.vectors)
    workload.check_search_finds_itself(PARAMS)


def test_dropped_collection_is_collected_and_gc_confirm_answers(run, gc_cluster):
    from pymilvus import utility

    cluster, endpoint, storage = gc_cluster, gc_cluster.etcd_endpoint, gc_cluster.storage
    workload = run.new("e2e_l_drop", seed=43, partitions=("p1",))
    ledger = cp.Ledger()
    segments = cp.flush_batches(workload, cluster.proxy_address, endpoint,
                                [[("_default", 1300), ("p1", 600)], [("_default", 1150), ("p1", 450)]], ledger)
    workload.create_index("vec", PARAMS, VEC_INDEX)
    cp.delete_and_persist(workload, endpoint, sorted(ledger.pks[segments[0]])[::7], set(segments))
    coll = workload.collection_id
    partition = workload.partition_ids["p1"]
    described = datapath.proxy_call(cluster.proxy_address, "DescribeCollection", "DescribeCollectionRequest",
                                    "DescribeCollectionResponse", collection_name=workload.name)
    vchannels = list(described.virtual_channel_names)
    builds = {r.buildID for r in ix.segment_indexes(endpoint, coll) if r.index_file_keys}
    assert builds, "segments of >= 1024 rows were built on the IndexNode"
    files = [k for prefix in cp.LOG_FAMILIES.values() for k in storage.list(f"{prefix}/{coll}/")]
    files += [k for build in builds for k in storage.list(f"index_files/{build}/")]
    assert files and set(cp.referenced_log_files(endpoint, storage, coll)) <= set(files)
    assert all(cp.channel_checkpoint(endpoint, ch) is not None for ch in vchannels)

    address = run.datacoord()
    assert cp.gc_confirm(address, coll) is False
    assert cp.gc_confirm(address, coll, partition) is False
    utility.drop_collection(workload.name, using=ALIAS, timeout=60)

    def leftovers() -> dict:
        keys = {}
        for prefix in [f"datacoord-meta/{family}/{coll}/" for family in ("s", *cp.LOG_FAMILIES)] + \
                [f"segment-index/{coll}/", f"field-index/{coll}/"]:
            found = [k for k, _ in datapath.etcd_range_prefix(endpoint, f"{cp.META_ROOT}/{prefix}")]
            if found:
                keys[prefix] = found
        checkpoints = [ch for ch in vchannels if cp.channel_checkpoint(endpoint, ch) is not None]
        if checkpoints:
            keys["channel-cp"] = checkpoints
        present = storage.list()
        remaining = [storage.where(k) for k in files if k in present]
        if remaining:
            keys["files"] = remaining
        return keys

    try:
        cluster_mod.wait_for(f"collection {coll} collected", lambda: not leftovers(), GC_TIMEOUT,
                             [cluster.procs["datacoord"]], interval=0.5)
    except TimeoutError:
        left = {kind: f"{len(items)}: {items[:3]}" for kind, items in leftovers().items()}
        raise AssertionError(f"collection {coll} not collected after {GC_TIMEOUT}s: {left}") from None
    assert cp.gc_confirm(address, coll) is True
    assert cp.gc_confirm(address, coll, partition) is True
    cp.check_referenced_files_exist(endpoint, storage)
    for other in run.workloads:
        if other.collection_id != coll and utility.has_collection(other.name, using=ALIAS, timeout=10):
            other.collection().load(timeout=120)
            assert _count(other) == other.live_rows, other.name


@pytest.mark.ours_only
def test_compaction_output_outlives_a_missing_tolerance_shorter_than_its_commit(run, gc_cluster):
    """A DataNode writes a plan's output before DataCoord commits it, up to a check interval
    later. 2.3.5's scan deletes unreferenced objects older than the missing tolerance, output of a
    running plan included; ours keeps the objects of partitions with an unfinished task."""
    cluster, endpoint, storage = gc_cluster, gc_cluster.etcd_endpoint, gc_cluster.storage
    workload = run.new("e2e_l_output", seed=44, auto_compaction=False)
    ledger = cp.Ledger()
    cp.flush_batches(workload, cluster.proxy_address, endpoint, [[("_default", 250 + 3 * i)] for i in range(12)],
                     ledger)
    workload.create_index("vec", PARAMS, VEC_INDEX)

    # Only the DataCoord under test gets the short tolerance: flushes (stats logs are written just
    # before SaveBinlogPaths references them) are done.
    tolerance, interval = 2, 1
    cluster.config_overrides.update({"dataCoord.gc.missingTolerance": tolerance, "dataCoord.gc.interval": interval,
                                     "dataCoord.compaction.check.interval": 20})
    datapath.hand_over(cluster, stop=lambda: datapath.kill_9(cluster.procs["datacoord"]),
                       start=lambda: cluster.start_datacoord(wait=False), old_address=cluster.datacoord_address,
                       address=cluster.datacoord_address)
    ix.wait_answers("the proxy to reach the restarted DataCoord", lambda: _count_entities(workload))

    datanode = f"127.0.0.1:{cluster.ports.datanode}"
    known = set(cp.datanode_plans(datanode))
    collection = workload.collection()
    collection.compact(timeout=60)
    produced = cluster_mod.wait_for(
        "the DataNode to finish the plan",
        lambda: {p: s for p, s in cp.datanode_plans(datanode).items() if p not in known and s[0] == cp.COMPLETED},
        60, interval=0.05)
    finished = time.monotonic()

    def why() -> str:
        return (f"output of plan {produced} waited {time.monotonic() - finished:.1f}s for its commit, "
                f"missing tolerance {tolerance}s, GC every {interval}s")

    try:
        cp.wait_compaction_completed(endpoint, collection.compaction_id, timeout=90)
    except AssertionError as err:
        raise AssertionError(f"{err} ({why()})") from None
    why_text = why()

    try:
        cp.check_referenced_files_exist(endpoint, storage)
    except AssertionError as err:
        raise AssertionError(f"{err} ({why_text})") from None
    segments = cp.wait_settled(endpoint, workload.collection_id)
    cp.check_rows(segments, ledger, deleted=set(), inserted=set(workload.vectors))
    index_id = ix.live_index_id(endpoint, workload.collection_id, VEC_INDEX)
    state = ix.wait_all_indexed(endpoint, workload.collection_id, [index_id])
    ix.check_segment_indexes(state, index_id, "IVF_FLAT", storage)
    collection.load(timeout=120)
    assert _count(workload) == len(workload.vectors), why_text
