"""Operator event sinks and their configuration (waypost/operator/sinks.py, setup.py).

The HTTP sink posts to the real loopback receiver of the e2e suite, which checks signatures. The
other sinks are the real destination providers: RabbitMQ publishing to the local broker
(127.0.0.1:5672, guest), read back with aio_pika; SQS on moto's server and Pub/Sub on Google's
emulator, the stand-ins the destination suites use (no AWS or Google is reachable here).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from support.memory_store import MemoryBackend
from support.moto import KEY as AWS_KEY
from support.moto import SECRET as AWS_SECRET
from support.moto import client as aws_client
from support.moto import endpoint, unique
from support.pubsub import emulator_binary, running_emulator
from support.receiver import Receiver
from support.waiting import poll_until

from waypost import bootstrap
from waypost.config import Config, load
from waypost.core.operator_records import OperatorRecord
from waypost.destinations.aws.clients import AwsSettings, settings_from
from waypost.destinations.aws_sqs.provider import AwsSqsProvider
from waypost.destinations.catalog import address_guard
from waypost.destinations.gcp_pubsub.provider import GcpPubSubProvider
from waypost.destinations.rabbitmq.provider import RabbitMQProvider
from waypost.destinations.registry import Registry
from waypost.errors import ConfigError
from waypost.operator import setup
from waypost.operator.sinks import HttpSink, Sink, SinkError, signature
from waypost.transport.http import HttpClient

pytestmark = pytest.mark.timeout(60)

SECRET = "sink-secret"
RECORD = OperatorRecord("op_1", "attempt.failed", b'{"id":"op_1","topic":"attempt.failed"}', 1)
AMQP = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


def send_http(url: str, secret: str = SECRET) -> None:
    async def main() -> None:
        sink = HttpSink(url, secret, HttpClient(user_agent="test"))
        try:
            await sink.send(RECORD)
        finally:
            await sink.close()

    asyncio.run(main())


def test_the_http_sink_posts_the_body_signed(receiver: Receiver) -> None:
    path = receiver.new_path("sink")
    send_http(receiver.configure(path, secret=SECRET))

    [request] = receiver.requests_for(path)
    assert request.body == RECORD.body and request.verified
    assert request.header("x-outpost-signature") == signature(SECRET, RECORD.body)
    assert request.header("content-type") == "application/json"


def test_without_a_secret_nothing_is_signed(receiver: Receiver) -> None:
    path = receiver.new_path("unsigned")
    send_http(receiver.configure(path), secret="")

    [request] = receiver.requests_for(path)
    assert request.header("x-outpost-signature") is None


def test_the_http_sink_tries_three_times(receiver: Receiver) -> None:
    path = receiver.new_path("down")
    with pytest.raises(SinkError, match="HTTP 503"):
        send_http(receiver.configure(path, status=503))
    assert len(receiver.requests_for(path)) == 3


def test_a_refusal_then_an_answer_is_sent(receiver: Receiver) -> None:
    path = receiver.new_path("flaky")
    send_http(receiver.configure(path, fail_first=1))
    assert [r.status for r in receiver.requests_for(path)] == [500, 200]


# Configuration


def build(registry: Registry | None = None, **settings: Any) -> setup.Operator:
    config = replace(Config(), **settings)
    return setup.build(config, MemoryBackend(), registry or Registry([]), "test")


def test_off_by_default() -> None:
    built = build()
    assert built.judge is None and built.relay is None
    assert isinstance(built.tenants, MemoryBackend)


def test_auto_disable_alone_installs_a_judge_and_no_relay() -> None:
    built = build(alert_auto_disable_destination=True)
    assert built.judge is not None and built.relay is None


def test_topics_without_a_sink_send_nothing() -> None:
    built = build(operator_events_topics=("*",))
    assert built.judge is None and built.relay is None


def test_unknown_topics_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"attempt\.maybe"):
        build(operator_events_topics=("attempt.maybe",), operator_events_http_url="http://x")


def test_one_sink_only() -> None:
    registry = Registry([RabbitMQProvider(timeout_seconds=1, include_millisecond_timestamp=False)])
    with pytest.raises(ConfigError, match="http and rabbitmq"):
        build(
            registry,
            operator_events_http_url="http://127.0.0.1:1/",
            operator_events_rabbitmq_server_url=AMQP,
        )


def test_a_sink_needs_its_destination_type() -> None:
    with pytest.raises(ConfigError, match="no aws_sqs"):
        build(operator_events_aws_sqs_queue_url="http://127.0.0.1:4566/000000000000/q")


async def _sent_through(sink: Sink, exchange_name: str) -> tuple[str, bytes]:
    """Send RECORD through `sink` and read it back from `exchange_name`: (routing key, body)."""
    connection = await aio_pika.connect(AMQP, timeout=10)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(exchange_name, auto_delete=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key=RECORD.topic)
        await sink.send(RECORD)
        message = await queue.get(timeout=10, fail=True)
        assert message is not None
        await message.ack()
        return str(message.routing_key), message.body
    finally:
        await connection.close()


def test_the_rabbitmq_sink_publishes_routed_by_topic() -> None:
    exchange_name = f"operator-test-{uuid.uuid4().hex[:8]}"

    async def main() -> tuple[str, bytes]:
        provider = RabbitMQProvider(timeout_seconds=5, include_millisecond_timestamp=False)
        built = setup.build(
            replace(
                Config(),
                operator_events_topics=("*",),
                operator_events_rabbitmq_server_url=AMQP,
                operator_events_rabbitmq_exchange=exchange_name,
            ),
            MemoryBackend(),
            Registry([provider]),
            "test",
        )
        assert built.relay is not None
        try:
            return await _sent_through(built.relay.sink, exchange_name)
        finally:
            await provider.close()

    routing_key, body = asyncio.run(main())
    assert routing_key == RECORD.topic
    assert json.loads(body) == json.loads(RECORD.body)


def test_the_operators_sink_is_not_a_tenants_destination(tmp_path: Path) -> None:
    """Built by bootstrap with the SSRF guard on and nothing allowed: the operator's RabbitMQ on
    loopback is still reached (the guard is for tenants' destinations)."""
    exchange_name = f"operator-guard-{uuid.uuid4().hex[:8]}"

    async def main() -> bytes:
        settings = load(
            {
                "OUTPOST_DATA_DIR": str(tmp_path),
                "AES_ENCRYPTION_SECRET": "operator-sink-secret",
                "OPERATOR_EVENTS_TOPICS": "*",
                "OPERATOR_EVENTS_RABBITMQ_SERVER_URL": AMQP,
                "OPERATOR_EVENTS_RABBITMQ_EXCHANGE": exchange_name,
            },
            config_file=None,
        )
        system = bootstrap.build(settings)
        assert system.relay is not None
        try:
            _, body = await _sent_through(system.relay.sink, exchange_name)
            return body
        finally:
            await system.relay.sink.close()
            await system.registry.close()

    assert json.loads(asyncio.run(main())) == json.loads(RECORD.body)


def test_the_sqs_sink_sends_the_envelope() -> None:
    """On moto's SQS server (no AWS here): the real aws_sqs provider, as bootstrap builds it."""
    sqs = aws_client("sqs")
    queue_url = sqs.create_queue(QueueName=unique("operator-sink"))["QueueUrl"]

    async def main() -> None:
        provider = AwsSqsProvider(
            _aws_settings(Config(destinations_allowed_networks=("127.0.0.0/8",)))
        )
        built = build(
            Registry([provider]),
            operator_events_topics=("*",),
            operator_events_aws_sqs_queue_url=queue_url,
            operator_events_aws_sqs_endpoint=endpoint(),
            operator_events_aws_sqs_access_key_id=AWS_KEY,
            operator_events_aws_sqs_secret_access_key=AWS_SECRET,
        )
        assert built.relay is not None
        try:
            await built.relay.sink.send(RECORD)
        finally:
            await provider.close()

    asyncio.run(main())
    [message] = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5)["Messages"]
    assert json.loads(message["Body"]) == json.loads(RECORD.body)


def test_the_pubsub_sink_sends_the_envelope(tmp_path: Path) -> None:
    """On Google's Pub/Sub emulator (no Google here): the real gcp_pubsub provider."""
    if emulator_binary() is None:
        pytest.skip("the Pub/Sub emulator is not installed")
    with running_emulator(tmp_path) as emulator:
        subscription = emulator.create_topic("operator-project", "operator-events")

        async def main() -> None:
            provider = GcpPubSubProvider(timeout_seconds=10)
            built = build(
                Registry([provider]),
                operator_events_topics=("*",),
                operator_events_gcp_pubsub_project_id="operator-project",
                operator_events_gcp_pubsub_topic_id="operator-events",
                operator_events_gcp_pubsub_endpoint=emulator.endpoint,
            )
            assert built.relay is not None
            try:
                await built.relay.sink.send(RECORD)
            finally:
                await provider.close()

        asyncio.run(main())
        [message] = poll_until(lambda: emulator.pull(subscription), timeout=20)
        assert json.loads(message.data) == json.loads(RECORD.body)
        assert message.attributes["topic"] == RECORD.topic


def test_alert_settings_read_from_the_environment() -> None:
    assert load({"ALERT_CONSECUTIVE_FAILURE_COUNT": ""}).alert_consecutive_failure_count is None
    assert load({}).alert_consecutive_failure_count == 100
    assert (
        load({"ALERT_EXHAUSTED_RETRIES_WINDOW_SECONDS": " "}).alert_exhausted_retries_window_seconds
        is None
    )
    with pytest.raises(ConfigError, match="ALERT_CONSECUTIVE_FAILURE_COUNT"):
        load({"ALERT_CONSECUTIVE_FAILURE_COUNT": "0"})
    with pytest.raises(ConfigError, match="ALERT_EXHAUSTED_RETRIES_WINDOW_SECONDS"):
        load({"ALERT_EXHAUSTED_RETRIES_WINDOW_SECONDS": "-1"})
    assert load(
        {"OPERATOR_EVENTS_TOPICS": "attempt.failed, alert.destination.disabled"}
    ).operator_events_topics == (
        "attempt.failed",
        "alert.destination.disabled",
    )


def _aws_settings(config: Config) -> AwsSettings:
    return settings_from(config, address_guard(config))
