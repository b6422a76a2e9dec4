"""(m) Compaction across DataCoord changes: kill -9 and restart of the DataCoord under test, a
standby of the same implementation taking over, and hand-overs Go → under test and under test →
Go, each while a manual compaction executes (the DataNode has the plan; 2.3.5 reports it
Executing until its next check, 10 s later, commits it).

Each class is one scenario, run once by its class fixture: a one-shard collection of 12 small
indexed segments with a third of its rows deleted, a manual compaction, the change as soon as
the DataNode reports the plan, then what the new active DataCoord answers. Its tests check:
- the compaction ends (GetCompactionState Completed) and the segments are consistent: no segment
  is the source of two live segments, every primary key in exactly one Flushed segment, row
  counts exact in etcd and through count(*), deleted rows stay deleted;
- the channel checkpoint in etcd keeps moving (a flushed insert passes it);
- no segment is left locked: a later manual compaction takes every indexed segment and completes.
2.3.5 keeps plans in memory: after a restart or a takeover it has forgotten the compaction (its
ID answers Completed, its sources are planned again, the DataNode keeps an orphan result). The
checks that the task survives are `ours_only`.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

import cluster as cluster_mod
import compaction as cp
import datapath
import index as ix
import milvus_grpc

pytestmark = pytest.mark.needs_datacoord

ALIAS = "e2e-compaction-restart"
VEC_INDEX = "vec_idx"
PARAMS = ix.vector_index_params("IVF_FLAT", nlist=16)


@dataclasses.dataclass
class Outcome:
    """What one scenario did and what the DataCoords answered."""

    cluster: cluster_mod.Cluster
    workload: ix.IndexWorkload
    ledger: cp.Ledger
    originals: list[int]
    deleted: set[int]
    compaction_id: int
    plans_before: list  # [(sources, target)] from the DataCoord that made the plan
    datanode_at_change: dict  # planID -> (state, result segment) when the change started
    plans_after: tuple  # (state, plans) from the new active DataCoord once Healthy
    final_status: cp.CompactionStatus
    final_plans: tuple
    segments: list  # records once the compaction ended

    @property
    def endpoint(self) -> str:
        return self.cluster.etcd_endpoint

    def describe(self) -> str:
        return (f"plans before {self.plans_before}, DataNode at the change {self.datanode_at_change}, "
                f"after {self.plans_after}, final {self.final_status} {self.final_plans}")


def _count(workload: ix.IndexWorkload) -> int:
    rows = workload.collection().query("", output_fields=["count(*)"], consistency_level="Strong",
                                       timeout=workload.timeout)
    return rows[0]["count(*)"]


def _wait_proxy(workload: ix.IndexWorkload) -> None:
    """After a DataCoord change the proxy finds the new one lazily."""
    from pymilvus import connections

    handler = connections._fetch_handler(workload.alias)
    ix.wait_answers("the proxy to reach the active DataCoord",
                    lambda: handler.get_collection_stats(workload.name, timeout=5))


class _Scenario:
    """The checks every scenario must pass; subclasses say how the DataCoord changes."""

    prefix = "e2e_m"
    seed = 50

    @classmethod
    def before(cls, cluster: cluster_mod.Cluster) -> None:
        """Runs before the collection is made (e.g. another DataCoord becomes the active one)."""

    @classmethod
    def change(cls, cluster: cluster_mod.Cluster) -> None:
        raise NotImplementedError

    @classmethod
    def run(cls, cluster: cluster_mod.Cluster) -> Outcome:
        endpoint = cluster.etcd_endpoint
        cls.before(cluster)
        workload = cp.new_workload(ALIAS, cluster.proxy_address, cls.prefix, cls.seed, auto_compaction=False)
        ledger = cp.Ledger()
        originals = cp.flush_batches(workload, cluster.proxy_address, endpoint,
                                     [[("_default", 350 + 4 * i)] for i in range(12)], ledger)
        workload.create_index("vec", PARAMS, VEC_INDEX)
        workload.collection().load(timeout=120)
        deleted = sorted(pk for pk in workload.vectors if pk % 3 == 0)
        cp.delete_and_persist(workload, endpoint, deleted, set(originals))

        datanode = f"127.0.0.1:{cluster.ports.datanode}"
        known_plans = set(cp.datanode_plans(datanode))
        address = datapath.active_datacoord(endpoint)
        collection = workload.collection()
        collection.compact(timeout=60)
        compaction_id = collection.compaction_id
        plans_before = cp.compaction_plans(address, compaction_id)[1]
        assert plans_before, f"manual compaction {compaction_id} made no plan"

        # The DataNode has the plan (executing, or done and waiting for DataCoord's next check).
        def datanode_has_it():
            plans = cp.datanode_plans(datanode)
            new = {plan: state for plan, state in plans.items() if plan not in known_plans}
            return new or None

        at_change = cluster_mod.wait_for("the DataNode to report the plan", datanode_has_it, 30, interval=0.02)
        cls.change(cluster)
        address = datapath.active_datacoord(endpoint)
        plans_after = cp.compaction_plans(address, compaction_id)
        final_status = cp.wait_compaction_completed(endpoint, compaction_id)
        final_plans = cp.compaction_plans(datapath.active_datacoord(endpoint), compaction_id)
        segments = cp.wait_settled(endpoint, workload.collection_id)
        ledger.learn(segments)
        return Outcome(cluster, workload, ledger, originals, set(deleted), compaction_id, plans_before, at_change,
                       plans_after, final_status, final_plans, segments)

    # -- checks ------------------------------------------------------------------------------
    def test_compaction_ends_with_consistent_segments(self, outcome: Outcome):
        assert outcome.final_status.state == cp.COMPLETED, outcome.describe()
        segments = datapath.stored_segments(outcome.endpoint, outcome.workload.collection_id)
        cp.check_lineage(segments)
        cp.check_rows(segments, outcome.ledger, outcome.deleted, set(outcome.workload.vectors))
        # All or nothing: the sources are either all still live or all replaced by the target.
        live_originals = {s.ID for s in cp.live(segments)} & set(outcome.originals)
        assert live_originals in (set(), set(outcome.originals)), cp.describe(segments)

        workload = outcome.workload
        _wait_proxy(workload)
        assert _count(workload) == workload.live_rows
        assert workload.query_pks(sorted(outcome.deleted)[::10]) == set()
        samples = workload.samples()
        assert workload.query_pks(samples) == set(samples)

    def test_channel_checkpoint_keeps_moving(self, outcome: Outcome):
        workload, endpoint = outcome.workload, outcome.endpoint
        described = datapath.proxy_call(outcome.cluster.proxy_address, "DescribeCollection",
                                        "DescribeCollectionRequest", "DescribeCollectionResponse",
                                        collection_name=workload.name)
        (vchannel,) = described.virtual_channel_names
        now_ms = int(time.time() * 1000)
        _wait_proxy(workload)
        cp.flush_batches(workload, outcome.cluster.proxy_address, endpoint, [[("_default", 777)]], outcome.ledger)
        cp.wait_checkpoint_after(endpoint, vchannel, now_ms)

    def test_a_later_manual_compaction_takes_every_segment(self, outcome: Outcome):
        workload, endpoint = outcome.workload, outcome.endpoint
        index_id = ix.live_index_id(endpoint, workload.collection_id, VEC_INDEX)
        state = ix.wait_all_indexed(endpoint, workload.collection_id, [index_id])
        flushed = {s.ID for s in state.segments}
        _wait_proxy(workload)
        collection = workload.collection()
        collection.compact(timeout=60)
        collection.wait_for_compaction_completed(timeout=180)
        plans = [(tuple(sorted(p.sources)), p.target) for p in collection.get_compaction_plans(timeout=30).plans]
        # A segment left locked by the interrupted compaction would be missing from the plans.
        assert {s for sources, _ in plans for s in sources} == flushed, (plans, outcome.describe())
        status = cp.compaction_state(datapath.active_datacoord(endpoint), collection.compaction_id)
        assert (status.completed, status.failed, status.timeout) == (len(plans), 0, 0), status
        segments = cp.wait_settled(endpoint, workload.collection_id)
        cp.check_plans_match_etcd(plans, segments)
        cp.check_lineage(segments)
        cp.check_rows(segments, outcome.ledger, outcome.deleted, set(workload.vectors))
        assert _count(workload) == workload.live_rows
        assert workload.query_pks(sorted(outcome.deleted)[::10]) == set()
        ix.check_segment_indexes(ix.wait_all_indexed(endpoint, workload.collection_id, [index_id]), index_id,
                                 "IVF_FLAT", outcome.cluster.storage)


class _SameImplementation(_Scenario):
    @pytest.mark.ours_only
    def test_the_compaction_task_survives(self, outcome: Outcome):
        """Our tasks are persisted before the DataNode gets them: the new process reports the
        same plan and commits what the DataNode produced (2.3.5 answers Completed with no plan)."""
        sources_before = sorted(sources for sources, _ in outcome.plans_before)
        assert sorted(sources for sources, _ in outcome.plans_after[1]) == sources_before, outcome.describe()
        status = outcome.final_status
        assert (status.completed, status.failed, status.timeout) == (len(sources_before), 0, 0), outcome.describe()
        state, plans = outcome.final_plans
        assert state == cp.COMPLETED and sorted(s for s, _ in plans) == sources_before, outcome.describe()
        cp.check_plans_match_etcd(plans, outcome.segments)
        results = {segment for state, segment in outcome.datanode_at_change.values() if state == cp.COMPLETED}
        assert results <= {target for _, target in plans}, \
            f"the DataNode's result {results} was not committed: {outcome.describe()}"


@pytest.fixture(scope="class")
def outcome(request, _holder):
    from pymilvus import connections, utility

    cluster = _holder.get()
    connections.connect(ALIAS, host="127.0.0.1", port=str(cluster.ports.proxy), timeout=30)
    try:
        result = request.cls.run(cluster)
        yield result
        if utility.has_collection(result.workload.name, using=ALIAS, timeout=30):
            utility.drop_collection(result.workload.name, using=ALIAS, timeout=60)
    finally:
        connections.disconnect(ALIAS)


class TestKill9AndRestart(_SameImplementation):
    prefix, seed = "e2e_m_kill", 51

    @classmethod
    def change(cls, cluster):
        datapath.hand_over(
            cluster,
            stop=lambda: datapath.kill_9(cluster.procs["datacoord"]),
            start=lambda: cluster.start_datacoord(wait=False),
            old_address=cluster.datacoord_address,
            address=cluster.datacoord_address,
        )


class TestStandbyTakesOver(_SameImplementation):
    """A second process of the implementation under test, started while the first is active,
    stands by and takes over when the first is killed."""

    prefix, seed = "e2e_m_standby", 52
    standby: cluster_mod.Proc | None = None
    standby_address = ""

    @classmethod
    def before(cls, cluster):
        port = cluster_mod.free_port()
        cls.standby_address = f"127.0.0.1:{port}"
        cls.standby = cluster.start_datacoord(name="datacoord-standby", port=port,
                                              metrics_port=cluster_mod.free_port(), wait=False)
        datapath.wait_state(cls.standby_address, milvus_grpc.STANDBY, cls.standby)

    @classmethod
    def change(cls, cluster):
        datapath.hand_over(cluster, stop=lambda: datapath.kill_9(cluster.procs["datacoord"]),
                           start=lambda: cls.standby, old_address=cluster.datacoord_address,
                           address=cls.standby_address)


class TestGoHandsOverToTheOneUnderTest(_Scenario):
    """The compaction is planned by a Go DataCoord; the one under test takes over from it."""

    prefix, seed = "e2e_m_from_go", 53
    go: cluster_mod.Proc | None = None
    go_address = ""
    standby: cluster_mod.Proc | None = None

    @classmethod
    def before(cls, cluster):
        cls.go, cls.go_address, cls.standby = datapath.go_takes_over(cluster)

    @classmethod
    def change(cls, cluster):
        datapath.hand_over(cluster, stop=lambda: datapath.sigterm(cls.go), start=lambda: cls.standby,
                           old_address=cls.go_address, address=cluster.datacoord_address)


class TestTheOneUnderTestHandsOverToGo(_Scenario):
    """The compaction is planned by the one under test; the standalone's Go standby takes over."""

    prefix, seed = "e2e_m_to_go", 54

    @classmethod
    def change(cls, cluster):
        standalone = cluster.procs["standalone"]
        datapath.sigterm(cluster.procs["datacoord"], grace=30)
        cluster.wait_session(cluster.standby_address, 60, [standalone])
        cluster.wait_healthy(cluster.standby_address, 60, [standalone])
