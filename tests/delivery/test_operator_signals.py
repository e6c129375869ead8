"""What the worker tells an operator: the `retries exhausted` log line, the line about leases a
dead run left, and the Prometheus counters of attempts, retries and exhausted retries."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from waypost.core.backoff import RetryPolicy
from waypost.prometheus.exporter import PrometheusExporter
from waypost.storage.sealing import Sealer
from waypost.storage.sqlite.backend import SqliteBackend

from .test_worker import (
    NO_RETRIES,
    StandIn,
    _count,
    attempts,
    ok,
    publish,
    refused,
    run_until,
    worker_for,
)

pytestmark = pytest.mark.anyio
WORKER_LOG = "waypost.delivery.worker"


def exhausted_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == WORKER_LOG and r.getMessage().startswith("retries exhausted")
    ]


async def test_the_last_failed_attempt_is_logged_once_at_info(
    store: SqliteBackend, caplog: pytest.LogCaptureFixture
) -> None:
    worker = worker_for(store, StandIn(refused), RetryPolicy(schedule=(1,)))
    await publish(store, "e-exhausted")
    with caplog.at_level(logging.INFO, logger=WORKER_LOG):
        await run_until(worker, lambda: _count(store, 2))
    [line] = exhausted_lines(caplog)
    assert line.levelno == logging.INFO
    message = line.getMessage()
    assert "e-exhausted" in message and "destination d" in message and "attempt 2" in message


async def test_no_exhausted_line_for_successes_or_events_that_never_retry(
    store: SqliteBackend, caplog: pytest.LogCaptureFixture
) -> None:
    await publish(store, "fine")
    await publish(store, "once", retry=False)
    provider = StandIn(lambda event: ok(event) if event.id == "fine" else refused(event))
    with caplog.at_level(logging.INFO, logger=WORKER_LOG):
        await run_until(worker_for(store, provider, NO_RETRIES), lambda: _count(store, 2))
    assert exhausted_lines(caplog) == []


async def test_leases_left_by_a_dead_run_are_reported_when_released(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = SqliteBackend(tmp_path, sealer=Sealer("worker-tests"), synchronous="NORMAL")
    await first.open()
    await publish(first)
    await publish(first, "e2")
    assert len(await first.claim(10, 60_000)) == 2
    await first.close()  # as if killed mid-delivery

    second = SqliteBackend(tmp_path, sealer=Sealer("worker-tests"), synchronous="NORMAL")
    with caplog.at_level(logging.INFO, logger="waypost.storage.sqlite.backend"):
        await second.open()
    await second.close()
    [line] = [r for r in caplog.records if "leases" in r.getMessage()]
    assert line.levelno == logging.INFO and "released 2 task leases" in line.getMessage()

    third = SqliteBackend(tmp_path, sealer=Sealer("worker-tests"), synchronous="NORMAL")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="waypost.storage.sqlite.backend"):
        await third.open()  # a clean stop before: nothing to say
    await third.close()
    assert [r for r in caplog.records if "leases" in r.getMessage()] == []


async def test_attempts_retries_and_exhausted_retries_are_counted(store: SqliteBackend) -> None:
    exporter = PrometheusExporter(
        store, lambda: True, {}, ("webhook", "aws_sqs"), folder=None, owns_folder=False
    )
    provider = StandIn(lambda event: ok(event) if event.id.startswith("ok") else refused(event))
    worker = worker_for(store, provider, RetryPolicy(schedule=(1,)), outcomes=exporter)
    for n in range(3):
        await publish(store, f"ok{n}")
    await publish(store, "bad")
    await run_until(worker, lambda: _count(store, 5))  # 3 successes, 2 attempts of "bad"
    assert len(await attempts(store)) == 5

    body, content_type = await exporter.scrape()
    assert content_type.startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    webhook = (("destination_type", "webhook"),)

    def attempts_of(kind: str, status: str) -> float:
        key = (("destination_type", kind), ("status", status))
        return samples[("outpost_delivery_attempts_total", key)]

    assert attempts_of("webhook", "success") == 3
    assert attempts_of("webhook", "failed") == 2
    assert attempts_of("aws_sqs", "failed") == 0  # every type's series exists from the start
    assert samples[("outpost_retries_scheduled_total", webhook)] == 1
    assert samples[("outpost_retries_exhausted_total", webhook)] == 1
    assert samples[("outpost_delivery_attempt_duration_seconds_count", webhook)] == 5
    assert samples[("outpost_due_tasks", ())] == 0
    assert samples[("outpost_oldest_due_task_age_seconds", ())] == 0
    assert samples[("outpost_delivery_healthy", ())] == 1
