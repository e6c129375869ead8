"""Durability across process death (contract.md §3.7 at-least-once).

The server is killed with SIGKILL while deliveries are in flight and automatic retries are
pending, then restarted on the same data directory. Every event that was answered 202 must still
reach every matched destination at least once, and every scheduled retry must still fire.
Duplicates are allowed (receivers deduplicate on the event id) and are only counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest
from support.api import create_webhook, list_attempts, unique_id
from support.receiver import Receiver, RecordedRequest
from support.server import ServerProcess
from support.waiting import poll_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

BATCH = 200
KILL_AFTER = 100
RECOVERY_TIMEOUT = 120.0

CRASH_ENV = {
    "RETRY_INTERVAL_SECONDS": "1",
    "MAX_RETRY_LIMIT": "10",
    "RETRY_POLL_BACKOFF_MS": "100",
    # a delivery claimed by the killed process becomes visible again after this lease
    "DELIVERY_LEASE_SECONDS": "10",
}


def delivered_ids(requests: list[RecordedRequest]) -> set[str]:
    """Event ids the receiver acknowledged with a 2xx it managed to send."""
    return {
        r.event_id for r in requests if r.event_id and 200 <= r.status < 300 and r.response_sent
    }


@dataclass
class Publisher:
    """Publishes a bounded batch in a background thread, like a producer that retries the same
    event id when the server is unreachable."""

    api_base: str
    api_key: str
    tenant_id: str
    event_ids: list[str]
    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    refused: list[tuple[str, int, str]] = field(default_factory=list)
    connection_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="e2e-publisher", daemon=True)
        self.thread.start()

    def accepted_count(self) -> int:
        with self.lock:
            return len(self.accepted)

    def join(self, timeout: float) -> None:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "publisher did not finish"

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        with httpx.Client(base_url=self.api_base, headers=headers, timeout=10) as client:
            for index, event_id in enumerate(self.event_ids):
                body = {
                    "id": event_id,
                    "tenant_id": self.tenant_id,
                    "topic": "user.created",
                    "eligible_for_retry": True,
                    "data": {"seq": index, "id": event_id},
                }
                deadline = time.monotonic() + 60
                while True:
                    try:
                        res = client.post("/publish", json=body)
                    except httpx.TransportError:
                        with self.lock:
                            self.connection_errors += 1
                        if time.monotonic() > deadline:
                            break
                        time.sleep(0.05)  # server down: back off briefly, then try again
                        continue
                    if res.status_code == 202:
                        with self.lock:
                            self.accepted.append(event_id)
                            if res.json().get("duplicate"):
                                self.duplicates.append(event_id)
                        break
                    if res.status_code in (409, 500, 502, 503) and time.monotonic() < deadline:
                        time.sleep(0.05)
                        continue
                    with self.lock:
                        self.refused.append((event_id, res.status_code, res.text[:200]))
                    break


def test_kill_9_with_deliveries_in_flight_and_retries_pending(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    srv = make_server(CRASH_ENV)
    tenant = unique_id("crash")
    slow = receiver.new_path("crash-slow")
    flaky = receiver.new_path("crash-flaky")
    receiver.configure(slow, delay=0.05)  # deliveries stay in flight a little while
    receiver.configure(flaky, fail_first_per_event=1, fail_status=500)  # every event: 1 retry

    with srv.admin_client() as admin:
        admin.tenants.upsert(tenant_id=tenant)
        dest_slow = create_webhook(admin, tenant, receiver.url(slow))
        dest_flaky = create_webhook(admin, tenant, receiver.url(flaky))

    publisher = Publisher(
        srv.base_url,
        srv.api_key,
        tenant,
        [f"{tenant}-evt-{i:03d}" for i in range(BATCH)],
    )
    publisher.start()
    poll_until(
        lambda: publisher.accepted_count() >= KILL_AFTER,
        timeout=60,
        what=f"{KILL_AFTER} publishes accepted",
    )
    # make sure the crash happens with retries scheduled: some first attempts already failed
    receiver.wait_for(1, path=flaky, timeout=10)
    accepted_before_kill = publisher.accepted_count()
    flaky_before_kill = len(receiver.requests_for(flaky))
    srv.kill()
    killed_at = time.monotonic()
    srv.start()
    restart_seconds = time.monotonic() - killed_at
    publisher.join(timeout=120)

    assert publisher.refused == [], publisher.refused
    accepted = set(publisher.accepted)
    assert len(accepted) == BATCH

    def complete(reqs: list[RecordedRequest]) -> bool:
        return accepted <= delivered_ids(reqs)

    try:
        slow_reqs = receiver.wait_until(
            complete, path=slow, timeout=RECOVERY_TIMEOUT, what="slow path complete"
        )
        flaky_reqs = receiver.wait_until(
            complete, path=flaky, timeout=RECOVERY_TIMEOUT, what="retries fired"
        )
    except AssertionError:
        missing_slow = sorted(accepted - delivered_ids(receiver.requests_for(slow)))
        missing_flaky = sorted(accepted - delivered_ids(receiver.requests_for(flaky)))
        raise AssertionError(
            f"lost deliveries after kill -9: {len(missing_slow)} on the slow destination "
            f"(e.g. {missing_slow[:5]}), {len(missing_flaky)} retries never succeeded "
            f"(e.g. {missing_flaky[:5]})\n{srv.log_tail()}"
        ) from None

    slow_ok = [r for r in slow_reqs if r.status == 200 and r.response_sent]
    flaky_ok = [r for r in flaky_reqs if r.status == 200 and r.response_sent]
    print(
        f"\ncrash test: published={len(accepted)} (accepted before kill={accepted_before_kill}, "
        f"answered duplicate after restart={len(publisher.duplicates)}, "
        f"publisher connection errors={publisher.connection_errors}), "
        f"restart took {restart_seconds:.2f}s\n"
        f"  slow destination: delivered={len(delivered_ids(slow_reqs))} "
        f"requests={len(slow_reqs)} duplicated={len(slow_ok) - len(delivered_ids(slow_reqs))}\n"
        f"  flaky destination: delivered={len(delivered_ids(flaky_reqs))} "
        f"requests={len(flaky_reqs)} (before kill {flaky_before_kill}) "
        f"duplicated={len(flaky_ok) - len(delivered_ids(flaky_reqs))}"
    )

    # the attempt log catches up too: a success per event and destination
    with srv.http() as api:
        for dest_id in (dest_slow.id, dest_flaky.id):

            def logged(dest_id: str = dest_id) -> bool:
                rows = list_attempts(
                    api, tenant_id=tenant, destination_id=dest_id, status="success"
                )
                return accepted <= {row["event_id"] for row in rows}

            poll_until(logged, timeout=30, what=f"success attempts logged for {dest_id}")


def test_pending_retries_survive_a_graceful_restart(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    srv = make_server(CRASH_ENV)
    tenant = unique_id("restart")
    path = receiver.new_path("restart-flaky")
    receiver.configure(path, fail_first_per_event=2, fail_status=503)
    events = 20

    with srv.admin_client() as admin:
        admin.tenants.upsert(tenant_id=tenant)
        create_webhook(admin, tenant, receiver.url(path))
        ids = {
            admin.publish(
                request={"tenant_id": tenant, "topic": "user.created", "data": {"n": i}}
            ).id
            for i in range(events)
        }

    # every event failed once: a retry is now scheduled for each
    receiver.wait_for(events, path=path, timeout=15)
    stopping = time.monotonic()
    assert srv.stop() == 0, srv.log_tail()  # SIGTERM: a clean exit ...
    assert time.monotonic() - stopping < 10  # ... that does not hang
    srv.start()

    reqs = receiver.wait_until(
        lambda got: ids <= delivered_ids(got), path=path, timeout=60, what="all retries fired"
    )
    per_event = {i: sum(1 for r in reqs if r.event_id == i) for i in ids}
    assert all(n >= 3 for n in per_event.values()), per_event
