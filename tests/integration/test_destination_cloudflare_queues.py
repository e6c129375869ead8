"""The cloudflare_queues destination: schema, validation, display, and what Cloudflare's HTTP
API receives and answers, with the test receiver on 127.0.0.1 standing in for the API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest
from destinations.harness import make_destination, make_event
from support.receiver import Receiver

from waypost.config import Config
from waypost.core.models import Destination
from waypost.destinations.catalog import address_guard
from waypost.destinations.cloudflare_queues.provider import CloudflareQueuesProvider
from waypost.destinations.cloudflare_queues.provider import settings_from as cloudflare_settings
from waypost.destinations.webhook.settings import settings_from as webhook_settings
from waypost.transport.http import HttpClient

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

ACCOUNT = "0123456789abcdef0123456789abcdef"
QUEUE = "fedcba9876543210fedcba9876543210"
PATH = f"/client/v4/accounts/{ACCOUNT}/queues/{QUEUE}/messages"
TOKEN = "cf-api-token-0123456789"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


@pytest.fixture
async def provider(receiver: Receiver) -> AsyncIterator[CloudflareQueuesProvider]:
    config = Config(
        destinations_allowed_networks=("127.0.0.0/8",),
        destinations_cloudflare_api_url=receiver.base_url + "/client/v4",
    )
    client = HttpClient(user_agent="test", guard=address_guard(config))
    built = CloudflareQueuesProvider(cloudflare_settings(config, webhook_settings(config)), client)
    yield built
    await built.close()


def queue_destination(**config: str) -> Destination:
    values = {"account_id": ACCOUNT, "queue_id": QUEUE, **config}
    return make_destination("cloudflare_queues", values, {"api_token": TOKEN})


def offline_provider() -> CloudflareQueuesProvider:
    config = Config()
    client = HttpClient(user_agent="test")
    return CloudflareQueuesProvider(cloudflare_settings(config, webhook_settings(config)), client)


def test_describe_lists_the_sdk_fields() -> None:
    described = offline_provider().describe()
    assert described["type"] == "cloudflare_queues"
    assert [f["key"] for f in described["config_fields"]] == ["account_id", "queue_id"]
    [token] = described["credential_fields"]
    assert token["key"] == "api_token"
    assert token["required"] is True
    assert token["sensitive"] is True


@pytest.mark.parametrize(
    ("config", "credentials", "message"),
    [
        ({"queue_id": QUEUE}, {"api_token": TOKEN}, "config.account_id is required"),
        ({"account_id": ACCOUNT}, {"api_token": TOKEN}, "config.queue_id is required"),
        (
            {"account_id": "my-account", "queue_id": QUEUE},
            {"api_token": TOKEN},
            "config.account_id failed pattern validation",
        ),
        (
            {"account_id": ACCOUNT, "queue_id": QUEUE.upper()},
            {"api_token": TOKEN},
            "config.queue_id failed pattern validation",
        ),
        ({"account_id": ACCOUNT, "queue_id": QUEUE}, {}, "credentials.api_token is required"),
    ],
)
def test_validation_messages(
    config: dict[str, str], credentials: dict[str, str], message: str
) -> None:
    destination = make_destination("cloudflare_queues", config, credentials)
    assert offline_provider().validate(destination) == [message]


def test_valid_destination_has_no_errors() -> None:
    assert offline_provider().validate(queue_destination()) == []


def test_display_shows_the_queue_and_its_dashboard_and_hides_the_token() -> None:
    shown = offline_provider().display(queue_destination(), 0)
    assert shown.target == QUEUE
    assert shown.target_url == f"https://dash.cloudflare.com/{ACCOUNT}/queues/{QUEUE}"
    assert shown.credentials == {"api_token": "cf-a" + "*" * (len(TOKEN) - 4)}


async def test_delivery_posts_one_message_with_data_and_metadata(
    provider: CloudflareQueuesProvider, receiver: Receiver
) -> None:
    receiver.configure(
        PATH,
        body='{"success":true,"errors":[],"messages":[],"result":{"ok":1}}',
        content_type="application/json",
    )
    destination = make_destination(
        "cloudflare_queues",
        {"account_id": ACCOUNT, "queue_id": QUEUE},
        {"api_token": TOKEN},
        delivery_metadata={"team": "billing"},
    )
    event = make_event({"order": 1, "name": "é"}, metadata={"region": "eu"})

    result = await provider.publish(event, destination)

    assert (result.status, result.code) == ("success", "OK")
    assert result.response_data == {"status": 200, "result": {"ok": 1}}
    [request] = receiver.requests_for(PATH)
    assert request.method == "POST"
    assert request.header("authorization") == f"Bearer {TOKEN}"
    assert request.header("content-type") == "application/json"
    sent = request.json()
    assert sent["content_type"] == "json"
    assert sent["body"]["data"] == {"order": 1, "name": "é"}
    metadata = sent["body"]["metadata"]
    assert metadata["event-id"] == event.id
    assert metadata["topic"] == event.topic
    assert (metadata["team"], metadata["region"]) == ("billing", "eu")


async def test_api_error_is_a_failed_attempt_with_cloudflare_errors(
    provider: CloudflareQueuesProvider, receiver: Receiver
) -> None:
    errors = [{"code": 10000, "message": "Authentication error"}]
    receiver.configure(
        PATH,
        status=403,
        body=json.dumps({"success": False, "errors": errors}),
        content_type="application/json",
    )

    result = await provider.publish(make_event(), queue_destination())

    assert (result.status, result.code) == ("failed", "403")
    assert result.response_data == {"status": 403, "success": False, "errors": errors}


async def test_non_json_error_keeps_the_raw_body(
    provider: CloudflareQueuesProvider, receiver: Receiver
) -> None:
    receiver.configure(PATH, status=502, body="bad gateway")

    result = await provider.publish(make_event(), queue_destination())

    assert (result.status, result.code) == ("failed", "502")
    assert result.response_data == {"status": 502, "body": "bad gateway"}


async def test_a_200_that_is_not_a_success_envelope_is_a_failure(
    provider: CloudflareQueuesProvider, receiver: Receiver
) -> None:
    receiver.configure(PATH, status=200, body="ok")

    result = await provider.publish(make_event(), queue_destination())

    assert (result.status, result.code) == ("failed", "200")
    assert result.response_data == {"status": 200, "success": False, "errors": []}


async def test_no_answer_is_err_with_the_reason() -> None:
    with Receiver() as closed:
        base = closed.base_url  # the port is free again once the receiver is closed
    config = Config(
        destinations_allowed_networks=("127.0.0.0/8",),
        destinations_cloudflare_api_url=base + "/client/v4",
    )
    client = HttpClient(user_agent="test", guard=address_guard(config))
    provider = CloudflareQueuesProvider(
        cloudflare_settings(config, webhook_settings(config)), client
    )
    try:
        result = await provider.publish(make_event(), queue_destination())
    finally:
        await provider.close()

    assert (result.status, result.code) == ("failed", "ERR")
    assert result.response_data is not None
    assert result.response_data["error"]


async def test_the_ssrf_guard_applies_to_the_api_url(receiver: Receiver) -> None:
    config = Config(destinations_cloudflare_api_url=receiver.base_url + "/client/v4")
    client = HttpClient(user_agent="test", guard=address_guard(config))
    provider = CloudflareQueuesProvider(
        cloudflare_settings(config, webhook_settings(config)), client
    )
    try:
        result = await provider.publish(make_event(), queue_destination())
    finally:
        await provider.close()

    assert (result.status, result.code) == ("failed", "ERR")
    assert receiver.requests_for(PATH) == []
