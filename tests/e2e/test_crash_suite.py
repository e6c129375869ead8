"""kill -9, many times, at random moments, under load: nothing accepted is lost.

`PUBLISHERS` publisher loops offer a bounded load (at most `PUBLISH_RATE` events/s each, every
event retried with the same id until answered 202, as a producer would) to a tenant whose
destination is the real loopback receiver. Meanwhile each kind of process is killed with SIGKILL
`KILLS_PER_KIND` times at random moments and restarted on the same data:

- embedded mode (the default pass): the one `all` process;
- PostgreSQL mode (`OUTPOST_TEST_BACKEND=postgres…`): an `api` and a `delivery` process on one
  database, killed separately in a shuffled order. (Tasks go through PostgreSQL here, without
  RabbitMQ, whatever the pass.)

At the end every event answered 202 must have reached the receiver at least once, and every
such event must eventually have a successful attempt in the log. Duplicates (a delivery whose
process died before it recorded it is delivered again) are allowed and counted. The table is
printed (`-s`) and written to `$TMPDIR/outpost-crash-suite/<backend>.txt`.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from support import postgres
from support.api import unique_id
from support.receiver import Receiver, RecordedRequest
from support.server import BACKEND, ServerProcess
from support.waiting import poll_until

# The PostgreSQL branch does not use RabbitMQ: the postgres+rabbitmq pass would repeat it.
pytestmark = [pytest.mark.e2e, pytest.mark.backends("sqlite", "postgres"), pytest.mark.timeout(420)]

KILLS_PER_KIND = 10
PUBLISHERS = 4
PUBLISH_RATE = 50.0  # events/s offered by each publisher, at most
RECOVERY_TIMEOUT = 120.0
EMBEDDED = BACKEND == "sqlite"
KINDS = ("all",) if EMBEDDED else ("api", "delivery")
REPORT = Path(tempfile.gettempdir()) / "outpost-crash-suite" / f"{BACKEND}.txt"

ENV = {
    "RETRY_INTERVAL_SECONDS": "1",
    "MAX_RETRY_LIMIT": "10",
    "RETRY_POLL_BACKOFF_MS": "100",
    "DELIVERY_TIMEOUT_SECONDS": "2",
    # with PostgreSQL, a killed delivery process's claims go back to the queue after this lease
    "DELIVERY_LEASE_SECONDS": "3",
}


@dataclass
class PublisherLoop:
    """Publishes until stopped, each event retried with its id until it is answered 202."""

    base_url: str
    api_key: str
    tenant_id: str
    prefix: str
    accepted: list[str] = field(default_factory=list)
    refused: list[tuple[str, int, str]] = field(default_factory=list)
    connection_errors: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="crash-publisher", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        assert self.thread is not None
        self.thread.join(timeout=90)
        assert not self.thread.is_alive(), "publisher did not finish"

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=10) as client:
            sequence = 0
            while not self.stopping.is_set():
                event_id = f"{self.prefix}-{sequence:05d}"
                body: dict[str, object] = {"id": event_id, "tenant_id": self.tenant_id}
                body |= {"topic": "user.created", "data": {"seq": sequence}}
                self._publish(client, event_id, body)
                sequence += 1
                time.sleep(1 / PUBLISH_RATE)

    def _publish(self, client: httpx.Client, event_id: str, body: dict[str, object]) -> None:
        deadline = time.monotonic() + 60  # a server that stays down this long fails the test
        status, text = 0, "no answer for 60 s"
        while time.monotonic() < deadline:
            try:
                response = client.post("/publish", json=body)
            except httpx.TransportError:
                self.connection_errors += 1
                time.sleep(0.05)
                continue
            status, text = response.status_code, response.text[:200]
            if status == 202:
                self.accepted.append(event_id)
                return
            if status not in (409, 503):
                break
            time.sleep(0.05)
        self.refused.append((event_id, status, text))


@dataclass
class Cluster:
    processes: dict[str, ServerProcess]

    @property
    def api(self) -> ServerProcess:
        return self.processes["all" if EMBEDDED else "api"]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    if EMBEDDED:
        srv = ServerProcess(ENV, workdir=tmp_path / "all")
        try:
            yield Cluster({"all": srv.start()})
        finally:
            srv.close()
        return
    name, url = postgres.create_database("outpost_crash")
    processes = {
        kind: ServerProcess({**ENV, "SERVICE": kind}, workdir=tmp_path / kind, postgres_url=url)
        for kind in KINDS
    }
    try:
        for srv in processes.values():
            srv.start()
        yield Cluster(processes)
    finally:
        for srv in processes.values():
            srv.close()
        postgres.drop_database(name)


def delivered(requests: list[RecordedRequest]) -> Counter[str]:
    """Deliveries per event that the receiver acknowledged with a 2xx it managed to send."""
    return Counter(
        r.event_id for r in requests if r.event_id and 200 <= r.status < 300 and r.response_sent
    )


def logged_successes(api: httpx.Client, tenant: str, destination: str) -> Counter[str]:
    """Successful attempts per event in the log, over every page."""
    counts: Counter[str] = Counter()
    params: dict[str, str | int] = {
        "tenant_id": tenant,
        "destination_id": destination,
        "status": "success",
        "limit": 1000,
    }
    while True:
        response = api.get("/attempts", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        counts.update(row["event_id"] for row in page["models"])
        cursor = page["pagination"]["next"]
        if not cursor:
            return counts
        params["next"] = cursor


def table(rows: list[tuple[str, int]]) -> str:
    width = max(len(name) for name, _ in rows)
    lines = [f"crash suite ({BACKEND}): kill -9 of {', '.join(KINDS)}"]
    lines += [f"  {name.ljust(width)}  {value:>7}" for name, value in rows]
    return "\n".join(lines) + "\n"


def test_kill_9_at_random_moments_loses_nothing(cluster: Cluster, receiver: Receiver) -> None:
    seed = int(os.environ.get("CRASH_SUITE_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    tenant = unique_id("crash-suite")
    path = receiver.new_path("crash-suite")
    receiver.configure(path, delay=0.05)  # deliveries are in flight when a kill lands
    with cluster.api.http() as api:
        assert api.put(f"/tenants/{tenant}").status_code == 201
        body = {"type": "webhook", "topics": "*", "config": {"url": receiver.url(path)}}
        created = api.post(f"/tenants/{tenant}/destinations", json=body)
        assert created.status_code == 201, created.text
        destination = created.json()["id"]

    srv = cluster.api
    publishers = [
        PublisherLoop(srv.base_url, srv.api_key, tenant, f"{tenant}-p{index}")
        for index in range(PUBLISHERS)
    ]
    for publisher in publishers:
        publisher.start()
    schedule = [kind for kind in KINDS for _ in range(KILLS_PER_KIND)]
    rng.shuffle(schedule)
    kills: Counter[str] = Counter()
    started = time.monotonic()
    for kind in schedule:
        time.sleep(rng.uniform(0.2, 1.5))  # a random moment of the load
        cluster.processes[kind].kill()
        kills[kind] += 1
        time.sleep(rng.uniform(0.0, 0.3))  # down a moment: publishes are refused meanwhile
        cluster.processes[kind].start()
    time.sleep(0.5)
    for publisher in publishers:
        publisher.stop()
    chaos_seconds = time.monotonic() - started

    refused = [r for publisher in publishers for r in publisher.refused]
    assert refused == [], refused
    accepted = {event for publisher in publishers for event in publisher.accepted}
    assert len(accepted) >= 100, f"too little load to mean anything: {len(accepted)}"

    def all_delivered(requests: list[RecordedRequest]) -> bool:
        return accepted <= set(delivered(requests))

    with contextlib.suppress(AssertionError):  # what is missing is counted below, in the table
        receiver.wait_until(all_delivered, path=path, timeout=RECOVERY_TIMEOUT, what="delivered")
    deliveries = delivered(receiver.requests_for(path))
    with cluster.api.http() as api:
        with contextlib.suppress(AssertionError):
            poll_until(
                lambda: accepted <= set(logged_successes(api, tenant, destination)),
                timeout=60,
                what="a successful attempt logged for every delivered event",
            )
        logged = logged_successes(api, tenant, destination)

    lost = accepted - set(deliveries)
    unlogged = (accepted & set(deliveries)) - set(logged)
    duplicated = sum(n - 1 for event, n in deliveries.items() if event in accepted)
    report = table(
        [
            *((f"kills of {kind}", kills[kind]) for kind in KINDS),
            ("events accepted (202)", len(accepted)),
            ("events delivered", len(accepted & set(deliveries))),
            ("deliveries (2xx sent)", sum(deliveries.values())),
            ("duplicated deliveries", duplicated),
            ("successful attempts logged", sum(logged.values())),
            ("lost (not delivered)", len(lost)),
            ("delivered but no attempt", len(unlogged)),
            ("publish retries (down)", sum(p.connection_errors for p in publishers)),
            ("seconds under kills", round(chaos_seconds)),
            ("seed", seed),
        ]
    )
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(report)
    print("\n" + report + f"(written to {REPORT})")
    assert not lost, f"{len(lost)} accepted events never delivered, e.g. {sorted(lost)[:5]}"
    assert not unlogged, (
        f"{len(unlogged)} delivered events with no attempt, e.g. {sorted(unlogged)[:5]}"
    )
