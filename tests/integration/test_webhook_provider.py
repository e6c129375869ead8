"""The webhook destination: schema, validation, credential rules, display, and real deliveries."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web

from waypost.core.models import DeliveryResult, Destination, Event
from waypost.destinations.webhook import WebhookProvider, WebhookSettings
from waypost.errors import DeliveryInfrastructureError, ValidationError
from waypost.transport.http import HttpClient

pytestmark = pytest.mark.timeout(60)

NOW = 1_717_230_216_000  # 2024-06-01T08:23:36Z, in ms
TOMORROW = "2024-06-02T08:23:36Z"
BODY = b'{"zebra":1,"alpha":2,"n":1.50}'


def make_destination(url: str = "https://example.com/hook", **changes: Any) -> Destination:
    base = Destination(
        id="des_1",
        tenant_id="acme",
        type="webhook",
        topics=("*",),
        config={"url": url},
        credentials={},
        created_at=NOW,
        updated_at=NOW,
    )
    return replace(base, **changes)


def make_event(**changes: Any) -> Event:
    base = Event(id="evt_1", tenant_id="acme", topic="user.created", time=NOW, data=BODY)
    return replace(base, **changes)


@contextlib.contextmanager
def provider_for(settings: WebhookSettings | None = None) -> Iterator[WebhookProvider]:
    provider = WebhookProvider(settings or WebhookSettings(), HttpClient(user_agent="Test/1"))
    yield provider
    asyncio.run(provider.close())


@pytest.fixture
def provider() -> Iterator[WebhookProvider]:
    with provider_for() as built:
        yield built


def rejected(call: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        call()
    messages: list[str] = caught.value.data
    return messages


# -- describe ----------------------------------------------------------------------------------


def test_describe_has_the_destination_type_shape(provider: WebhookProvider) -> None:
    schema = provider.describe()
    assert list(schema) == [
        "type",
        "label",
        "description",
        "icon",
        "instructions",
        "config_fields",
        "credential_fields",
    ]
    assert schema["type"] == "webhook"
    assert schema["icon"].startswith("<svg")
    assert "x-outpost-signature" in schema["instructions"]
    url, headers = schema["config_fields"]
    assert (url["key"], url["type"], url["required"]) == ("url", "text", True)
    assert url["pattern"] == r"^https?://[^\s]+$"
    assert (headers["key"], headers["type"], headers["required"]) == (
        "custom_headers",
        "key_value_map",
        False,
    )
    assert schema["credential_fields"] == []


def test_describe_returns_a_copy(provider: WebhookProvider) -> None:
    provider.describe()["config_fields"].clear()
    assert len(provider.describe()["config_fields"]) == 2


def test_standard_mode_describes_its_own_verification() -> None:
    with provider_for(WebhookSettings(mode="standard")) as standard:
        schema = standard.describe()
    assert schema["type"] == "webhook"
    assert "webhook-signature" in schema["instructions"]
    assert len(schema["config_fields"]) == 2


# -- validate ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "messages"),
    [
        ({}, ["config.url is required"]),
        ({"url": "ftp://example.com"}, ["config.url failed pattern validation"]),
        ({"url": "https://exa mple.com"}, ["config.url failed pattern validation"]),
        ({"url": "https://example.com/\n"}, ["config.url failed pattern validation"]),
        ({"url": "http://localhost:8080/x?y=1"}, []),
    ],
)
def test_url_validation(
    provider: WebhookProvider, config: dict[str, str], messages: list[str]
) -> None:
    assert provider.validate(make_destination(config=config)) == messages


@pytest.mark.parametrize(
    ("custom_headers", "messages"),
    [
        ("", []),
        ("{}", []),
        ("null", []),
        ('{"X-Team":"a","Authorization":"Bearer t"}', []),
        ("not json", ["config.custom_headers failed invalid validation"]),
        ('["X-Team"]', ["config.custom_headers failed invalid validation"]),
        ('{"X-Count":5}', ["config.custom_headers failed invalid validation"]),
        (
            '{"Bad Name":"v","Content-Type":"text/plain","X-Empty":"","HOST":"h"}',
            [
                "config.custom_headers.bad name failed pattern validation",
                "config.custom_headers.content-type is forbidden",
                "config.custom_headers.x-empty is required",
                "config.custom_headers.host is forbidden",
            ],
        ),
        ('{"_x":"v"}', ["config.custom_headers._x failed pattern validation"]),
    ],
)
def test_custom_header_validation(
    provider: WebhookProvider, custom_headers: str, messages: list[str]
) -> None:
    config = {"url": "https://example.com", "custom_headers": custom_headers}
    assert provider.validate(make_destination(config=config)) == messages


def test_url_errors_come_before_header_errors(provider: WebhookProvider) -> None:
    destination = make_destination(config={"custom_headers": "nope"}, credentials={"x": "y"})
    assert provider.validate(destination) == ["config.url is required"]


@pytest.mark.parametrize(
    ("credentials", "messages"),
    [
        ({}, []),
        ({"rotate_secret": "true"}, []),
        ({"secret": "testsecret1234567890abcdefghijklmnop"}, []),
        ({"previous_secret": "old"}, ["credentials.secret is required"]),
        (
            {"secret": "s", "previous_secret": "old"},
            ["credentials.previous_secret_invalid_at is required"],
        ),
        (
            {"secret": "s", "previous_secret_invalid_at": TOMORROW},
            ["credentials.previous_secret is required"],
        ),
        (
            {"secret": "s", "previous_secret": "old", "previous_secret_invalid_at": "tomorrow"},
            ["credentials.previous_secret_invalid_at failed pattern validation"],
        ),
        (
            {"secret": "s", "previous_secret": "o", "previous_secret_invalid_at": "2024-06-02"},
            ["credentials.previous_secret_invalid_at failed pattern validation"],
        ),
        ({"secret": "s", "previous_secret": "o", "previous_secret_invalid_at": TOMORROW}, []),
        (
            {
                "secret": "s",
                "previous_secret": "o",
                "previous_secret_invalid_at": "2024-06-02T10:00:00.5+02:00",
            },
            [],
        ),
    ],
)
def test_credential_validation(
    provider: WebhookProvider, credentials: dict[str, str], messages: list[str]
) -> None:
    assert provider.validate(make_destination(credentials=credentials)) == messages


def test_standard_mode_requires_standard_secrets() -> None:
    good = "whsec_" + base64.b64encode(b"k" * 32).decode()
    with provider_for(WebhookSettings(mode="standard")) as standard:
        assert standard.validate(make_destination(credentials={"secret": good})) == []
        assert standard.validate(make_destination(credentials={"secret": "plain"})) == [
            "credentials.secret failed pattern validation"
        ]
        bad_previous = {
            "secret": good,
            "previous_secret": "x",
            "previous_secret_invalid_at": TOMORROW,
        }
        assert standard.validate(make_destination(credentials=bad_previous)) == [
            "credentials.previous_secret failed pattern validation"
        ]


def test_another_type_is_not_a_webhook(provider: WebhookProvider) -> None:
    destination = make_destination(type="rabbitmq")
    assert provider.validate(destination) == ["type failed invalid_type validation"]


# -- preprocess --------------------------------------------------------------------------------


def test_create_without_secret_generates_one(provider: WebhookProvider) -> None:
    for admin in (True, False):
        created = provider.preprocess(make_destination(), None, admin=admin, now=NOW)
        assert list(created.credentials) == ["secret"]
        assert re.fullmatch(r"whsec_[0-9a-f]{64}", created.credentials["secret"])


def test_standard_mode_generates_standard_secrets() -> None:
    with provider_for(WebhookSettings(mode="standard")) as standard:
        created = standard.preprocess(make_destination(), None, admin=True, now=NOW)
    secret = created.credentials["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:], validate=True)) == 32


def test_custom_signing_secret_template() -> None:
    settings = WebhookSettings(signing_secret_template="sk_{{.RandomAlphanumeric}}")
    with provider_for(settings) as custom:
        created = custom.preprocess(make_destination(), None, admin=True, now=NOW)
    assert re.fullmatch(r"sk_[A-Za-z0-9]{32}", created.credentials["secret"])


def test_admin_keeps_given_secrets_and_unknown_keys_are_dropped(provider: WebhookProvider) -> None:
    credentials = {"secret": "given", "extra": "x", "previous_secret_invalid_at": ""}
    created = provider.preprocess(
        make_destination(credentials=credentials), None, admin=True, now=NOW
    )
    assert created.credentials == {"secret": "given"}


def test_previous_secret_defaults_to_a_day_of_grace(provider: WebhookProvider) -> None:
    credentials = {"secret": "new", "previous_secret": "old"}
    created = provider.preprocess(
        make_destination(credentials=credentials), None, admin=True, now=NOW
    )
    assert created.credentials == {
        "secret": "new",
        "previous_secret": "old",
        "previous_secret_invalid_at": TOMORROW,
    }


@pytest.mark.parametrize("key", ["secret", "previous_secret", "previous_secret_invalid_at"])
def test_tenant_cannot_set_secrets_on_create(provider: WebhookProvider, key: str) -> None:
    draft = make_destination(credentials={key: "mine"})
    messages = rejected(lambda: provider.preprocess(draft, None, admin=False, now=NOW))
    assert messages == [f"credentials.{key} is forbidden"]


def test_tenant_cannot_change_secrets_but_may_resend_them(provider: WebhookProvider) -> None:
    stored = make_destination(credentials={"secret": "stored"})
    changed = replace(stored, credentials={"secret": "other"})
    messages = rejected(lambda: provider.preprocess(changed, stored, admin=False, now=NOW))
    assert messages == ["credentials.secret is forbidden"]
    resent = replace(stored, credentials={"secret": "stored", "junk": "x"})
    assert provider.preprocess(resent, stored, admin=False, now=NOW).credentials == {
        "secret": "stored"
    }
    # a tenant update that leaves credentials out keeps the stored ones
    emptied = replace(stored, credentials={})
    assert provider.preprocess(emptied, stored, admin=False, now=NOW).credentials == {
        "secret": "stored"
    }


@pytest.mark.parametrize("admin", [True, False])
@pytest.mark.parametrize("flag", ["true", "TRUE", "1", "on", "Yes"])
def test_rotation_moves_the_secret_to_previous(
    provider: WebhookProvider, admin: bool, flag: str
) -> None:
    stored = make_destination(credentials={"secret": "current"})
    patched = replace(stored, credentials={"secret": "current", "rotate_secret": flag})
    rotated = provider.preprocess(patched, stored, admin=admin, now=NOW).credentials
    assert rotated["previous_secret"] == "current"
    assert rotated["previous_secret_invalid_at"] == TOMORROW
    assert re.fullmatch(r"whsec_[0-9a-f]{64}", rotated["secret"])
    assert set(rotated) == {"secret", "previous_secret", "previous_secret_invalid_at"}


@pytest.mark.parametrize("flag", ["false", "0", "off", "", "maybe"])
def test_falsy_rotate_flags_do_not_rotate(provider: WebhookProvider, flag: str) -> None:
    stored = make_destination(credentials={"secret": "current"})
    patched = replace(stored, credentials={"secret": "current", "rotate_secret": flag})
    assert provider.preprocess(patched, stored, admin=True, now=NOW).credentials == {
        "secret": "current"
    }


def test_rotation_keeps_a_given_invalidation_time_and_drops_the_older_previous(
    provider: WebhookProvider,
) -> None:
    stored = make_destination(
        credentials={"secret": "b", "previous_secret": "a", "previous_secret_invalid_at": TOMORROW}
    )
    patched = replace(
        stored,
        credentials={"rotate_secret": "true", "previous_secret_invalid_at": "2024-06-01T09:00:00Z"},
    )
    rotated = provider.preprocess(patched, stored, admin=False, now=NOW).credentials
    assert rotated["previous_secret"] == "b"
    assert rotated["previous_secret_invalid_at"] == "2024-06-01T09:00:00Z"


@pytest.mark.parametrize("mode", ["default", "standard"])
def test_rotation_with_a_custom_window_on_a_never_rotated_destination(mode: str) -> None:
    settings = WebhookSettings(mode=mode)
    with provider_for(settings) as webhook:
        stored = webhook.preprocess(make_destination(), None, admin=True, now=NOW)
        window = "2024-06-01T10:00:00.25+02:00"
        # what a PATCH hands over: the request merged over the stored credentials
        patched = replace(
            stored,
            credentials=stored.credentials
            | {"rotate_secret": "true", "previous_secret_invalid_at": window},
        )
        assert webhook.validate(patched) == []
        rotated = webhook.preprocess(patched, stored, admin=False, now=NOW).credentials
    assert rotated["previous_secret"] == stored.credentials["secret"]
    assert rotated["previous_secret_invalid_at"] == window  # kept as given
    assert rotated["secret"] not in ("", stored.credentials["secret"])


def test_rotation_validates_only_the_given_window(provider: WebhookProvider) -> None:
    stored = {"secret": "current"}
    for given, messages in (
        (
            {"previous_secret_invalid_at": "tomorrow"},
            ["credentials.previous_secret_invalid_at failed pattern validation"],
        ),
        ({"previous_secret_invalid_at": TOMORROW}, []),
        ({"previous_secret": "ignored"}, []),  # rotation sets the previous secret itself
        ({}, []),
    ):
        credentials = stored | given | {"rotate_secret": "yes"}
        assert provider.validate(make_destination(credentials=credentials)) == messages
    # not rotating: the pair rules hold
    lone = stored | {"rotate_secret": "false", "previous_secret_invalid_at": TOMORROW}
    assert provider.validate(make_destination(credentials=lone)) == [
        "credentials.previous_secret is required"
    ]


def test_rotating_again_starts_a_new_window(provider: WebhookProvider) -> None:
    """The stored end of the last overlap is not a window the new rotation asked for."""
    passed = "2024-05-01T00:00:00Z"
    stored = make_destination(
        credentials={"secret": "b", "previous_secret": "a", "previous_secret_invalid_at": passed}
    )
    patched = replace(stored, credentials=stored.credentials | {"rotate_secret": "true"})
    assert provider.validate(patched) == []
    rotated = provider.preprocess(patched, stored, admin=True, now=NOW).credentials
    assert rotated["previous_secret"] == "b"
    assert rotated["previous_secret_invalid_at"] == TOMORROW


def test_rotation_on_create_is_refused_even_with_a_window(provider: WebhookProvider) -> None:
    draft = make_destination(
        credentials={"rotate_secret": "true", "previous_secret_invalid_at": TOMORROW}
    )
    assert provider.validate(draft) == []
    assert rejected(lambda: provider.preprocess(draft, None, admin=True, now=NOW)) == [
        "credentials.rotate_secret failed invalid validation"
    ]


def test_rotation_needs_an_existing_destination_with_a_secret(provider: WebhookProvider) -> None:
    draft = make_destination(credentials={"rotate_secret": "true"})
    assert rejected(lambda: provider.preprocess(draft, None, admin=True, now=NOW)) == [
        "credentials.rotate_secret failed invalid validation"
    ]
    stored = make_destination(credentials={})
    assert rejected(lambda: provider.preprocess(draft, stored, admin=True, now=NOW)) == [
        "credentials.secret is required"
    ]


# -- display -----------------------------------------------------------------------------------


def test_display_shows_secrets_in_clear_and_targets_the_url(provider: WebhookProvider) -> None:
    credentials = {
        "secret": "s3cret",
        "previous_secret": "old",
        "previous_secret_invalid_at": TOMORROW,
    }
    shown = provider.display(make_destination(credentials=credentials), NOW)
    assert shown.credentials == credentials
    assert shown.target == "https://example.com/hook"
    assert shown.target_url == ""


def test_display_hides_an_expired_previous_secret(provider: WebhookProvider) -> None:
    credentials = {"secret": "s", "previous_secret": "old", "previous_secret_invalid_at": TOMORROW}
    a_day_later = NOW + 24 * 3600 * 1000 + 1
    shown = provider.display(make_destination(credentials=credentials), a_day_later)
    assert shown.credentials == {"secret": "s"}


# -- delivery ----------------------------------------------------------------------------------


@dataclass
class Received:
    headers: list[tuple[str, str]]
    body: bytes

    def get(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None

    def names(self) -> list[str]:
        return [k for k, _ in self.headers]


@dataclass
class Receiver:
    status: int = 200
    reply: bytes = b"ok"
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        headers = [(k.decode(), v.decode()) for k, v in request.raw_headers]
        self.requests.append(Received(headers, await request.read()))
        await asyncio.sleep(self.delay)
        return web.Response(status=self.status, body=self.reply)


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    finally:
        await runner.cleanup()


def deliver(
    event: Event,
    settings: WebhookSettings | None = None,
    receiver: Receiver | None = None,
    **destination: Any,
) -> tuple[DeliveryResult, Received | None]:
    receiver = receiver or Receiver()

    async def main() -> DeliveryResult:
        settings_ = settings or WebhookSettings()
        provider = WebhookProvider(settings_, HttpClient(user_agent=settings_.user_agent))
        async with receiving(receiver) as url:
            config = {"url": url} | destination.pop("config", {})
            target = make_destination(config=config, **destination)
            try:
                return await provider.publish(event, target)
            finally:
                await provider.close()

    result = asyncio.run(main())
    return result, (receiver.requests[0] if receiver.requests else None)


def v0_verifies(secret: str, body: bytes, header: str | None) -> bool:
    """What Outpost's documentation tells a receiver to do in default mode."""
    if not header or not header.startswith("v0="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, c) for c in header[3:].split(","))


def v1_verifies(secret: str, received: Received) -> bool:
    """A Standard Webhooks receiver's check."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{received.get('webhook-id')}.{received.get('webhook-timestamp')}.".encode()
    expected = base64.b64encode(hmac.digest(key, signed + received.body, "sha256")).decode()
    header = received.get("webhook-signature") or ""
    return any(hmac.compare_digest("v1," + expected, part) for part in header.split(" "))


SECRET = "testsecret1234567890abcdefghijklmnop"
CLIENT_HEADERS = {"Host", "User-Agent", "Content-Length", "Accept-Encoding"}


def test_default_delivery_request() -> None:
    before = int(time.time())
    result, received = deliver(
        make_event(metadata={"source": "signup-service"}),
        credentials={"secret": SECRET},
        config={"custom_headers": '{"x-team":"payments"}'},
    )
    assert (result.status, result.code) == ("success", "200")
    assert result.response_data == {"status": 200, "body": "ok"}
    assert received is not None
    # The attempt records what was sent, but for what the HTTP client adds on its own.
    assert result.request_headers == {
        name: value for name, value in received.headers if name not in CLIENT_HEADERS
    }
    assert received.body == BODY  # the stored bytes, not a re-encoding
    assert received.names()[:2] == ["Host", "User-Agent"]
    assert received.get("User-Agent") == "Outpost/0.1.0"
    assert received.get("Content-Type") == "application/json"
    assert received.get("X-Team") == "payments"
    assert received.get("X-Outpost-Event-Id") == "evt_1"
    assert received.get("X-Outpost-Topic") == "user.created"
    assert received.get("X-Outpost-Source") == "signup-service"
    assert received.get("Accept") is None
    stamp = received.get("X-Outpost-Timestamp") or ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    sent = int(time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone)
    assert before <= sent <= int(time.time())
    assert v0_verifies(SECRET, received.body, received.get("X-Outpost-Signature"))


def test_metadata_precedence_and_header_collisions() -> None:
    result, received = deliver(
        make_event(metadata={"topic": "from-event", "region": "eu", "should_err": "true"}),
        delivery_metadata={"topic": "from-destination", "region": "us", "team": "core"},
        config={"custom_headers": '{"X-Outpost-Team":"custom","X-OUTPOST-REGION":"custom"}'},
    )
    assert received is not None
    # Outpost lets metadata replace the topic header (contract.md §4.3); here the server's value
    # wins
    assert received.get("x-outpost-topic") == "user.created"
    assert result.response_data is not None
    assert result.response_data["metadata_not_sent"] == ["topic"]
    assert received.get("x-outpost-region") == "eu"
    assert received.get("x-outpost-team") == "core"  # metadata wins over custom headers
    assert received.get("X-Outpost-Should_err") == "true"
    assert received.get("x-outpost-signature") is None  # no secret, no signature


def test_the_record_masks_a_custom_credential_header_the_receiver_gets_in_clear() -> None:
    custom = '{"Authorization":"Bearer s3cr3t-t0ken","X-Api-Key":"k-123","X-Team":"a"}'
    result, received = deliver(
        make_event(), credentials={"secret": SECRET}, config={"custom_headers": custom}
    )
    assert received is not None
    assert received.get("Authorization") == "Bearer s3cr3t-t0ken"
    recorded = result.request_headers
    assert recorded is not None
    assert (recorded["Authorization"], recorded["X-Api-Key"]) == ("********", "********")
    assert recorded["X-Team"] == "a"
    assert recorded["X-Outpost-Signature"] == received.get("X-Outpost-Signature")
    assert "s3cr3t" not in str(recorded) and SECRET not in str(recorded)


def test_user_agent_cannot_be_overridden_by_metadata_or_custom_headers() -> None:
    settings = WebhookSettings(user_agent="Acme-Hooks/2")
    _, received = deliver(make_event(), settings, config={"custom_headers": '{"X-A":"b"}'})
    assert received is not None and received.get("User-Agent") == "Acme-Hooks/2"


def test_previous_secret_signs_while_valid() -> None:
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    credentials = {
        "secret": "new-secret",
        "previous_secret": SECRET,
        "previous_secret_invalid_at": later,
    }
    _, received = deliver(make_event(), credentials=credentials)
    assert received is not None
    header = received.get("x-outpost-signature") or ""
    assert header.split(",") == [
        "v0=" + hmac.new(b"new-secret", BODY, hashlib.sha256).hexdigest(),
        hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest(),
    ]
    assert v0_verifies(SECRET, received.body, header)

    expired = credentials | {"previous_secret_invalid_at": "2020-01-01T00:00:00Z"}
    _, received = deliver(make_event(), credentials=expired)
    assert received is not None
    assert not v0_verifies(SECRET, received.body, received.get("x-outpost-signature"))
    assert v0_verifies("new-secret", received.body, received.get("x-outpost-signature"))


def test_header_directives_and_prefix() -> None:
    settings = WebhookSettings(
        header_prefix="x-acme",
        event_id_header="X-Delivery-Id",
        topic_header="",
        include_millisecond_timestamp=True,
    )
    _, received = deliver(
        make_event(metadata={"topic": "hidden too", "k": "v"}),
        settings,
        credentials={"secret": "s"},
    )
    assert received is not None
    assert received.get("X-Delivery-Id") == "evt_1"
    assert received.get("X-Acmeevent-Id") is None
    assert not any("topic" in name.lower() for name in received.names())
    assert received.get("X-Acmek") == "v"
    assert re.fullmatch(r".+T.+\.\d+Z", received.get("X-Acmetimestamp-Ms") or "")
    assert (received.get("X-Acmesignature") or "").startswith("v0=")


def test_a_metadata_key_named_signature_is_an_ordinary_header() -> None:
    settings = WebhookSettings(signature_header="X-Sig")
    _, received = deliver(
        make_event(metadata={"signature": "meta"}), settings, credentials={"secret": "s"}
    )
    assert received is not None
    assert received.get("X-Outpost-Signature") == "meta"
    assert v0_verifies("s", received.body, received.get("X-Sig"))


def test_whitespace_prefix_means_no_prefix() -> None:
    _, received = deliver(make_event(metadata={"k": "v"}), WebhookSettings(header_prefix=" "))
    assert received is not None
    assert received.get("Event-Id") == "evt_1"
    assert received.get("K") == "v"


def test_custom_signature_templates_and_encoding() -> None:
    settings = WebhookSettings(
        signature_algorithm="hmac-sha1",
        signature_encoding="base64",
        signature_content_template="{{.Timestamp.Unix}}.{{.Body}}",
        signature_header_template='t={{.Timestamp.Unix}},v0={{.Signatures | join ","}}',
    )
    _, received = deliver(make_event(), settings, credentials={"secret": "k"})
    assert received is not None
    match = re.fullmatch(r"t=(\d+),v0=(.+)", received.get("x-outpost-signature") or "")
    assert match is not None
    signed = match.group(1).encode() + b"." + BODY
    expected = base64.b64encode(hmac.digest(b"k", signed, "sha1")).decode()
    assert match.group(2) == expected


def test_disabled_signature_header() -> None:
    _, received = deliver(
        make_event(), WebhookSettings(signature_header=""), credentials={"secret": "s"}
    )
    assert received is not None
    assert not any("signature" in name.lower() for name in received.names())


def test_standard_webhooks_delivery() -> None:
    settings = WebhookSettings(mode="standard")
    current, previous = ("whsec_" + base64.b64encode(bytes([n]) * 32).decode() for n in (1, 2))
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    credentials = {
        "secret": current,
        "previous_secret": previous,
        "previous_secret_invalid_at": later,
    }
    result, received = deliver(
        make_event(metadata={"source": "billing"}),
        settings,
        credentials=credentials,
        delivery_metadata={"team": "core"},
    )
    assert result.status == "success"
    assert received is not None
    assert received.get("webhook-id") == "evt_1"
    assert abs(int(received.get("webhook-timestamp") or 0) - time.time()) < 5
    assert len((received.get("webhook-signature") or "").split(" ")) == 2
    assert v1_verifies(current, received) and v1_verifies(previous, received)
    assert received.get("webhook-topic") == "user.created"
    assert received.get("webhook-team") == "core"
    assert received.get("webhook-source") == "billing"
    assert received.get("source") == "billing"  # event metadata is repeated unprefixed
    assert received.get("x-outpost-event-id") is None


SPOOF = "v1,c3Bvb2ZlZA=="


def test_standard_mode_metadata_cannot_replace_the_signature_or_id() -> None:
    secret = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    result, received = deliver(
        make_event(
            metadata={"signature": SPOOF, "id": "evt_spoofed", "webhook-timestamp": "1", "ok": "y"}
        ),
        WebhookSettings(mode="standard"),
        credentials={"secret": secret},
        delivery_metadata={"topic": "spoofed", "team": "core"},
    )
    assert received is not None
    assert received.get("webhook-id") == "evt_1"
    assert received.get("webhook-signature") != SPOOF
    assert received.get("webhook-topic") == "user.created"
    assert v1_verifies(secret, received)
    assert received.get("webhook-ok") == received.get("ok") == "y"
    assert received.get("webhook-team") == "core"
    # neither form of a refused key is sent; the attempt names them, the destination's first
    for name in ("signature", "id", "webhook-webhook-timestamp", "webhook-id"):
        assert received.get(name) in (None, "evt_1")
    assert result.status == "success"
    assert result.response_data == {
        "status": 200,
        "body": "ok",
        "metadata_not_sent": ["topic", "signature", "id", "webhook-timestamp"],
    }


@pytest.mark.parametrize("prefix", [None, "x-acme-", " "])
def test_default_mode_metadata_cannot_replace_the_headers_the_server_signs_with(
    prefix: str | None,
) -> None:
    settings = WebhookSettings(header_prefix=prefix, include_millisecond_timestamp=True)
    applied = settings.prefix
    spoofed = {
        key: "spoofed" for key in ("event-id", "topic", "timestamp", "timestamp-ms", "signature")
    }
    result, received = deliver(
        make_event(metadata=spoofed | {"source": "crm"}),
        settings,
        credentials={"secret": SECRET},
    )
    assert received is not None
    assert received.get(applied + "event-id") == "evt_1"
    assert received.get(applied + "topic") == "user.created"
    assert received.get(applied + "timestamp") != "spoofed"
    assert received.get(applied + "timestamp-ms") != "spoofed"
    assert v0_verifies(SECRET, received.body, received.get(applied + "signature"))
    assert received.get(applied + "source") == "crm"
    assert result.response_data is not None
    assert result.response_data["metadata_not_sent"] == list(spoofed)


def test_blank_prefix_metadata_cannot_replace_the_content_type() -> None:
    for mode in ("default", "standard"):
        result, received = deliver(
            make_event(metadata={"content-type": "text/plain"}),
            WebhookSettings(mode=mode, header_prefix=" "),
        )
        assert received is not None and received.get("Content-Type") == "application/json"
        assert result.response_data is not None
        assert result.response_data["metadata_not_sent"] == ["content-type"]


def test_unsent_metadata_is_named_even_without_a_response() -> None:
    async def main() -> DeliveryResult:
        provider = WebhookProvider(WebhookSettings(), HttpClient(user_agent="t"))
        event = make_event(metadata={"event-id": "evt_spoofed"})
        try:
            return await provider.publish(event, make_destination(url="http://127.0.0.1:1/"))
        finally:
            await provider.close()

    assert asyncio.run(main()) == DeliveryResult(
        "failed", "connection_refused", {"metadata_not_sent": ["event-id"]}
    )


def test_metadata_errors_name_the_key_and_the_header() -> None:
    with provider_for() as default:
        assert default.metadata_errors({"team": "core", "Topic": "x", "signature": "y"}) == [
            "delivery_metadata.Topic is forbidden: it would replace the X-Outpost-Topic header,"
            " which the server sets",
            "delivery_metadata.signature is forbidden: it would replace the X-Outpost-Signature"
            " header, which the server sets",
        ]
        assert default.metadata_errors(None) == []
    with provider_for(WebhookSettings(mode="standard")) as standard:
        # a destination's keys travel prefixed only, so `webhook-id` is a header of its own
        assert standard.metadata_errors({"id": "x", "webhook-id": "y", "team": "z"}) == [
            "delivery_metadata.id is forbidden: it would replace the Webhook-Id header,"
            " which the server sets",
        ]


@pytest.mark.parametrize(
    ("status", "outcome"), [(204, "success"), (302, "success"), (400, "failed"), (503, "failed")]
)
def test_status_decides_the_outcome(status: int, outcome: str) -> None:
    receiver = Receiver(status=status, reply=b"" if status in (204, 302) else b'{"error":"nope"}')
    result, _ = deliver(make_event(), WebhookSettings(), receiver)
    assert result.status == outcome
    assert result.code == str(status)
    assert result.response_data == {"status": status, "body": receiver.reply.decode()}


def test_oversized_response_body_is_replaced() -> None:
    receiver = Receiver(status=500, reply=b"x" * 200_000)
    result, _ = deliver(make_event(), WebhookSettings(max_response_body_bytes=1024), receiver)
    assert result == DeliveryResult(
        "failed",
        "500",
        {"status": 500, "body": "Response body exceeded 1024 bytes and was not stored"},
    )


def test_response_body_that_is_not_utf8_is_kept_as_text() -> None:
    result, _ = deliver(make_event(), WebhookSettings(), Receiver(status=400, reply=b"bad \xff"))
    assert result.response_data == {"status": 400, "body": "bad \ufffd"}


def test_timeout_is_a_failed_attempt_without_response_data() -> None:
    receiver = Receiver(delay=1.0)
    result, _ = deliver(make_event(), WebhookSettings(delivery_timeout_seconds=0.2), receiver)
    assert result == DeliveryResult("failed", "timeout")


def test_refused_connection_is_a_failed_attempt() -> None:
    async def main() -> DeliveryResult:
        provider = WebhookProvider(WebhookSettings(), HttpClient(user_agent="t"))
        try:
            return await provider.publish(make_event(), make_destination(url="http://127.0.0.1:1/"))
        finally:
            await provider.close()

    assert asyncio.run(main()) == DeliveryResult("failed", "connection_refused")


def test_unusable_stored_config_is_an_err_attempt() -> None:
    result, received = deliver(make_event(), config={"custom_headers": "{broken"})
    assert received is None
    assert result.status == "failed" and result.code == "ERR"
    assert result.response_data is not None and "custom_headers" in result.response_data["error"]


def test_unreachable_proxy_records_no_attempt() -> None:
    async def main() -> None:
        settings = WebhookSettings(proxy_url="http://127.0.0.1:1")
        client = HttpClient(user_agent="t", proxy_url=settings.proxy_url)
        provider = WebhookProvider(settings, client)
        try:
            with pytest.raises(DeliveryInfrastructureError):
                await provider.publish(make_event(), make_destination())
        finally:
            await provider.close()

    asyncio.run(main())
