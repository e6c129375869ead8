"""The publisher suite: the same cases for every destination type, against its real remote side.

Types join by adding a module to `tests/destinations/harnesses/` (see `harness.py`).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import pkgutil
from collections.abc import AsyncIterator

import pytest

from destinations import harnesses
from destinations.harness import HarnessFactory, PublisherHarness, make_event
from waypost.core import timefmt
from waypost.core.sent_headers import MASK
from waypost.errors import DeliveryInfrastructureError

pytestmark = pytest.mark.anyio

ARRIVAL_TIMEOUT = 20.0
CONCURRENT = 40


def _factories() -> dict[str, HarnessFactory]:
    found = {}
    for module in pkgutil.iter_modules(harnesses.__path__):
        loaded = importlib.import_module(f"{harnesses.__name__}.{module.name}")
        found[module.name] = loaded.open_harness
    return found


FACTORIES = _factories()


@pytest.fixture(params=sorted(FACTORIES))
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[PublisherHarness]:
    async with FACTORIES[request.param]() as opened:
        yield opened


async def test_publish_carries_data_and_identity(harness: PublisherHarness) -> None:
    destination = harness.destination()
    event = make_event({"order": 7, "total": 12.5, "tags": ["a", "b"], "note": "héllo"})
    before = timefmt.now_ms()

    result = await harness.provider.publish(event, destination)

    assert result.ok, result
    [got] = await harness.received(destination, 1, ARRIVAL_TIMEOUT)
    assert got.data == json.loads(event.data)
    assert got.metadata["event-id"] == event.id
    assert got.metadata["topic"] == event.topic
    sent_at = timefmt.parse(got.metadata["timestamp"])
    assert before - 1000 <= sent_at <= timefmt.now_ms()


async def test_metadata_merges_destination_then_event(harness: PublisherHarness) -> None:
    destination = harness.destination(
        delivery_metadata={"team": "billing", "source": "destination"}
    )
    event = make_event(metadata={"source": "event", "region": "eu"})

    assert (await harness.provider.publish(event, destination)).ok

    [got] = await harness.received(destination, 1, ARRIVAL_TIMEOUT)
    assert got.metadata["team"] == "billing"
    assert got.metadata["source"] == "event"  # event metadata wins over the destination's
    assert got.metadata["region"] == "eu"
    assert got.metadata["event-id"] == event.id


# Types whose metadata travels inside the payload: nothing is sent beside the body (AWS's own
# request signing is the SDK's), or only the API call's headers (Cloudflare's, with its token).
NO_HEADERS = {"aws_eventbridge", "aws_kinesis"}
API_HEADERS = {"cloudflare_queues": {"Content-Type": "application/json", "Authorization": MASK}}


async def test_the_result_records_what_was_sent_but_no_credential(
    harness: PublisherHarness,
) -> None:
    destination = harness.destination(delivery_metadata={"team": "billing"})
    event = make_event()

    result = await harness.provider.publish(event, destination)

    assert result.ok, result
    if harness.type in NO_HEADERS:
        assert result.request_headers is None
        return
    if harness.type in API_HEADERS:
        assert result.request_headers == API_HEADERS[harness.type]
        return
    sent = json.dumps(result.request_headers)
    assert event.id in sent and "billing" in sent, sent
    for secret in destination.credentials.values():
        assert len(secret) < 8 or secret not in sent, "a credential was recorded"


async def test_concurrent_publishes_all_arrive_once(harness: PublisherHarness) -> None:
    destination = harness.destination()
    events = [make_event({"n": n}) for n in range(CONCURRENT)]

    results = await asyncio.gather(*(harness.provider.publish(e, destination) for e in events))

    assert all(r.ok for r in results), [r for r in results if not r.ok][:3]
    got = await harness.received(destination, CONCURRENT, ARRIVAL_TIMEOUT)
    assert sorted(m.metadata["event-id"] for m in got) == sorted(e.id for e in events)
    assert sorted(m.data["n"] for m in got) == list(range(CONCURRENT))


async def test_failure_is_a_failed_result_with_a_code(harness: PublisherHarness) -> None:
    destination = harness.destination(broken=True)

    result = await harness.provider.publish(make_event(), destination)

    assert result.status == "failed"
    assert result.code, "a failed attempt names what went wrong"
    assert result.response_data is None or isinstance(result.response_data, dict)


async def test_close_during_publish_ends_every_publish(harness: PublisherHarness) -> None:
    """Closing while deliveries are in flight never hangs them: each one ends with a result or
    the infrastructure error the worker releases (and redelivers) the task on."""
    destination = harness.destination()
    running = [
        asyncio.ensure_future(harness.provider.publish(make_event({"n": n}), destination))
        for n in range(10)
    ]
    await asyncio.sleep(0)  # let them start
    await asyncio.wait_for(harness.provider.close(), ARRIVAL_TIMEOUT)
    done = await asyncio.wait_for(asyncio.gather(*running, return_exceptions=True), ARRIVAL_TIMEOUT)
    for outcome in done:
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, DeliveryInfrastructureError), repr(outcome)
