#!/usr/bin/env python3
"""Compaction benchmark: time from --segments small Flushed segments to compacted, automatic and
manual, Go DataCoord vs ours, and the DataCoord process's CPU time meanwhile.

For each implementation a fresh cluster (scripts/cluster.py, free loopback ports) runs it as the
active DataCoord; one collection per phase (INT64 pk, FLOAT_VECTOR --dim, one shard, --partitions
partitions). Segments are made fast: each batch (distinct row counts around --rows) is inserted and
sealed by a Flush RPC that does not wait; one blocking flush at the end; every batch is checked to
sit in its own Flushed segment (scripts/compaction.py flush_batches).

- auto: the segments are made without an index (2.3.5 compacts only indexed segments), then
  CreateIndex starts the clock. Compaction is left to the DataCoord: the periodic global signal
  (dataCoord.compaction.global.interval, --global-interval, 2.3.5 default 60 s) finds the indexed
  segments. Done when every original segment is Dropped (compacted into bigger ones) and no plan
  is executing (GetCompactionState 0 = all tasks).
- manual: a second collection with the property collection.autocompaction.enabled=false; index
  built first; the clock starts at ManualCompaction (DataCoord RPC); done at GetCompactionState
  Completed (polled every 0.1 s), then the targets' index builds are timed too.
Both: CPU seconds (utime+stime from /proc/PID/stat) of the DataCoord between start and done.

  bench/compaction.py [--impl go] [--impl ours] [--datacoord-bin PATH] [--segments 200] [--rows 100]
                      [--partitions 1] [--dim 16] [--global-interval 60] [--phases auto,manual]
Results: a markdown table on stdout and .work/bench-compaction-<impl>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import cluster as cluster_mod  # noqa: E402
import compaction as cp  # noqa: E402
import datapath  # noqa: E402
import index as ix  # noqa: E402

ALIAS = "bench-compaction"
PARAMS = ix.vector_index_params("IVF_FLAT", nlist=16)
VEC_INDEX = "vec_idx"


def make_segments(cluster, args, prefix: str, auto_compaction: bool) -> tuple[ix.IndexWorkload, list[int], dict]:
    partitions = [f"p{i}" for i in range(1, args.partitions)]
    workload = cp.new_workload(ALIAS, cluster.proxy_address, prefix, seed=7, partitions=partitions,
                               auto_compaction=auto_compaction, dim=args.dim)
    names = ["_default", *partitions]
    per_round = len(names)
    rounds = [[(name, args.rows + per_round * r + i) for i, name in enumerate(names)]
              for r in range(-(-args.segments // per_round))]
    started = time.monotonic()
    originals = cp.flush_batches(workload, cluster.proxy_address, cluster.etcd_endpoint, rounds, cp.Ledger())
    data = {"collection_id": workload.collection_id, "flushed_segments": len(originals),
            "rows": len(workload.vectors), "load_seconds": round(time.monotonic() - started, 1)}
    return workload, originals, data


def cpu(proc) -> float | None:
    return proc.cpu_seconds()


def delta(before, after) -> float | None:
    return None if before is None or after is None else round(after - before, 2)


def executing_plans(endpoint: str) -> int:
    return cp.compaction_state(datapath.active_datacoord(endpoint), 0).executing


def auto_phase(cluster, args) -> dict:
    endpoint = cluster.etcd_endpoint
    # A DataCoord without the compaction RPCs would only time out below.
    executing_plans(endpoint)
    workload, originals, data = make_segments(cluster, args, "bench_auto", auto_compaction=True)
    datacoord = cluster.procs["datacoord"]
    cpu_before = cpu(datacoord)
    started = time.monotonic()
    workload.create_index("vec", PARAMS, VEC_INDEX, wait=False)
    first_target = None
    while True:
        elapsed = time.monotonic() - started
        segments = datapath.stored_segments(endpoint, workload.collection_id)
        if first_target is None and any(s.compactionFrom for s in segments):
            first_target = round(elapsed, 2)
        dropped = {s.ID for s in segments if s.state == datapath.DROPPED}
        if dropped >= set(originals) and executing_plans(endpoint) == 0:
            break
        if elapsed > args.timeout:
            raise RuntimeError(f"auto: not compacted after {args.timeout}s: "
                               f"{len(set(originals) - dropped)} original segments left")
        time.sleep(0.2)
    done = time.monotonic() - started
    cpu_after = cpu(datacoord)
    flushed = [s for s in segments if s.state == datapath.FLUSHED]
    return {**data, "seconds_to_compacted": round(done, 2), "seconds_to_first_target": first_target,
            "segments_after": len(flushed), "compacted_targets": sum(1 for s in segments if s.compactionFrom),
            "datacoord_cpu_seconds": delta(cpu_before, cpu_after)}


def manual_phase(cluster, args) -> dict:
    endpoint = cluster.etcd_endpoint
    workload, originals, data = make_segments(cluster, args, "bench_manual", auto_compaction=False)
    workload.create_index("vec", PARAMS, VEC_INDEX)
    index_id = ix.live_index_id(endpoint, workload.collection_id, VEC_INDEX)
    ix.wait_all_indexed(endpoint, workload.collection_id, [index_id], timeout=args.timeout)
    datacoord = cluster.procs["datacoord"]
    address = datapath.active_datacoord(endpoint)
    cpu_before = cpu(datacoord)
    started = time.monotonic()
    compaction_id = cp.manual_compaction(address, workload.collection_id)
    while (status := cp.compaction_state(address, compaction_id)).state != cp.COMPLETED:
        if time.monotonic() - started > args.timeout:
            raise RuntimeError(f"manual: not completed after {args.timeout}s: {status}")
        time.sleep(0.1)
    done = time.monotonic() - started
    cpu_after = cpu(datacoord)
    ix.wait_all_indexed(endpoint, workload.collection_id, [index_id], timeout=args.timeout)
    indexed = time.monotonic() - started
    segments = datapath.stored_segments(endpoint, workload.collection_id)
    left = set(originals) - {s.ID for s in segments if s.state == datapath.DROPPED}
    if left:
        raise RuntimeError(f"manual: {len(left)} original segments not compacted ({status})")
    return {**data, "seconds_to_compacted": round(done, 2), "seconds_to_targets_indexed": round(indexed, 2),
            "plans": dataclasses.asdict(status),
            "segments_after": sum(1 for s in segments if s.state == datapath.FLUSHED),
            "datacoord_cpu_seconds": delta(cpu_before, cpu_after)}


def run_impl(impl: str, cmd: list[str], args) -> dict:
    from pymilvus import connections

    ports = cluster_mod.Ports(**{f.name: cluster_mod.free_port() for f in dataclasses.fields(cluster_mod.Ports)})
    cluster = cluster_mod.Cluster(f"bench-compaction-{impl}", cmd, ports=ports)
    if args.global_interval != 60:
        cluster.config_overrides["dataCoord.compaction.global.interval"] = args.global_interval
    result: dict = {"impl": impl, "command": cmd, "config_overrides": dict(cluster.config_overrides)}
    try:
        print(f"[{impl}] starting cluster ...", file=sys.stderr)
        cluster.start()
        connections.connect(ALIAS, host="127.0.0.1", port=str(cluster.ports.proxy), timeout=60)
        for phase in args.phases:
            try:
                result[phase] = {"auto": auto_phase, "manual": manual_phase}[phase](cluster, args)
            except Exception as err:  # noqa: BLE001 - reported; the next phase still runs
                result[phase] = {"error": f"{type(err).__name__}: {err}"}
                traceback.print_exc()
            print(f"[{impl}] {phase}: {result[phase]}", file=sys.stderr)
    except Exception as err:  # noqa: BLE001 - reported; the other implementation still runs
        result["error"] = f"{type(err).__name__}: {err}"
        traceback.print_exc()
    finally:
        connections.disconnect(ALIAS)
        cluster.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", action="append", choices=["ours", "go"])
    parser.add_argument("--datacoord-bin")
    parser.add_argument("--segments", type=int, default=200)
    parser.add_argument("--rows", type=int, default=100, help="rows of the smallest batch (each batch differs)")
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--global-interval", type=int, default=60,
                        help="dataCoord.compaction.global.interval in s (2.3.5 default 60)")
    parser.add_argument("--phases", default="auto,manual")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    args.phases = [p for p in args.phases.split(",") if p]
    if not set(args.phases) <= {"auto", "manual"}:
        parser.error("--phases takes auto and/or manual")
    results = cluster_mod.bench_implementations("compaction", args, run_impl)

    print(f"\n## Compaction: {args.segments} segments of ~{args.rows} rows, {args.partitions} partition(s), "
          f"1 shard, dim {args.dim}, global interval {args.global_interval} s\n")
    print("| impl | phase | segments before → after | seconds to compacted | first target s | "
          "targets indexed s | plans completed/failed | DataCoord CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    errors = False
    for impl, result in results.items():
        for phase in args.phases:
            row = result.get(phase) or {"error": result.get("error", "not run")}
            if "error" in row:
                errors = True
                print(f"| {impl} | {phase} | error: {row['error'][:120]} | | | | | |")
                continue
            plans = row.get("plans")
            plan_text = f"{plans['completed']}/{plans['failed']}" if plans else ""
            print(f"| {impl} | {phase} | {row['flushed_segments']} → {row['segments_after']} | "
                  f"{row['seconds_to_compacted']} | {row.get('seconds_to_first_target', '')} | "
                  f"{row.get('seconds_to_targets_indexed', '')} | {plan_text} | {row['datacoord_cpu_seconds']} |")
    print(f"\ncommand: {' '.join(sys.argv)}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
