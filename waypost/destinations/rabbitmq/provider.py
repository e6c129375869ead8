"""The `rabbitmq` destination type (contract.md §5.7).

An event becomes one message on the destination's exchange: routing key = topic, body = the event's
data untouched, headers = the merged metadata (contract.md §4.3). Publisher confirms make success
mean the broker took the message; a message no queue is bound for is still a success, as in Outpost
(not mandatory). aio-pika (the `rabbitmq` extra) is imported on the first delivery, with
`connections` and `failures`: the catalog imports this module in a base install too.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from waypost.core.models import DeliveryResult, Destination, Event, StrMap
from waypost.core.sent_headers import noted
from waypost.destinations.schema import BrokerProvider, normalised_tls
from waypost.destinations.sending import merged_metadata
from waypost.errors import DeliveryInfrastructureError
from waypost.transport.guard import AddressGuard, literal_address

if TYPE_CHECKING:
    from waypost.destinations.rabbitmq.connections import ConnectionPool

TLS_VALUES = frozenset({"true", "false", "on"})
_JSON = "application/json"


class RabbitMQProvider(BrokerProvider):
    type = "rabbitmq"
    package = "waypost.destinations.rabbitmq"
    extra = "rabbitmq"

    _closed = False

    @functools.cached_property
    def _pool(self) -> ConnectionPool:
        """Made on the first delivery: aio-pika is imported then."""
        from waypost.destinations.rabbitmq.connections import ConnectionPool

        return ConnectionPool(connect_timeout=self._timeout, guard=self._guard)

    # -- schema -------------------------------------------------------------------------------

    def extra_errors(self, destination: Destination) -> list[str]:
        tls = destination.config.get("tls")
        if tls is not None and tls not in TLS_VALUES:
            return ["config.tls failed invalid validation"]
        if self._guard is not None and host_refused(self._guard, destination.config):
            return ["config.server_url failed ssrf validation"]
        return []

    def normalise(self, config: StrMap) -> StrMap:
        config["tls"] = normalised_tls(config.get("tls"))
        # Optional here (the default exchange routes by queue name), but the SDK's model and the
        # OpenAPI document require the key: store it, empty.
        config.setdefault("exchange", "")
        return config

    def target(self, destination: Destination) -> tuple[str, str]:
        exchange = destination.config.get("exchange", "")
        return f"{exchange} -> {', '.join(destination.topics)}", ""

    # -- delivery -----------------------------------------------------------------------------

    async def publish(self, event: Event, destination: Destination) -> DeliveryResult:
        import aio_pika

        from waypost.destinations.rabbitmq.connections import Login
        from waypost.destinations.rabbitmq.failures import failure_code, failure_text

        if self._closed or self._pool.closed:
            raise DeliveryInfrastructureError("the rabbitmq provider is closed")
        config, credentials = destination.config, destination.credentials
        login = Login(
            server_url=config.get("server_url", ""),
            username=credentials.get("username", ""),
            password=credentials.get("password", ""),
            tls=config.get("tls", "") in ("true", "on"),
        )
        exchange_name = config.get("exchange", "")
        headers = dict(merged_metadata(event, destination, include_ms=self._include_ms))
        message = aio_pika.Message(event.data, content_type=_JSON, headers=dict(headers))
        # The attempt records the message's properties and headers as sent.
        sent = [("content_type", _JSON), *headers.items()]
        try:
            # Connecting and publishing are each bounded; this bounds the whole attempt.
            async with (
                asyncio.timeout(self._timeout * 3),
                self._pool.channel(login, exchange_name, destination.id) as channel,
            ):
                exchange = (
                    await channel.get_exchange(exchange_name, ensure=False)
                    if exchange_name
                    else channel.default_exchange
                )
                await exchange.publish(
                    message, routing_key=event.topic, mandatory=False, timeout=self._timeout
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._pool.closed:  # our shutdown cut it short, not the broker
                raise DeliveryInfrastructureError("the rabbitmq provider closed") from exc
            return noted(
                DeliveryResult("failed", failure_code(exc), {"error": failure_text(exc)}), sent
            )
        return noted(DeliveryResult("success", "OK"), sent)

    async def close(self) -> None:
        self._closed = True
        if "_pool" in self.__dict__:  # a delivery made it
            await self._pool.close()


def host_refused(guard: AddressGuard, config: StrMap) -> bool:
    """Whether `server_url` (host:port[/vhost]) names an IP literal the guard refuses; a name is
    resolved, and its addresses checked, only when connecting."""
    host = urlsplit("//" + config.get("server_url", "")).hostname
    address = literal_address(host) if host else None
    return address is not None and guard.refusal(str(address)) is not None
