"""Prometheus (PROMETHEUS_ENABLED): a real server scraped over HTTP and read with the standard
parser while it delivers to a real receiver.

Embedded mode runs with its delivery process (SQLITE_DELIVERY_PROCESS=true), so the attempt
counters come from the other process (prometheus_client's multiprocess mode); in PostgreSQL
modes one process does both. One delivery slot, so that a slow receiver leaves tasks due.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import httpx
import pytest
from outpost_sdk import Outpost
from prometheus_client.parser import text_string_to_metric_families
from support.api import create_webhook, publish
from support.receiver import Receiver
from support.server import BACKEND, ServerProcess, free_port
from support.waiting import poll_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SERVER_ENV = {
    "PROMETHEUS_ENABLED": "true",
    "SQLITE_DELIVERY_PROCESS": "true",
    "DELIVERY_MAX_CONCURRENCY": "1",
    "MAX_RETRY_LIMIT": "1",
    "RETRY_POLL_BACKOFF_MS": "100",
    # With RabbitMQ a task counts as due once its hold has passed unclaimed (docs/prometheus.md)
    "RABBITMQ_HOLD_SECONDS": "1",
}
SHOULD_ERR = {"should_err": "true"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
WEBHOOK = (("destination_type", "webhook"),)


def scrape(client: httpx.Client, url: str) -> Samples:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def attempts(samples: Samples, status: str) -> float:
    return samples.get(("outpost_delivery_attempts_total", (*WEBHOOK, ("status", status))), 0)


def counted(samples: Samples, name: str) -> float:
    return samples.get((name, WEBHOOK), 0)


def test_deliveries_retries_and_exhaustion_are_counted(
    server: ServerProcess, admin: Outpost, api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    assert api.get(f"{server.root_url}/metrics", headers={"Authorization": ""}).status_code == 401
    url = f"{server.root_url}/metrics"
    before = scrape(api, url)
    path = receiver.new_path("prom-mixed")
    create_webhook(admin, tenant_id, receiver.configure(path))
    for n in range(3):
        publish(admin, tenant_id, {"n": n})
    failing = publish(admin, tenant_id, {"n": "bad"}, metadata=SHOULD_ERR)

    def settled() -> Samples | None:
        now = scrape(api, url)
        done = (
            attempts(now, "success") - attempts(before, "success") == 3
            and attempts(now, "failed") - attempts(before, "failed") == 2
        )
        return now if done else None

    after = poll_until(settled, timeout=30, what="3 successes and 2 failures counted")
    for name in ("outpost_retries_scheduled_total", "outpost_retries_exhausted_total"):
        assert counted(after, name) - counted(before, name) == 1, name
    published = ("outpost_published_events_total", (("result", "accepted"),))
    assert after[published] - before.get(published, 0) == 4
    assert after[("outpost_delivery_healthy", ())] == 1
    assert after[("outpost_dependency_up", (("dependency", "database"),))] == 1
    # The operator's log line for the exhausted retry, with the event's id.
    poll_until(
        lambda: any(
            "retries exhausted" in line and failing.id in line
            for line in server.log_text().splitlines()
        ),
        timeout=10,
        what="the retries exhausted line",
    )


def test_due_tasks_rise_while_deliveries_wait_then_drain(
    server: ServerProcess, admin: Outpost, api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    url = f"{server.root_url}/metrics"
    path = receiver.new_path("prom-slow")
    create_webhook(admin, tenant_id, receiver.configure(path, delay=0.4))
    for n in range(8):
        publish(admin, tenant_id, {"n": n})

    # One slot and one task claimed ahead: most of the eight wait, due and unclaimed.
    def waiting() -> Samples | None:
        now = scrape(api, url)
        return now if now[("outpost_due_tasks", ())] >= 3 else None

    backlog = poll_until(waiting, timeout=10, what="a backlog of due tasks")
    assert backlog[("outpost_oldest_due_task_age_seconds", ())] >= 0
    aged = poll_until(
        lambda: scrape(api, url)[("outpost_oldest_due_task_age_seconds", ())] > 0.2,
        timeout=10,
        what="the oldest due task ageing",
    )
    assert aged
    poll_until(
        lambda: scrape(api, url)[("outpost_due_tasks", ())] == 0,
        timeout=30,
        what="the backlog drained",
    )
    assert scrape(api, url)[("outpost_oldest_due_task_age_seconds", ())] == 0
    receiver.wait_for(8, path=path, timeout=10)


def test_on_its_own_port_without_the_admin_key(make_server: Callable[..., ServerProcess]) -> None:
    port = free_port()
    srv = make_server({"PROMETHEUS_ENABLED": "true", "PROMETHEUS_PORT": str(port)})
    with httpx.Client(timeout=10) as client:
        samples = scrape(client, f"http://127.0.0.1:{port}/metrics")
        assert samples[("outpost_due_tasks", ())] == 0
        assert ("process_cpu_seconds_total", ()) in samples
        assert client.get(f"http://127.0.0.1:{port}/other").status_code == 404
        # Not on the API port then, not even with the key.
        with srv.http() as api:
            assert api.get(f"{srv.root_url}/metrics").status_code == 404


@pytest.mark.skipif(BACKEND != "sqlite", reason="embedded mode's delivery process")
def test_counts_survive_a_delivery_process_restart(
    server: ServerProcess, admin: Outpost, api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    url = f"{server.root_url}/metrics"
    path = receiver.new_path("prom-restart")
    create_webhook(admin, tenant_id, receiver.configure(path))
    base = attempts(scrape(api, url), "success")

    def successes(n: int) -> bool:
        return attempts(scrape(api, url), "success") == base + n

    publish(admin, tenant_id, {"n": 1})
    poll_until(lambda: successes(1), timeout=15, what="a success counted")
    child = _delivery_process(server)
    assert child is not None
    os.kill(child, signal.SIGKILL)
    poll_until(lambda: _delivery_process(server) not in (None, child), timeout=20, what="a new one")
    publish(admin, tenant_id, {"n": 2})
    poll_until(
        lambda: successes(2), timeout=20, what="the dead process's count kept, the new one's added"
    )
    receiver.wait_for(2, path=path, timeout=10)


def _delivery_process(server: ServerProcess) -> int | None:
    """The pid of the server's delivery process (its child, waypost.runner.delivery_process)."""
    assert server.pid is not None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmd:
                line = cmd.read()
        except OSError:
            continue
        if parent == server.pid and b"waypost.runner.delivery_process" in line:
            return int(entry)
    return None
