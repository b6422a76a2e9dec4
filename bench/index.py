#!/usr/bin/env python3
"""Index-building benchmark: time from CreateIndex to every segment indexed, Go DataCoord vs ours.

For each implementation a fresh cluster (scripts/cluster.py, free loopback ports) runs it as the
active DataCoord. A collection (INT64 pk, FLOAT_VECTOR dim --dim) with --partitions partitions and
--shards shards gets --rounds rounds of inserts, each round --rows-per-segment rows per
(partition, shard) on average, and a flush after each round: rounds x partitions x shards Flushed
segments (200 by default), each large enough (>= 1024 rows) to need a real build on the IndexNode.
Then CreateIndex (--index-type, default IVF_FLAT nlist 64) is called and
`utility.index_building_progress` polled every 0.1 s until indexed_rows == total_rows == inserted
rows. Reported: Flushed segments and rows (from etcd), time to all indexed, the DataCoord's CPU
seconds during the build, and the IndexNode build work the DataCoord scheduled (the segment-index
records, from etcd: index_version > 1 means a task was assigned more than once).

The IndexNode (inside the Go standalone) is the same binary and configuration for both runs, so
the difference is the DataCoord's scheduling: when tasks are assigned, polled and released.
Auto compaction is off unless --auto-compaction (Go would merge the indexed segments and build
the merged ones during the run; ours does not compact yet).

  bench/index.py [--impl go] [--impl ours] [--datacoord-bin PATH] [--rounds 10] [--partitions 10]
                 [--shards 2] [--rows-per-segment 1500] [--dim 32] [--index-type IVF_FLAT]
Results: a markdown table on stdout and .work/bench-index-<impl>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import cluster as cluster_mod  # noqa: E402
import datapath  # noqa: E402
import milvus_grpc  # noqa: E402

ALIAS = "bench-index"
NAME = "index_bench"
FINISHED = 3  # common.IndexState.Finished


def index_params(index_type: str) -> dict:
    params = {"IVF_FLAT": {"nlist": 64}, "HNSW": {"M": 8, "efConstruction": 64}, "FLAT": {}}[index_type]
    return {"index_type": index_type, "metric_type": "L2", "params": params}


def segment_index_records(endpoint: str, collection_id: int) -> list:
    records = []
    for _, value in datapath.etcd_range_prefix(endpoint, f"by-dev/meta/segment-index/{collection_id}/"):
        record = milvus_grpc.message_class("milvus.proto.index.SegmentIndex").FromString(value)
        records.append(record)
    return records


def load_data(cluster, args) -> dict:
    from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, connections

    connections.connect(ALIAS, host="127.0.0.1", port=str(cluster.ports.proxy), timeout=60)
    schema = CollectionSchema([
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=args.dim),
    ])
    collection = Collection(NAME, schema, using=ALIAS, shards_num=args.shards, timeout=60)
    partitions = ["_default"] + [f"p{i}" for i in range(1, args.partitions)]
    for name in partitions[1:]:
        collection.create_partition(name, timeout=60)
    rng = random.Random(7)
    next_pk = 0
    rows = args.rows_per_segment * args.shards
    started = time.monotonic()
    for round_index in range(args.rounds):
        for name in partitions:
            ids = list(range(next_pk, next_pk + rows))
            vectors = [[rng.random() for _ in range(args.dim)] for _ in ids]
            collection.insert([ids, vectors], partition_name=name, timeout=120)
            next_pk += rows
        collection.flush(timeout=300)
        print(f"  round {round_index + 1}/{args.rounds} flushed", file=sys.stderr)
    described = datapath.proxy_call(cluster.proxy_address, "DescribeCollection", "DescribeCollectionRequest",
                                    "DescribeCollectionResponse", collection_name=NAME)
    segments = [s for s in datapath.stored_segments(cluster.etcd_endpoint, described.collectionID)
                if datapath.state_name(s.state) == "Flushed"]
    return {
        "collection_id": described.collectionID,
        "inserted_rows": next_pk,
        "flushed_segments": len(segments),
        "flushed_rows": sum(s.num_of_rows for s in segments),
        "smallest_segment_rows": min((s.num_of_rows for s in segments), default=0),
        "load_seconds": round(time.monotonic() - started, 1),
    }


def build(cluster, args, data: dict) -> dict:
    from pymilvus import Collection, utility

    collection = Collection(NAME, using=ALIAS)
    datacoord = cluster.procs["datacoord"]
    cpu_before = datacoord.cpu_seconds()
    started = time.monotonic()
    collection.create_index("vec", index_params(args.index_type), timeout=60, sync=False)
    created = time.monotonic()
    progress = {}
    while time.monotonic() - started < args.timeout:
        progress = utility.index_building_progress(NAME, using=ALIAS, timeout=30)
        if progress["total_rows"] == data["inserted_rows"] and progress["indexed_rows"] == progress["total_rows"]:
            break
        time.sleep(0.1)
    else:
        raise RuntimeError(f"not indexed after {args.timeout}s: {progress}")
    elapsed = time.monotonic() - started
    cpu_after = datacoord.cpu_seconds()
    records = segment_index_records(cluster.etcd_endpoint, data["collection_id"])
    return {
        "create_index_call_seconds": round(created - started, 3),
        "seconds_to_all_indexed": round(elapsed, 2),
        "progress": progress,
        "datacoord_cpu_seconds": None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 2),
        "segment_index_records": len(records),
        "finished_records": sum(1 for r in records if r.state == FINISHED),
        "built_on_indexnode": sum(1 for r in records if r.index_file_keys),
        "reassigned": sum(1 for r in records if r.index_version > 1),
    }


def run_impl(impl: str, cmd: list[str], args) -> dict:
    ports = cluster_mod.Ports(**{f.name: cluster_mod.free_port() for f in dataclasses.fields(cluster_mod.Ports)})
    cluster = cluster_mod.Cluster(f"bench-index-{impl}", cmd, ports=ports)
    if not args.auto_compaction:
        # Go compacts the small segments as soon as they are indexed and then builds the merged
        # ones too; ours does not compact yet. Off for both, so the same builds are compared.
        cluster.config_overrides["dataCoord.compaction.enableAutoCompaction"] = False
    result: dict = {"impl": impl, "command": cmd}
    try:
        print(f"[{impl}] starting cluster ...", file=sys.stderr)
        cluster.start()
        result["data"] = load_data(cluster, args)
        print(f"[{impl}] {result['data']}", file=sys.stderr)
        result["build"] = build(cluster, args, result["data"])
        print(f"[{impl}] {result['build']}", file=sys.stderr)
    except Exception as err:  # noqa: BLE001 - reported; the other implementation still runs
        result["error"] = f"{type(err).__name__}: {err}"
        traceback.print_exc()
    finally:
        from pymilvus import connections

        connections.disconnect(ALIAS)
        cluster.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", action="append", choices=["ours", "go"])
    parser.add_argument("--datacoord-bin")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=10)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--rows-per-segment", type=int, default=1500)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--index-type", default="IVF_FLAT", choices=["IVF_FLAT", "HNSW", "FLAT"])
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--auto-compaction", action="store_true",
                        help="leave dataCoord.compaction.enableAutoCompaction on (Go then also builds merged segments)")
    args = parser.parse_args()
    results = cluster_mod.bench_implementations("index", args, run_impl)
    print(f"\n## Index build: {args.rounds} rounds x {args.partitions} partitions x {args.shards} shards, "
          f"{args.index_type}, dim {args.dim}\n")
    print("| impl | Flushed segments | rows | seconds to all indexed | DataCoord CPU s | built on IndexNode | reassigned |")
    print("|---|---|---|---|---|---|---|")
    for impl, result in results.items():
        if "error" in result:
            print(f"| {impl} | error: {result['error'][:120]} | | | | | |")
            continue
        data, built = result["data"], result["build"]
        print(f"| {impl} | {data['flushed_segments']} | {data['flushed_rows']} | {built['seconds_to_all_indexed']} | "
              f"{built['datacoord_cpu_seconds']} | {built['built_on_indexnode']} | {built['reassigned']} |")
    print(f"\ncommand: {' '.join(sys.argv)}")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
