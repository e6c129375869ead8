"""The `kafka` destination type (contract.md §5.8).

An event becomes one record on the destination's topic: value = the event's data untouched, key =
the partition key (a JMESPath template, else the event id; the default partitioner hashes it, so one
key stays on one partition), headers = `content-type` then the merged metadata (contract.md §4.3).
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import TYPE_CHECKING, Any

from waypost.core.models import DeliveryResult, Destination, Event, StrMap
from waypost.core.sent_headers import noted
from waypost.destinations.kafka.login import SASL_MECHANISMS, ClusterLogin, host_port
from waypost.destinations.kafka.partition_key import partition_key
from waypost.destinations.schema import BrokerProvider, normalised_tls
from waypost.destinations.sending import format_failure, merged_metadata
from waypost.errors import DeliveryInfrastructureError
from waypost.transport.guard import REFUSED_CODE, AddressGuard, literal_address

if TYPE_CHECKING:
    from waypost.destinations.kafka.producers import ProducerPool

TLS_VALUES = frozenset({"true", "false", "on"})
_CONTENT_TYPE = ("content-type", b"application/json")


class KafkaProvider(BrokerProvider):
    type = "kafka"
    package = "waypost.destinations.kafka"
    extra = "kafka"
    _closed = False

    @functools.cached_property
    def _pool(self) -> ProducerPool:
        """Made on the first delivery: aiokafka (0.1 s to import) is imported then."""
        from waypost.destinations.kafka.producers import ProducerPool

        return ProducerPool(timeout_seconds=self._timeout, guard=self._guard)

    # -- schema -------------------------------------------------------------------------------

    def extra_errors(self, destination: Destination) -> list[str]:
        config = destination.config
        if config.get("sasl_mechanism", "") not in SASL_MECHANISMS:
            return ["config.sasl_mechanism failed invalid validation"]
        if config.get("tls", "") not in TLS_VALUES | {""}:
            return ["config.tls failed invalid validation"]
        if self._guard is not None and any(
            _refused_literal(self._guard, broker) for broker in brokers_of(config)
        ):
            return ["config.brokers failed ssrf validation"]
        return []

    def normalise(self, config: StrMap) -> StrMap:
        config["tls"] = normalised_tls(config.get("tls"))
        if config.get("brokers"):
            config["brokers"] = ",".join(part.strip() for part in config["brokers"].split(","))
        return config

    def target(self, destination: Destination) -> tuple[str, str]:
        brokers, topic = brokers_of(destination.config), destination.config.get("topic", "")
        return (f"{brokers[0]} / {topic}" if brokers else topic), ""

    # -- delivery -----------------------------------------------------------------------------

    async def publish(self, event: Event, destination: Destination) -> DeliveryResult:
        from waypost.destinations.kafka.failures import failure_code, failure_text

        if self._closed:
            raise DeliveryInfrastructureError("the kafka provider is closed")
        config, credentials = destination.config, destination.credentials
        metadata = merged_metadata(event, destination, include_ms=self._include_ms)
        template = config.get("partition_key_template", "")
        if template:
            data = _parsed(event.data)
            if data is None:
                return format_failure()
            key = partition_key(template, {"metadata": metadata, "data": data}, event.id)
        else:
            key = event.id
        headers = [_CONTENT_TYPE, *((name, value.encode()) for name, value in metadata.items())]
        login = ClusterLogin(
            brokers=tuple(brokers_of(config)),
            mechanism=config.get("sasl_mechanism", ""),
            username=credentials.get("username", ""),
            password=credentials.get("password", ""),
            tls=config.get("tls", "") in ("true", "on"),
        )
        try:
            async with self._pool.producer(login, destination.id) as producer:
                await asyncio.wait_for(
                    producer.send_and_wait(
                        config.get("topic", ""), event.data, key=key.encode(), headers=headers
                    ),
                    # aiokafka bounds each step by request_timeout_ms; this bounds them all.
                    timeout=self._timeout * 3,
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._pool.closed:  # our shutdown cut it short, not the cluster
                raise DeliveryInfrastructureError("the kafka provider closed") from exc
            refused = self._pool.refused(login)  # an advertised broker the guard refused
            if refused is not None:
                return DeliveryResult("failed", REFUSED_CODE, {"error": str(refused)})
            failure = DeliveryResult("failed", failure_code(exc), {"error": failure_text(exc)})
            return noted(failure, _sent(headers))
        return noted(DeliveryResult("success", "OK"), _sent(headers))

    async def close(self) -> None:
        self._closed = True
        if "_pool" in self.__dict__:  # a delivery made it
            await self._pool.close()


def brokers_of(config: StrMap) -> list[str]:
    return [part.strip() for part in config.get("brokers", "").split(",") if part.strip()]


def _parsed(data: bytes) -> dict[str, Any] | None:
    """The event's data as an object ({} for JSON null, as Outpost), or None when it is not one."""
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    if parsed is None:
        return {}
    return parsed if isinstance(parsed, dict) else None


def _refused_literal(guard: AddressGuard, broker: str) -> bool:
    """A broker given as an IP literal the guard refuses (names are checked when connecting)."""
    address = literal_address(host_port(broker)[0])
    return address is not None and guard.refusal(str(address)) is not None


def _sent(headers: list[tuple[str, bytes]]) -> list[tuple[str, str]]:
    """The record's view of a message's headers (their values are UTF-8 text as sent)."""
    return [(name, value.decode("utf-8", "replace")) for name, value in headers]
