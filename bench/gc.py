#!/usr/bin/env python3
"""GC benchmark: one garbage-collection pass over --objects orphan binlogs, Go DataCoord vs ours,
with the DataCoord process's wall time, CPU time and memory for that pass.

For each implementation a fresh cluster (scripts/cluster.py, free loopback ports, local storage)
runs it as the active DataCoord with short GC settings for every process: dataCoord.gc.interval
--interval (1 s), gc.missingTolerance 30 s, gc.dropTolerance 5 s. Then:

1. A one-shard collection (auto compaction off) gets --segments Flushed segments of ~--rows rows
   (insert + Flush, scripts/compaction.py flush_batches), so meta references real binlogs.
2. GC is paused (GcControl Pause, 3600 s) and --objects orphans are planted in the collection's
   real partition under segment IDs no record has: per ghost segment 4 fields × --logs-per-field
   insert logs, one stats log and one delta log (`{storage}/insert_log/{coll}/{part}/{seg}/{field}/{log}`,
   `stats_log/...`, `delta_log/{coll}/{part}/{seg}/{log}`; local storage in 2.3.5 has no rootPath
   component), a few bytes each, mtime two days ago (os.utime), written by a thread pool.
3. The DataCoord's idle CPU is sampled for --baseline seconds, its VmHWM is reset (writing 5 to
   /proc/PID/clear_refs), then GcControl Resume starts the clock: the next tick (at most --interval
   later) runs one pass (clearEtcd, index steps, scan, index files). Done when every planted file
   is gone (every 0.05 s, the leaf directories in listing order, from the first one not yet
   seen empty: only GC touches them, so an empty one stays empty). Measured at that moment: wall seconds, DataCoord CPU seconds
   (utime+stime, /proc/PID/stat), VmHWM (peak RSS since the reset), VmRSS before and after.
   Both implementations log "scan file to do garbage collection" at the end of each scan, with
   the objects listed and removed: from those lines come how many scans it took (1 = one pass)
   and when the last of them ended (its log timestamp − the resume).
4. Every log file a segment record in etcd references (and every Finished index file) must still
   exist; no planted file may be left (every leaf directory listed again).

  bench/gc.py [--impl go|ours|both] [--datacoord-bin PATH] [--objects 100000] [--logs-per-field 2]
              [--segments 3] [--rows 1000] [--interval 1] [--threads 4] [--timeout 900]
Ours is $DATACOORD_BIN (or --datacoord-bin; default target/debug/milvus-datacoord); build it with
`cargo build --release -p milvus-datacoord` and pass target/release/milvus-datacoord.
Results: a markdown table on stdout and .work/bench-gc-<impl>.json; exit 1 if any run failed.
"""

from __future__ import annotations

import argparse
import calendar
import concurrent.futures
import dataclasses
import json
import os
import random
import re
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import cluster as cluster_mod  # noqa: E402
import compaction as cp  # noqa: E402
import datapath  # noqa: E402

ALIAS = "bench-gc"
MISSING_TOLERANCE = 30
DROP_TOLERANCE = 5
OLD = 2 * 24 * 3600  # seconds: far past any tolerance
# Field IDs of a collection's insert logs: RowID, Timestamp, then the user fields (pk, vector).
INSERT_FIELDS = (0, 1, 100, 101)
PK_FIELD = 100
SCAN_SUMMARY = "scan file to do garbage collection"
POLL = 0.05


@dataclasses.dataclass
class Orphans:
    """Planted objects: their leaf directories in listing order (insert, stats, delta; names sorted)."""

    dirs: list[Path]
    files: int
    segments: int
    seconds: float


def ghost_layout(storage: Path, coll: int, part: int, count: int, logs_per_field: int) -> list[tuple[Path, list[str]]]:
    """(leaf directory, file names) of `count` orphan objects spread over ghost segments."""
    start = random.randrange(10**15, 8 * 10**15)  # 16 digits: no real ID (~4.5e17) and sorted as text
    per_segment = len(INSERT_FIELDS) * logs_per_field + 2
    layout: list[tuple[Path, list[str]]] = []
    left = count
    for n in range(-(-count // per_segment)):
        seg = start + n * 1000
        logs = iter(range(seg + 1, seg + 1000))
        groups = [(storage / "insert_log" / str(coll) / str(part) / str(seg) / str(field),
                   [str(next(logs)) for _ in range(logs_per_field)]) for field in INSERT_FIELDS]
        groups.append((storage / "stats_log" / str(coll) / str(part) / str(seg) / str(PK_FIELD), [str(next(logs))]))
        groups.append((storage / "delta_log" / str(coll) / str(part) / str(seg), [str(next(logs))]))
        for directory, names in groups:
            names = names[:left]
            if names:
                layout.append((directory, names))
                left -= len(names)
    return layout


def _plant_dir(directory: Path, names: list[str], stamp: float) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = os.path.join(directory, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b"orphan\n")
        finally:
            os.close(fd)
        os.utime(path, (stamp, stamp))


def plant_orphans(storage: Path, coll: int, part: int, args) -> Orphans:
    layout = ghost_layout(storage, coll, part, args.objects, args.logs_per_field)
    stamp = time.time() - OLD
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
        for future in [pool.submit(_plant_dir, d, names, stamp) for d, names in layout]:
            future.result()
    seconds = time.monotonic() - started
    family = {"insert_log": 0, "stats_log": 1, "delta_log": 2}
    dirs = sorted((d for d, _ in layout),
                  key=lambda d: (family[d.relative_to(storage).parts[0]], d.relative_to(storage).parts[1:]))
    files = sum(len(names) for _, names in layout)
    segments = len({d.relative_to(storage).parts[3] for d in dirs})
    return Orphans(dirs, files, segments, round(seconds, 2))


class GoneWatch:
    """Tells cheaply whether every planted file is gone: a directory found empty stays empty (only GC
    touches them), so each poll looks at the first directory not yet seen empty."""

    def __init__(self, dirs: list[Path]):
        self.dirs = dirs
        self.next = 0

    def all_gone(self) -> bool:
        while self.next < len(self.dirs):
            try:
                with os.scandir(self.dirs[self.next]) as entries:
                    if next(entries, None) is not None:
                        return False
            except FileNotFoundError:
                pass
            self.next += 1
        return True


def status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


def reset_peak_rss(pid: int) -> bool:
    """VmHWM := VmRSS (Linux ≥ 4.0), so the next VmHWM is the pass's own peak."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def log_size(proc) -> int:
    try:
        return os.path.getsize(proc.log)
    except OSError:
        return 0


@dataclasses.dataclass
class ScanSummary:
    """One "scan file to do garbage collection" line: when it was logged, objects listed and removed."""

    unix: float
    listed: int
    removed: int


_GO_TIME = re.compile(r"^\[(\d{4})/(\d\d)/(\d\d) (\d\d:\d\d:\d\d\.\d+) \+00:00\]")
_OUR_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d:\d\d:\d\d\.\d+)Z")


def _utc(match: re.Match) -> float:
    year, month, day, clock = match.groups()
    hours, minutes, seconds = clock.split(":")
    return calendar.timegm((int(year), int(month), int(day), int(hours), int(minutes), 0)) + float(seconds)


def parse_summary(line: str) -> ScanSummary | None:
    """2.3.5: `[time] ... [total=N] [valid=N] [missing=N] [removedKeys="[k1,k2,...]"]` (text log);
    ours: `time  INFO ... listed=N ... removed=N ...` (tracing fmt)."""
    if (match := _GO_TIME.match(line)) and (total := re.search(r"\[total=(\d+)\]", line)):
        keys = line.split("[removedKeys=", 1)[1] if "[removedKeys=" in line else ""
        removed = len(re.findall(r"_log/", keys))
        return ScanSummary(_utc(match), int(total.group(1)), removed)
    if (match := _OUR_TIME.match(line)) and (listed := re.search(r"\blisted=(\d+)", line)):
        removed = re.search(r"\bremoved=(\d+)", line)
        return ScanSummary(_utc(match), int(listed.group(1)), int(removed.group(1)) if removed else 0)
    return None


def scan_summaries(proc, offset: int) -> list[ScanSummary]:
    """The scan summaries the process logged after byte `offset` of its log."""
    with open(proc.log, "rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    found = (parse_summary(line) for line in text.splitlines() if SCAN_SUMMARY in line)
    return [s for s in found if s is not None]


def remaining_files(dirs: list[Path]) -> int:
    count = 0
    for directory in dirs:
        try:
            count += sum(1 for _ in os.scandir(directory))
        except FileNotFoundError:
            pass
    return count


def gc_pass(cluster, args) -> dict:
    from pymilvus import connections

    endpoint, storage = cluster.etcd_endpoint, cluster.storage_dir
    connections.connect(ALIAS, host="127.0.0.1", port=str(cluster.ports.proxy), timeout=60)
    try:
        workload = cp.new_workload(ALIAS, cluster.proxy_address, "bench_gc", seed=11, auto_compaction=False)
        rounds = [[("_default", args.rows + i)] for i in range(args.segments)]
        segments = cp.flush_batches(workload, cluster.proxy_address, endpoint, rounds, cp.Ledger())
    finally:
        connections.disconnect(ALIAS)
    coll, part = workload.collection_id, workload.partition_ids["_default"]
    referenced = cp.referenced_log_files(endpoint, storage)
    if not referenced or not all((storage / key).is_file() for key in referenced):
        raise AssertionError(f"expected real binlogs before the pass: {sorted(map(str, referenced))[:5]}")

    address = datapath.active_datacoord(endpoint)
    if address != cluster.datacoord_address:
        raise AssertionError(f"the active DataCoord is {address}, not the one under test")
    cp.gc_control(address, cp.GC_PAUSE, duration=3600)
    orphans = plant_orphans(storage, coll, part, args)
    print(f"  planted {orphans.files} orphans ({orphans.segments} ghost segments, {len(orphans.dirs)} dirs) "
          f"in {orphans.seconds} s", file=sys.stderr)

    datacoord = cluster.procs["datacoord"]
    pid = datacoord.pid
    idle_before = datacoord.cpu_seconds()
    time.sleep(args.baseline)
    idle_cpu = (datacoord.cpu_seconds() - idle_before) / args.baseline
    watch = GoneWatch(orphans.dirs)
    if watch.all_gone():
        raise AssertionError("GC removed the orphans while paused")
    peak_reset = reset_peak_rss(pid)
    rss_before = status_kib(pid, "VmRSS")
    offset = log_size(datacoord)
    cpu_before = datacoord.cpu_seconds()
    started, started_unix = time.monotonic(), time.time()
    cp.gc_control(address, cp.GC_RESUME)
    sampled_peak = rss_before or 0
    while not watch.all_gone():
        if time.monotonic() - started > args.timeout:
            raise AssertionError(f"{remaining_files(orphans.dirs)} of {orphans.files} orphans left after "
                                 f"{args.timeout:.0f}s; scans logged: {scan_summaries(datacoord, offset)}")
        if not datacoord.alive():
            raise RuntimeError(f"the DataCoord exited during the pass; log {datacoord.log}:\n{datacoord.log_tail()}")
        sampled_peak = max(sampled_peak, status_kib(pid, "VmRSS") or 0)
        time.sleep(POLL)
    wall = time.monotonic() - started
    cpu_after = datacoord.cpu_seconds()
    peak = status_kib(pid, "VmHWM")
    rss_after = status_kib(pid, "VmRSS")

    # The summary of the pass that removed the last orphan is logged once its scan ends.
    def all_logged():
        found = scan_summaries(datacoord, offset)
        return found if sum(x.removed for x in found) >= orphans.files else None

    try:
        summaries = cluster_mod.wait_for("scan summaries counting every orphan", all_logged, 60, interval=0.2)
    except TimeoutError:
        summaries = scan_summaries(datacoord, offset)
    removed, passes = 0, []
    for summary in summaries:
        if removed >= orphans.files:
            break
        passes.append(summary)
        removed += summary.removed
    cp.gc_control(address, cp.GC_PAUSE, duration=3600)  # nothing more runs while we check
    left = remaining_files(orphans.dirs)
    if left:
        raise AssertionError(f"{left} planted files still there after the watch said none")
    kept = cp.check_referenced_files_exist(endpoint, storage)
    return {
        "collection_id": coll, "partition_id": part, "flushed_segments": len(segments),
        "referenced_log_files": len(referenced), "orphans": orphans.files, "ghost_segments": orphans.segments,
        "orphan_dirs": len(orphans.dirs), "plant_seconds": orphans.seconds, "plant_threads": args.threads,
        "seconds_to_all_gone": round(wall, 2),
        "seconds_to_scan_logged": round(passes[-1].unix - started_unix, 2) if passes else None,
        "datacoord_cpu_seconds": round(cpu_after - cpu_before, 2),
        "idle_cpu_seconds_per_second": round(idle_cpu, 3),
        "vm_rss_before_mib": mib(rss_before), "vm_hwm_during_mib": mib(peak),
        "vm_hwm_reset": peak_reset, "sampled_rss_peak_mib": mib(sampled_peak),
        "vm_rss_after_mib": mib(rss_after),
        "scans": len(passes), "removed_by_scans": [p.removed for p in passes],
        "listed_by_scans": [p.listed for p in passes],
        "referenced_files_check": kept,
    }


def run_impl(impl: str, cmd: list[str], args) -> dict:
    ports = cluster_mod.Ports(**{f.name: cluster_mod.free_port() for f in dataclasses.fields(cluster_mod.Ports)})
    cluster = cluster_mod.Cluster(f"bench-gc-{impl}", cmd, ports=ports)
    cluster.config_overrides.update({
        "dataCoord.gc.interval": args.interval,
        "dataCoord.gc.missingTolerance": MISSING_TOLERANCE,
        "dataCoord.gc.dropTolerance": DROP_TOLERANCE,
    })
    result: dict = {"impl": impl, "command": cmd, "config_overrides": dict(cluster.config_overrides)}
    try:
        print(f"[{impl}] starting cluster ...", file=sys.stderr)
        cluster.start()
        result |= gc_pass(cluster, args)
    except Exception as err:  # noqa: BLE001 - reported; the other implementation still runs
        result["error"] = f"{type(err).__name__}: {err}"
        traceback.print_exc()
    finally:
        cluster.stop()
    print(f"[{impl}] {result}", file=sys.stderr)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", action="append", choices=["go", "ours", "both"])
    parser.add_argument("--datacoord-bin", help="our binary (default $DATACOORD_BIN or target/debug/...)")
    parser.add_argument("--objects", type=int, default=100_000, help="orphan objects to plant")
    parser.add_argument("--logs-per-field", type=int, default=2, help="insert logs per field of a ghost segment")
    parser.add_argument("--segments", type=int, default=3, help="real Flushed segments in meta")
    parser.add_argument("--rows", type=int, default=1000, help="rows of the smallest real segment")
    parser.add_argument("--interval", type=int, default=1, help="dataCoord.gc.interval in s")
    parser.add_argument("--threads", type=int, default=4, help="planting threads")
    parser.add_argument("--baseline", type=float, default=3.0, help="seconds of idle CPU sampled before the pass")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    impls = []
    for impl in args.impl or ["both"]:
        impls += ["go", "ours"] if impl == "both" else [impl]
    impls = list(dict.fromkeys(impls))
    our_bin = Path(args.datacoord_bin) if args.datacoord_bin else cluster_mod.default_datacoord_bin()
    if not our_bin.is_absolute():
        our_bin = ROOT / our_bin
    if "ours" in impls and not os.access(our_bin, os.X_OK):
        parser.error(f"our DataCoord binary {our_bin} is not built")
    commands = {"ours": cluster_mod.our_datacoord_cmd(our_bin), "go": cluster_mod.GO_DATACOORD_CMD}
    results = {}
    for impl in impls:
        results[impl] = run_impl(impl, commands[impl], args)
        results[impl]["argv"] = sys.argv
        out = ROOT / ".work" / f"bench-gc-{impl}.json"
        out.write_text(json.dumps(results[impl], indent=2))
        print(f"wrote {out}", file=sys.stderr)

    print(f"\n## GC pass: {args.objects} orphan binlogs, gc.interval {args.interval} s, local storage\n")
    print("| impl | orphans (ghost segments) | plant s | seconds to all gone | scan logged at s | scans | "
          "DataCoord CPU s | idle CPU s/s | VmRSS before MiB | VmHWM during MiB | VmRSS after MiB | "
          "referenced files |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    errors = False
    for impl, row in results.items():
        if "error" in row:
            errors = True
            print(f"| {impl} | error: {row['error'][:160]} |" + " |" * 10)
            continue
        hwm = f"{row['vm_hwm_during_mib']}" + ("" if row["vm_hwm_reset"] else " (lifetime)")
        print(f"| {impl} | {row['orphans']} ({row['ghost_segments']}) | {row['plant_seconds']} | "
              f"{row['seconds_to_all_gone']} | {row['seconds_to_scan_logged']} | {row['scans']} | "
              f"{row['datacoord_cpu_seconds']} | {row['idle_cpu_seconds_per_second']} | {row['vm_rss_before_mib']} | "
              f"{hwm} | {row['vm_rss_after_mib']} | {row['referenced_log_files']} kept |")
    print(f"\ncommand: {' '.join(sys.argv)}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
