"""(f) The data path through the DataCoord under test: 3 collections × 2 partitions × 2 shards,
rounds of insert + flush with exact counts (proxy and etcd), flush_all, the persistent-segment API,
DataCoord's read RPCs against etcd, and drop collection down to the channel-watch keys.

The tests run in file order on one shared workload (module fixture `dp`); a test whose predecessor
did not finish skips with the reason. No load, search or index: in 2.3.5 they need an index.
"""

from __future__ import annotations

import pytest

import cluster as cluster_mod
import datapath

pytestmark = [pytest.mark.needs_datacoord, pytest.mark.storages("local", "s3")]

COLLECTIONS = 3
ROUNDS = 3
ALIAS = "e2e-datapath"


class Run:
    """The shared workload and which stages of it completed."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.session = cluster_mod.session_of(cluster.etcd_endpoint)
        names = datapath.collection_names("e2e_f", COLLECTIONS)
        self.workloads = [datapath.CollectionWorkload(n, ALIAS, index=i) for i, n in enumerate(names)]
        self.dropped: datapath.CollectionWorkload | None = None
        self.stages: set[str] = set()

    @property
    def live(self) -> list[datapath.CollectionWorkload]:
        return [w for w in self.workloads if w is not self.dropped]

    def require(self, stage: str, cluster) -> None:
        if stage not in self.stages:
            pytest.skip(f"needs the '{stage}' stage, which did not complete")
        # A restarted cluster has a fresh etcd: nothing of this workload would be left to check.
        assert cluster is self.cluster, "the cluster was restarted in the middle of the data-path tests"

    def datacoord(self) -> str:
        address = datapath.active_datacoord(self.cluster.etcd_endpoint)
        assert address == self.cluster.datacoord_address, f"the active datacoord is {address}, not the one under test"
        return address


@pytest.fixture(scope="module")
def dp(_holder, storage_kind):
    run = Run(_holder.get(storage=storage_kind))
    with datapath.proxy_session(run.cluster, ALIAS, run.live):
        yield run


def test_insert_flush_rounds_count_exactly(dp, cluster):
    assert dp.session["Address"] == cluster.datacoord_address, dp.session
    for workload in dp.workloads:
        workload.create(cluster.proxy_address)
    dp.stages.add("created")
    for round_index in range(ROUNDS):
        for workload in dp.workloads:
            workload.insert_round()
        for workload in dp.workloads:
            workload.flush()
            try:
                workload.check_after_flush(cluster.etcd_endpoint)
            except AssertionError as err:
                raise AssertionError(f"after the flush of round {round_index}: {err}") from None
    dp.stages.add("rounds")


def test_flush_all_flushes_every_collection(dp, cluster):
    from pymilvus import utility

    dp.require("rounds", cluster)
    # Unflushed rows in every collection, so flush_all has work to do and its result is checkable.
    for workload in dp.workloads:
        workload.insert_round()
    utility.flush_all(using=ALIAS, timeout=120)
    for workload in dp.workloads:
        workload.check_after_flush(cluster.etcd_endpoint)
    dp.stages.add("flush_all")


def test_persistent_segment_infos_report_the_flushed_rows(dp, cluster):
    dp.require("flush_all", cluster)
    for workload in dp.workloads:
        workload.check_persistent_segment_infos()


def test_get_segment_info_of_an_unknown_segment_is_segment_not_found(dp, cluster):
    dp.require("flush_all", cluster)
    known = {s.ID for w in dp.workloads for s in datapath.stored_segments(cluster.etcd_endpoint, w.collection_id)}
    unknown = 424242
    assert unknown not in known
    for include_unhealthy in (False, True):
        response = datapath.datacoord_call(dp.datacoord(), "GetSegmentInfo", segmentIDs=[unknown],
                                           includeUnHealthy=include_unhealthy)
        assert response.status.code == datapath.SEGMENT_NOT_FOUND, response.status
        assert list(response.infos) == []


def test_get_segment_info_matches_etcd(dp, cluster):
    dp.require("flush_all", cluster)
    workload = dp.workloads[0]
    stored = {s.ID: s for s in datapath.stored_segments(cluster.etcd_endpoint, workload.collection_id)
              if s.state == datapath.FLUSHED}
    response = datapath.datacoord_call(dp.datacoord(), "GetSegmentInfo", segmentIDs=sorted(stored))
    datapath.check_status(response, "GetSegmentInfo")
    got = {i.ID: (i.state, i.num_of_rows, i.partitionID, i.insert_channel) for i in response.infos}
    want = {s.ID: (s.state, s.num_of_rows, s.partitionID, s.insert_channel) for s in stored.values()}
    assert got == want
    assert set(response.channel_checkpoint) == set(workload.vchannels)


def test_get_recovery_info_v2_lists_channels_and_flushed_rows(dp, cluster):
    dp.require("flush_all", cluster)
    for workload in dp.workloads:
        response = datapath.datacoord_call(dp.datacoord(), "GetRecoveryInfoV2", collectionID=workload.collection_id)
        datapath.check_status(response, "GetRecoveryInfoV2")
        assert sorted(c.channelName for c in response.channels) == sorted(workload.vchannels)
        assert all(c.collectionID == workload.collection_id for c in response.channels)

        flushed = {s.ID for s in datapath.stored_segments(cluster.etcd_endpoint, workload.collection_id)
                   if s.state == datapath.FLUSHED}
        assert {s.ID for s in response.segments} == flushed
        listed = [i for c in response.channels for i in c.flushedSegmentIds]
        assert sorted(listed) == sorted(flushed)
        assert all(not c.unflushedSegmentIds for c in response.channels)

        by_partition = {p: 0 for p in datapath.PARTITIONS}
        names = {pid: name for name, pid in workload.partition_ids.items()}
        for segment in response.segments:
            assert segment.collectionID == workload.collection_id
            assert segment.insert_channel in workload.vchannels
            by_partition[names[segment.partitionID]] += segment.num_of_rows
        assert by_partition == workload.expected, workload.name


def test_flushed_segments_and_segments_by_states_match_etcd(dp, cluster):
    dp.require("flush_all", cluster)
    address = dp.datacoord()
    for workload in dp.workloads:
        stored = datapath.stored_segments(cluster.etcd_endpoint, workload.collection_id)
        for partition, partition_id in [("all", -1)] + sorted(workload.partition_ids.items()):
            mine = [s for s in stored if partition_id < 0 or s.partitionID == partition_id]
            flushed = {s.ID for s in mine if s.state == datapath.FLUSHED}
            dropped = {s.ID for s in mine if s.state == datapath.DROPPED}
            where = f"{workload.name} partition {partition}"

            response = datapath.datacoord_call(address, "GetFlushedSegments", collectionID=workload.collection_id,
                                               partitionID=partition_id)
            datapath.check_status(response, "GetFlushedSegments")
            assert sorted(response.segments) == sorted(flushed), where

            response = datapath.datacoord_call(address, "GetFlushedSegments", collectionID=workload.collection_id,
                                               partitionID=partition_id, includeUnhealthy=True)
            datapath.check_status(response, "GetFlushedSegments")
            assert sorted(response.segments) == sorted(flushed | dropped), where

            response = datapath.datacoord_call(address, "GetSegmentsByStates", collectionID=workload.collection_id,
                                               partitionID=partition_id, states=[datapath.FLUSHED])
            datapath.check_status(response, "GetSegmentsByStates")
            assert sorted(response.segments) == sorted(flushed), where

            response = datapath.datacoord_call(address, "GetSegmentsByStates", collectionID=workload.collection_id,
                                               partitionID=partition_id, states=sorted(datapath.UNFINISHED))
            datapath.check_status(response, "GetSegmentsByStates")
            assert list(response.segments) == [], where


def test_collection_statistics_row_count(dp, cluster):
    dp.require("flush_all", cluster)
    for workload in dp.workloads:
        response = datapath.datacoord_call(dp.datacoord(), "GetCollectionStatistics",
                                           collectionID=workload.collection_id)
        datapath.check_status(response, "GetCollectionStatistics")
        assert {s.key: s.value for s in response.stats} == {"row_count": str(workload.total)}, workload.name


def _metric_samples(text: str, name: str) -> list[tuple[str, float]]:
    samples = []
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, _, value = line.rpartition(" ")
            samples.append((labels, float(value)))
    return samples


def test_metrics_report_segments_and_watched_channels(dp, cluster):
    dp.require("flush_all", cluster)
    status, body = cluster_mod.http_get(f"{cluster.datacoord_metrics_url}/metrics")
    assert status == 200
    flushed_in_etcd = sum(
        1
        for workload in dp.workloads
        for segment in datapath.stored_segments(cluster.etcd_endpoint, workload.collection_id)
        if datapath.state_name(segment.state) == "Flushed"
    )
    flushed = [v for labels, v in _metric_samples(body, "milvus_datacoord_segment_num")
               if 'segment_state="Flushed"' in labels]
    assert flushed and flushed[0] >= flushed_in_etcd > 0, (flushed, flushed_in_etcd)
    watched = sum(v for _, v in _metric_samples(body, "milvus_datacoord_watched_dml_chanel_num"))
    assert watched >= 2 * len(dp.workloads), watched


def test_drop_collection_releases_its_channels_and_drops_its_segments(dp, cluster):
    from pymilvus import utility

    dp.require("flush_all", cluster)
    victim = dp.workloads[0]
    utility.drop_collection(victim.name, using=ALIAS, timeout=60)
    dp.dropped = victim
    assert not utility.has_collection(victim.name, using=ALIAS, timeout=30)
    victim.wait_dropped_in_etcd(cluster.etcd_endpoint, timeout=60)
    for workload in dp.live:
        workload.check_after_flush(cluster.etcd_endpoint)
        # Their channels are untouched by the other collection's drop.
        for channel in workload.vchannels:
            assert datapath.channel_watch_keys(cluster.etcd_endpoint, channel), channel
            assert datapath.removal_flag(cluster.etcd_endpoint, channel) == b"non-removed", channel
    dp.stages.add("dropped")


def test_the_datacoord_under_test_stayed_active(dp, cluster):
    dp.require("created", cluster)
    session = cluster_mod.session_of(cluster.etcd_endpoint)
    assert session["Address"] == cluster.datacoord_address
    assert session["ServerID"] == dp.session["ServerID"], "the datacoord under test was replaced mid-run"
