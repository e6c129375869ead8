"""Embedded mode's delivery process: `waypost serve` on SQLite delivers from a child process.

What a user would notice: deliveries keep flowing when that process is killed (it is restarted and
the tasks it held are delivered), it never outlives the server, changes to destinations made
through the API reach it at once (and a destination it disables is seen disabled by the API), and
`SQLITE_DELIVERY_PROCESS=false` keeps everything in one process.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from outpost_sdk import Outpost
from support.api import create_webhook, publish, unique_id, update_webhook
from support.receiver import Receiver
from support.server import BACKEND, ServerProcess
from support.waiting import poll_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(180),
    pytest.mark.skipif(BACKEND != "sqlite", reason="the delivery process is embedded mode's"),
]

CHILD = b"waypost.runner.delivery_process"  # the delivery process runs `python -m` this
SPLIT = {"SQLITE_DELIVERY_PROCESS": "true", "RETRY_POLL_BACKOFF_MS": "100"}


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(c) for c in (task / "children").read_text().split())
    return found


def delivery_process(server: ServerProcess) -> int:
    """The pid of the server's delivery process, once it runs and the server reports it healthy."""
    assert server.pid is not None

    def probe() -> int | None:
        kids = [p for p in children(server.pid or 0) if CHILD in _cmdline(p)]
        with httpx.Client(timeout=5) as client:
            healthy = client.get(f"{server.root_url}/healthz").status_code == 200
        return kids[0] if len(kids) == 1 and healthy else None

    return poll_until(probe, timeout=30, what="a healthy delivery process")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # exited; its parent (not us) has not reaped it yet


def test_a_killed_delivery_process_is_replaced_and_nothing_is_lost(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    server = make_server({**SPLIT, "DELIVERY_LEASE_SECONDS": "60"})
    first = delivery_process(server)
    tenant = unique_id("split-kill")
    path = receiver.new_path("split-kill")
    receiver.configure(path, delay=0.05)  # slow enough that deliveries are in flight at the kill
    with server.admin_client() as admin:
        admin.tenants.upsert(tenant_id=tenant)
        create_webhook(admin, tenant, receiver.url(path))
        ids = [publish(admin, tenant, {"n": n}).id for n in range(60)]
        receiver.wait_for(5, path, timeout=30)
        os.kill(first, signal.SIGKILL)
        second = delivery_process(server)
        assert second != first
        # The leases of the killed process were released at once (the lease is 60 s, the wait
        # is far shorter): every event arrives, at least once.
        poll_until(
            lambda: {r.event_id for r in receiver.requests_for(path)} >= set(ids),
            timeout=40,
            what="every event delivered after the kill",
        )
        more = publish(admin, tenant, {"n": "after"}).id
        poll_until(lambda: more in {r.event_id for r in receiver.requests_for(path)}, timeout=20)
    assert "the delivery process exited" in server.log_text()


def test_the_delivery_process_ends_with_the_server(
    make_server: Callable[..., ServerProcess],
) -> None:
    crashed = make_server(SPLIT)
    child = delivery_process(crashed)
    assert crashed.pid is not None
    os.kill(crashed.pid, signal.SIGKILL)  # the server alone, not its process group
    poll_until(lambda: gone(child), timeout=30, what="the orphaned delivery process to exit")

    stopped = make_server(SPLIT)
    child = delivery_process(stopped)
    assert stopped.stop() == 0
    assert gone(child)


def test_destination_changes_reach_the_delivery_process(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    server = make_server(SPLIT)
    delivery_process(server)
    tenant = unique_id("split-cache")
    old, new = receiver.new_path("split-old"), receiver.new_path("split-new")
    with server.admin_client() as admin:
        admin.tenants.upsert(tenant_id=tenant)
        destination = create_webhook(admin, tenant, receiver.url(old))
        first = publish(admin, tenant, {"n": 1}).id
        assert receiver.wait_for(1, old, timeout=20)[0].event_id == first
        update_webhook(admin, tenant, destination.id, {"config": {"url": receiver.url(new)}})
        second = publish(admin, tenant, {"n": 2}).id
        assert receiver.wait_for(1, new, timeout=20)[0].event_id == second
        assert [r.event_id for r in receiver.requests_for(old)] == [first]


def test_a_destination_the_delivery_process_disables_is_disabled_for_the_api(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    server = make_server(
        {
            **SPLIT,
            "MAX_RETRY_LIMIT": "0",
            "ALERT_CONSECUTIVE_FAILURE_COUNT": "3",
            "ALERT_AUTO_DISABLE_DESTINATION": "true",
        }
    )
    delivery_process(server)
    tenant = unique_id("split-disable")
    path = receiver.configure(receiver.new_path("split-disable"), status=500)
    with server.admin_client() as admin:
        admin.tenants.upsert(tenant_id=tenant)
        destination = create_webhook(admin, tenant, path)
        assert destination.disabled_at is None
        _read_once_so_the_api_caches_it(admin, tenant, destination.id)
        for n in range(3):
            publish(admin, tenant, {"n": n})

        def disabled() -> bool:
            got = admin.destinations.get(tenant_id=tenant, destination_id=destination.id)
            return got.disabled_at is not None

        poll_until(disabled, timeout=20, what="the destination disabled, as the API sees it")


def _read_once_so_the_api_caches_it(admin: Outpost, tenant: str, destination_id: str) -> None:
    admin.destinations.get(tenant_id=tenant, destination_id=destination_id)


def test_health_reports_a_delivery_process_that_cannot_reach_the_database(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server(SPLIT)
    delivery_process(server)
    # Another program holds the database's write lock: the delivery process's claims wait out
    # SQLite's busy timeout (10 s) and fail, and the server's /healthz must say so.
    blocker = sqlite3.connect(server.data_dir / "outpost.db", isolation_level=None, timeout=30)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        failed = poll_until(
            lambda: _health(server) if _health(server)[0] == 503 else None,
            timeout=40,
            what="/healthz to report the delivery worker failing",
        )
        assert failed[1]["workers"]["deliverymq-consumer"]["status"] == "failed"
        assert failed[1]["workers"]["database"]["status"] == "healthy"  # reads still work
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    poll_until(lambda: _health(server)[0] == 200, timeout=30, what="/healthz healthy again")


def _health(server: ServerProcess) -> tuple[int, dict[str, Any]]:
    with httpx.Client(timeout=5) as client:
        res = client.get(f"{server.root_url}/healthz")
    return res.status_code, res.json()


def test_one_process_when_turned_off(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    server = make_server({"SQLITE_DELIVERY_PROCESS": "false"})
    tenant = unique_id("single")
    path = receiver.new_path("single")
    with server.admin_client() as admin:
        admin.tenants.upsert(tenant_id=tenant)
        create_webhook(admin, tenant, receiver.url(path))
        sent = publish(admin, tenant, {"n": 1}).id
        assert receiver.wait_for(1, path, timeout=20)[0].event_id == sent
    assert server.pid is not None
    assert children(server.pid) == []
