"""Recovery end to end: a receiver down for a window, one recovery job, every event once more.

Real server processes (embedded, PostgreSQL, PostgreSQL+RabbitMQ per OUTPOST_TEST_BACKEND), a
real receiver, and the `waypost` command line as an operator runs it. The job is killed with
SIGKILL in the middle and resumes on restart: it never queues an event twice (one manual
attempt per event, `enqueued` equal to the window), and every event of the window arrives.
The window is the issue's 1,000 events, published by a few concurrent callers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from support.api import unique_id
from support.receiver import Receiver
from support.server import REPO_ROOT, ServerProcess
from support.waiting import poll_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

WINDOW = int(os.environ.get("OUTPOST_TEST_RECOVERY_WINDOW", "1000"))
PUBLISHERS = 8  # concurrent publish calls: a 1,000-event window is published in seconds
ENV = {
    "MAX_RETRY_LIMIT": "0",  # a delivery during the outage fails once, and stays failed
    "RETRY_POLL_BACKOFF_MS": "100",
    "DELIVERY_LEASE_SECONDS": "10",
    "RECOVERY_BATCH_SIZE": "20",  # many batches: the kill lands between two of them
    "RECOVERY_LEASE_SECONDS": "2",
}


def publish_window(api: httpx.Client, tenant: str, count: int, label: str) -> list[str]:
    ids = [unique_id(f"{label}-{n}") for n in range(count)]

    def one(n: int) -> int:
        body = {"id": ids[n], "tenant_id": tenant, "topic": "user.created", "data": {"n": n}}
        return api.post("/publish", json=body).status_code

    with ThreadPoolExecutor(PUBLISHERS) as pool:
        codes = Counter(pool.map(one, range(count)))
    assert codes == {202: count}, codes
    return ids


def attempts_of(api: httpx.Client, tenant: str, destination_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    query: dict[str, str] = {"tenant_id": tenant, "destination_id": destination_id}
    query["limit"] = "1000"
    while True:
        page = api.get("/attempts", params=query).json()
        found += page["models"]
        if not page["pagination"]["next"]:
            return found
        query["next"] = page["pagination"]["next"]


def setup_outage(
    srv: ServerProcess, receiver: Receiver, label: str, count: int
) -> tuple[httpx.Client, str, str, str, list[str]]:
    """A tenant whose webhook answered 503 to `count` events (no retries): they all failed."""
    api = srv.http()
    tenant = unique_id(label)
    assert api.put(f"/tenants/{tenant}").status_code == 201
    path = receiver.new_path(label)
    url = receiver.configure(path, status=503)
    made = api.post(
        f"/tenants/{tenant}/destinations",
        json={"type": "webhook", "topics": ["user.created"], "config": {"url": url}},
    )
    assert made.status_code == 201, made.text
    destination_id = made.json()["id"]
    ids = publish_window(api, tenant, count, label)
    poll_until(
        lambda: len(attempts_of(api, tenant, destination_id)) >= count,
        timeout=120,
        what="the outage's failed attempts",
    )
    return api, tenant, destination_id, path, ids


def wait_job(api: httpx.Client, tenant: str, job_id: str, timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = api.get(f"/tenants/{tenant}/recoveries/{job_id}").json()
        return job if job["state"] != "running" else None

    found: dict[str, Any] = poll_until(done, timeout=timeout, interval=0.2, what="job to end")
    return found


def test_one_job_sends_the_window_again_even_across_kill_9(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    srv = make_server(ENV)
    api, tenant, destination_id, path, ids = setup_outage(srv, receiver, "outage", WINDOW)
    assert (
        api.get(
            f"/tenants/{tenant}/undelivered",
            params={"destination_id": destination_id, "limit": 1000},
        )
        .json()["models"]
        .__len__()
        == WINDOW
    )
    receiver.configure(path, status=200, delay=0.02)  # the receiver is back
    body = {"destination_id": destination_id, "status": "failed"}
    created = api.post(
        f"/tenants/{tenant}/recoveries", json=body, headers={"Idempotency-Key": "outage-1"}
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]

    def half_way() -> bool:
        job = api.get(f"/tenants/{tenant}/recoveries/{job_id}").json()
        return bool(WINDOW // 4 <= job["enqueued"] < WINDOW)

    poll_until(half_way, timeout=60, interval=0.02, what="the job to be under way")
    api.close()
    srv.kill()
    srv.start()
    api = srv.http()
    again = api.post(
        f"/tenants/{tenant}/recoveries", json=body, headers={"Idempotency-Key": "outage-1"}
    )
    assert (again.status_code, again.json()["id"]) == (200, job_id)  # the same job, not a new one
    job = wait_job(api, tenant, job_id)
    assert (job["state"], job["matched"], job["enqueued"]) == ("completed", WINDOW, WINDOW)

    def settled() -> list[dict[str, Any]] | None:
        attempts = attempts_of(api, tenant, destination_id)
        manual = [a for a in attempts if a["manual"]]
        return attempts if len(manual) >= WINDOW else None

    attempts = poll_until(settled, timeout=60, what="every recovery attempt recorded")
    manual = Counter(a["event_id"] for a in attempts if a["manual"])
    assert manual == dict.fromkeys(ids, 1), "one recovery attempt per event, none twice"
    assert all(a["status"] == "success" for a in attempts if a["manual"])
    arrived = Counter(
        r.event_id for r in receiver.requests_for(path) if r.status == 200 and r.response_sent
    )
    assert set(arrived) == set(ids)
    # A delivery in flight at the kill may arrive twice (at least once); the job queued once.
    # It keeps fewer than two batches queued, so no more than that can have been in flight.
    in_flight = 2 * int(ENV["RECOVERY_BATCH_SIZE"])
    assert sum(arrived.values()) - WINDOW < in_flight, arrived.most_common(5)
    left = api.get(f"/tenants/{tenant}/undelivered", params={"destination_id": destination_id})
    assert left.json()["models"] == []


def outpost(
    srv: ServerProcess, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "API_KEY": srv.api_key}
    return subprocess.run(
        [sys.executable, "-m", "waypost", *args, "--url", srv.root_url],
        cwd=str(REPO_ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_operator_recovers_from_the_command_line(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    srv = make_server(ENV)
    api, tenant, destination_id, path, failed_ids = setup_outage(srv, receiver, "cli", 30)
    receiver.configure(path, status=200)
    # Ten more published while the destination was disabled: they matched nothing.
    assert api.put(f"/tenants/{tenant}/destinations/{destination_id}/disable").status_code == 200
    unmatched = publish_window(api, tenant, 10, "cli-disabled")
    assert api.put(f"/tenants/{tenant}/destinations/{destination_id}/enable").status_code == 200
    who = ("--tenant", tenant, "--destination", destination_id)

    listed = outpost(srv, "undelivered", *who, "--status", "never")
    assert listed.returncode == 0, listed.stderr
    assert "10 undelivered event(s)" in listed.stdout
    assert all(event_id in listed.stdout for event_id in unmatched)

    dry = outpost(srv, "recover", *who, "--dry-run")
    assert (dry.returncode, dry.stdout.strip()) == (0, "40 deliveries would be sent")

    run = outpost(srv, "recover", *who, "--key", "cli-1")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("recovery rcv_") and lines[-1].endswith("completed")
    assert any(line.startswith("[###") and "40/40" in line for line in lines), lines
    job_id = lines[0].split()[1]
    arrived = {r.event_id for r in receiver.requests_for(path) if r.status == 200}
    assert arrived == set(failed_ids) | set(unmatched)

    jobs = outpost(srv, "recoveries", "list", "--tenant", tenant)
    assert job_id in jobs.stdout and "completed" in jobs.stdout
    cancel = outpost(srv, "recoveries", "cancel", job_id, "--tenant", tenant)
    assert (cancel.returncode, cancel.stdout.strip()) == (0, f"recovery {job_id} completed")
    missing = outpost(srv, "recoveries", "watch", "rcv_nope", "--tenant", tenant)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "waypost: 404: recovery not found"

    tested = outpost(srv, "send-test", *who)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.splitlines()[-1] == "attempt success (code 200)"
    [test_request] = [r for r in receiver.requests_for(path) if r.event_id not in arrived]
    assert test_request.json() == {"test": True, "sent_at": test_request.json()["sent_at"]}

    no_key = subprocess.run(
        [sys.executable, "-m", "waypost", "recoveries", "list", "--tenant", tenant],
        cwd=str(REPO_ROOT),
        env={k: v for k, v in os.environ.items() if k != "API_KEY"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert no_key.returncode == 1
    assert no_key.stderr.strip() == "waypost: no API key: set API_KEY or pass --api-key"
