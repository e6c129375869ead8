"""The kafka destination: schema, validation, normalisation, display, the partition key, and
deliveries to a real Kafka-protocol broker on loopback — what arrives, and the code of each kind
of failure (contract.md §5.8).

The broker is Tansu behind a test front that checks SASL logins (`support/kafka_broker.py` says
why): records, keys, headers and partitions are Tansu's; the PLAIN/SCRAM server side is the
test's own, while the client side is aiokafka's, as in production. One refusal is also checked
against Tansu's own SCRAM server. Not reachable here for real: `topic_not_found` (Tansu creates
any topic asked for), so that code is checked from aiokafka's error alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import errors as kafka_errors
from aiokafka.structs import ConsumerRecord
from support.kafka_broker import KafkaBroker, Tansu

from waypost.core.models import DeliveryResult, Destination, Event
from waypost.destinations.gofmt import go_g
from waypost.destinations.kafka.failures import failure_code
from waypost.destinations.kafka.partition_key import partition_key
from waypost.destinations.kafka.provider import KafkaProvider
from waypost.destinations.sending import FORMAT_ERROR
from waypost.errors import DeliveryInfrastructureError

pytestmark = pytest.mark.timeout(120)

NOW = 1_717_230_216_000
USERS = {"writer": "writer-secret", "reader": "reader-secret"}


@pytest.fixture(scope="module")
def broker() -> Iterator[KafkaBroker]:
    with KafkaBroker(USERS) as started:
        yield started


def make_destination(brokers: str = "127.0.0.1:9092", **config: str) -> Destination:
    return Destination(
        id="des_kafka",
        tenant_id="acme",
        type="kafka",
        topics=("*",),
        config={
            "brokers": brokers,
            "topic": "orders",
            "sasl_mechanism": "scram-sha-256",
            "tls": "false",
            **config,
        },
        credentials={"username": "writer", "password": "writer-secret"},
        created_at=NOW,
        updated_at=NOW,
    )


def make_event(n: int = 1, **changes: Any) -> Event:
    base = Event(
        id=f"evt_k{n}",
        tenant_id="acme",
        topic="order.created",
        time=NOW,
        data=b'{"customer":{"id":"c-7"},"total":12.50,"n":%d}' % n,
        metadata={"region": "eu"},
    )
    return replace(base, **changes)


def provider(timeout: float = 5) -> KafkaProvider:
    return KafkaProvider(timeout_seconds=timeout, include_millisecond_timestamp=False)


def publish(destination: Destination, *events: Event, timeout: float = 5) -> list[DeliveryResult]:
    async def main() -> list[DeliveryResult]:
        built = provider(timeout)
        try:
            return list(await asyncio.gather(*(built.publish(e, destination) for e in events)))
        finally:
            await built.close()

    return asyncio.run(main())


def read(broker: KafkaBroker, topic: str, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    async def main() -> list[ConsumerRecord[bytes, bytes]]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=broker.address,
            auto_offset_reset="earliest",
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_plain_username="reader",
            sasl_plain_password="reader-secret",
        )
        await consumer.start()
        got: list[ConsumerRecord[bytes, bytes]] = []
        try:
            deadline = asyncio.get_running_loop().time() + 15
            while len(got) < count and asyncio.get_running_loop().time() < deadline:
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    got.extend(records)
        finally:
            await consumer.stop()
        return got

    return asyncio.run(main())


# -- schema, validation, normalisation, display ---------------------------------------------


def test_describe_lists_the_contract_fields() -> None:
    described = provider().describe()
    assert described["type"] == "kafka"
    keys = [f["key"] for f in described["config_fields"]]
    assert keys == ["brokers", "topic", "sasl_mechanism", "tls", "partition_key_template"]
    mechanism = described["config_fields"][2]
    assert mechanism["type"] == "select" and mechanism["required"] is True
    assert [o["value"] for o in mechanism["options"]] == ["plain", "scram-sha-256", "scram-sha-512"]
    username, password = described["credential_fields"]
    assert username["sensitive"] is False and password["sensitive"] is True


@pytest.mark.parametrize(
    ("config", "credentials", "errors"),
    [
        ({"brokers": ""}, None, ["config.brokers is required"]),
        ({"topic": ""}, None, ["config.topic is required"]),
        ({"sasl_mechanism": ""}, None, ["config.sasl_mechanism is required"]),
        ({"sasl_mechanism": "gssapi"}, None, ["config.sasl_mechanism failed invalid validation"]),
        ({"sasl_mechanism": "PLAIN"}, None, ["config.sasl_mechanism failed invalid validation"]),
        ({"tls": "yes"}, None, ["config.tls failed invalid validation"]),
        ({"tls": "on"}, None, []),
        ({"sasl_mechanism": "scram-sha-512", "partition_key_template": "data.id"}, None, []),
        ({}, {"username": "writer"}, ["credentials.password is required"]),
        ({}, {"password": "x"}, ["credentials.username is required"]),
    ],
)
def test_validation_messages(
    config: dict[str, str], credentials: dict[str, str] | None, errors: list[str]
) -> None:
    destination = make_destination(**config)
    if credentials is not None:
        destination = replace(destination, credentials=credentials)
    assert provider().validate(destination) == errors


@pytest.mark.parametrize(("given", "stored"), [("on", "true"), (None, "false"), ("true", "true")])
def test_tls_and_brokers_are_stored_normalised(given: str | None, stored: str) -> None:
    config = dict(make_destination(" a.example:9092 ,  b.example:9093").config)
    config.pop("tls")
    if given is not None:
        config["tls"] = given
    destination = replace(make_destination(), config=config)
    kept = provider().preprocess(destination, None, admin=False, now=NOW)
    assert kept.config["tls"] == stored
    assert kept.config["brokers"] == "a.example:9092,b.example:9093"


def test_display_names_first_broker_and_topic_and_hides_the_password() -> None:
    destination = make_destination("k1.example:9092, k2.example:9092")
    shown = provider().display(destination, NOW)
    assert shown.target == "k1.example:9092 / orders"
    assert shown.target_url == ""
    assert shown.credentials == {"username": "writer", "password": "writ*********"}


# -- the partition key ----------------------------------------------------------------------

PAYLOAD = {
    "metadata": {"event-id": "evt_1", "topic": "order.created"},
    "data": {"customer": {"id": "c-7"}, "n": 42, "big": 1234567, "ok": True, "tags": [1, "a"]},
}


@pytest.mark.parametrize(
    ("template", "key"),
    [
        ("", "fallback"),
        ("data.customer.id", "c-7"),
        ('metadata."event-id"', "evt_1"),
        ("data.n", "42"),
        ("data.big", "1.234567e+06"),  # Go prints JSON numbers as float64 with %g
        ("data.ok", "true"),
        ("data.tags", "[1 a]"),
        ("data.missing", "fallback"),
        ("data.customer.id == 'nobody' && 'x' || ''", "fallback"),  # "" falls back
        ("data.[", "fallback"),  # does not compile
        ("join('-', [data.customer.id, metadata.topic])", "c-7-order.created"),
    ],
)
def test_partition_key(template: str, key: str) -> None:
    assert partition_key(template, PAYLOAD, "fallback") == key


@pytest.mark.parametrize(
    ("number", "text"),
    [(12.5, "12.5"), (1e6, "1e+06"), (123456.0, "123456"), (1e-5, "1e-05"), (-0.25, "-0.25")],
)
def test_numbers_print_as_go_does(number: float, text: str) -> None:
    assert go_g(number) == text


# -- deliveries -------------------------------------------------------------------------------


def test_record_carries_data_key_and_headers(broker: KafkaBroker) -> None:
    destination = replace(
        make_destination(broker.address, topic="unit-headers"),
        delivery_metadata={"team": "billing", "region": "us"},
    )
    [result] = publish(destination, make_event())
    assert result == DeliveryResult("success", "OK")
    [record] = read(broker, "unit-headers", 1)
    assert record.value == b'{"customer":{"id":"c-7"},"total":12.50,"n":1}'  # untouched
    assert record.key == b"evt_k1"  # no template: the event id
    headers = [(name, value.decode()) for name, value in record.headers]
    assert headers[0] == ("content-type", "application/json")
    merged = dict(headers[1:])
    assert merged["event-id"] == "evt_k1" and merged["topic"] == "order.created"
    assert merged["team"] == "billing" and merged["region"] == "eu"  # the event's wins


def test_template_key_keeps_a_customer_on_one_partition(broker: KafkaBroker) -> None:
    destination = make_destination(
        broker.address, topic="unit-keys", partition_key_template="data.customer.id"
    )
    events = [make_event(n) for n in range(12)]
    assert all(r.ok for r in publish(destination, *events))
    records = read(broker, "unit-keys", 12)
    assert {record.key for record in records} == {b"c-7"}
    assert len({record.partition for record in records}) == 1


@pytest.mark.parametrize("mechanism", ["plain", "scram-sha-256", "scram-sha-512"])
def test_every_sasl_mechanism_logs_in(broker: KafkaBroker, mechanism: str) -> None:
    topic = f"unit-{mechanism}"
    destination = make_destination(broker.address, topic=topic, sasl_mechanism=mechanism)
    assert publish(destination, make_event())[0].ok
    assert len(read(broker, topic, 1)) == 1


def test_one_producer_serves_every_topic_of_a_login(broker: KafkaBroker) -> None:
    async def main() -> int:
        built = provider()
        try:
            for topic in ("unit-shared-a", "unit-shared-b"):
                destination = make_destination(broker.address, topic=topic)
                assert (await built.publish(make_event(), destination)).ok
            return len(built._pool._entries)
        finally:
            await built.close()

    assert asyncio.run(main()) == 1


def test_data_that_is_not_an_object_is_a_format_failure(broker: KafkaBroker) -> None:
    destination = make_destination(broker.address, partition_key_template="data.id")
    [result] = publish(destination, make_event(data=b"[1,2]"))
    assert result == DeliveryResult("failed", "ERR", {"error": FORMAT_ERROR})


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


def test_failures_have_codes(broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = replace(
        make_destination(broker.address), credentials={"username": "writer", "password": "nope-pw"}
    )
    cases = {
        "auth_failed": wrong,
        "connection_refused": make_destination("127.0.0.1:1"),
        "dns_error": make_destination("no-such-host.invalid:9092"),
        "tls_error": make_destination(broker.address, tls="true"),  # TLS to a plain listener
    }
    for code, destination in cases.items():
        [result] = publish(destination, make_event())
        assert (result.status, result.code) == ("failed", code), result
        assert result.response_data and result.response_data["error"]
        assert "nope-pw" not in result.response_data["error"]


def test_a_broker_that_never_answers_is_a_timeout() -> None:
    with silent_listener() as port:
        [result] = publish(make_destination(f"127.0.0.1:{port}"), make_event(), timeout=1)
    assert (result.status, result.code) == ("failed", "timeout")


def test_a_record_over_the_request_limit_is_message_too_large(broker: KafkaBroker) -> None:
    big = b'{"blob":"%s"}' % (b"x" * 1_100_000)
    [result] = publish(make_destination(broker.address, topic="unit-big"), make_event(data=big))
    assert (result.status, result.code) == ("failed", "message_too_large")


def test_tansus_own_scram_refusal_is_auth_failed() -> None:
    """Tansu with authentication on, and no users (see the module docstring)."""
    with Tansu(authentication=True) as tansu:
        [result] = publish(make_destination(tansu.address), make_event())
    assert (result.status, result.code) == ("failed", "auth_failed")


def test_tls_needs_a_certificate_the_server_trusts(monkeypatch: pytest.MonkeyPatch) -> None:
    with KafkaBroker(USERS, tls=True) as tls_broker:
        destination = make_destination(tls_broker.address, topic="unit-tls", tls="true")
        [refused] = publish(destination, make_event())
        assert (refused.status, refused.code) == ("failed", "tls_error")
        # The system trust store decides; OpenSSL reads SSL_CERT_FILE when a context is made.
        monkeypatch.setenv("SSL_CERT_FILE", tls_broker.ca_file)
        [accepted] = publish(destination, make_event())
        assert accepted.ok, accepted


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
        (kafka_errors.UnknownTopicOrPartitionError(), "topic_not_found"),
        (kafka_errors.MessageSizeTooLargeError(), "message_too_large"),
        (kafka_errors.KafkaTimeoutError(), "timeout"),
        (kafka_errors.SaslAuthenticationFailed(), "auth_failed"),
        (kafka_errors.TopicAuthorizationFailedError(), "kafka_error"),
        (RuntimeError("other"), "kafka_error"),
    ],
)
def test_failure_codes_of_client_errors(error: BaseException, code: str) -> None:
    assert failure_code(error) == code
