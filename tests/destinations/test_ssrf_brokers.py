"""The SSRF guard for the broker types: a tenant must not reach (or scan) the internal network.

Each provider is built as bootstrap builds it with the guard on and nothing allowed, and pointed
at a plain TCP listener on loopback that counts accepted connections (an open port) and at a port
nothing listens on (a closed one). No connection may be opened, and the tenant's attempt must
read the same either way, naming no resolved address.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from support.kafka_broker import KafkaBroker

from destinations.harness import make_destination, make_event
from waypost.core.models import DeliveryResult, Destination
from waypost.destinations.azure_servicebus.provider import AzureServiceBusProvider
from waypost.destinations.gcp_pubsub.provider import GcpPubSubProvider
from waypost.destinations.kafka.provider import KafkaProvider
from waypost.destinations.provider import Provider
from waypost.destinations.rabbitmq.provider import RabbitMQProvider
from waypost.transport.guard import AddressGuard

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

NOTHING_ALLOWED = AddressGuard()


@dataclass
class Counter:
    connections: int = 0

    async def accept(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


@contextlib.asynccontextmanager
async def listening(host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[tuple[Counter, int]]:
    counter = Counter()
    server = await asyncio.start_server(counter.accept, host, port)
    try:
        yield counter, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens once the socket is closed


def rabbitmq(host: str, port: int) -> Destination:
    config = {"server_url": f"{host}:{port}", "exchange": "x"}
    return make_destination("rabbitmq", config, {"username": "guest", "password": "guest"})


def kafka(host: str, port: int) -> Destination:
    config = {"brokers": f"{host}:{port}", "topic": "t", "sasl_mechanism": "plain"}
    return make_destination("kafka", config, {"username": "u", "password": "p"})


def gcp_pubsub(host: str, port: int) -> Destination:
    config = {"project_id": "p", "topic": "t", "endpoint": f"{host}:{port}"}
    return make_destination("gcp_pubsub", config, {"service_account_json": '{"type": "x"}'})


def azure(host: str, port: int) -> Destination:
    connection = f"Endpoint=sb://{host}:{port}/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0"
    return make_destination("azure_servicebus", {"name": "q"}, {"connection_string": connection})


PROVIDERS: dict[str, tuple[Callable[[AddressGuard | None], Provider], Any]] = {
    "rabbitmq": (
        lambda guard: RabbitMQProvider(
            timeout_seconds=2, include_millisecond_timestamp=False, guard=guard
        ),
        rabbitmq,
    ),
    "kafka": (
        lambda guard: KafkaProvider(
            timeout_seconds=2, include_millisecond_timestamp=False, guard=guard
        ),
        kafka,
    ),
    "gcp_pubsub": (lambda guard: GcpPubSubProvider(timeout_seconds=2, guard=guard), gcp_pubsub),
    "azure_servicebus": (
        lambda guard: AzureServiceBusProvider(timeout_seconds=2, guard=guard),
        azure,
    ),
}


async def attempt(provider: Provider, destination: Destination) -> DeliveryResult:
    try:
        return await provider.publish(make_event(), destination)
    finally:
        await provider.close()


@pytest.mark.parametrize("type_", list(PROVIDERS))
async def test_no_connection_and_the_same_error_for_open_and_closed_ports(type_: str) -> None:
    build, destination_for = PROVIDERS[type_]
    async with listening() as (counter, open_port):
        # A name, so the refusal happens when connecting (a literal is refused at create).
        opened = await attempt(build(NOTHING_ALLOWED), destination_for("localhost", open_port))
        closed = await attempt(build(NOTHING_ALLOWED), destination_for("localhost", closed_port()))
    assert counter.connections == 0
    assert opened.status == closed.status == "failed"
    assert opened.code == closed.code == "ssrf_blocked"
    assert opened.response_data == closed.response_data
    error = str((opened.response_data or {}).get("error", ""))
    assert "not allowed" in error
    assert "127.0.0.1" not in error and "::1" not in error  # the resolved address stays ours


@pytest.mark.parametrize("type_", list(PROVIDERS))
def test_create_refuses_refused_literals(type_: str) -> None:
    build, destination_for = PROVIDERS[type_]
    problems = build(NOTHING_ALLOWED).validate(destination_for("127.0.0.1", 5672))
    assert any("ssrf validation" in problem for problem in problems), problems


@pytest.mark.parametrize("type_", ["rabbitmq", "kafka", "gcp_pubsub"])
def test_names_pass_at_create(type_: str) -> None:
    build, destination_for = PROVIDERS[type_]
    assert build(NOTHING_ALLOWED).validate(destination_for("broker.example", 5672)) == []


def test_azure_is_refused_at_create_only_with_the_guard() -> None:
    guarded = AzureServiceBusProvider(timeout_seconds=2, guard=NOTHING_ALLOWED)
    unguarded = AzureServiceBusProvider(timeout_seconds=2, guard=None)
    destination = azure("orders.servicebus.windows.net", 5671)
    assert guarded.validate(destination) == ["credentials.connection_string failed ssrf validation"]
    assert unguarded.validate(destination) == []


async def test_allowed_rabbitmq_broker_still_delivers_through_the_guard() -> None:
    provider = RabbitMQProvider(
        timeout_seconds=5,
        include_millisecond_timestamp=False,
        guard=AddressGuard(["127.0.0.0/8", "::1/128"]),
    )
    destination = rabbitmq("localhost", 5672)
    result = await attempt(
        provider,
        make_destination(
            "rabbitmq", destination.config, {"username": "guest", "password": "guest"}
        ),
    )
    # The exchange "x" does not exist: the broker answered, so the connection was made.
    assert result.code == "exchange_not_found", result


async def test_kafka_advertised_brokers_pass_the_guard() -> None:
    """The bootstrap broker is allowed; the broker it advertises (on 127.0.0.2) is not."""
    async with listening("127.0.0.2") as (advertised, port):
        with KafkaBroker({"u": "p"}, advertised=("127.0.0.2", port)) as broker:
            provider = KafkaProvider(
                timeout_seconds=2,
                include_millisecond_timestamp=False,
                guard=AddressGuard(["127.0.0.1/32"]),
            )
            result = await attempt(provider, kafka("127.0.0.1", broker.front_port))
    assert advertised.connections == 0
    assert (result.status, result.code) == ("failed", "ssrf_blocked")
    assert result.response_data == {
        "error": "delivery to 127.0.0.2 refused: a loopback address is not allowed"
    }
