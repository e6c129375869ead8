"""The rabbitmq destination: schema, validation, normalisation, display, and deliveries to the real
broker on 127.0.0.1:5672 — what arrives, and the code of each kind of failure (contract.md §5.7)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import pytest
from aiormq import exceptions as amqp
from support.rabbitmq import Exchanges, header_text

from waypost.core.models import Destination, Event
from waypost.destinations.rabbitmq.failures import failure_code, failure_text
from waypost.destinations.rabbitmq.provider import RabbitMQProvider
from waypost.errors import DeliveryInfrastructureError

pytestmark = pytest.mark.timeout(60)

NOW = 1_717_230_216_000
SERVER = "127.0.0.1:5672"
T = TypeVar("T")


def make_destination(**config: str) -> Destination:
    return Destination(
        id="des_rmq",
        tenant_id="acme",
        type="rabbitmq",
        topics=("order.created", "order.paid"),
        config={"server_url": SERVER, "exchange": "orders", "tls": "false", **config},
        credentials={"username": "guest", "password": "guest"},
        created_at=NOW,
        updated_at=NOW,
    )


def make_event(**changes: Any) -> Event:
    base = Event(
        id="evt_rmq_1",
        tenant_id="acme",
        topic="order.created",
        time=NOW,
        data=b'{"order":7,"total":12.50}',
        metadata={"region": "eu"},
    )
    return replace(base, **changes)


def provider() -> RabbitMQProvider:
    return RabbitMQProvider(timeout_seconds=5, include_millisecond_timestamp=False)


def with_broker(test: Callable[[RabbitMQProvider, Exchanges], Awaitable[T]]) -> T:
    async def main() -> T:
        built = provider()
        try:
            async with Exchanges.open() as exchanges:
                return await test(built, exchanges)
        finally:
            await built.close()

    return asyncio.run(main())


# -- schema, validation, normalisation, display ---------------------------------------------


def test_describe_lists_the_contract_fields() -> None:
    described = provider().describe()
    assert described["type"] == "rabbitmq"
    assert [f["key"] for f in described["config_fields"]] == ["server_url", "exchange", "tls"]
    assert [f["key"] for f in described["credential_fields"]] == ["username", "password"]
    password = described["credential_fields"][1]
    assert password["sensitive"] is True and password["required"] is True
    assert described["instructions"].startswith("# ")


@pytest.mark.parametrize(
    ("config", "credentials", "errors"),
    [
        ({"server_url": ""}, None, ["config.server_url is required"]),
        ({"server_url": "rabbit host:5672"}, None, ["config.server_url failed pattern validation"]),
        ({"tls": "yes"}, None, ["config.tls failed invalid validation"]),
        ({"tls": "on"}, None, []),
        ({"exchange": ""}, None, []),  # optional on the server, whatever the SDK says
        ({}, {"username": "guest"}, ["credentials.password is required"]),
        ({}, {"password": "guest"}, ["credentials.username is required"]),
    ],
)
def test_validation_messages(
    config: dict[str, str], credentials: dict[str, str] | None, errors: list[str]
) -> None:
    destination = make_destination(**config)
    if credentials is not None:
        destination = replace(destination, credentials=credentials)
    assert provider().validate(destination) == errors


@pytest.mark.parametrize(("given", "stored"), [("on", "true"), (None, "false"), ("false", "false")])
def test_tls_is_stored_normalised(given: str | None, stored: str) -> None:
    destination = make_destination()
    config = dict(destination.config)
    config.pop("tls")
    if given is not None:
        config["tls"] = given
    kept = provider().preprocess(replace(destination, config=config), None, admin=True, now=NOW)
    assert kept.config["tls"] == stored


def test_an_absent_exchange_is_stored_empty_as_the_sdk_requires_the_key() -> None:
    destination = make_destination()
    config = {k: v for k, v in destination.config.items() if k != "exchange"}
    kept = provider().preprocess(replace(destination, config=config), None, admin=True, now=NOW)
    assert kept.config["exchange"] == ""


def test_display_names_exchange_and_topics_and_hides_the_password() -> None:
    destination = replace(
        make_destination(), credentials={"username": "publisher", "password": "a-long-password"}
    )
    shown = provider().display(destination, NOW)
    assert shown.target == "orders -> order.created, order.paid"
    assert shown.target_url == ""
    assert shown.credentials == {"username": "publisher", "password": "a-lo***********"}


# -- deliveries -------------------------------------------------------------------------------


def test_message_carries_data_topic_and_merged_metadata() -> None:
    async def run(built: RabbitMQProvider, exchanges: Exchanges) -> None:
        name = await exchanges.create("order.*")
        destination = replace(
            make_destination(exchange=name), delivery_metadata={"team": "billing", "region": "us"}
        )
        result = await built.publish(make_event(), destination)
        assert result.ok and result.code == "OK" and not result.response_data
        [message] = await exchanges.messages(name, 1, 10)
        assert message.body == b'{"order":7,"total":12.50}'  # the raw bytes, untouched
        assert message.routing_key == "order.created"
        assert message.content_type == "application/json"
        headers = {k: header_text(v) for k, v in (message.headers or {}).items()}
        assert headers["event-id"] == "evt_rmq_1"
        assert headers["topic"] == "order.created"
        assert headers["team"] == "billing"
        assert headers["region"] == "eu"  # the event's metadata wins

    with_broker(run)


def test_routing_key_is_the_topic() -> None:
    async def run(built: RabbitMQProvider, exchanges: Exchanges) -> None:
        name = await exchanges.create("order.paid")  # only this topic is bound
        destination = make_destination(exchange=name)
        for topic in ("order.created", "order.paid"):
            assert (await built.publish(make_event(id=topic, topic=topic), destination)).ok
        got = await exchanges.messages(name, 2, 1)
        assert [header_text((m.headers or {})["event-id"]) for m in got] == ["order.paid"]

    with_broker(run)


def test_empty_exchange_publishes_to_the_default_exchange() -> None:
    async def run(built: RabbitMQProvider, exchanges: Exchanges) -> None:
        name = await exchanges.create()
        # The default exchange routes by queue name: the harness's queue is "<exchange>-q".
        event = make_event(topic=f"{name}-q")
        assert (await built.publish(event, make_destination(exchange=""))).ok
        [message] = await exchanges.messages(name, 1, 10)
        assert json.loads(message.body)["order"] == 7

    with_broker(run)


def test_one_connection_is_shared_and_survives_a_missing_exchange() -> None:
    async def run(built: RabbitMQProvider, exchanges: Exchanges) -> None:
        good = await exchanges.create()
        missing = make_destination(exchange="outpost-test-no-such-exchange")
        results = await asyncio.gather(
            *(
                built.publish(make_event(id=f"e{n}"), make_destination(exchange=good))
                for n in range(20)
            ),
            built.publish(make_event(), missing),
        )
        assert all(r.ok for r in results[:-1])
        assert results[-1].code == "exchange_not_found"
        assert len(built._pool._links) == 1  # one connection for the one login
        # The failed exchange's channel is reopened on the next attempt.
        again = await built.publish(make_event(id="after"), make_destination(exchange=good))
        assert again.ok
        assert len(await exchanges.messages(good, 21, 10)) == 21

    with_broker(run)


@pytest.mark.parametrize(
    ("config", "credentials", "code"),
    [
        ({}, {"username": "guest", "password": "pw-not-guest"}, "access_denied"),
        ({"exchange": "outpost-test-no-such-exchange"}, None, "exchange_not_found"),
        ({"server_url": "127.0.0.1:1"}, None, "connection_refused"),
        ({"server_url": "no-such-host.invalid:5672"}, None, "dns_error"),
        ({"tls": "true"}, None, "tls_error"),  # AMQPS spoken to the plain port
    ],
)
def test_failures_have_codes_and_an_error(
    config: dict[str, str], credentials: dict[str, str] | None, code: str
) -> None:
    async def run(built: RabbitMQProvider, exchanges: Exchanges) -> None:
        name = await exchanges.create()
        destination = make_destination(**{"exchange": name, **config})
        if credentials is not None:
            destination = replace(destination, credentials=credentials)
        result = await built.publish(make_event(), destination)
        assert (result.status, result.code) == ("failed", code)
        assert result.response_data is not None
        error = result.response_data["error"]
        assert error and "pw-not-guest" not in error  # what happened, never the password

    with_broker(run)


def test_a_broker_that_never_answers_fails_every_waiting_event_with_timeout() -> None:
    async def main() -> list[str]:
        built = RabbitMQProvider(timeout_seconds=0.5, include_millisecond_timestamp=False)
        with socket.socket() as silent:  # accepts connections, never says a word
            silent.bind(("127.0.0.1", 0))
            silent.listen(64)
            destination = make_destination(server_url=f"127.0.0.1:{silent.getsockname()[1]}")
            try:
                results = await asyncio.gather(
                    *(built.publish(make_event(id=f"e{n}"), destination) for n in range(10))
                )
            finally:
                await built.close()
        return [r.code for r in results]

    assert asyncio.run(main()) == ["timeout"] * 10


def test_publish_after_close_is_an_infrastructure_error() -> None:
    async def main() -> None:
        built = provider()
        await built.close()
        with pytest.raises(DeliveryInfrastructureError):
            await built.publish(make_event(), make_destination())

    asyncio.run(main())


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (amqp.ConnectionClosed(320, "CONNECTION_FORCED - shutdown"), "connection_forced"),
        (amqp.ChannelAccessRefused("ACCESS_REFUSED - no write"), "access_denied"),
        (amqp.ChannelClosed(None, "closed"), "channel_error"),
        (amqp.ChannelPreconditionFailed("PRECONDITION_FAILED"), "rabbitmq_error"),
        (amqp.AuthenticationError("no mechanism"), "auth_failed"),
        (ConnectionResetError(104, "Connection reset by peer"), "connection_reset"),
        (TimeoutError(), "timeout"),
        (RuntimeError("something else"), "rabbitmq_error"),
    ],
)
def test_failure_codes_of_broker_errors(error: BaseException, code: str) -> None:
    assert failure_code(error) == code
    assert failure_text(error)
