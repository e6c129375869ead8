"""`/healthz` (SDK 1.7.0): a worker impaired but serving is `degraded` (200), dated by `since` and
explained by `reason`; a failed one makes the answer 503. Read back through the SDK's model."""

from __future__ import annotations

from typing import Any

import pytest
from outpost_sdk.models import HealthCheckResponse

from waypost.api.handlers import system
from waypost.core.timefmt import now_ms, parse
from waypost.errors import StoreUnavailable

from ._support import Api

pytestmark = pytest.mark.anyio


class Broker:
    """A stand-in for the RabbitMQ reachability check, switched up and down by the test."""

    up = True

    async def ping(self) -> None:
        if not self.up:
            raise StoreUnavailable("RabbitMQ is not connected")


async def healthz(api: Api, status: int = 200) -> dict[str, Any]:
    response = await api.client.get("http://testserver/healthz")
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    if status == 200:
        HealthCheckResponse.model_validate(body)  # what the SDK reads
    return body


async def test_a_broker_outage_degrades_and_its_episode_is_dated(api: Api) -> None:
    broker = Broker()
    api.system.services.dependencies["rabbitmq"] = broker.ping
    broker.up = False
    before = now_ms()
    body = await healthz(api)
    assert body["status"] == "degraded"
    worker = body["workers"]["rabbitmq"]
    assert worker["status"] == "degraded" and worker["reason"] == "startup_failed"
    assert before <= parse(worker["since"]) <= now_ms()
    again = await healthz(api)
    assert again["workers"]["rabbitmq"]["since"] == worker["since"]  # the same episode
    assert body["workers"]["database"] == {"status": "healthy"}

    broker.up = True
    assert (await healthz(api))["status"] == "healthy"
    broker.up = False
    later = (await healthz(api))["workers"]["rabbitmq"]
    assert later["reason"] == "recovery_failed"  # it had been healthy


async def test_an_unreachable_database_fails_with_a_reason(api: Api) -> None:
    broken = Broker()
    broken.up = False
    api.system.services.dependencies["database"] = broken.ping
    body = await healthz(api, 503)
    assert body["status"] == "failed"
    assert body["workers"]["database"]["status"] == "failed"
    assert body["workers"]["database"]["reason"] == "startup_failed"


async def test_delivery_behind_is_degraded_since_the_task_fell_due(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No worker runs in these tests, so a published event's task waits: with the threshold at
    zero, the delivery side counts as behind since that task's due time."""
    tenant = await api.tenant()
    await api.destination(tenant)
    assert (await healthz(api))["status"] == "healthy"  # nothing queued yet
    published_at = now_ms()
    await api.publish(tenant)
    monkeypatch.setattr(system, "BEHIND_MS", 0)
    while (body := await healthz(api))["status"] == "healthy":
        pass  # the task is due at the millisecond it was accepted: at most 1 ms
    worker = body["workers"]["deliverymq-consumer"]
    assert body["status"] == "degraded" and worker["status"] == "degraded"
    assert published_at <= parse(worker["since"]) <= now_ms()
    assert await api.deliver_queued() == 1
    assert (await healthz(api))["status"] == "healthy"
