"""Which metadata keys would replace a header the server computes, per mode and prefix setting."""

from __future__ import annotations

import pytest

from waypost.destinations.webhook import WebhookSettings
from waypost.destinations.webhook.reserved import ReservedHeaders
from waypost.destinations.webhook.settings import CompatSignature

DEFAULT = WebhookSettings()
STANDARD = WebhookSettings(mode="standard")


def collisions(settings: WebhookSettings, keys: list[str], *, event: bool) -> dict[str, str]:
    reserved = ReservedHeaders(settings)
    found = {key: reserved.collision(key, event=event) for key in keys}
    return {key: header.lower() for key, header in found.items() if header is not None}


@pytest.mark.parametrize("event", [False, True])
def test_default_mode_protects_the_x_outpost_headers(event: bool) -> None:
    keys = ["event-id", "timestamp", "topic", "signature", "Topic", "EVENT-ID", "source", "id"]
    assert collisions(DEFAULT, keys, event=event) == {
        "event-id": "x-outpost-event-id",
        "timestamp": "x-outpost-timestamp",
        "topic": "x-outpost-topic",
        "signature": "x-outpost-signature",
        "Topic": "x-outpost-topic",
        "EVENT-ID": "x-outpost-event-id",
    }


def test_default_mode_follows_the_header_directives() -> None:
    settings = WebhookSettings(
        header_prefix="x-acme-",
        event_id_header="X-Delivery-Id",
        topic_header="",
        signature_header="X-Sig",
        include_millisecond_timestamp=True,
    )
    keys = ["event-id", "topic", "signature", "delivery-id", "timestamp", "timestamp-ms", "sig"]
    # x-acme-delivery-id and x-acme-signature are not the pinned names; topic is not sent
    assert collisions(settings, keys, event=True) == {
        "event-id": "x-delivery-id",
        "timestamp": "x-acme-timestamp",
        "timestamp-ms": "x-acme-timestamp-ms",
    }


def test_a_pinned_name_reachable_through_the_prefix_is_protected() -> None:
    settings = WebhookSettings(header_prefix="x-", event_id_header="X-Delivery-Id")
    assert collisions(settings, ["delivery-id", "event-id"], event=False) == {
        "delivery-id": "x-delivery-id",
        "event-id": "x-delivery-id",
    }


def test_a_disabled_header_protects_nothing_and_its_key_is_not_sent() -> None:
    settings = WebhookSettings(topic_header="", signature_header="")
    assert collisions(settings, ["topic", "signature"], event=True) == {}


def test_millisecond_timestamp_is_protected_only_when_sent() -> None:
    assert collisions(DEFAULT, ["timestamp-ms"], event=False) == {}
    with_ms = WebhookSettings(include_millisecond_timestamp=True)
    assert collisions(with_ms, ["timestamp-ms"], event=False) == {
        "timestamp-ms": "x-outpost-timestamp-ms"
    }


def test_blank_prefix_protects_the_framing_headers() -> None:
    blank = (
        WebhookSettings(header_prefix=" "),
        WebhookSettings(mode="standard", header_prefix=" "),
    )
    for settings in blank:
        keys = ["content-type", "Host", "content-length", "connection", "user-agent", "team"]
        assert set(collisions(settings, keys, event=False)) == set(keys) - {"team"}


def test_standard_mode_protects_id_timestamp_signature_and_topic() -> None:
    keys = ["id", "timestamp", "signature", "topic", "event-id", "ID", "source"]
    keys += ["Timestamp"]
    # `event-id` and `timestamp` name the metadata that this mode never sends under the prefix
    assert collisions(STANDARD, keys, event=False) == {
        "id": "webhook-id",
        "signature": "webhook-signature",
        "topic": "webhook-topic",
        "ID": "webhook-id",
        "Timestamp": "webhook-timestamp",
    }


def test_standard_mode_event_keys_are_also_checked_without_the_prefix() -> None:
    keys = ["webhook-id", "Webhook-Signature", "content-type", "id", "webhook-team"]
    assert collisions(STANDARD, keys, event=False) == {"id": "webhook-id"}
    assert collisions(STANDARD, keys, event=True) == {
        "webhook-id": "webhook-id",
        "Webhook-Signature": "webhook-signature",
        "content-type": "content-type",
        "id": "webhook-id",
    }


@pytest.mark.parametrize("prefix", ["acme-", "x-hook-", " "])
def test_standard_mode_under_other_prefixes(prefix: str) -> None:
    settings = WebhookSettings(mode="standard", header_prefix=prefix)
    applied = prefix.strip()
    keys = ["id", "signature", "webhook-id", f"{applied}id", "team"]
    found = collisions(settings, keys, event=True)
    assert found["id"] == f"{applied}id"
    assert found["signature"] == f"{applied}signature"
    assert found[f"{applied}id"] == f"{applied}id"
    assert "webhook-id" not in found and "team" not in found


def test_the_compat_signature_headers_are_protected_too() -> None:
    # With a blank prefix a metadata key is sent under its own name, so it could replace the
    # compat signature (or a header sent with it) that a migrating receiver checks.
    settings = WebhookSettings(
        header_prefix="",
        compat=CompatSignature(
            header_name="X-Legacy-Signature", headers="X-Legacy-Id={{.EventID}}"
        ),
    )
    assert collisions(settings, ["x-legacy-signature", "X-Legacy-Id", "source"], event=True) == {
        "x-legacy-signature": "x-legacy-signature",
        "X-Legacy-Id": "x-legacy-id",
    }
