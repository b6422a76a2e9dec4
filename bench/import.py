#!/usr/bin/env python3
"""Bulk insert benchmark: rows/s of one `do_bulk_insert` of --rows rows from numpy files, Go
DataCoord vs ours, and the DataCoord process's CPU time meanwhile.

For each implementation a fresh cluster (scripts/cluster.py, free loopback ports, local storage)
runs it as the active DataCoord (ours as its own process; the Go one as `milvus run mixture
-datacoord=true`, also its own process, so /proc/PID/stat measures the DataCoord alone for both).
One collection (INT64 pk `id`, FLOAT_VECTOR `vec` --dim, INT64 `tag`, one shard, no index) gets
`id.npy`, `vec.npy`, `tag.npy` written under the storage root (scripts/importing.py, not timed).
The clock runs from the do_bulk_insert call to the task's `Completed` (get_bulk_insert_state
polled every 0.1 s); `Persisted` (the DataNode wrote and saved every segment) is noted on the way.
CPU seconds (utime+stime from /proc/PID/stat) of the DataCoord and of the standalone (RootCoord,
DataNode, proxy, ...) over that window. Afterwards num_entities must equal --rows.

  bench/import.py [--impl go] [--impl ours] [--datacoord-bin PATH] [--rows 1000000] [--dim 16]
                  [--runs 1] [--timeout 900]
Results: a markdown table on stdout and .work/bench-import-<impl>.json; exit 1 if any run failed.
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
import importing as im  # noqa: E402

ALIAS = "bench-import"


def delta(before, after) -> float | None:
    return None if before is None or after is None else round(after - before, 2)


def one_run(cluster, args, run: int) -> dict:
    workload = cp.new_workload(ALIAS, cluster.proxy_address, f"bench_import_{run}", seed=run, dim=args.dim)
    started = time.monotonic()
    files = im.numpy_columns_random(0, args.rows, args.dim, seed=run)
    paths = im.place_files(cluster, f"bench_{run}", files)
    data: dict = {"rows": args.rows, "write_files_seconds": round(time.monotonic() - started, 1),
                  "file_bytes": sum(len(content) for content in files.values())}
    del files
    datacoord, standalone = cluster.procs["datacoord"], cluster.procs["standalone"]
    cpu_before = (datacoord.cpu_seconds(), standalone.cpu_seconds())
    started = time.monotonic()
    task_id = im.bulk_insert(ALIAS, workload.name, paths)
    persisted_at = None
    deadline = started + args.timeout
    while True:
        state = im.task_state(ALIAS, task_id)
        now = time.monotonic()
        if persisted_at is None and state.state in (im.PERSISTED, im.COMPLETED):
            persisted_at = now
        if state.state in im.FINAL_STATES or now > deadline:
            break
        time.sleep(0.1)
    seconds = now - started
    cpu_after = (datacoord.cpu_seconds(), standalone.cpu_seconds())
    data.update({
        "task_id": task_id, "state": state.state_name, "row_count": state.row_count,
        "failed_reason": state.failed_reason,
        "seconds_to_completed": round(seconds, 2),
        "seconds_to_persisted": None if persisted_at is None else round(persisted_at - started, 2),
        "rows_per_second": round(args.rows / seconds) if state.state == im.COMPLETED else None,
        "datacoord_cpu_seconds": delta(cpu_before[0], cpu_after[0]),
        "standalone_cpu_seconds": delta(cpu_before[1], cpu_after[1]),
    })
    if state.state != im.COMPLETED:
        raise RuntimeError(f"import task {task_id} ended {state.state_name}: {data}")
    segments = [s for s in datapath.stored_segments(cluster.etcd_endpoint, workload.collection_id)
                if s.state != datapath.DROPPED]
    data["segments"] = len(segments)
    workload.flush()
    data["num_entities"] = workload.collection().num_entities
    if data["num_entities"] != args.rows:
        raise RuntimeError(f"num_entities {data['num_entities']} != {args.rows}: {data}")
    workload.collection().drop(timeout=60)
    return data


def run_impl(impl: str, cmd: list[str], args) -> dict:
    from pymilvus import connections

    ports = cluster_mod.Ports(**{f.name: cluster_mod.free_port() for f in dataclasses.fields(cluster_mod.Ports)})
    cluster = cluster_mod.Cluster(f"bench-import-{impl}", cmd, ports=ports)
    result: dict = {"impl": impl, "command": cmd, "runs": []}
    try:
        print(f"[{impl}] starting cluster ...", file=sys.stderr)
        cluster.start()
        connections.connect(ALIAS, host="127.0.0.1", port=str(cluster.ports.proxy), timeout=60)
        for run in range(args.runs):
            try:
                data = one_run(cluster, args, run)
            except Exception as err:  # noqa: BLE001 - reported; the next run still goes
                data = {"error": f"{type(err).__name__}: {err}"}
                traceback.print_exc()
            result["runs"].append(data)
            print(f"[{impl}] run {run + 1}: {data}", file=sys.stderr)
    except Exception as err:  # noqa: BLE001 - reported; the other implementation still runs
        result["error"] = f"{type(err).__name__}: {err}"
        traceback.print_exc()
    finally:
        try:
            connections.disconnect(ALIAS)
        finally:
            cluster.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", action="append", choices=["ours", "go"])
    parser.add_argument("--datacoord-bin")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    results = cluster_mod.bench_implementations("import", args, run_impl)

    print(f"\n## Bulk insert: {args.rows} rows from numpy files, dim {args.dim}, 1 shard, no index\n")
    print("| impl | run | seconds to Completed | to Persisted | rows/s | segments | "
          "DataCoord CPU s | standalone CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    failed = False
    for impl, result in results.items():
        runs = result["runs"] or [{"error": result.get("error", "not run")}]
        for index, row in enumerate(runs, 1):
            if "error" in row:
                failed = True
                print(f"| {impl} | {index} | error: {row['error'][:120]} | | | | | |")
                continue
            print(f"| {impl} | {index} | {row['seconds_to_completed']} | {row['seconds_to_persisted']} | "
                  f"{row['rows_per_second']} | {row['segments']} | {row['datacoord_cpu_seconds']} | "
                  f"{row['standalone_cpu_seconds']} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
