#!/usr/bin/env python3
"""Data-path benchmark: the Go DataCoord of Milvus 2.3.5 vs ours, side by side in one run.

Parts (each measured per implementation; tools from the `datacoord-bench` crate, bench/datapath):
  assign    real cluster (scripts/cluster.py) with the implementation as the active DataCoord; a
            collection with 2 shards created through pymilvus; `assign-bench` calls AssignSegmentID
            on the active DataCoord (127.0.0.1:13333 unless --free-ports; peer_role proxy, one SegmentIDRequest of --rows rows per call,
            the collection's two vchannels round-robin) in a closed loop for --duration at each
            --concurrency level. Reports ok calls/s, p50/p99 of successful calls, errors (gRPC error
            or non-success status) and empty answers, plus the CPU seconds the DataCoord process
            and the client used during the level (2 cores are shared by everything).
  recovery  same cluster: the active DataCoord is killed (-9), `synth-meta` writes
            --recovery-segments Flushed segments (2000 rows, binlogs of fields 0,1,100,101) for
            that collection's channels and partition, and the same implementation is started
            again and becomes active; then `recovery-bench` calls GetRecoveryInfoV2 --recovery-calls
            times. Reports p50/p99 and the number of segments in the answer (expected: the
            synthetic ones; the collection has no other flushed segment).
            The standalone's own Go DataCoord is a standby that would grab the session key the
            moment it is free, so the hand-over is done with the standalone frozen (SIGSTOP, well
            under its 30 s session TTL): revoke the killed process's session leases, start the new
            DataCoord, wait until it holds `by-dev/meta/session/datacoord`, SIGCONT. The datanode
            inside the standalone keeps its channels (nothing is re-watched, so it never tries to
            read the synthetic binlogs, which do not exist in storage).
  startup   etcd only (as bench/startup.py): `synth-meta` writes --startup-segments Flushed
            segments across --startup-collections collections x 2 channels, then each
            implementation is started alone --runs times (alternating): start->Healthy and RSS 5 s
            after Healthy (bench/startup.py's one_run).

Results: a markdown table per part on stdout, the commands used, and
.work/bench-datapath-<impl>.json per implementation.

  bench/datapath.py [--impl go] [--impl ours] [--datacoord-bin PATH] [--parts assign,recovery,startup]
                    [--duration 10s] [--concurrency 1,8,32] [--rows 100]
                    [--recovery-segments 10000] [--recovery-calls 200]
                    [--startup-segments 100000] [--startup-collections 10] [--runs 3] [--free-ports]
Build the tools first: cargo build -p datacoord-bench (and -p milvus-datacoord for ours).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))

import cluster as cluster_mod  # noqa: E402
import milvus_grpc  # noqa: E402
import startup  # noqa: E402

META_ROOT = "by-dev/meta"
COLLECTION_NAME = "datapath_bench"
SHARDS = 2
DIM = 8
# Fields of the benchmark schema (pk "id" 100, "vec" 101) plus the system fields RowID 0 and
# Timestamp 1: what the Go DataCoord keeps one binlog key per.
FIELDS = "0,1,100,101"
PK_FIELD = 100
SYNTH_ROWS = 2000
# The buffer pseudo-node of the channel store (channels no datanode watches).
BUFFER_NODE = -9223372036854775808
WATCH_SUCCESS = 3
PROXY_SERVICE = "milvus.proto.milvus.MilvusService"


# ---------------------------------------------------------------------------------------------
# tools


class Tools:
    """The datacoord-bench binaries; every command line run is kept for the report."""

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.commands: list[str] = []
        missing = [n for n in ("synth-meta", "assign-bench", "recovery-bench") if not (bin_dir / n).exists()]
        if missing:
            raise SystemExit(f"missing {', '.join(missing)} in {bin_dir}: run `cargo build -p datacoord-bench`")

    def run_json(self, name: str, args: list[str], timeout: float = 600) -> tuple[dict, float]:
        """Runs a tool with --json; returns its result and the CPU seconds it used."""
        argv = [str(self.bin_dir / name), *args, "--json"]
        self.commands.append(shlex.join(argv))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(f"{name} failed ({done.returncode}):\n{done.stderr.strip()}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return json.loads(done.stdout.strip().splitlines()[-1]), cpu


# ---------------------------------------------------------------------------------------------
# etcd (JSON gateway, like cluster.py)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def etcd_range_prefix(endpoint: str, prefix: str) -> list[tuple[str, bytes]]:
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    answer = cluster_mod.etcd_call(endpoint, "kv/range", {"key": _b64(prefix), "range_end": _b64(end)})
    return [(base64.b64decode(kv["key"]).decode(), base64.b64decode(kv.get("value", "")))
            for kv in answer.get("kvs") or []]


def etcd_revoke(endpoint: str, lease_id: int) -> None:
    cluster_mod.etcd_call(endpoint, "lease/revoke", {"ID": str(lease_id)})


def session_leases(endpoint: str) -> list[int]:
    """LeaseIDs of the active `datacoord` and `indexcoord` sessions (two leases per process)."""
    leases = []
    for role in ("datacoord", "indexcoord"):
        session = cluster_mod.session_of(endpoint, role)
        if session and session.get("LeaseID"):
            leases.append(int(session["LeaseID"]))
    return leases


def watched_channels(endpoint: str, channels: list[str]) -> dict[str, tuple[int, int]]:
    """vchannel -> (node, state) for the given channels, from `channelwatch/{node}/{vchannel}`."""
    info_class = milvus_grpc.message_class("milvus.proto.data.ChannelWatchInfo")
    found = {}
    for key, value in etcd_range_prefix(endpoint, f"{META_ROOT}/channelwatch/"):
        node, channel = key.split("/")[-2:]
        if channel in channels:
            found[channel] = (int(node), info_class.FromString(value).state)
    return found


# ---------------------------------------------------------------------------------------------
# cluster steps


def create_collection(cluster: cluster_mod.Cluster) -> dict:
    """Creates the 2-shard collection through pymilvus; returns its IDs and vchannels."""
    from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, connections

    connections.connect("datapath", host="127.0.0.1", port=str(cluster.ports.proxy), timeout=30)
    try:
        schema = CollectionSchema([FieldSchema("id", DataType.INT64, is_primary=True),
                                   FieldSchema("vec", DataType.FLOAT_VECTOR, dim=DIM)])
        Collection(COLLECTION_NAME, schema, using="datapath", shards_num=SHARDS)
    finally:
        connections.disconnect("datapath")
    describe = proxy_call(cluster, "DescribeCollection", "DescribeCollectionRequest", "DescribeCollectionResponse",
                          collection_name=COLLECTION_NAME)
    partitions = proxy_call(cluster, "ShowPartitions", "ShowPartitionsRequest", "ShowPartitionsResponse",
                            collection_name=COLLECTION_NAME)
    default = dict(zip(partitions.partition_names, partitions.partitionIDs))["_default"]
    return {"collection": describe.collectionID, "partition": default,
            "channels": list(describe.virtual_channel_names)}


def proxy_call(cluster: cluster_mod.Cluster, method: str, request: str, response: str, **fields):
    message = milvus_grpc.message_class(f"milvus.proto.milvus.{request}")(**fields)
    raw = milvus_grpc.raw_unary(cluster.proxy_address, f"/{PROXY_SERVICE}/{method}",
                                message.SerializeToString(), timeout=30)
    answer = milvus_grpc.message_class(f"milvus.proto.milvus.{response}").FromString(raw)
    if answer.status.code != 0 or answer.status.error_code != 0:
        raise RuntimeError(f"{method}: {answer.status}")
    return answer


def wait_channels_watched(cluster: cluster_mod.Cluster, channels: list[str], timeout: float = 120) -> dict:
    def all_watched():
        found = watched_channels(cluster.etcd_endpoint, channels)
        done = len(found) == len(channels) and all(
            node != BUFFER_NODE and state == WATCH_SUCCESS for node, state in found.values())
        return found if done else None

    return cluster_mod.wait_for(f"datanode watching {channels}", all_watched, timeout,
                                list(cluster.procs.values()), interval=0.5)


def restart_active_datacoord(cluster: cluster_mod.Cluster, cmd: list[str], between) -> cluster_mod.Proc:
    """kill -9 the active DataCoord, run `between()`, start `cmd` as the active one again.

    The standalone's standby DataCoord must not win the session key, so it is frozen from the
    revocation of the old leases until the new process holds the key.
    """
    leases = session_leases(cluster.etcd_endpoint)
    old = cluster.procs["datacoord"]
    old.signal(signal.SIGKILL)

    def gone() -> bool:
        old.reap()
        return not old.alive()

    cluster_mod.wait_for("killed datacoord gone", gone, 15)
    # The killed process's leases keep `session/datacoord` alive for up to the session TTL:
    # the standby stays put while `between()` runs, as long as it is shorter than that.
    between()
    standalone = cluster.procs["standalone"]
    standalone.signal(signal.SIGSTOP)
    try:
        for lease in leases:
            etcd_revoke(cluster.etcd_endpoint, lease)
        proc = cluster.start_datacoord(cmd, wait=False)
        cluster.wait_session(cluster.datacoord_address, 60, [proc])
    finally:
        standalone.signal(signal.SIGCONT)
    cluster.wait_healthy(cluster.datacoord_address, 120, [proc])
    cluster.save_state()
    return proc


def target_args(cluster: cluster_mod.Cluster) -> list[str]:
    return ["--addr", cluster.datacoord_address, "--etcd", cluster.etcd_endpoint, "--root", META_ROOT]


# ---------------------------------------------------------------------------------------------
# parts


def part_assign(cluster, tools: Tools, info: dict, args) -> list[dict]:
    levels = []
    for concurrency in args.concurrency:
        proc = cluster.procs["datacoord"]
        server_before = proc.cpu_seconds()
        result, client_cpu = tools.run_json("assign-bench", [
            *target_args(cluster), "--collection", str(info["collection"]), "--partition", str(info["partition"]),
            "--channels", ",".join(info["channels"]), "--concurrency", str(concurrency),
            "--duration", args.duration, "--rows", str(args.rows)])
        server_after = proc.cpu_seconds()
        level = result["levels"][0]
        level["server_cpu_s"] = (server_after - server_before) if None not in (server_before, server_after) else None
        level["client_cpu_s"] = client_cpu
        levels.append(level)
        print(f"  assign c={concurrency}: {level['ok_per_sec']:.0f} ok/s, errors {level['errors']}, "
              f"empty {level['empty']}", file=sys.stderr)
    return levels


def part_recovery(cluster, tools: Tools, impl: str, cmd: list[str], info: dict, args) -> dict:
    synth = {}

    def write_segments():
        result, _ = tools.run_json("synth-meta", [
            "--etcd", cluster.etcd_endpoint, "--root", META_ROOT, "--collection", str(info["collection"]),
            "--partition", str(info["partition"]), "--channels", ",".join(info["channels"]),
            "--segments", str(args.recovery_segments), "--fields", FIELDS, "--pk-field", str(PK_FIELD),
            "--rows", str(SYNTH_ROWS)])
        synth.update(result)

    restart_started = time.monotonic()
    proc = restart_active_datacoord(cluster, cmd, write_segments)
    restart_s = time.monotonic() - restart_started
    print(f"  recovery: {synth['segments']} segments written in {synth['elapsed']:.1f}s; "
          f"{impl} active again after {restart_s:.1f}s", file=sys.stderr)
    # Readiness: the first answer that lists every synthetic segment (or give up and measure).
    ready_started = time.monotonic()
    ready_s = None
    while time.monotonic() - ready_started < 60:
        probe, _ = tools.run_json("recovery-bench", [*target_args(cluster), "--collection",
                                                     str(info["collection"]), "--calls", "1"])
        if (probe["report"]["segments_max"] or 0) >= args.recovery_segments:
            ready_s = time.monotonic() - ready_started
            break
        if probe["report"]["errors"] and "Unimplemented" in json.dumps(probe["report"]["error_messages"]):
            break
        time.sleep(1)
    server_before = proc.cpu_seconds()
    result, client_cpu = tools.run_json("recovery-bench", [*target_args(cluster), "--collection",
                                                           str(info["collection"]), "--calls", str(args.recovery_calls)])
    server_after = proc.cpu_seconds()
    report = result["report"]
    report.update({
        "synthetic_segments": synth["segments"], "synth_seconds": synth["elapsed"],
        "restart_seconds": restart_s, "full_answer_after_healthy_s": ready_s,
        "server_cpu_s": (server_after - server_before) if None not in (server_before, server_after) else None,
        "client_cpu_s": client_cpu,
    })
    return report


def cluster_parts(impl: str, cmd: list[str], tools: Tools, args) -> dict:
    """Parts assign and recovery on one cluster whose active DataCoord is `impl`."""
    results: dict = {}
    ports = None
    if args.free_ports:
        ports = cluster_mod.Ports(**{f.name: cluster_mod.free_port() for f in dataclasses.fields(cluster_mod.Ports)})
    cluster = cluster_mod.Cluster(f"datapath-{impl}", cmd, ports=ports)
    try:
        print(f"[{impl}] starting cluster ...", file=sys.stderr)
        started = time.monotonic()
        cluster.start()
        print(f"[{impl}] cluster up in {time.monotonic() - started:.0f}s", file=sys.stderr)
        info = create_collection(cluster)
        wait_channels_watched(cluster, info["channels"])
        results["collection"] = info
        if "assign" in args.parts:
            try:
                results["assign"] = part_assign(cluster, tools, info, args)
            except Exception as err:  # noqa: BLE001 - reported, the next part still runs
                results["assign"] = {"error": f"{type(err).__name__}: {err}"}
                traceback.print_exc()
        if "recovery" in args.parts:
            try:
                results["recovery"] = part_recovery(cluster, tools, impl, cmd, info, args)
            except Exception as err:  # noqa: BLE001
                results["recovery"] = {"error": f"{type(err).__name__}: {err}"}
                traceback.print_exc()
    except Exception as err:  # noqa: BLE001 - a cluster that does not start is a result too
        results["error"] = f"{type(err).__name__}: {err}"
        traceback.print_exc()
    finally:
        cluster.stop()
    return results


def etcd_only_cluster(name: str) -> cluster_mod.Cluster:
    """A Cluster with only etcd running (free ports), as bench/startup.py measures on."""
    cluster = cluster_mod.Cluster(name, cluster_mod.GO_DATACOORD_CMD)
    cluster_mod.Cluster.load(name).stop()
    if cluster.dir.exists():
        shutil.rmtree(cluster.dir)
    cluster.dir.mkdir(parents=True)
    for field in ("etcd", "etcd_peer", "metrics_datacoord", "metrics_standalone"):
        setattr(cluster.ports, field, cluster_mod.free_port())
    try:
        cluster.start_etcd()
    finally:
        cluster.save_state()
    return cluster


def part_startup(impls: list[str], commands: dict, tools: Tools, args) -> dict:
    results: dict = {impl: {"runs": []} for impl in impls}
    cluster = etcd_only_cluster("datapath-startup")
    try:
        per_collection = args.startup_segments // args.startup_collections
        next_id = 1_000_000_000_000
        synth_started = time.monotonic()
        for number in range(args.startup_collections):
            collection = 900_000_000_000 + number * 10
            channels = [f"by-dev-rootcoord-dml_{(2 * number + shard) % 16}_{collection}v{shard}" for shard in range(2)]
            result, _ = tools.run_json("synth-meta", [
                "--etcd", cluster.etcd_endpoint, "--root", META_ROOT, "--collection", str(collection),
                "--partition", str(collection + 1), "--channels", ",".join(channels),
                "--segments", str(per_collection), "--fields", FIELDS, "--pk-field", str(PK_FIELD),
                "--rows", str(SYNTH_ROWS), "--start-id", str(next_id)])
            next_id = result["next_id"]
        synth_s = time.monotonic() - synth_started
        total = per_collection * args.startup_collections
        print(f"  startup: {total} segments written in {synth_s:.1f}s", file=sys.stderr)
        for impl in impls:
            results[impl].update({"segments": total, "synth_seconds": synth_s})
        for run in range(args.runs):
            for impl in impls:
                try:
                    elapsed, rss = startup.one_run(cluster, impl, commands[impl], run)
                    results[impl]["runs"].append({"healthy_s": elapsed, "rss_kib": rss})
                    rss_text = f"{rss / 1024:.1f} MiB" if rss else "n/a"
                    print(f"  startup run {run + 1}/{args.runs} {impl:5} start->Healthy {elapsed * 1000:8.1f} ms  "
                          f"RSS {rss_text}", file=sys.stderr)
                except Exception as err:  # noqa: BLE001
                    results[impl]["runs"].append({"error": f"{type(err).__name__}: {err}"})
                    traceback.print_exc()
    finally:
        cluster.stop()
    return results


# ---------------------------------------------------------------------------------------------
# report


def short_error(message: str, limit: int = 160) -> str:
    """The end of an error message (Milvus puts its stack first and the reason last), one line."""
    flat = " ".join(message.split()).replace("|", "/")
    return flat if len(flat) <= limit else "..." + flat[-limit:]


def cell(value, fmt="{:.2f}"):
    return "n/a" if value is None else fmt.format(value)


def print_report(results: dict, args, tools: Tools) -> None:
    impls = list(results)
    print(f"\n# DataCoord data path: {' vs '.join(impls)}\n")
    print(f"command: `{shlex.join([sys.executable, *sys.argv])}`\n")
    if "assign" in args.parts:
        print(f"## AssignSegmentID ({args.rows} rows/call, {args.duration} per level, 2 vchannels round-robin)\n")
        print("| impl | concurrency | calls | ok/s | p50 ms | p99 ms | errors | empty | server CPU s | client CPU s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for impl in impls:
            levels = results[impl].get("assign") or {"error": results[impl].get("error", "not run")}
            if isinstance(levels, dict):
                print(f"| {impl} | error: {short_error(levels['error'])} |||||||||")
                continue
            for level in levels:
                latency = level.get("latency") or {}
                print(f"| {impl} | {level['concurrency']} | {level['calls']} | {level['ok_per_sec']:.0f} | "
                      f"{cell(latency.get('p50_ms'))} | {cell(latency.get('p99_ms'))} | {level['errors']} | "
                      f"{level['empty']} | {cell(level['server_cpu_s'], '{:.1f}')} | "
                      f"{cell(level['client_cpu_s'], '{:.1f}')} |")
        for impl in impls:
            for level in results[impl].get("assign") or []:
                if isinstance(level, dict) and level.get("errors"):
                    print(f"\n{impl} c={level['concurrency']} errors: {level['error_messages']}")
        print()
    if "recovery" in args.parts:
        print(f"## GetRecoveryInfoV2 after restart with {args.recovery_segments} synthetic Flushed segments "
              f"({args.recovery_calls} sequential calls)\n")
        print("| impl | ok | errors | p50 ms | p99 ms | segments in answer | channels | full answer after Healthy s | server CPU s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for impl in impls:
            report = results[impl].get("recovery") or {"error": results[impl].get("error", "not run")}
            if "error" in report:
                print(f"| {impl} | error: {short_error(report['error'])} ||||||||")
                continue
            latency = report.get("latency") or {}
            segments = "n/a" if report["segments_max"] is None else (
                f"{report['segments_min']}" if report["segments_min"] == report["segments_max"]
                else f"{report['segments_min']}..{report['segments_max']}")
            print(f"| {impl} | {report['ok']} | {report['errors']} | {cell(latency.get('p50_ms'))} | "
                  f"{cell(latency.get('p99_ms'))} | {segments} | {cell(report['channels_max'], '{}')} | "
                  f"{cell(report['full_answer_after_healthy_s'], '{:.1f}')} | {cell(report['server_cpu_s'], '{:.1f}')} |")
            if report["errors"]:
                print(f"\n{impl} errors: {report['error_messages']}\n")
        print()
    if "startup" in args.parts:
        any_impl = next(iter(results.values())).get("startup", {})
        print(f"## Startup with {any_impl.get('segments', '?')} Flushed segments "
              f"({args.startup_collections} collections x 2 channels, etcd only, {args.runs} runs each)\n")
        print("| impl | start->Healthy ms median | min | max | RSS MiB median | min | max | failed runs |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for impl in impls:
            runs = (results[impl].get("startup") or {}).get("runs", [])
            good = [r for r in runs if "error" not in r]
            times = [r["healthy_s"] * 1000 for r in good]
            rss = [r["rss_kib"] / 1024 for r in good if r["rss_kib"]]

            def stats(values):
                if not values:
                    return "n/a | n/a | n/a"
                return f"{statistics.median(values):.0f} | {min(values):.0f} | {max(values):.0f}"

            print(f"| {impl} | {stats(times)} | {stats(rss)} | {len(runs) - len(good)} |")
        print()
    print("## Tool commands\n")
    for command in tools.commands:
        if "--calls 1 " in command + " ":
            continue  # readiness probes
        print(f"    {command}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", action="append", choices=["ours", "go"],
                        help="implementations (default: both; ours only if built)")
    parser.add_argument("--datacoord-bin", help="our binary (default $DATACOORD_BIN or target/debug/...)")
    parser.add_argument("--bench-bin-dir", default=str(ROOT / "target" / "debug"),
                        help="where synth-meta, assign-bench, recovery-bench are")
    parser.add_argument("--parts", default="assign,recovery,startup",
                        type=lambda text: [p for p in text.split(",") if p])
    parser.add_argument("--duration", default="10s", help="assign-bench time per concurrency level")
    parser.add_argument("--concurrency", default="1,8,32", type=lambda text: [int(c) for c in text.split(",")])
    parser.add_argument("--rows", type=int, default=100, help="rows per AssignSegmentID call")
    parser.add_argument("--recovery-segments", type=int, default=10_000)
    parser.add_argument("--recovery-calls", type=int, default=200)
    parser.add_argument("--startup-segments", type=int, default=100_000)
    parser.add_argument("--startup-collections", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3, help="startup runs per implementation")
    parser.add_argument("--free-ports", action="store_true",
                        help="parts assign/recovery: free loopback ports instead of the fixed 13333, 19530, ... "
                             "(lets the benchmark run beside another cluster)")
    args = parser.parse_args()
    unknown = set(args.parts) - {"assign", "recovery", "startup"}
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}")

    our_bin = Path(args.datacoord_bin) if args.datacoord_bin else cluster_mod.default_datacoord_bin()
    impls = args.impl or (["go", "ours"] if our_bin.exists() else ["go"])
    if "ours" in impls and not our_bin.exists():
        parser.error(f"{our_bin} does not exist")
    commands = {"ours": cluster_mod.our_datacoord_cmd(our_bin), "go": cluster_mod.GO_DATACOORD_CMD}
    tools = Tools(Path(args.bench_bin_dir))

    results: dict = {impl: {"impl": impl, "command": commands[impl]} for impl in impls}
    if {"assign", "recovery"} & set(args.parts):
        for impl in impls:
            results[impl].update(cluster_parts(impl, commands[impl], tools, args))
    if "startup" in args.parts:
        for impl, startup_result in part_startup(impls, commands, tools, args).items():
            results[impl]["startup"] = startup_result

    for impl in impls:
        out = ROOT / ".work" / f"bench-datapath-{impl}.json"
        results[impl]["argv"] = sys.argv
        out.write_text(json.dumps(results[impl], indent=2))
        print(f"wrote {out}", file=sys.stderr)
    print_report(results, args, tools)
    return 1 if any(has_error(result) for result in results.values()) else 0


def has_error(value) -> bool:
    """Whether any part of a result recorded an error (the exit code says so)."""
    if isinstance(value, dict):
        return "error" in value or any(has_error(v) for v in value.values())
    if isinstance(value, list):
        return any(has_error(v) for v in value)
    return False


if __name__ == "__main__":
    sys.exit(main())
