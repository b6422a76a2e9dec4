#!/usr/bin/env python3
"""Startup benchmark: our DataCoord vs the Go DataCoord of Milvus 2.3.5 on the same etcd metadata.

What is measured, per run:
  start->Healthy  wall time from just before the process is spawned until GetComponentStates
                  (milvus.proto.data.DataCoord, polled every 20 ms over a fresh gRPC channel each
                  time) first reports state Healthy
  RSS             VmRSS of that PID from /proc/<pid>/status, 5 s after it became Healthy
Both implementations run with the same rendered milvus.yaml except dataCoord.port (a free port),
METRICS_PORT (free), dataCoord.enableActiveStandby false, and the Go one's `-alias`.

Setup (once): etcd on free loopback ports; a full cluster with the Go DataCoord creates the
metadata (`--collections` collections, each with rows inserted, flushed and indexed), then the
standalone and that DataCoord are stopped gracefully and only etcd keeps running. Nothing else runs
during the runs: no rootcoord, no datanode; the Go DataCoord does not need a rootcoord to reach
Healthy (its rootcoord client connects lazily), which this benchmark itself shows each run. Runs
alternate between implementations; between runs the process gets SIGTERM (SIGKILL after 15 s) and
any leftover `by-dev/meta/session/{datacoord,indexcoord}` key is deleted.

  bench/startup.py [--runs 5] [--collections 4] [--rows 2000] [--impl ours --impl go]
                   [--datacoord-bin PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import cluster as cluster_mod  # noqa: E402
import milvus_grpc  # noqa: E402

POLL_INTERVAL = 0.020
RSS_DELAY = 5.0


def populate(cluster: cluster_mod.Cluster, collections: int, rows: int) -> None:
    from pymilvus import (Collection, CollectionSchema, DataType, FieldSchema, connections,
                          utility)

    connections.connect("bench", host="127.0.0.1", port=str(cluster.ports.proxy), timeout=30)
    schema = CollectionSchema([FieldSchema("id", DataType.INT64, is_primary=True),
                               FieldSchema("vec", DataType.FLOAT_VECTOR, dim=8)])
    for number in range(collections):
        name = f"bench_{number}"
        collection = Collection(name, schema, using="bench", shards_num=2)
        collection.insert([list(range(rows)), [[float((i * 7 + d) % 13) for d in range(8)] for i in range(rows)]])
        collection.flush()
        collection.create_index("vec", {"index_type": "IVF_FLAT", "metric_type": "L2", "params": {"nlist": 16}})
        utility.wait_for_index_building_complete(name, using="bench", timeout=120)
    connections.disconnect("bench")


def clear_sessions(cluster: cluster_mod.Cluster) -> None:
    for role in ("datacoord", "indexcoord"):
        cluster_mod.etcd_delete(cluster.etcd_endpoint, f"{cluster_mod.SESSION_ROOT}/{role}")


def one_run(cluster: cluster_mod.Cluster, impl: str, cmd: list[str], run: int) -> tuple[float, int | None]:
    port, metrics_port = cluster_mod.free_port(), cluster_mod.free_port()
    address = f"127.0.0.1:{port}"
    name = f"dc-{impl}-{run}"
    started = time.monotonic()
    proc = cluster.start_datacoord(cmd, name=name, port=port, metrics_port=metrics_port,
                                   active_standby=False, wait=False)
    try:
        while True:
            state = milvus_grpc.try_component_states(address, timeout=1.0)
            if state and state.state_code == milvus_grpc.HEALTHY:
                elapsed = time.monotonic() - started
                break
            if not proc.alive():
                raise RuntimeError(f"{impl} exited before Healthy; log {proc.log}:\n{proc.log_tail()}")
            if time.monotonic() - started > 120:
                raise TimeoutError(f"{impl} not Healthy after 120 s; log {proc.log}")
            time.sleep(POLL_INTERVAL)
        time.sleep(RSS_DELAY)
        if not proc.alive():
            raise RuntimeError(f"{impl} died within {RSS_DELAY}s of Healthy; log {proc.log}")
        rss = proc.vm_rss_kib()
    finally:
        proc.stop()
        cluster.procs.pop(name, None)
        clear_sessions(cluster)
    return elapsed, rss


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):9.1f} {min(values):9.1f} {max(values):9.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--collections", type=int, default=4)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--impl", action="append", choices=["ours", "go"],
                        help="implementations to measure (default: both; ours only if built)")
    parser.add_argument("--datacoord-bin", help="our binary (default $DATACOORD_BIN or target/debug/...)")
    args = parser.parse_args()

    our_bin = Path(args.datacoord_bin) if args.datacoord_bin else cluster_mod.default_datacoord_bin()
    impls = args.impl or (["ours", "go"] if our_bin.exists() else ["go"])
    if "ours" in impls and not our_bin.exists():
        parser.error(f"{our_bin} does not exist")
    if "ours" not in impls:
        print(f"note: measuring only the Go DataCoord ({our_bin} not built)", file=sys.stderr)
    commands = {"ours": cluster_mod.our_datacoord_cmd(our_bin), "go": cluster_mod.GO_DATACOORD_CMD}

    cluster = cluster_mod.Cluster("bench", cluster_mod.GO_DATACOORD_CMD)
    try:
        print("setup: cluster with the Go DataCoord, creating metadata ...", file=sys.stderr)
        cluster.start()
        populate(cluster, args.collections, args.rows)
        for name in ("standalone", "datacoord"):
            cluster.procs.pop(name).stop()
        clear_sessions(cluster)
        results: dict[str, list[tuple[float, int | None]]] = {impl: [] for impl in impls}
        for run in range(args.runs):
            for impl in impls:
                elapsed, rss = one_run(cluster, impl, commands[impl], run)
                results[impl].append((elapsed, rss))
                rss_text = f"{rss / 1024:.1f} MiB" if rss else "n/a"
                print(f"run {run + 1}/{args.runs} {impl:5} start->Healthy {elapsed * 1000:8.1f} ms  "
                      f"RSS {rss_text}", file=sys.stderr)
    finally:
        cluster.stop()

    print(f"\nDataCoord startup, {args.runs} runs each, metadata: {args.collections} collections "
          f"x {args.rows} rows (flushed, indexed)")
    print(f"{'impl':6} {'start->Healthy ms':>29}   {'RSS MiB (5 s after Healthy)':>29}")
    print(f"{'':6} {'median':>9} {'min':>9} {'max':>9}   {'median':>9} {'min':>9} {'max':>9}")
    for impl, rows in results.items():
        times = [t * 1000 for t, _ in rows]
        rss = [r / 1024 for _, r in rows if r]
        print(f"{impl:6} {summary(times)}   {summary(rss) if rss else 'n/a':>29}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
