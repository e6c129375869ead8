"""Webhook settings of SDK 1.7.0's managed configuration that change what is sent: the timestamp
format, how the HMAC key comes from the secret, and the compat signature with its headers. Each
is checked on a real delivery to a local receiver, verified the way a receiver would."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import time

import pytest
from aiohttp import web

from waypost import config
from waypost.core.models import Destination, Event
from waypost.destinations.webhook import WebhookProvider, WebhookSettings
from waypost.destinations.webhook.settings import CompatSignature
from waypost.destinations.webhook.settings import settings_from as webhook_settings_from
from waypost.errors import ConfigError
from waypost.transport.http import HttpClient

pytestmark = pytest.mark.timeout(60)

BODY = b'{"n":1}'
HEX_KEY = bytes(range(32))
SECRET = "whsec_" + HEX_KEY.hex()


def _deliver(settings: WebhookSettings, secret: str = SECRET) -> tuple[str, dict[str, str]]:
    """Deliver one event; the attempt's status and the headers the receiver got (lower-cased)."""
    got: dict[str, str] = {}

    async def handle(request: web.Request) -> web.Response:
        got.update({k.lower(): v for k, v in request.headers.items()})
        return web.Response(text="ok")

    async def main() -> str:
        app = web.Application()
        app.router.add_post("/hook", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        provider = WebhookProvider(settings, HttpClient(user_agent="Test/1"))
        try:
            url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
            destination = Destination(
                id="des_1",
                tenant_id="acme",
                type="webhook",
                topics=("*",),
                config={"url": url},
                credentials={"secret": secret},
                created_at=0,
                updated_at=0,
            )
            event = Event("evt_1", "acme", "user.created", 0, BODY)
            result = await provider.publish(event, destination)
            return result.code if result.status == "failed" else "ok"
        finally:
            await provider.close()
            await runner.cleanup()

    return asyncio.run(main()), got


def _hex_sha256(key: bytes, content: bytes) -> str:
    return hmac.new(key, content, hashlib.sha256).hexdigest()


def test_unix_timestamp_format() -> None:
    before = int(time.time())
    _, got = _deliver(WebhookSettings(timestamp_format="unix"))
    assert re.fullmatch(r"\d+", got["x-outpost-timestamp"])
    assert before <= int(got["x-outpost-timestamp"]) <= int(time.time())
    _, got = _deliver(WebhookSettings(timestamp_format="rfc3339"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", got["x-outpost-timestamp"])


@pytest.mark.parametrize(
    ("encoding", "prefix", "secret", "key"),
    [
        ("raw", "", SECRET, SECRET.encode()),
        ("hex", "whsec_", SECRET, HEX_KEY),
        ("base64", "whsec_", "whsec_" + base64.b64encode(HEX_KEY).decode(), HEX_KEY),
        ("hex", "", HEX_KEY.hex(), HEX_KEY),
    ],
)
def test_secret_encoding_and_prefix_make_the_key(
    encoding: str, prefix: str, secret: str, key: bytes
) -> None:
    settings = WebhookSettings(
        signature_secret_encoding=encoding,
        signature_secret_prefix=prefix,
        signing_secret_template=prefix + "{{.RandomHex}}",  # generated secrets must decode too
    )
    status, got = _deliver(settings, secret)
    assert status == "ok"
    assert got["x-outpost-signature"] == "v0=" + _hex_sha256(key, BODY)


def test_a_stored_secret_that_does_not_decode_fails_the_attempt() -> None:
    settings = WebhookSettings(signature_secret_encoding="hex", signature_secret_prefix="whsec_")
    status, got = _deliver(settings, "whsec_not-hex")
    assert status == "ERR" and not got  # nothing sent unsigned


def test_compat_signature_and_headers_alongside_the_primary() -> None:
    compat = CompatSignature(
        header_name="X-Legacy-Signature",
        algorithm="hmac-sha1",
        encoding="base64",
        content_template="{{.EventID}}.{{.Body}}",
        header_template='sha1={{.Signatures | join " "}}',
        secret_encoding="hex",
        secret_prefix="whsec_",
        headers=r"X-Legacy-Id={{.EventID}},X-Legacy-Note=a\,b {{.Topic}}",
    )
    _, got = _deliver(WebhookSettings(compat=compat))
    assert got["x-outpost-signature"] == "v0=" + _hex_sha256(SECRET.encode(), BODY)
    legacy = base64.b64encode(hmac.digest(HEX_KEY, b"evt_1." + BODY, "sha1")).decode()
    assert got["x-legacy-signature"] == "sha1=" + legacy
    assert got["x-legacy-id"] == "evt_1"
    assert got["x-legacy-note"] == "a,b user.created"


def test_no_compat_signature_for_a_secret_it_cannot_decode() -> None:
    compat = CompatSignature(header_name="X-Legacy", secret_encoding="base64", headers="X-L=1")
    status, got = _deliver(WebhookSettings(compat=compat), "not base64!")
    assert status == "ok"
    assert got["x-outpost-signature"] == "v0=" + _hex_sha256(b"not base64!", BODY)
    assert "x-legacy" not in got and "x-l" not in got


def _settings(env: dict[str, str]) -> WebhookSettings:
    return webhook_settings_from(config.load(env))


def test_settings_come_from_the_environment() -> None:
    settings = _settings(
        {
            "DESTINATIONS_WEBHOOK_TIMESTAMP_FORMAT": "unix",
            "DESTINATIONS_WEBHOOK_SIGNATURE_SECRET_ENCODING": "hex",
            "DESTINATIONS_WEBHOOK_SIGNATURE_SECRET_PREFIX": "whsec_",
            "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_HEADER_NAME": "X-Old",
            "DESTINATIONS_WEBHOOK_COMPAT_HEADERS": "X-Old-Id={{.EventID}}",
        }
    )
    settings.check()
    assert settings.unix_timestamp and settings.secret_encoding == "hex"
    assert settings.compat is not None and settings.compat.header_name == "X-Old"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"DESTINATIONS_WEBHOOK_TIMESTAMP_FORMAT": "iso"},
            "TIMESTAMP_FORMAT must be empty, rfc3339 or unix, not 'iso'",
        ),
        (
            {"DESTINATIONS_WEBHOOK_SIGNATURE_SECRET_ENCODING": "b32"},
            "SECRET_ENCODING must be empty, raw, hex or base64, not 'b32'",
        ),
        (  # the default template's whsec_<hex> does not decode without the prefix stripped
            {"DESTINATIONS_WEBHOOK_SIGNATURE_SECRET_ENCODING": "hex"},
            "SIGNING_SECRET_TEMPLATE generates secrets",
        ),
        (
            {
                "DESTINATIONS_WEBHOOK_MODE": "standard",
                "DESTINATIONS_WEBHOOK_TIMESTAMP_FORMAT": "rfc3339",
            },
            "not supported in standard mode",
        ),
        ({"DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_ALGORITHM": "hmac-sha1"}, "does nothing without"),
        (
            {
                "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_HEADER_NAME": "X-Old",
                "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_ENCODING": "base32",
            },
            "COMPAT_SIGNATURE_ENCODING must be hex or base64, not 'base32'",
        ),
        (
            {
                "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_HEADER_NAME": "X-Old",
                "DESTINATIONS_WEBHOOK_COMPAT_HEADERS": "no-equals-sign",
            },
            "COMPAT_HEADERS",
        ),
        (
            {"DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_HEADER_NAME": "x-outpost-signature"},
            "is also the signature header",
        ),
    ],
)
def test_values_not_implemented_refuse_to_start(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        _settings(env).check()
