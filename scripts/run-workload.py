#!/usr/bin/env python3
"""The main job's pymilvus workload against a running cluster, reported step by step.

Data path (scripts/datapath.py): create 3 collections x 2 partitions (`_default`, `p1`) x 2 shards;
rounds of insert into every partition + flush, each followed by exact counts (num_entities of the
collection and of each partition, and the Σ num_of_rows of Flushed segments in etcd, with no
segment left Growing/Sealed/Flushing); one more insert round + flush_all; the proxy's persistent
segment infos; drop one collection (its channel-watch keys, removal flags and segments cleaned up in
etcd); the others still count exactly.
Later steps on one remaining collection: create_index (+ wait for the build), load, search, query,
delete, compact. When the active DataCoord answers UNIMPLEMENTED for the index or compaction RPCs,
those steps (and the ones needing them) are reported SKIPPED with that reason; any other error is a
FAIL. A step whose prerequisite failed or was skipped is SKIPPED with the reason; nothing is
retried or hidden. Before and after, the DataCoord session holder is checked, so a run that only
worked because the Go standby took over is visible.

  run-workload.py [--name dev] [--collections 3] [--rounds 3] [--timeout 60] [--json out.json] [-v]

Exit code: 0 when no step failed (skips for UNIMPLEMENTED allowed), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster as cluster_mod  # noqa: E402
import datapath  # noqa: E402

ALIAS = "default"


class Skip(Exception):
    """A step that cannot run in this build; its message is the reason."""


class Steps:
    """Runs named steps, records PASS/FAIL/SKIPPED with timing and detail."""

    def __init__(self, verbose: bool = False):
        self.results: list[dict] = []
        self.passed: set[str] = set()
        self.verbose = verbose

    def run(self, name: str, fn, needs: tuple[str, ...] = ()):
        missing = [n for n in needs if n not in self.passed]
        if missing:
            self._record(name, "SKIPPED", 0.0, f"needs {', '.join(missing)}")
            return None
        started = time.monotonic()
        try:
            value = fn()
        except Skip as reason:
            self._record(name, "SKIPPED", time.monotonic() - started, str(reason))
            return None
        except Exception as err:  # noqa: BLE001 - every failure is reported, not raised
            detail = f"{type(err).__name__}: {err}".replace("\n", " ")
            self._record(name, "FAIL", time.monotonic() - started, detail[:600])
            if self.verbose:
                traceback.print_exc()
            return None
        self.passed.add(name)
        self._record(name, "PASS", time.monotonic() - started, "" if value is None else str(value)[:300])
        return value

    def _record(self, name, status, seconds, detail):
        detail = " ".join(detail.split())
        self.results.append({"step": name, "status": status, "seconds": round(seconds, 3), "detail": detail})
        print(f"{status:8} {name:26} {seconds:7.2f}s  {detail}", flush=True)

    def ok(self) -> bool:
        return not any(r["status"] == "FAIL" for r in self.results)


def session_check(cluster, expected_address):
    session = cluster_mod.session_of(cluster.etcd_endpoint)
    if not session:
        raise RuntimeError("no datacoord session in etcd")
    if session.get("Address") != expected_address:
        raise RuntimeError(f"datacoord session is held by {session.get('Address')}, not {expected_address}")
    return f"ServerID {session.get('ServerID')} at {session.get('Address')}"


def skip_if_unimplemented(address: str, probe: str, attempt, **probe_fields):
    """Runs `attempt()`; a DataCoord that answers UNIMPLEMENTED turns the step into a Skip.

    `probe` is a read-only RPC of the same feature, asked first so nothing is half-created; an
    error from `attempt()` that names Unimplemented (the proxy relays the DataCoord's gRPC status)
    counts as well. Every other error propagates and fails the step.
    """
    try:
        datapath.datacoord_call(address, probe, timeout=10, **probe_fields)
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.UNIMPLEMENTED:
            raise Skip(f"DataCoord at {address} answers UNIMPLEMENTED to {probe}") from None
    try:
        return attempt()
    except Exception as err:
        if "unimplemented" in str(err).lower():
            raise Skip(f"unimplemented in this DataCoord: {' '.join(str(err).split())[:200]}") from None
        raise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="dev", help="cluster started by cluster.py")
    parser.add_argument("--collections", type=int, default=3, help="collections (one is dropped midway)")
    parser.add_argument("--rounds", type=int, default=3, help="insert + flush rounds before flush_all")
    parser.add_argument("--timeout", type=int, default=60, help="per-call timeout in seconds")
    parser.add_argument("--json", help="write the step results here")
    parser.add_argument("-v", action="store_true", help="print tracebacks")
    args = parser.parse_args()
    if args.collections < 2:
        parser.error("--collections must be at least 2 (one is dropped, the others are checked)")

    from pymilvus import connections, utility

    cluster = cluster_mod.Cluster.load(args.name)
    endpoint = cluster.etcd_endpoint
    timeout = args.timeout
    steps = Steps(args.v)
    workloads = [datapath.CollectionWorkload(name, ALIAS, index=i, timeout=timeout)
                 for i, name in enumerate(datapath.collection_names("workload", args.collections))]
    victim, target = workloads[0], workloads[1]

    steps.run("datacoord is ours", lambda: session_check(cluster, cluster.datacoord_address))
    steps.run("connect", lambda: connections.connect(
        ALIAS, host="127.0.0.1", port=str(cluster.ports.proxy), timeout=timeout))
    steps.run("get_server_version", lambda: utility.get_server_version(using=ALIAS), ("connect",))
    steps.run("list_collections", lambda: utility.list_collections(timeout=timeout, using=ALIAS), ("connect",))

    def create():
        for workload in workloads:
            workload.create(cluster.proxy_address)
        return (f"{len(workloads)} collections x {len(datapath.PARTITIONS)} partitions x "
                f"{datapath.SHARDS} shards")

    steps.run("create_collections", create, ("connect",))

    def insert_round():
        inserted = [w.insert_round() for w in workloads]
        return f"{sum(sum(i.values()) for i in inserted)} rows"

    def flush_round():
        details = []
        for workload in workloads:
            workload.flush()
            details.append(workload.check_after_flush(endpoint))
        return "; ".join(details)

    previous = "create_collections"
    for round_index in range(args.rounds):
        steps.run(f"insert round {round_index}", insert_round, (previous,))
        steps.run(f"flush round {round_index}", flush_round, (f"insert round {round_index}",))
        previous = f"flush round {round_index}"

    steps.run("insert before flush_all", insert_round, (previous,))

    def flush_all():
        utility.flush_all(using=ALIAS, timeout=timeout * 2)
        return "; ".join(w.check_after_flush(endpoint) for w in workloads)

    steps.run("flush_all", flush_all, ("insert before flush_all",))
    steps.run("persistent segment infos",
              lambda: "; ".join(w.check_persistent_segment_infos() for w in workloads), ("flush_all",))

    def drop_one():
        utility.drop_collection(victim.name, using=ALIAS, timeout=timeout)
        if utility.has_collection(victim.name, using=ALIAS, timeout=timeout):
            raise AssertionError("collection still listed after drop")
        return victim.wait_dropped_in_etcd(endpoint, timeout=timeout)

    steps.run("drop_collection", drop_one, ("flush_all",))
    steps.run("counts of the others",
              lambda: "; ".join(w.check_after_flush(endpoint) for w in workloads[1:]), ("drop_collection",))

    # Later steps: need an index in 2.3.5, which may not be in this DataCoord yet.
    def index():
        def build():
            collection = target.collection()
            collection.create_index("vec", {"index_type": "IVF_FLAT", "metric_type": "L2",
                                             "params": {"nlist": 16}}, timeout=timeout)
            utility.wait_for_index_building_complete(target.name, timeout=timeout, using=ALIAS)
            return utility.index_building_progress(target.name, using=ALIAS)

        return skip_if_unimplemented(datapath.active_datacoord(endpoint), "DescribeIndex", build,
                                     collectionID=target.collection_id)

    steps.run("create_index", index, ("counts of the others",))
    steps.run("load", lambda: target.collection().load(timeout=timeout), ("create_index",))

    def search():
        pk, vector = target.sample
        hits = target.collection().search([vector], "vec", {"metric_type": "L2", "params": {"nprobe": 16}},
                                          limit=3, timeout=timeout)
        top = hits[0].ids
        if not top or top[0] != pk:
            raise AssertionError(f"nearest neighbour of row {pk} should be itself, got {top}")
        return f"top ids {top}"

    steps.run("search", search, ("load",))

    def query():
        rows = target.collection().query("id < 10", output_fields=["id"], timeout=timeout)
        if sorted(r["id"] for r in rows) != list(range(10)):
            raise AssertionError(f"expected ids 0..9, got {sorted(r['id'] for r in rows)}")
        return f"{len(rows)} rows"

    steps.run("query", query, ("load",))
    steps.run("delete", lambda: f"{target.collection().delete('id in [1, 2, 3]', timeout=timeout).delete_count} "
                                "deleted", ("load",))

    def compact():
        def run():
            collection = target.collection()
            collection.compact(timeout=timeout)
            collection.wait_for_compaction_completed(timeout=timeout)
            return collection.get_compaction_state(timeout=timeout)

        return skip_if_unimplemented(datapath.active_datacoord(endpoint), "GetCompactionState", run)

    steps.run("compact", compact, ("counts of the others",))

    def drop_rest():
        if "load" in steps.passed:
            target.collection().release(timeout=timeout)
        dropped = 0
        for workload in workloads:
            if utility.has_collection(workload.name, using=ALIAS, timeout=timeout):
                utility.drop_collection(workload.name, using=ALIAS, timeout=timeout)
                dropped += 1
        return f"{dropped} dropped"

    steps.run("drop remaining", drop_rest, ("create_collections",))
    steps.run("datacoord still ours", lambda: session_check(cluster, cluster.datacoord_address))

    passed = sum(r["status"] == "PASS" for r in steps.results)
    failed = sum(r["status"] == "FAIL" for r in steps.results)
    skipped = sum(r["status"] == "SKIPPED" for r in steps.results)
    print(f"workload: {passed} passed, {failed} failed, {skipped} skipped")
    if args.json:
        Path(args.json).write_text(json.dumps(steps.results, indent=2))
    return 0 if steps.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
