"""The gcp_pubsub destination (contract.md §5.6): schema, validation, display, and the attempt each
kind of outcome becomes, against Google's Pub/Sub emulator on loopback (skipped when not installed).

The emulator takes no credentials, so the service-account path is covered up to loading the key
(a real RSA key made here); the token exchange with Google is not exercised.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from destinations.harness import make_destination, make_event
from support.pubsub import PubSubEmulator, emulator_binary, running_emulator

from waypost.core.models import Destination
from waypost.destinations.gcp_pubsub.provider import GcpPubSubProvider
from waypost.destinations.gcp_pubsub.publisher import PubSubPublisher
from waypost.errors import DeliveryInfrastructureError
from waypost.transport.guard import AddressGuard

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

PROJECT = "unit-project"
KEY = '{"type":"service_account","project_id":"p"}'


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PubSubEmulator]:
    if emulator_binary() is None:
        pytest.skip("the Pub/Sub emulator (google-cloud-cli-pubsub-emulator) is not installed")
    with running_emulator(tmp_path_factory.mktemp("pubsub")) as running:
        yield running


@pytest.fixture
async def provider() -> AsyncIterator[GcpPubSubProvider]:
    built = GcpPubSubProvider(timeout_seconds=5)
    yield built
    await built.close()


def pubsub(credentials: str = KEY, **config: str) -> Destination:
    values = {"project_id": PROJECT, "topic": "orders", **config}
    return make_destination("gcp_pubsub", values, {"service_account_json": credentials})


def service_account_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "k1",
            "private_key": pem,
            "client_email": "outpost@unit-project.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )


# -- schema, validation, display ---------------------------------------------------------------


def test_describe_lists_the_contract_fields() -> None:
    described = GcpPubSubProvider(timeout_seconds=1).describe()
    assert [f["key"] for f in described["config_fields"]] == ["project_id", "topic", "endpoint"]
    assert [f["required"] for f in described["config_fields"]] == [True, True, False]
    [key] = described["credential_fields"]
    assert (key["key"], key["required"], key["sensitive"]) == ("service_account_json", True, True)


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        (pubsub(project_id=""), "config.project_id is required"),
        (pubsub(topic=""), "config.topic is required"),
        (pubsub(""), "credentials.service_account_json is required"),
        (pubsub("not-valid-json"), "credentials.service_account_json failed format validation"),
        (pubsub('["type"]'), "credentials.service_account_json failed format validation"),
        (
            pubsub('{"project_id":"p"}'),
            "credentials.service_account_json failed missing_type validation",
        ),
    ],
)
def test_validation_messages(destination: Destination, message: str) -> None:
    assert GcpPubSubProvider(timeout_seconds=1).validate(destination) == [message]


def test_with_an_endpoint_the_key_is_not_checked() -> None:
    destination = pubsub("not-valid-json", endpoint="localhost:8085")
    assert GcpPubSubProvider(timeout_seconds=1).validate(destination) == []


def test_display_target_console_link_and_hidden_key() -> None:
    shown = GcpPubSubProvider(timeout_seconds=1).display(pubsub(), 0)
    assert shown.target == f"{PROJECT}/orders"
    assert shown.target_url == (
        f"https://console.cloud.google.com/cloudpubsub/topic/detail/orders?project={PROJECT}"
    )
    assert shown.credentials == {"service_account_json": KEY[:4] + "*" * (len(KEY) - 4)}


# -- delivery ---------------------------------------------------------------------------------


async def test_success_reports_message_id_topic_and_project(
    provider: GcpPubSubProvider, emulator: PubSubEmulator
) -> None:
    subscription = emulator.create_topic(PROJECT, "unit-success")
    destination = pubsub(topic="unit-success", endpoint=emulator.endpoint)
    event = make_event({"n": 1}, metadata={"region": "eu"})

    result = await provider.publish(event, destination)

    assert (result.status, result.code) == ("success", "OK")
    assert result.response_data is not None
    assert result.response_data["topic"] == "unit-success"
    assert result.response_data["project"] == PROJECT
    [message] = emulator.pull(subscription)
    assert result.response_data["message_id"] == message.message_id
    assert message.data == event.data
    assert message.attributes["region"] == "eu"
    assert message.attributes["event-id"] == event.id


async def test_missing_topic_is_a_failed_attempt_naming_not_found(
    provider: GcpPubSubProvider, emulator: PubSubEmulator
) -> None:
    destination = pubsub(topic="never-created", endpoint=emulator.endpoint)

    result = await provider.publish(make_event(), destination)

    assert (result.status, result.code) == ("failed", "ERR")
    assert result.response_data is not None
    assert result.response_data["error"].startswith("NOT_FOUND")


async def test_unreachable_endpoint_is_a_failed_attempt(provider: GcpPubSubProvider) -> None:
    destination = pubsub(endpoint="127.0.0.1:9")  # discard port: nothing listens

    result = await provider.publish(make_event(), destination)

    assert (result.status, result.code) == ("failed", "ERR")
    assert result.response_data is not None
    assert result.response_data["error"]


async def test_a_key_google_auth_cannot_load_fails_without_sending(
    provider: GcpPubSubProvider,
) -> None:
    result = await provider.publish(make_event(), pubsub('{"type":"service_account"}'))

    assert (result.status, result.code) == ("failed", "ERR")
    assert result.response_data is not None
    assert "expected format" in result.response_data["error"]


async def test_a_real_service_account_key_builds_one_client_per_key() -> None:
    publisher = PubSubPublisher(timeout_seconds=1)
    key = service_account_key()
    async with publisher.client("", key) as first:
        async with publisher.client("", key) as again:
            assert again is first
        async with publisher.client("", service_account_key()) as other:
            assert other is not first
    await publisher.close()


@pytest.mark.parametrize(
    ("changes", "steered"),
    [
        ({}, False),
        ({"token_uri": "https://accounts.google.com/o/oauth2/token"}, False),
        ({"token_uri": "http://127.0.0.1:8080/token"}, True),
        ({"token_uri": "https://metadata.google.internal/token"}, True),
        ({"token_uri": "http://oauth2.googleapis.com/token"}, True),  # not TLS
        ({"token_uri": "https://oauth2.googleapis.com:8443/token"}, True),
        ({"universe_domain": "intranet.example"}, True),
    ],
)
async def test_a_key_may_not_steer_its_requests_away_from_google_under_the_guard(
    changes: dict[str, str], steered: bool
) -> None:
    """The token request goes out through google-auth's own HTTP client, out of the guard's
    sight: with the guard on, a key's token_uri must be Google's, refused at create and at
    delivery (no request made) otherwise."""
    key = json.dumps({**json.loads(service_account_key()), **changes})
    guarded = GcpPubSubProvider(timeout_seconds=1, guard=AddressGuard())
    unguarded = GcpPubSubProvider(timeout_seconds=1)
    refused = ["credentials.service_account_json failed ssrf validation"] if steered else []
    assert guarded.validate(pubsub(key)) == refused
    assert unguarded.validate(pubsub(key)) == []
    if steered:
        result = await guarded.publish(make_event(), pubsub(key))
        assert (result.status, result.code) == ("failed", "ssrf_blocked")
    await guarded.close()
    await unguarded.close()


async def test_publish_after_close_is_an_infrastructure_error() -> None:
    provider = GcpPubSubProvider(timeout_seconds=1)
    await provider.close()
    with pytest.raises(DeliveryInfrastructureError):
        await provider.publish(make_event(), pubsub(endpoint="127.0.0.1:9"))
