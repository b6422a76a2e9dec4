#!/usr/bin/env python3
"""A small pymilvus workload against a running cluster, reported step by step.

Steps: connect, get_server_version, list_collections, create_collection, insert, flush,
create_index (+ wait for the build), load, search, query, delete, compact, drop_collection.
A step whose prerequisite failed is reported as SKIPPED with the reason; nothing is retried or
hidden. Before and after the workload the DataCoord session holder is checked, so a run that only
worked because the Go standby took over is visible.

  run-workload.py [--name dev] [--rows 3000] [--timeout 60] [--json out.json]

Exit code: 0 when every step passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster as cluster_mod  # noqa: E402

DIM = 8


class Steps:
    """Runs named steps, records PASS/FAIL/SKIPPED with timing and detail."""

    def __init__(self):
        self.results: list[dict] = []
        self.passed: set[str] = set()

    def run(self, name: str, fn, needs: tuple[str, ...] = ()):
        missing = [n for n in needs if n not in self.passed]
        if missing:
            self._record(name, "SKIPPED", 0.0, f"needs {', '.join(missing)}")
            return None
        started = time.monotonic()
        try:
            value = fn()
        except Exception as err:  # noqa: BLE001 - every failure is reported, not raised
            detail = f"{type(err).__name__}: {err}".replace("\n", " ")
            self._record(name, "FAIL", time.monotonic() - started, detail[:400])
            if "-v" in sys.argv:
                traceback.print_exc()
            return None
        self.passed.add(name)
        self._record(name, "PASS", time.monotonic() - started, "" if value is None else str(value)[:200])
        return value

    def _record(self, name, status, seconds, detail):
        detail = " ".join(detail.split())
        self.results.append({"step": name, "status": status, "seconds": round(seconds, 3), "detail": detail})
        print(f"{status:8} {name:22} {seconds:7.2f}s  {detail}", flush=True)

    def ok(self) -> bool:
        return all(r["status"] == "PASS" for r in self.results)


def session_check(cluster, expected_address):
    session = cluster_mod.session_of(cluster.etcd_endpoint)
    if not session:
        raise RuntimeError("no datacoord session in etcd")
    if session.get("Address") != expected_address:
        raise RuntimeError(f"datacoord session is held by {session.get('Address')}, not {expected_address}")
    return f"ServerID {session.get('ServerID')} at {session.get('Address')}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="dev", help="cluster started by cluster.py")
    parser.add_argument("--rows", type=int, default=3000, help="rows to insert (>1024 so the index is built)")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-step timeout in seconds")
    parser.add_argument("--json", help="write the step results here")
    parser.add_argument("-v", action="store_true", help="print tracebacks")
    args = parser.parse_args()

    from pymilvus import (Collection, CollectionSchema, DataType, FieldSchema, connections,
                          utility)

    cluster = cluster_mod.Cluster.load(args.name)
    timeout = args.timeout
    steps = Steps()
    name = f"workload_{int(time.time())}_{random.randint(0, 9999)}"
    handle: dict = {}

    steps.run("datacoord is ours", lambda: session_check(cluster, cluster.datacoord_address))
    steps.run("connect", lambda: connections.connect(
        "default", host="127.0.0.1", port=str(cluster.ports.proxy), timeout=timeout))
    steps.run("get_server_version", lambda: utility.get_server_version(), ("connect",))
    steps.run("list_collections", lambda: utility.list_collections(timeout=timeout), ("connect",))

    def create():
        schema = CollectionSchema([
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM),
        ])
        handle["c"] = Collection(name, schema, shards_num=1, timeout=timeout)
        return name

    steps.run("create_collection", create, ("connect",))

    def insert():
        rng = random.Random(7)
        ids = list(range(args.rows))
        vectors = [[rng.random() for _ in range(DIM)] for _ in ids]
        handle["query_vec"] = vectors[0]
        result = handle["c"].insert([ids, vectors], timeout=timeout)
        return f"{result.insert_count} rows"

    steps.run("insert", insert, ("create_collection",))

    def flush():
        handle["c"].flush(timeout=timeout)
        return f"num_entities={handle['c'].num_entities}"

    steps.run("flush", flush, ("insert",))

    def index():
        handle["c"].create_index("vec", {"index_type": "IVF_FLAT", "metric_type": "L2",
                                         "params": {"nlist": 16}}, timeout=timeout)
        utility.wait_for_index_building_complete(name, timeout=timeout)
        return utility.index_building_progress(name)

    steps.run("create_index", index, ("flush",))
    steps.run("load", lambda: handle["c"].load(timeout=timeout), ("create_index",))

    def search():
        hits = handle["c"].search([handle["query_vec"]], "vec", {"metric_type": "L2", "params": {"nprobe": 16}},
                                  limit=3, timeout=timeout)
        top = hits[0].ids
        if not top or top[0] != 0:
            raise AssertionError(f"nearest neighbour of row 0 should be id 0, got {top}")
        return f"top ids {top}"

    steps.run("search", search, ("load",))

    def query():
        rows = handle["c"].query("id < 10", output_fields=["id"], timeout=timeout)
        if len(rows) != 10:
            raise AssertionError(f"expected 10 rows with id < 10, got {len(rows)}")
        return f"{len(rows)} rows"

    steps.run("query", query, ("load",))
    steps.run("delete", lambda: f"{handle['c'].delete('id in [1, 2, 3]', timeout=timeout).delete_count} deleted",
              ("load",))

    def compact():
        handle["c"].compact(timeout=timeout)
        handle["c"].wait_for_compaction_completed(timeout=timeout)
        return handle["c"].get_compaction_state(timeout=timeout)

    steps.run("compact", compact, ("flush",))

    def drop():
        handle["c"].release(timeout=timeout) if "load" in steps.passed else None
        utility.drop_collection(name, timeout=timeout)
        if utility.has_collection(name, timeout=timeout):
            raise AssertionError("collection still listed after drop")

    steps.run("drop_collection", drop, ("create_collection",))
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
