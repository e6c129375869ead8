"""The hookdeck destination (contract.md §5.1): token format, the server-owned config, token
verification against a stand-in for Hookdeck's API, display, and the signed POST as the receiver
sees it.

Hookdeck's API and hkdk.events are not reachable from here; the test receiver on 127.0.0.1
answers in their place (`DESTINATIONS_HOOKDECK_API_URL` / `_EVENTS_URL`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest
from destinations.harness import make_destination, make_event
from support.receiver import Receiver

from waypost.config import Config
from waypost.core.models import Destination
from waypost.destinations.catalog import address_guard
from waypost.destinations.hookdeck.provider import HookdeckProvider
from waypost.destinations.hookdeck.provider import settings_from as hookdeck_settings
from waypost.destinations.webhook.settings import settings_from as webhook_settings
from waypost.errors import ValidationError
from waypost.transport.http import HttpClient

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

SOURCE = "src_abc123"
TOKEN = base64.b64encode(f"{SOURCE}:s3cr3t-signing-part".encode()).decode()
VERIFY_PATH = f"/api/2025-01-01/sources/{SOURCE}/managed/verify"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


def build(receiver_url: str = "http://127.0.0.1:9", **overrides: Any) -> HookdeckProvider:
    settings: dict[str, Any] = {
        "destinations_allowed_networks": ("127.0.0.0/8",),
        "destinations_hookdeck_events_url": receiver_url + "/events",
        "destinations_hookdeck_api_url": receiver_url + "/api",
        **overrides,
    }
    config = Config(**settings)
    client = HttpClient(user_agent="test", guard=address_guard(config))
    return HookdeckProvider(hookdeck_settings(config, webhook_settings(config)), client)


@pytest.fixture
async def provider(receiver: Receiver) -> AsyncIterator[HookdeckProvider]:
    built = build(receiver.base_url)
    yield built
    await built.close()


def hookdeck(token: str = TOKEN, config: dict[str, str] | None = None) -> Destination:
    return make_destination("hookdeck", config or {}, {"token": token})


# -- schema and validation ------------------------------------------------------------------


def test_describe_has_the_token_field_and_a_setup_link() -> None:
    described = build().describe()
    assert described["config_fields"] == []
    [token] = described["credential_fields"]
    assert (token["key"], token["required"], token["sensitive"]) == ("token", True, True)
    assert set(described["setup_link"]) == {"href", "cta"}


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "credentials.token is required"),
        ("not base64!", "credentials.token failed invalid_token_format validation"),
        (
            base64.b64encode(b"no-colon-here").decode(),
            "credentials.token failed invalid_token_format validation",
        ),
    ],
)
def test_token_format(token: str, message: str) -> None:
    assert build().validate(hookdeck(token)) == [message]


def test_valid_token_passes() -> None:
    assert build().validate(hookdeck()) == []


# -- preprocessing and verification -----------------------------------------------------------


def test_create_stores_the_source_id_the_token_names_and_drops_client_config() -> None:
    stored = build().preprocess(hookdeck(config={"source_name": "forged"}), None, admin=True, now=0)
    assert stored.config == {"source_id": SOURCE}


def test_update_with_the_same_token_keeps_the_stored_config() -> None:
    original = hookdeck(config={"source_id": SOURCE, "source_name": "Orders"})
    patched = replace(original, config={"source_name": "forged"})
    stored = build().preprocess(patched, original, admin=False, now=0)
    assert stored.config == {"source_id": SOURCE, "source_name": "Orders"}


async def test_verification_stores_the_source_name(
    provider: HookdeckProvider, receiver: Receiver
) -> None:
    receiver.configure(
        VERIFY_PATH,
        body=json.dumps({"id": SOURCE, "name": "Orders source"}),
        content_type="application/json",
    )
    draft = provider.preprocess(hookdeck(), None, admin=True, now=0)

    verified = await provider.verify(draft, None)

    assert verified.config == {"source_name": "Orders source", "source_id": SOURCE}
    [request] = receiver.requests_for(VERIFY_PATH)
    assert request.method == "GET"
    assert request.header("x-hookdeck-source-token") == TOKEN


@pytest.mark.parametrize("status", [401, 404, 500])
async def test_a_refused_token_is_a_validation_error(
    provider: HookdeckProvider, receiver: Receiver, status: int
) -> None:
    receiver.configure(VERIFY_PATH, status=status, body='{"message":"nope"}')
    draft = provider.preprocess(hookdeck(), None, admin=True, now=0)

    with pytest.raises(ValidationError) as refused:
        await provider.verify(draft, None)

    assert refused.value.status == 422
    assert refused.value.data == ["credentials.token failed token_verification_failed validation"]


async def test_no_answer_from_hookdeck_is_a_validation_error() -> None:
    with Receiver() as closed:
        base = closed.base_url
    provider = build(base)
    try:
        with pytest.raises(ValidationError):
            await provider.verify(provider.preprocess(hookdeck(), None, admin=True, now=0), None)
    finally:
        await provider.close()


async def test_verification_off_asks_nobody(receiver: Receiver) -> None:
    provider = build(receiver.base_url, destinations_hookdeck_verify_tokens=False)
    try:
        draft = provider.preprocess(hookdeck(), None, admin=True, now=0)
        assert await provider.verify(draft, None) == draft
    finally:
        await provider.close()
    assert receiver.requests_for(VERIFY_PATH) == []


async def test_an_unchanged_token_is_not_verified_again(
    provider: HookdeckProvider, receiver: Receiver
) -> None:
    original = hookdeck(config={"source_id": SOURCE, "source_name": "Orders"})
    assert await provider.verify(original, original) == original
    assert receiver.requests_for(VERIFY_PATH) == []


# -- display --------------------------------------------------------------------------------


def test_display_names_the_source_and_links_the_dashboard() -> None:
    shown = build().display(hookdeck(config={"source_id": SOURCE, "source_name": "Orders"}), 0)
    assert shown.target == "Orders"
    assert shown.target_url == f"https://dashboard.hookdeck.com/sources/{SOURCE}"
    assert shown.credentials == {"token": TOKEN[:4] + "*" * (len(TOKEN) - 4)}


def test_display_without_a_name_falls_back_to_the_id() -> None:
    shown = build().display(hookdeck(config={"source_id": SOURCE}), 0)
    assert shown.target == f"Hookdeck source ID: {SOURCE}"


# -- delivery -------------------------------------------------------------------------------


async def test_delivery_is_a_signed_post_to_the_source(
    provider: HookdeckProvider, receiver: Receiver
) -> None:
    path = f"/events/{SOURCE}"
    receiver.configure(path, status=200, body='{"status":"SUCCESS"}')
    destination = make_destination(
        "hookdeck", {"source_id": SOURCE}, {"token": TOKEN}, delivery_metadata={"team": "ops"}
    )
    event = make_event({"order": 9}, metadata={"region": "eu"})

    result = await provider.publish(event, destination)

    assert (result.status, result.code) == ("success", "200")
    assert result.response_data == {"status_code": 200, "body": '{"status":"SUCCESS"}'}
    [request] = receiver.requests_for(path)
    assert request.body == event.data
    expected = hmac.new(TOKEN.encode(), event.data, hashlib.sha256).digest()
    assert request.header("x-hookdeck-signature") == "v0=" + base64.b64encode(expected).decode()
    assert request.header("content-type") == "application/json"
    assert request.header("x-outpost-event-id") == event.id
    assert request.header("x-outpost-topic") == event.topic
    assert request.header("x-outpost-team") == "ops"
    assert request.header("x-outpost-region") == "eu"
    assert any(name == "X-Outpost-Event-Id" for name, _ in request.raw_headers)


async def test_an_error_status_is_a_failed_attempt_with_the_response(
    provider: HookdeckProvider, receiver: Receiver
) -> None:
    receiver.configure(f"/events/{SOURCE}", status=429, body="slow down")

    result = await provider.publish(make_event(), hookdeck(config={"source_id": SOURCE}))

    assert (result.status, result.code) == ("failed", "429")
    assert result.response_data == {"status_code": 429, "body": "slow down"}


async def test_no_answer_is_error_request_failed() -> None:
    with Receiver() as closed:
        base = closed.base_url
    provider = build(base)
    try:
        result = await provider.publish(make_event(), hookdeck(config={"source_id": SOURCE}))
    finally:
        await provider.close()

    assert (result.status, result.code) == ("failed", "ERROR")
    assert result.response_data == {"error": "Request failed"}


async def test_the_ssrf_guard_applies(receiver: Receiver) -> None:
    config = Config(destinations_hookdeck_events_url=receiver.base_url + "/events")
    client = HttpClient(user_agent="test", guard=address_guard(config))
    provider = HookdeckProvider(hookdeck_settings(config, webhook_settings(config)), client)
    try:
        result = await provider.publish(make_event(), hookdeck(config={"source_id": SOURCE}))
    finally:
        await provider.close()

    assert result.status == "failed"
    assert result.code == "ssrf_blocked"
    assert receiver.requests_for(f"/events/{SOURCE}") == []


async def test_a_source_id_stays_one_path_segment(
    provider: HookdeckProvider, receiver: Receiver
) -> None:
    token = base64.b64encode(b"../admin?x=1:signing").decode()

    await provider.publish(make_event(), hookdeck(token, config={"source_id": "../admin?x=1"}))

    [request] = receiver.requests_for()
    assert (request.path, request.query) == ("/events/..%2Fadmin%3Fx%3D1", "")
