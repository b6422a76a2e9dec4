"""Bulk insert (`do_bulk_insert`) helpers behind tests/e2e/test_o_import.py and bench/import.py.

2.3.5's bulk insert is driven by RootCoord's import manager: the proxy hands the request to
RootCoord, which asks DataCoord `Import` for a DataNode; the DataNode reads the files, allocates
Importing segments (`AssignSegmentID` isImport), persists them (`SaveImportSegment`), RootCoord
flushes them (`Flush` isImport) and finally clears `is_importing` (`UnsetIsImportingState`)
(FACTS-index-compaction-gc.md §4).

Where the files go: the DataNode opens them through its own chunk manager, which takes the given
path as is: 2.3.5's LocalChunkManager as a plain file path (no root prefix), its MinIO one as the
object name in the bucket. The files are written under the cluster's storage root
(`import_src/{task}/`, outside the prefixes GC scans) and passed as the path Milvus itself would
record for that key (`place_files`, the one function that knows this).

Row files: one JSON file `{"rows": [{field: value}, ...]}` (row-based) or one `.npy` file per field
named after the field (column-based), the two layouts 2.3.5's importutil accepts.
"""

from __future__ import annotations

import dataclasses
import io
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster as cluster_mod  # noqa: E402
import datapath  # noqa: E402

# milvus.proto.common.ImportState (wire facts) as pymilvus's BulkInsertState exposes them.
IMPORT_STATES = {0: "Pending", 1: "Failed", 2: "Started", 5: "Persisted", 6: "Completed",
                 7: "Failed and cleaned"}
PENDING, FAILED, STARTED, PERSISTED, COMPLETED, FAILED_AND_CLEANED = 0, 1, 2, 5, 6, 7
FINAL_STATES = frozenset({FAILED, COMPLETED, FAILED_AND_CLEANED})
IMPORTING = 7  # milvus.proto.common.SegmentState.Importing
SOURCE_DIR = "import_src"


# ---------------------------------------------------------------------------------------------
# Source files


@dataclasses.dataclass
class Rows:
    """Rows for the IndexWorkload schema (INT64 pk `id`, FLOAT_VECTOR `vec`, INT64 `tag`)."""

    pks: list[int]
    vectors: list[list[float]]
    tags: list[int]

    @classmethod
    def generate(cls, first_pk: int, count: int, dim: int, seed: int) -> "Rows":
        rng = random.Random(seed * 1_000_003 + first_pk)
        pks = list(range(first_pk, first_pk + count))
        # float32-exact values, so the stored vector equals the one the test searches with.
        vectors = [[float(rng.randrange(1 << 20)) / (1 << 20) for _ in range(dim)] for _ in pks]
        tags = [rng.randrange(50) for _ in pks]
        return cls(pks, vectors, tags)


def json_rows(rows: Rows, drop_field: str | None = None, extra_field: str | None = None,
              short_vector_at: int | None = None) -> bytes:
    """A row-based JSON file; `drop_field`/`extra_field` make every row not match the schema,
    `short_vector_at` only that row (a vector one element short)."""
    out = []
    for index, (pk, vector, tag) in enumerate(zip(rows.pks, rows.vectors, rows.tags)):
        row = {"id": pk, "vec": vector[:-1] if index == short_vector_at else vector, "tag": tag}
        if drop_field:
            row.pop(drop_field)
        if extra_field:
            row[extra_field] = 1
        out.append(row)
    return json.dumps({"rows": out}).encode()


def npy(array) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def numpy_columns(rows: Rows) -> dict[str, bytes]:
    """Column-based files: `{field}.npy` per field."""
    import numpy as np

    return {"id.npy": npy(np.asarray(rows.pks, dtype=np.int64)),
            "vec.npy": npy(np.asarray(rows.vectors, dtype=np.float32)),
            "tag.npy": npy(np.asarray(rows.tags, dtype=np.int64))}


def numpy_columns_random(first_pk: int, count: int, dim: int, seed: int) -> dict[str, bytes]:
    """Column-based files made by numpy directly (for benchmark sizes; rows not remembered)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return {"id.npy": npy(np.arange(first_pk, first_pk + count, dtype=np.int64)),
            "vec.npy": npy(rng.random((count, dim), dtype=np.float32)),
            "tag.npy": npy(rng.integers(0, 50, count, dtype=np.int64))}


def source_key(task: str, name: str) -> str:
    """Key of an import source file relative to the storage root."""
    return f"{SOURCE_DIR}/{task}/{name}"


def place_files(cluster: cluster_mod.Cluster, task: str, files: dict[str, bytes]) -> list[str]:
    """Puts `files` where the cluster's DataNode reads import sources; returns the paths to pass
    to do_bulk_insert, in the order of `files`. The one function that decides where sources go:
    the cluster's storage (`cluster.storage`, local dir or S3 bucket) under `import_src/{task}/`,
    named as Milvus's chunk manager names objects (local: the absolute file path; S3: the object
    name in the bucket, `{rootPath}/...`)."""
    paths = []
    for name, content in files.items():
        key = cluster.storage.put(source_key(task, name), content)
        paths.append(cluster.storage.full_path(key))
    return paths


def source_paths(cluster: cluster_mod.Cluster, task: str, names: list[str]) -> list[str]:
    """The do_bulk_insert paths of files that were never placed (a missing-file import)."""
    return [cluster.storage.full_path(source_key(task, name)) for name in names]


# ---------------------------------------------------------------------------------------------
# Tasks


@dataclasses.dataclass(frozen=True)
class TaskState:
    """What get_bulk_insert_state shows of a task."""

    task_id: int
    state: int
    row_count: int
    failed_reason: str
    collection: str
    partition: str
    files: str
    progress: str
    id_ranges: tuple[int, ...]

    @property
    def state_name(self) -> str:
        return IMPORT_STATES.get(self.state, str(self.state))

    @classmethod
    def of(cls, state) -> "TaskState":
        infos = state.infos
        return cls(state.task_id, state.state, state.row_count, infos.get("failed_reason", ""),
                   infos.get("collection", ""), infos.get("partition", ""), infos.get("files", ""),
                   infos.get("progress_percent", ""), tuple(state.id_ranges))


def bulk_insert(alias: str, collection: str, files: list[str], partition: str | None = None) -> int:
    from pymilvus import utility

    return utility.do_bulk_insert(collection, files, partition_name=partition, timeout=60, using=alias)


def task_state(alias: str, task_id: int) -> TaskState:
    from pymilvus import utility

    return TaskState.of(utility.get_bulk_insert_state(task_id, timeout=30, using=alias))


def list_tasks(alias: str, collection: str) -> dict[int, TaskState]:
    from pymilvus import utility

    return {s.task_id: TaskState.of(s)
            for s in utility.list_bulk_insert_tasks(0, collection, timeout=30, using=alias)}


def task_segment_ids(proxy_address: str, task_id: int) -> list[int]:
    """The task's segments as the proxy's GetImportState lists them (pymilvus drops them)."""
    answer = datapath.proxy_call(proxy_address, "GetImportState", "GetImportStateRequest",
                                 "GetImportStateResponse", task=task_id)
    return list(answer.segment_ids)


def wait_task(alias: str, task_id: int, timeout: float = 180.0, states=FINAL_STATES) -> TaskState:
    """Polls get_bulk_insert_state until the task reaches one of `states`; returns that state."""
    return wait_task_with_history(alias, task_id, timeout, states)[0]


def wait_task_with_history(alias: str, task_id: int, timeout: float = 180.0,
                           states=FINAL_STATES) -> tuple[TaskState, list[str]]:
    """wait_task, and the state names seen on the way (each once per change)."""
    seen: list[str] = []
    last: list[TaskState | None] = [None]

    def done():
        try:
            state = task_state(alias, task_id)
        except Exception as err:  # noqa: BLE001 - a coordinator change in progress: retry
            seen.append(f"error {type(err).__name__}")
            return None
        last[0] = state
        if not seen or seen[-1] != state.state_name:
            seen.append(state.state_name)
        return state if state.state in states else None

    try:
        return cluster_mod.wait_for(f"import task {task_id}", done, timeout, interval=0.3), seen
    except TimeoutError:
        raise AssertionError(f"import task {task_id} not in {sorted(states)} after {timeout:.0f}s; "
                             f"states seen {seen}; last {last[0]}") from None


# ---------------------------------------------------------------------------------------------
# etcd


def importing_segments(endpoint: str, collection_id: int) -> list:
    """Segment records of the collection still Importing or with is_importing set."""
    return [s for s in datapath.stored_segments(endpoint, collection_id)
            if s.state == IMPORTING or (s.is_importing and s.state != datapath.DROPPED)]


def wait_no_importing(endpoint: str, collection_id: int, timeout: float = 120.0) -> list:
    """Waits until no segment of the collection is Importing or flagged is_importing; returns
    every segment record."""
    left: list = []

    def settled():
        left[:] = importing_segments(endpoint, collection_id)
        return None if left else datapath.stored_segments(endpoint, collection_id)

    try:
        return cluster_mod.wait_for(f"no importing segment in collection {collection_id}", settled,
                                    timeout, interval=0.5)
    except TimeoutError:
        raise AssertionError(f"still importing after {timeout:.0f}s: {datapath.describe_segments(left)}") from None


def describe_import_segments(segments) -> str:
    return ", ".join(f"{s.ID}:{datapath.state_name(s.state)}/{s.num_of_rows}"
                     f"{'/importing' if s.is_importing else ''}" for s in segments)

