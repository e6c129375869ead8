"""The azure_servicebus destination (contract.md §5.5): schema, validation, display, the message as
built for the SDK, and how failures become attempts.

No Service Bus peer can run here: Microsoft's emulator is a container image (with SQL Edge), and
the loopback RabbitMQ (3.10, AMQP 0-9-1 only, no AMQP 1.0 plugin enabled) could not stand in
anyway, since the SDK authenticates with a CBS token exchange only Service Bus implements. So a
successful send is not exercised; a failed one is, for real: the SDK dials a closed port on
127.0.0.1 (the connection string's `UseDevelopmentEmulator=true` makes it use that port in
plaintext, as it would for the emulator), and the refusal becomes a failed attempt.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from destinations.harness import make_destination, make_event

from waypost.core.models import Destination
from waypost.destinations.azure_servicebus import connection
from waypost.destinations.azure_servicebus.provider import AzureServiceBusProvider
from waypost.errors import DeliveryInfrastructureError

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

AZURE = (
    "Endpoint=sb://orders-ns.servicebus.windows.net/;"
    "SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=c2VjcmV0a2V5PQ=="
)


@pytest.fixture
async def provider() -> AsyncIterator[AzureServiceBusProvider]:
    built = AzureServiceBusProvider(timeout_seconds=5)
    yield built
    await built.close()


def servicebus(name: str = "orders", connection_string: str = AZURE) -> Destination:
    return make_destination(
        "azure_servicebus",
        {"name": name},
        {"connection_string": connection_string},
        delivery_metadata={"team": "billing", "source": "destination"},
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_describe_lists_the_contract_fields() -> None:
    described = AzureServiceBusProvider(timeout_seconds=1).describe()
    [name] = described["config_fields"]
    assert (name["key"], name["required"]) == ("name", True)
    [conn] = described["credential_fields"]
    assert (conn["key"], conn["required"], conn["sensitive"]) == (
        "connection_string",
        True,
        True,
    )


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        (servicebus(""), "config.name is required"),
        (servicebus("-orders"), "config.name failed pattern validation"),
        (servicebus("orders."), "config.name failed pattern validation"),
        (servicebus("orders/dlq"), "config.name failed pattern validation"),
        (servicebus(connection_string=""), "credentials.connection_string is required"),
    ],
)
def test_validation_messages(destination: Destination, message: str) -> None:
    assert AzureServiceBusProvider(timeout_seconds=1).validate(destination) == [message]


@pytest.mark.parametrize("name", ["o", "orders", "Orders.v2_eu-1"])
def test_valid_names(name: str) -> None:
    assert AzureServiceBusProvider(timeout_seconds=1).validate(servicebus(name)) == []


def test_display_is_namespace_slash_name_and_hides_the_connection_string() -> None:
    shown = AzureServiceBusProvider(timeout_seconds=1).display(servicebus(), 0)
    assert shown.target == "orders-ns/orders"
    assert shown.target_url == ""
    assert shown.credentials == {"connection_string": "Endp" + "*" * (len(AZURE) - 4)}


def test_display_without_an_endpoint_is_the_name() -> None:
    destination = servicebus(connection_string="SharedAccessKeyName=k;SharedAccessKey=v")
    assert AzureServiceBusProvider(timeout_seconds=1).display(destination, 0).target == "orders"


def test_connection_string_fields_keep_values_with_equals_signs() -> None:
    fields = connection.fields(AZURE)
    assert fields["SharedAccessKey"] == "c2VjcmV0a2V5PQ=="
    assert connection.namespace("endpoint=sb://eu-bus.servicebus.windows.net") == "eu-bus"


def test_message_body_is_the_event_data_and_properties_the_merged_metadata() -> None:
    event = make_event({"order": 3}, metadata={"source": "event", "region": "eu"})

    message = AzureServiceBusProvider(timeout_seconds=1).message(event, servicebus())

    assert b"".join(message.body) == event.data
    properties = message.application_properties
    assert properties is not None
    assert properties["event-id"] == event.id
    assert properties["topic"] == event.topic
    assert properties["team"] == "billing"
    assert properties["source"] == "event"  # event metadata wins
    assert properties["region"] == "eu"
    assert "timestamp" in properties


async def test_a_refused_connection_is_a_failed_attempt(provider: AzureServiceBusProvider) -> None:
    port = closed_port()
    connection_string = (
        f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0;"
        "UseDevelopmentEmulator=true"
    )

    result = await provider.publish(make_event(), servicebus(connection_string=connection_string))

    assert (result.status, result.code) == ("failed", "ERR")
    assert result.response_data is not None
    assert "Failed to initiate the connection" in result.response_data["error"]


async def test_a_malformed_connection_string_is_a_failed_attempt(
    provider: AzureServiceBusProvider,
) -> None:
    result = await provider.publish(make_event(), servicebus(connection_string="garbage"))

    assert (result.status, result.code) == ("failed", "ERR")
    assert result.response_data == {"error": "Connection string is either blank or malformed."}


async def test_publish_after_close_is_an_infrastructure_error() -> None:
    provider = AzureServiceBusProvider(timeout_seconds=1)
    await provider.close()
    with pytest.raises(DeliveryInfrastructureError):
        await provider.publish(make_event(), servicebus())
