#!/usr/bin/env python3
"""Captures golden etcd records written by the Go DataCoord of Milvus 2.3.5.

Starts a cluster with the Go DataCoord (cluster.py --go), drives a workload that makes it write
every record family DataCoord owns (segments with insert/stats/delta binlogs, channel checkpoints,
channel watch infos, removal flags, field and segment indexes), then stores each value under
proto/tests/fixtures/go-2.3.5/etcd-records.json with its key and family. proto/tests/golden.rs
decodes every record with our types and checks that re-encoding gives Go's bytes back.

  .work/venv/bin/python scripts/capture-golden.py [--name golden]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster as cluster_mod  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "proto" / "tests" / "fixtures" / "go-2.3.5" / "etcd-records.json"
META = "by-dev/meta/"
# Key family (relative to the meta root) → what its value is.
FAMILIES = {
    "datacoord-meta/s/": "milvus.proto.data.SegmentInfo",
    "datacoord-meta/binlog/": "milvus.proto.data.FieldBinlog",
    "datacoord-meta/deltalog/": "milvus.proto.data.FieldBinlog",
    "datacoord-meta/statslog/": "milvus.proto.data.FieldBinlog",
    "datacoord-meta/channel-cp/": "milvus.proto.msg.MsgPosition",
    "datacoord-meta/channel-removal/": "text",
    "channelwatch/": "milvus.proto.data.ChannelWatchInfo",
    "field-index/": "milvus.proto.index.FieldIndex",
    "segment-index/": "milvus.proto.index.SegmentIndex",
}


def range_all(endpoint: str, prefix: str) -> list[tuple[str, bytes]]:
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    answer = cluster_mod.etcd_call(endpoint, "kv/range", {
        "key": base64.b64encode(prefix.encode()).decode(),
        "range_end": base64.b64encode(end.encode()).decode(),
    })
    return [(base64.b64decode(kv["key"]).decode(), base64.b64decode(kv.get("value", "")))
            for kv in answer.get("kvs") or []]


def workload(port: int, timeout: float = 120) -> None:
    from pymilvus import (Collection, CollectionSchema, DataType, FieldSchema, connections,
                          utility)
    connections.connect("default", host="127.0.0.1", port=str(port), timeout=timeout)
    schema = CollectionSchema([
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("tag", DataType.VARCHAR, max_length=32),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=8),
    ])
    name = f"golden_{int(time.time())}"
    collection = Collection(name, schema, shards_num=2, timeout=timeout)
    rng = random.Random(11)
    for batch in range(2):
        ids = list(range(batch * 1500, (batch + 1) * 1500))
        collection.insert([ids, [f"t{i % 7}" for i in ids],
                           [[rng.random() for _ in range(8)] for _ in ids]], timeout=timeout)
        collection.flush(timeout=timeout)
    collection.create_index("vec", {"index_type": "IVF_FLAT", "metric_type": "L2",
                                    "params": {"nlist": 16}}, index_name="vec_idx", timeout=timeout)
    collection.create_index("tag", {"index_type": "Trie"}, index_name="tag_idx", timeout=timeout)
    for index_name in ("vec_idx", "tag_idx"):
        utility.wait_for_index_building_complete(name, index_name=index_name, timeout=timeout)
    collection.load(timeout=timeout)
    collection.delete("id in [1, 2, 3, 1600]", timeout=timeout)
    collection.flush(timeout=timeout)
    # Give the datanodes a few time ticks to persist checkpoints after the last flush.
    time.sleep(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="golden")
    args = parser.parse_args()
    cluster = cluster_mod.Cluster(args.name, list(cluster_mod.GO_DATACOORD_CMD)).start()
    try:
        workload(cluster.ports.proxy)
        records = []
        for family, message in FAMILIES.items():
            for key, value in range_all(cluster.etcd_endpoint, META + family):
                records.append({"family": family, "message": message, "key": key[len(META):],
                                "value_hex": value.hex()})
    finally:
        cluster.stop()
    counts = {f: sum(r["family"] == f for r in records) for f in FAMILIES}
    missing = [f for f, n in counts.items() if n == 0]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"milvus": "2.3.5", "records": records}, indent=1) + "\n")
    print(json.dumps(counts, indent=1))
    if missing:
        print(f"no records captured for {missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
