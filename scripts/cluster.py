#!/usr/bin/env python3
"""A real Milvus 2.3.5 cluster whose active DataCoord is the one under test.

Topology (all on 127.0.0.1, everything under .work/cluster/<name>/):
  etcd        Debian's etcd 3.4 on free loopback ports, its own data dir
  datacoord   the DataCoord under test (ours by default, or any command) on dataCoord.port 13333,
              enableActiveStandby true; it must hold `by-dev/meta/session/datacoord` first
  standalone  `milvus run standalone` (DEPLOY_MODE=STANDALONE) whose own Go DataCoord listens on 13334
              with enableActiveStandby true, so it stays StandBy while ours holds the active key and
              takes over when ours dies
  s3          only with storage "s3" (`--storage s3`, E2E_STORAGE=s3): target/debug/s3-test-server on a
              free loopback port, its buckets under <dir>/s3; every process gets common.storageType
              minio and minio.* pointing at it (bucket milvus-e2e, rootPath files)

Set CLUSTER_FREE_PORTS=1 to pick every port free (several clusters side by side).
Every process gets its own working dir with `configs/milvus.yaml` (rendered from the wheel's
template) and `configs/glog.conf`; MILVUSCONF points at that dir and METRICS_PORT is distinct per
process. PIDs are recorded in pid files (pid and /proc start time, so a recycled PID is never
signalled) and only those processes are ever stopped.

CLI:
  cluster.py start [--name dev] [--go | --datacoord-bin PATH | --datacoord-cmd 'CMD ...'] [--storage local|s3]
  cluster.py status [--name dev]
  cluster.py stop [--name dev]
  cluster.py kill datacoord|standalone|etcd [--name dev] [--signal 9]
The datacoord command may use {config} (path of its milvus.yaml), {workdir}, {milvus} (Go binary)
and {alias} placeholders.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import milvus_grpc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MILVUS_DIR = ROOT / ".work" / "milvus"
# The real Milvus 2.3.5 (scripts/fetch-milvus.sh); its shared libraries sit in ../lib beside bin/.
MILVUS_BIN = Path(os.environ.get("MILVUS_BINARY") or MILVUS_DIR / "bin" / "milvus").resolve()
MILVUS_LIB = MILVUS_BIN.parent.parent / "lib"
CLUSTERS_DIR = ROOT / ".work" / "cluster"
SESSION_ROOT = "by-dev/meta/session"
DATACOORD_SESSION_KEY = f"{SESSION_ROOT}/datacoord"

# Runs the Go DataCoord alone (the stand-in for ours, and the benchmark's reference).
GO_DATACOORD_CMD = ["{milvus}", "run", "mixture", "-datacoord=true", "-alias={alias}"]


def default_datacoord_bin() -> Path:
    return Path(os.environ.get("DATACOORD_BIN", ROOT / "target" / "debug" / "milvus-datacoord"))


def our_datacoord_cmd(binary: Path | str | None = None) -> list[str]:
    return [str(binary or default_datacoord_bin()), "--config", "{config}"]


def bench_implementations(bench: str, args, run_impl) -> dict[str, dict]:
    """A benchmark's side-by-side run: `run_impl(impl, datacoord_cmd, args)` for each `--impl`
    (default Go, then ours from `--datacoord-bin` or the default build); each result, with the
    command line, is written to `.work/bench-<bench>-<impl>.json`."""
    our_bin = Path(args.datacoord_bin) if args.datacoord_bin else default_datacoord_bin()
    commands = {"ours": our_datacoord_cmd(our_bin), "go": GO_DATACOORD_CMD}
    results = {}
    for impl in args.impl or ["go", "ours"]:
        results[impl] = run_impl(impl, commands[impl], args)
        results[impl]["argv"] = sys.argv
        out = ROOT / ".work" / f"bench-{bench}-{impl}.json"
        out.write_text(json.dumps(results[impl], indent=2))
        print(f"wrote {out}", file=sys.stderr)
    return results


@dataclasses.dataclass
class Ports:
    """gRPC ports are the brief's fixed ones; 0 means "pick a free loopback port at start"."""

    datacoord: int = 13333
    standby_datacoord: int = 13334
    proxy: int = 19530
    proxy_internal: int = 19529
    rootcoord: int = 53100
    querycoord: int = 19531
    querynode: int = 21123
    indexnode: int = 21121
    datanode: int = 21124
    etcd: int = 0
    etcd_peer: int = 0
    metrics_datacoord: int = 0
    metrics_standalone: int = 0
    s3: int = 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    # Milvus listens on all interfaces, so a clash on any of them matters. SO_REUSEADDR as servers
    # set it: connections in TIME_WAIT from a killed process must not count as "in use".
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", port))
        except OSError:
            return True
        return False


# ---------------------------------------------------------------------------------------------
# Config rendering

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)(?:\((\w+)\))?\s*(?::\s*(.*?))?\s*\}\}")


def render_template(text: str, values: dict[str, object]) -> str:
    """Replaces `{{ name(type): default }}` placeholders: a given value, else the default, else ''."""

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(3)
        if name in values:
            return str(values[name])
        return default if default is not None else ""

    return _PLACEHOLDER.sub(substitute, text)


def set_key(config: dict, dotted: str, value: object) -> None:
    node = config
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def milvus_config(etcd_port: int, storage_dir: Path, workdir: Path, ports: Ports, **overrides) -> dict:
    """The rendered milvus.yaml as a dict, with the topology settings every process shares."""
    template = (MILVUS_DIR / "config.yaml.template").read_text()
    text = render_template(
        template,
        {
            "etcd_port": etcd_port,
            "etcd_data_dir": workdir / "embed-etcd-unused",
            "local_storage_dir": storage_dir,
            "rocksmq_data_dir": workdir / "rdb_data",
            "system_log_path": "",
            "root_coord_port": ports.rootcoord,
            "proxy_port": ports.proxy,
            "proxy_internal_port": ports.proxy_internal,
            "query_coord_port": ports.querycoord,
            "query_node_port": ports.querynode,
            "index_node_port": ports.indexnode,
            "data_node_port": ports.datanode,
            "data_coord_port": ports.datacoord,
        },
    )
    config = yaml.safe_load(text)
    set_key(config, "etcd.use.embed", False)
    set_key(config, "etcd.endpoints", f"127.0.0.1:{etcd_port}")
    for section in ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode"):
        set_key(config, f"{section}.ip", "127.0.0.1")
    set_key(config, "common.storageType", "local")
    set_key(config, "localStorage.path", str(storage_dir))
    set_key(config, "dataCoord.enableActiveStandby", True)
    # Milvus's default waits up to 30 min for a graceful stop; the harness falls back to SIGKILL anyway.
    set_key(config, "common.gracefulStopTimeout", 10)
    for dotted, value in overrides.items():
        set_key(config, dotted, value)
    return config


def write_workdir(workdir: Path, config: dict) -> Path:
    """Lays out `<workdir>/configs/{milvus.yaml,glog.conf}`; returns the milvus.yaml path."""
    configs = workdir / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    path = configs / "milvus.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copy(MILVUS_DIR / "glog.conf", configs / "glog.conf")
    return path


# ---------------------------------------------------------------------------------------------
# etcd (v3 JSON gateway, so no client library is needed)


def etcd_call(endpoint: str, api: str, body: dict, timeout: float = 3.0) -> dict:
    request = urllib.request.Request(
        f"http://{endpoint}/v3/{api}", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def etcd_get(endpoint: str, key: str) -> bytes | None:
    answer = etcd_call(endpoint, "kv/range", {"key": _b64(key)})
    kvs = answer.get("kvs") or []
    return base64.b64decode(kvs[0].get("value", "")) if kvs else None


def etcd_delete(endpoint: str, key: str) -> None:
    etcd_call(endpoint, "kv/deleterange", {"key": _b64(key)})


def etcd_healthy(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{endpoint}/health", timeout=1) as response:
            return json.loads(response.read()).get("health") == "true"
    except (OSError, ValueError):
        return False


def session_of(endpoint: str, role: str = "datacoord") -> dict | None:
    """The decoded session JSON at `by-dev/meta/session/<role>`, or None."""
    try:
        raw = etcd_get(endpoint, f"{SESSION_ROOT}/{role}")
    except OSError:
        return None
    return json.loads(raw) if raw else None


# ---------------------------------------------------------------------------------------------
# HTTP probes


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body); (0, error) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")
    except OSError as err:
        return 0, str(err)


# ---------------------------------------------------------------------------------------------
# Processes


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime), counted after the parenthesised command name.
    return stat.rsplit(")", 1)[1].split()[19]


@dataclasses.dataclass
class Proc:
    """A process we started, identified by PID and its start time."""

    name: str
    pid: int
    start_time: str
    log: str

    def alive(self) -> bool:
        if _start_time(self.pid) != self.start_time:
            return False
        try:
            state = Path(f"/proc/{self.pid}/status").read_text().split("State:")[1].split()[0]
        except (OSError, IndexError):
            return False
        return state != "Z"

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def reap(self) -> None:
        child = _CHILDREN.get(self.pid)
        if child is not None:
            child.poll()  # reaps through Popen, which keeps the exit code
            return
        try:
            os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pass

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code once the process (a child of this Python process) ended; None on timeout."""
        child = _CHILDREN.get(self.pid)
        if child is None:
            return None
        try:
            return child.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds."""
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.alive() and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.1)
        if self.alive():
            self.signal(signal.SIGKILL)
            while self.alive():
                self.reap()
                time.sleep(0.05)
        self.reap()

    def vm_rss_kib(self) -> int | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the process has used so far."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(Path(self.log).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# Popen objects of the processes this Python process started: keeping them referenced stops
# subprocess's own cleanup from reaping them (and their exit codes) behind our back.
_CHILDREN: dict[int, subprocess.Popen] = {}


def spawn(name: str, argv: list[str], cwd: Path, env: dict[str, str], pid_dir: Path) -> Proc:
    cwd.mkdir(parents=True, exist_ok=True)
    log_path = cwd / f"{name}.log"
    with open(log_path, "ab") as log:
        child = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    _CHILDREN[child.pid] = child
    proc = Proc(name, child.pid, _start_time(child.pid) or "", str(log_path))
    pid_dir.mkdir(parents=True, exist_ok=True)
    (pid_dir / f"{name}.pid").write_text(json.dumps(dataclasses.asdict(proc)))
    return proc


def wait_for(what: str, check, timeout: float, procs: list[Proc] = (), interval: float = 0.2):
    """Polls `check()` until it returns a truthy value; fails early when a watched process died."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        for proc in procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited while waiting for {what}; log {proc.log}:\n"
                                   f"{proc.log_tail()}")
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name} ({p.log}) ---\n{p.log_tail(20)}" for p in procs)
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")
        time.sleep(interval)


# Variables a cluster process inherits. Milvus (and our config loader, like it) reads every other
# environment variable as a config override: an ETCD_ENDPOINTS exported for the Rust tests would
# point the whole cluster at the wrong etcd.
INHERITED_ENV = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "RUST_LOG", "RUST_BACKTRACE")


def base_env(workdir: Path, metrics_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in INHERITED_ENV}
    env["MILVUSCONF"] = str(workdir / "configs")
    env["METRICS_PORT"] = str(metrics_port)
    lib = str(MILVUS_LIB)
    env["LD_LIBRARY_PATH"] = lib + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    return env


# ---------------------------------------------------------------------------------------------
# Object storage: local dir or the S3 test server, behind one small API for the tests

S3_SERVER_BIN = Path(os.environ.get("S3_TEST_SERVER_BIN") or ROOT / "target" / "debug" / "s3-test-server")
S3_BUCKET = "milvus-e2e"
S3_ROOT_PATH = "files"
STORAGE_KINDS = ("local", "s3")


@dataclasses.dataclass(frozen=True)
class StoredObject:
    """One object of the cluster's storage; `key` is relative to the storage root
    (`insert_log/1/2/3/100/4`), the same string on every backend."""

    key: str
    size: int
    mtime: float


class LocalStorage:
    """`common.storageType: local`: objects are files under `localStorage.path`."""

    kind = "local"

    def __init__(self, root: Path):
        self.root = root

    def where(self, key: str) -> str:
        return str(self.root / key)

    def full_path(self, key: str) -> str:
        """The path Milvus records for `key` (e.g. in GetIndexInfos): under localStorage.path."""
        return str(self.root / key)

    def key_of(self, full_path: str) -> str:
        """The inverse of `full_path`."""
        return Path(full_path).relative_to(self.root).as_posix()

    def list(self, prefix: str = "") -> dict[str, StoredObject]:
        """Every object whose key starts with `prefix` (a string prefix, as in Milvus)."""
        found = {}
        # Walk only the directory the prefix names (`index_files/12` -> index_files/).
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.exists():
            return found
        for path in base.rglob("*"):
            key = path.relative_to(self.root).as_posix()
            if path.is_file() and key.startswith(prefix):
                stat = path.stat()
                found[key] = StoredObject(key, stat.st_size, stat.st_mtime)
        return found

    def exists(self, key: str) -> bool:
        return (self.root / key).is_file()

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def put(self, key: str, data: bytes, age_seconds: float = 0.0) -> str:
        """Writes an object whose last-modified time is `age_seconds` ago; returns `key`."""
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if age_seconds:
            stamp = time.time() - age_seconds
            os.utime(path, (stamp, stamp))
        return key

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)


def as_storage(where: "Path | LocalStorage | S3Storage") -> "LocalStorage | S3Storage":
    """A storage view; a plain Path (older callers passing `cluster.storage_dir`) is local storage."""
    return LocalStorage(where) if isinstance(where, Path) else where


class S3Storage:
    """`common.storageType: minio` on the s3-test-server: objects are keys `{rootPath}/{key}` in the
    bucket, reached through the S3 API (the `minio` client, path-style, SigV4)."""

    kind = "s3"

    def __init__(self, endpoint: str, access_key: str, secret_key: str, data_dir: Path,
                 bucket: str = S3_BUCKET, root_path: str = S3_ROOT_PATH):
        from minio import Minio

        self.endpoint, self.access_key, self.secret_key = endpoint, access_key, secret_key
        self.data_dir, self.bucket, self.root_path = data_dir, bucket, root_path
        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=False)

    def _name(self, key: str) -> str:
        return f"{self.root_path}/{key}" if self.root_path else key

    def where(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._name(key)}"

    def full_path(self, key: str) -> str:
        """The path Milvus records for `key`: the object name, `{rootPath}/{key}`."""
        return self._name(key)

    def key_of(self, full_path: str) -> str:
        """The inverse of `full_path`."""
        prefix = self._name("")
        if not full_path.startswith(prefix):
            raise ValueError(f"{full_path!r} is not under {prefix!r}")
        return full_path[len(prefix):]

    def list(self, prefix: str = "") -> dict[str, StoredObject]:
        """Every object whose key starts with `prefix`: a recursive ListObjectsV2, paged by the client
        (continuation tokens) when there are more than 1000."""
        from minio.error import S3Error

        found = {}
        strip = len(self._name(""))
        try:
            for item in self.client.list_objects(self.bucket, prefix=self._name(prefix), recursive=True):
                key = item.object_name[strip:]
                found[key] = StoredObject(key, item.size, item.last_modified.timestamp())
        except S3Error as err:
            if err.code != "NoSuchBucket":
                raise
        return found

    def exists(self, key: str) -> bool:
        from minio.error import S3Error

        try:
            self.client.stat_object(self.bucket, self._name(key))
            return True
        except S3Error as err:
            if err.code in ("NoSuchKey", "NoSuchBucket", "ResourceNotFound"):
                return False
            raise

    def read(self, key: str) -> bytes:
        response = self.client.get_object(self.bucket, self._name(key))
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def put(self, key: str, data: bytes, age_seconds: float = 0.0) -> str:
        """PutObject, then backdates it: S3 has no call that sets LastModified, and s3s-fs reports the
        backing file's mtime, so the file under the server's data dir gets the old mtime."""
        import io

        self.client.put_object(self.bucket, self._name(key), io.BytesIO(data), len(data))
        if age_seconds:
            backing = self.data_dir / self.bucket / self._name(key)
            stamp = time.time() - age_seconds
            os.utime(backing, (stamp, stamp))
        return key

    def delete(self, key: str) -> None:
        self.client.remove_object(self.bucket, self._name(key))

    def milvus_settings(self) -> dict[str, object]:
        """The milvus.yaml keys that point a Milvus process (Go or ours) at this bucket."""
        host, port = self.endpoint.rsplit(":", 1)
        return {
            "common.storageType": "minio",
            "minio.address": host,
            "minio.port": int(port),
            "minio.accessKeyID": self.access_key,
            "minio.secretAccessKey": self.secret_key,
            "minio.useSSL": False,
            "minio.bucketName": self.bucket,
            "minio.rootPath": self.root_path,
        }


# ---------------------------------------------------------------------------------------------
# The cluster


class Cluster:
    """etcd + the DataCoord under test + a standalone Milvus whose own DataCoord stands by."""

    def __init__(
        self,
        name: str = "dev",
        datacoord_cmd: list[str] | None = None,
        ports: Ports | None = None,
        session_ttl: int | None = None,
        healthy_first: bool = True,
        storage: str = "local",
    ):
        if storage not in STORAGE_KINDS:
            raise ValueError(f"storage {storage!r}: expected one of {STORAGE_KINDS}")
        self.name = name
        self.dir = CLUSTERS_DIR / name
        self.pid_dir = self.dir / "pids"
        self.storage_dir = self.dir / "storage"
        self.ports = ports or Ports()
        self.datacoord_cmd = datacoord_cmd or our_datacoord_cmd()
        # common.session.ttl for every process (Milvus default 30 s): how long a kill -9'd
        # coordinator's session key outlives it, i.e. the floor of a standby takeover.
        self.session_ttl = session_ttl
        # Holding the session key before the standalone starts is what makes ours the active one;
        # being Healthy first as well is the stricter default. False: wait for Healthy only after
        # the standalone is up (for a DataCoord that needs rootcoord to finish starting).
        self.healthy_first = healthy_first
        self.procs: dict[str, Proc] = {}
        # "local" (localStorage.path = storage_dir) or "s3" (the s3-test-server process, its files
        # under <dir>/s3); `storage` is the backend-neutral view tests list/read/put objects through.
        self.storage_kind = storage
        self.storage: LocalStorage | S3Storage = LocalStorage(self.storage_dir)
        # Extra milvus.yaml keys for every process of this cluster (e.g. a benchmark's switches).
        self.config_overrides: dict[str, object] = {}

    # -- addresses -------------------------------------------------------------------------
    @property
    def etcd_endpoint(self) -> str:
        return f"127.0.0.1:{self.ports.etcd}"

    @property
    def datacoord_address(self) -> str:
        return f"127.0.0.1:{self.ports.datacoord}"

    @property
    def standby_address(self) -> str:
        return f"127.0.0.1:{self.ports.standby_datacoord}"

    @property
    def proxy_address(self) -> str:
        return f"127.0.0.1:{self.ports.proxy}"

    @property
    def datacoord_metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.metrics_datacoord}"

    @property
    def standalone_metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.metrics_standalone}"

    # -- state -----------------------------------------------------------------------------
    def save_state(self) -> None:
        state = {
            "name": self.name,
            "ports": dataclasses.asdict(self.ports),
            "datacoord_cmd": self.datacoord_cmd,
            "session_ttl": self.session_ttl,
            "storage": self.storage_kind,
            "s3": self._s3_state(),
            "procs": {name: dataclasses.asdict(p) for name, p in self.procs.items()},
        }
        (self.dir / "state.json").write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, name: str) -> "Cluster":
        """The cluster a previous `start` recorded (for `stop`/`status` from another process)."""
        cluster = cls(name)
        state_path = cluster.dir / "state.json"
        if state_path.exists():
            state = json.loads(state_path.read_text())
            cluster.ports = Ports(**state["ports"])
            cluster.datacoord_cmd = state["datacoord_cmd"]
            cluster.session_ttl = state.get("session_ttl")
            cluster.storage_kind = state.get("storage", "local")
            if state.get("s3"):
                cluster.storage = S3Storage(**state["s3"], data_dir=cluster.dir / "s3")
        # pid files are written as each process starts, so they cover a start that failed midway.
        for pid_file in sorted(cluster.pid_dir.glob("*.pid")) if cluster.pid_dir.exists() else []:
            proc = Proc(**json.loads(pid_file.read_text()))
            cluster.procs[proc.name] = proc
        return cluster

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "Cluster":
        """Starts etcd, the DataCoord under test, then the standalone; stops all on failure."""
        leftover = Cluster.load(self.name)
        leftover.stop()
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        # CLUSTER_FREE_PORTS=1: every port free-picked, so several clusters can run side by side
        # (clients find the DataCoord through its session, not its port).
        free_all = os.environ.get("CLUSTER_FREE_PORTS") == "1"
        taken = {getattr(self.ports, f.name) for f in dataclasses.fields(self.ports)}
        for field in dataclasses.fields(self.ports):
            if free_all or (field.name in ("etcd", "etcd_peer", "metrics_datacoord", "metrics_standalone", "s3")
                            and not getattr(self.ports, field.name)):
                # Each free_port() releases its port at once, so two calls can return the same one.
                port = free_port()
                while port in taken:
                    port = free_port()
                taken.add(port)
                setattr(self.ports, field.name, port)
        busy = [f"{f.name}={getattr(self.ports, f.name)}" for f in dataclasses.fields(self.ports)
                if port_in_use(getattr(self.ports, f.name))]
        if busy:
            raise RuntimeError(f"ports already in use: {', '.join(busy)} (another cluster running?)")
        try:
            if self.storage_kind == "s3":
                self.start_s3()
            self.start_etcd()
            proc = self.start_datacoord(wait=False)
            self.wait_session(self.datacoord_address, 90, [proc])
            if self.healthy_first:
                self.wait_healthy(self.datacoord_address, 90, [proc])
            self.start_standalone()
            if not self.healthy_first:
                self.wait_healthy(self.datacoord_address, 90, [proc])
        except BaseException:
            self.save_state()
            self.stop()
            raise
        self.save_state()
        return self

    def config_for(self, workdir: Path, **overrides) -> dict:
        if self.session_ttl:
            overrides.setdefault("common.session.ttl", self.session_ttl)
        for key, value in self.config_overrides.items():
            overrides.setdefault(key, value)
        if isinstance(self.storage, S3Storage):
            for key, value in self.storage.milvus_settings().items():
                overrides.setdefault(key, value)
        return milvus_config(self.ports.etcd, self.storage_dir, workdir, self.ports, **overrides)

    def start_s3(self, timeout: float = 30) -> Proc:
        """Starts the s3-test-server on `ports.s3`, its buckets under <dir>/s3; the bucket itself is
        created by the first DataCoord that starts (Milvus's start-up bucket check)."""
        if not S3_SERVER_BIN.is_file():
            raise RuntimeError(f"{S3_SERVER_BIN} missing: cargo build -p milvus-storage --features testing "
                               "--bin s3-test-server (or set S3_TEST_SERVER_BIN)")
        workdir, data_dir = self.dir / "s3-server", self.dir / "s3"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k in INHERITED_ENV}
        proc = spawn("s3", [str(S3_SERVER_BIN), str(data_dir), str(self.ports.s3)], workdir, env, self.pid_dir)
        self.procs["s3"] = proc

        def first_line():
            lines = Path(proc.log).read_text(errors="replace").splitlines()
            return lines[0].split() if lines and len(lines[0].split()) == 3 else None

        endpoint, access_key, secret_key = wait_for("s3-test-server listening", first_line, timeout, [proc], 0.05)
        self.storage = S3Storage(endpoint, access_key, secret_key, data_dir)
        return proc

    def _s3_state(self) -> dict | None:
        if not isinstance(self.storage, S3Storage):
            return None
        s3 = self.storage
        return {"endpoint": s3.endpoint, "access_key": s3.access_key, "secret_key": s3.secret_key,
                "bucket": s3.bucket, "root_path": s3.root_path}

    def start_etcd(self, data_dir: Path | None = None, timeout: float = 30) -> Proc:
        workdir = self.dir / "etcd"
        data_dir = data_dir or workdir / "data"
        peer = f"http://127.0.0.1:{self.ports.etcd_peer}"
        client = f"http://{self.etcd_endpoint}"
        argv = [
            "etcd", "--name", f"e2e-{self.name}", "--data-dir", str(data_dir),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"e2e-{self.name}={peer}",
        ]
        env = {k: v for k, v in os.environ.items() if k in INHERITED_ENV}  # etcd reads ETCD_* too
        proc = spawn("etcd", argv, workdir, env, self.pid_dir)
        self.procs["etcd"] = proc
        wait_for("etcd health", lambda: etcd_healthy(self.etcd_endpoint), timeout, [proc])
        return proc

    def start_datacoord(
        self,
        cmd: list[str] | None = None,
        name: str = "datacoord",
        port: int | None = None,
        metrics_port: int | None = None,
        active_standby: bool = True,
        wait: bool = True,
        timeout: float = 90,
    ) -> Proc:
        """Starts a DataCoord and waits until it holds the session key and answers Healthy."""
        port = port or self.ports.datacoord
        metrics_port = metrics_port or self.ports.metrics_datacoord
        workdir = self.dir / name
        config = self.config_for(
            workdir,
            **{
                "dataCoord.port": port,
                "dataCoord.enableActiveStandby": active_standby,
                # Outside standalone mode rocksmq panics; a DataCoord never dials pulsar.
                "mq.type": "pulsar",
            },
        )
        config_path = write_workdir(workdir, config)
        values = {"config": str(config_path), "workdir": str(workdir), "milvus": str(MILVUS_BIN),
                  "alias": f"{self.name}-{name}"}
        argv = [part.format(**values) for part in (cmd or self.datacoord_cmd)]
        proc = spawn(name, argv, workdir, base_env(workdir, metrics_port), self.pid_dir)
        self.procs[name] = proc
        if wait:
            address = f"127.0.0.1:{port}"
            self.wait_session(address, timeout, [proc])
            self.wait_healthy(address, timeout, [proc])
        return proc

    def wait_session(self, address: str, timeout: float, procs: list[Proc] = ()) -> dict:
        """Waits until `by-dev/meta/session/datacoord` names `address`; returns the session."""

        def holder():
            session = session_of(self.etcd_endpoint)
            return session if session and session.get("Address") == address else None

        return wait_for(f"{DATACOORD_SESSION_KEY} -> {address}", holder, timeout, procs)

    def wait_healthy(self, address: str, timeout: float, procs: list[Proc] = (),
                     service: str = milvus_grpc.DATACOORD_SERVICE):
        def healthy():
            state = milvus_grpc.try_component_states(address, service)
            return state if state and state.state_code == milvus_grpc.HEALTHY else None

        return wait_for(f"{address} Healthy", healthy, timeout, procs)

    def start_standalone(self, timeout: float = 300) -> Proc:
        workdir = self.dir / "standalone"
        config = self.config_for(workdir, **{"dataCoord.port": self.ports.standby_datacoord})
        write_workdir(workdir, config)
        env = base_env(workdir, self.ports.metrics_standalone)
        env["DEPLOY_MODE"] = "STANDALONE"
        argv = [str(MILVUS_BIN), "run", "standalone", f"-alias={self.name}-standalone"]
        proc = spawn("standalone", argv, workdir, env, self.pid_dir)
        self.procs["standalone"] = proc
        watched = [proc] + [p for n, p in self.procs.items() if n == "datacoord"]
        wait_for("standalone /healthz OK",
                 lambda: http_get(f"{self.standalone_metrics_url}/healthz") == (200, "OK"),
                 timeout, watched, interval=1.0)
        wait_for("proxy answering pymilvus", self.proxy_answers, 60, watched, interval=1.0)
        return proc

    def proxy_answers(self) -> bool:
        from pymilvus import connections, utility

        alias = f"probe-{os.getpid()}"
        try:
            connections.connect(alias, host="127.0.0.1", port=str(self.ports.proxy), timeout=5)
            utility.get_server_version(using=alias)
            return True
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False
        finally:
            try:
                connections.disconnect(alias)
            except Exception:  # noqa: BLE001
                pass

    def stop(self) -> None:
        """Stops every process we recorded, standalone first, then the S3 server and etcd."""
        order = (["standalone"] + sorted(n for n in self.procs if n not in ("standalone", "s3", "etcd"))
                 + ["s3", "etcd"])
        for name in order:
            proc = self.procs.get(name)
            if proc:
                proc.stop()
                (self.pid_dir / f"{name}.pid").unlink(missing_ok=True)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        self.procs[name].signal(sig)

    def status(self) -> dict:
        session = session_of(self.etcd_endpoint) if self.ports.etcd else None

        def states(address, service=milvus_grpc.DATACOORD_SERVICE):
            state = milvus_grpc.try_component_states(address, service, timeout=1)
            return dataclasses.asdict(state) | {"state": state.state_name} if state else None

        return {
            "name": self.name,
            "dir": str(self.dir),
            "processes": {n: {"pid": p.pid, "alive": p.alive(), "log": p.log} for n, p in self.procs.items()},
            "etcd": self.etcd_endpoint if self.ports.etcd else None,
            "datacoord_session": session,
            "datacoord": states(self.datacoord_address),
            "standby_datacoord": states(self.standby_address),
            "standalone_healthz": http_get(f"{self.standalone_metrics_url}/healthz", 1)
            if self.ports.metrics_standalone else None,
            "proxy": self.proxy_address,
            "storage": self.storage.where(""),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "stop", "status", "kill"])
    parser.add_argument("target", nargs="?", help="process name for `kill`")
    parser.add_argument("--name", default="dev", help="cluster name (dir .work/cluster/<name>)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--go", action="store_true", help="use the Go DataCoord as the one under test")
    which.add_argument("--datacoord-bin", help="our binary (default $DATACOORD_BIN or target/debug/...)")
    which.add_argument("--datacoord-cmd", help="full command, with {config} {workdir} {milvus} {alias}")
    parser.add_argument("--session-ttl", type=int, help="common.session.ttl for every process")
    parser.add_argument("--healthy-after-standalone", action="store_true",
                        help="wait for our Healthy only after the standalone is up (session key still first)")
    parser.add_argument("--storage", choices=STORAGE_KINDS, default=os.environ.get("E2E_STORAGE") or "local",
                        help="local dir, or s3: the s3-test-server process (default $E2E_STORAGE or local)")
    parser.add_argument("--signal", type=int, default=signal.SIGKILL, help="signal for `kill`")
    args = parser.parse_args(argv)

    if args.command == "start":
        if args.go:
            cmd = GO_DATACOORD_CMD
        elif args.datacoord_cmd:
            cmd = shlex.split(args.datacoord_cmd)
        else:
            cmd = our_datacoord_cmd(args.datacoord_bin)
        started = time.monotonic()
        cluster = Cluster(args.name, cmd, session_ttl=args.session_ttl,
                          healthy_first=not args.healthy_after_standalone, storage=args.storage).start()
        print(json.dumps(cluster.status(), indent=2))
        print(f"cluster {args.name} up in {time.monotonic() - started:.1f}s", file=sys.stderr)
        return 0
    cluster = Cluster.load(args.name)
    if args.command == "stop":
        cluster.stop()
        print(f"cluster {args.name} stopped", file=sys.stderr)
    elif args.command == "status":
        print(json.dumps(cluster.status(), indent=2))
    elif args.command == "kill":
        if args.target not in cluster.procs:
            parser.error(f"kill needs one of {sorted(cluster.procs)}")
        cluster.kill(args.target, args.signal)
    return 0


if __name__ == "__main__":
    sys.exit(main())
