"""(q) A DataCoord that has lost its session stops (exit 1, 2.3.5's TriggerKill) instead of serving
on as a coordinator nobody can see. Our process holds two sessions, `datacoord` and its
`indexcoord` alias, each on its own lease; a peer that forces the alias over revokes that lease.
Found as a defect: losing the alias lease (active, or while standing by) was logged and then
ignored, and the process kept running with its port bound. Each test leaves our DataCoord dead;
the next test's fixture starts a fresh cluster."""

from __future__ import annotations

import base64
import json

import pytest

import cluster as cluster_mod
import datapath

pytestmark = [pytest.mark.needs_datacoord, pytest.mark.ours_only]

EXIT_TIMEOUT = 30.0


def _sessions(endpoint: str) -> dict[str, dict]:
    """Every session record under `session/`, by key."""
    prefix = cluster_mod.SESSION_ROOT + "/"
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    answer = cluster_mod.etcd_call(endpoint, "kv/range", {
        "key": base64.b64encode(prefix.encode()).decode(),
        "range_end": base64.b64encode(end.encode()).decode(),
    })
    records = {}
    for kv in answer.get("kvs") or []:
        key = base64.b64decode(kv["key"]).decode()
        try:
            record = json.loads(base64.b64decode(kv.get("value", "")))
        except ValueError:
            continue
        if isinstance(record, dict):  # not the `session/id` counter
            records[key] = record
    return records


def _our_leases(endpoint: str, address: str) -> dict[str, int]:
    """Role key → lease of the records our DataCoord (by address) holds."""
    return {key.rsplit("/", 1)[1]: int(record["LeaseID"])
            for key, record in _sessions(endpoint).items()
            if record.get("Address") == address and record.get("LeaseID")}


def _alias_lease(leases: dict[str, int]) -> int:
    # The bare key (when active) and `indexcoord-<ServerID>` carry the same lease.
    alias = {lease for role, lease in leases.items() if role.startswith("indexcoord")}
    assert len(alias) == 1, f"expected one indexcoord lease of ours, got {leases}"
    (lease,) = alias
    datacoord = {lease for role, lease in leases.items() if role.startswith("datacoord")}
    assert datacoord and lease not in datacoord, f"the alias shares a lease with datacoord: {leases}"
    return lease


def _exits_non_zero(proc: cluster_mod.Proc) -> None:
    code = proc.wait_exit(EXIT_TIMEOUT)
    assert code is not None, f"{proc.name} still running {EXIT_TIMEOUT:.0f}s after losing its session"
    assert code != 0, f"{proc.name} exited {code} after losing its session"


def test_active_exits_when_its_indexcoord_alias_lease_is_revoked(cluster):
    endpoint, address = cluster.etcd_endpoint, cluster.datacoord_address
    assert datapath.active_datacoord(endpoint) == address
    lease = _alias_lease(_our_leases(endpoint, address))
    datapath.etcd_revoke(endpoint, lease)
    _exits_non_zero(cluster.procs["datacoord"])


def test_standby_exits_when_its_indexcoord_lease_is_revoked(cluster):
    endpoint = cluster.etcd_endpoint
    go, go_address, standby = datapath.go_takes_over(cluster)
    assert datapath.active_datacoord(endpoint) == go_address
    lease = _alias_lease(_our_leases(endpoint, cluster.datacoord_address))
    datapath.etcd_revoke(endpoint, lease)
    _exits_non_zero(standby)
    assert go.alive() and datapath.active_datacoord(endpoint) == go_address
