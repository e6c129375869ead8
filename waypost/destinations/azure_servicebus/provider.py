"""The `azure_servicebus` destination type (contract.md §5.5): one Service Bus message per event.

Schema, validation and display live here; delivery is `publisher.ServiceBusPublisher`,
imported on the first delivery (see its docstring for the client and why).

The SSRF guard cannot see this type's connections: the SDK's AMQP transport resolves and
connects on its own (TCP, or websockets through its own HTTP stack), with no seam to check the
address it connects to. So while the guard is on, this type is refused, at create/update (422)
and at delivery (no connection), unless the operator lists it in DESTINATIONS_UNGUARDED_TYPES,
and then the catalog gives it no guard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from waypost.core.models import DeliveryResult, Destination, Event
from waypost.core.sent_headers import noted
from waypost.destinations.azure_servicebus import connection
from waypost.destinations.schema import BrokerProvider
from waypost.destinations.sending import failed, merged_metadata
from waypost.errors import DeliveryInfrastructureError
from waypost.transport.guard import REFUSED_CODE

if TYPE_CHECKING:
    from azure.servicebus import ServiceBusMessage

    from waypost.destinations.azure_servicebus.publisher import ServiceBusPublisher

CLOSED = "azure_servicebus provider closed"
UNGUARDED = (
    "delivery refused: azure_servicebus connections cannot be checked by the SSRF guard, so "
    "they are not allowed on this deployment"
)


class AzureServiceBusProvider(BrokerProvider):
    type = "azure_servicebus"
    package = "waypost.destinations.azure_servicebus"
    extra = "azure"

    _publisher: ServiceBusPublisher | None = None  # made on the first delivery
    _closed = False

    def extra_errors(self, destination: Destination) -> list[str]:
        if self._guard is not None:
            return ["credentials.connection_string failed ssrf validation"]
        return []

    def target(self, destination: Destination) -> tuple[str, str]:
        name = destination.config.get("name", "")
        namespace = connection.namespace(destination.credentials.get("connection_string", ""))
        return (f"{namespace}/{name}" if namespace else name), ""

    def message(self, event: Event, destination: Destination) -> ServiceBusMessage:
        """The SDK message for an event: its data as body, merged metadata as properties."""
        from waypost.destinations.azure_servicebus.publisher import build_message

        metadata = merged_metadata(event, destination, include_ms=self._include_ms)
        return build_message(event.data, metadata)

    async def publish(self, event: Event, destination: Destination) -> DeliveryResult:
        from waypost.destinations.azure_servicebus.publisher import ClientClosed, SendError

        if self._guard is not None:  # a destination stored while the type was allowed unchecked
            if self._closed:
                raise DeliveryInfrastructureError(CLOSED)
            return failed(UNGUARDED, REFUSED_CODE)
        publisher = self._open()
        message = self.message(event, destination)
        # The message's application properties, as sent.
        sent = [(str(k), str(v)) for k, v in (message.application_properties or {}).items()]
        try:
            await publisher.send(
                destination.credentials.get("connection_string", ""),
                destination.config.get("name", ""),
                message,
                destination.id,
            )
        except ValueError as exc:  # a connection string the SDK cannot read
            return failed(str(exc))
        except ClientClosed as exc:
            raise DeliveryInfrastructureError(CLOSED) from exc
        except SendError as exc:
            return noted(failed(str(exc)), sent)
        return noted(DeliveryResult("success", "OK"), sent)

    async def close(self) -> None:
        self._closed = True
        if self._publisher is not None:
            await self._publisher.close()

    def _open(self) -> ServiceBusPublisher:
        if self._closed:
            raise DeliveryInfrastructureError(CLOSED)
        if self._publisher is None:
            from waypost.destinations.azure_servicebus.publisher import ServiceBusPublisher

            self._publisher = ServiceBusPublisher(self._timeout)
        return self._publisher
