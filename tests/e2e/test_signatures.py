"""Webhook signatures (contract.md §4.2, §4.4, §4.6, §10.3 Signatures), as receivers verify them.

Default mode is checked with the receiver's own `v0=` check (written from Outpost's receiver
docs), Standard Webhooks mode with the `standardwebhooks` package, under each prefix setting.
Both also pin what this server does beyond Outpost: metadata never replaces a header the server
computes, and a rotation keeps a custom end of the overlap on a destination never rotated before.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from outpost_sdk import Outpost
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from support.api import (
    TEST_SECRET,
    create_webhook,
    get_webhook,
    publish,
    unique_id,
    update_webhook,
    wait_attempts,
    wait_event,
)
from support.receiver import Receiver, RecordedRequest, sign, signature_candidates, verify_signature
from support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_receiver_with_rotated_secret_still_verifies_with_previous(
    admin: Outpost, receiver: Receiver, tenant_id: str
) -> None:
    """The endpoint already moved to a new secret but keeps the original one as "previous":
    a delivery signed with the original secret must verify."""
    path = receiver.new_path("sig-previous")
    url = receiver.configure(
        path, secret="a-brand-new-secret-0987654321", previous_secret=TEST_SECRET
    )
    create_webhook(admin, tenant_id, url, secret=TEST_SECRET)

    publish(admin, tenant_id, {"signed": "with original"})
    [req] = receiver.wait_for(1, path=path)
    assert req.verified is True
    assert req.signature_valid_for(TEST_SECRET)
    assert req.header("x-outpost-signature") == "v0=" + sign(TEST_SECRET, req.body)


def test_wrong_secret_does_not_verify_but_delivery_succeeds(
    admin: Outpost, api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    path = receiver.new_path("sig-wrong")
    url = receiver.configure(path, secret="not-the-secret-the-server-uses")
    create_webhook(admin, tenant_id, url, secret=TEST_SECRET)

    res = publish(admin, tenant_id, {"signed": "elsewhere"})
    [req] = receiver.wait_for(1, path=path)
    assert req.status == 200
    assert req.verified is False
    [attempt] = wait_attempts(api, 1, tenant_id=tenant_id, event_id=res.id)
    assert attempt["status"] == "success"
    assert attempt["code"] == "200"


def test_rotation_signs_with_both_secrets_during_the_window(
    admin: Outpost, receiver: Receiver, tenant_id: str
) -> None:
    path = receiver.new_path("sig-rotate")
    url = receiver.configure(path)
    dest = create_webhook(admin, tenant_id, url, secret=TEST_SECRET)

    rotated = update_webhook(admin, tenant_id, dest.id, {"credentials": {"rotate_secret": True}})
    creds = rotated.credentials
    new_secret = creds.secret
    assert new_secret and new_secret != TEST_SECRET
    assert creds.previous_secret == TEST_SECRET
    assert creds.previous_secret_invalid_at is not None
    invalid_at = creds.previous_secret_invalid_at
    if invalid_at.tzinfo is None:
        invalid_at = invalid_at.replace(tzinfo=UTC)
    assert timedelta(hours=23) < invalid_at - datetime.now(UTC) <= timedelta(hours=24, minutes=1)

    publish(admin, tenant_id, {"rotated": True})
    [req] = receiver.wait_for(1, path=path)
    candidates = signature_candidates(req.header("x-outpost-signature"))
    assert candidates == [sign(new_secret, req.body), sign(TEST_SECRET, req.body)]
    # an endpoint that only knows the new secret, or only the old one, accepts it
    assert req.signature_valid_for(new_secret)
    assert req.signature_valid_for(TEST_SECRET)


def test_expired_previous_secret_is_not_used(
    admin: Outpost, receiver: Receiver, tenant_id: str
) -> None:
    path = receiver.new_path("sig-expired")
    url = receiver.configure(path)
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    dest = create_webhook(
        admin,
        tenant_id,
        url,
        credentials={
            "secret": TEST_SECRET,
            "previous_secret": "old-secret-no-longer-valid-123",
            "previous_secret_invalid_at": past,
        },
    )
    shown = get_webhook(admin, tenant_id, dest.id).credentials
    assert shown.secret == TEST_SECRET
    assert shown.previous_secret is None  # expired pair is hidden

    publish(admin, tenant_id, {"only": "current"})
    [req] = receiver.wait_for(1, path=path)
    assert signature_candidates(req.header("x-outpost-signature")) == [sign(TEST_SECRET, req.body)]
    assert not req.signature_valid_for("old-secret-no-longer-valid-123")


# -- what receivers verify, in both modes and under each prefix setting -------------------------

SPOOFED_SIGNATURE = "v1,c3Bvb2ZlZA=="
UNICODE_DATA = {"name": "Zoë Ñandú", "note": "✓ 日本語 🚀", "amount": 1.5}


@dataclass
class Deployment:
    """One server and the names its webhook headers take there."""

    mode: str
    prefix: str  # as applied: "" for a blank setting
    server: ServerProcess
    admin: Outpost
    api: httpx.Client

    def header(self, key: str) -> str:
        return self.prefix + key


VARIANTS = [
    ("default", None),
    ("default", " "),
    ("standard", None),
    ("standard", "acme-"),
    ("standard", " "),
]


@pytest.fixture(
    scope="module",
    params=VARIANTS,
    ids=[f"{mode}-{'blank' if p == ' ' else p or 'default'}" for mode, p in VARIANTS],
)
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    mode, prefix = request.param
    if (mode, prefix) == ("default", None):  # the module's own server is that deployment
        server: ServerProcess = request.getfixturevalue("server")
        with server.admin_client() as admin, server.http() as api:
            yield Deployment(mode, "x-outpost-", server, admin, api)
        return
    env = {"DESTINATIONS_WEBHOOK_MODE": mode}
    if prefix is not None:
        env["DESTINATIONS_WEBHOOK_HEADER_PREFIX"] = prefix
    applied = ("webhook-" if mode == "standard" else "x-outpost-") if prefix is None else prefix
    workdir = tmp_path_factory.mktemp(f"{mode}-prefix")
    with (
        ServerProcess(env, workdir=workdir) as started,
        started.admin_client() as admin,
        started.http() as api,
    ):
        yield Deployment(mode, applied.strip(), started, admin, api)


@pytest.fixture
def tenant(deployment: Deployment, request: pytest.FixtureRequest) -> str:
    tid = unique_id(request.node.name)
    deployment.admin.tenants.upsert(tenant_id=tid)
    return tid


def standard_verifies(secret: str, req: RecordedRequest, prefix: str = "webhook-") -> bool:
    """The `standardwebhooks` package's verdict on a delivery (headers renamed from `prefix`)."""
    headers = dict(req.headers)
    for key in ("id", "timestamp", "signature"):
        headers.pop(f"webhook-{key}", None)
        value = req.header(prefix + key)
        if value is not None:
            headers[f"webhook-{key}"] = value
    try:
        Webhook(secret).verify(req.body, headers)
    except WebhookVerificationError:
        return False
    return True


def verifies(deployment: Deployment, secret: str, req: RecordedRequest) -> bool:
    if deployment.mode == "standard":
        return standard_verifies(secret, req, deployment.prefix)
    return verify_signature(req.body, req.header(deployment.header("signature")), [secret])


def standard_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def attempt_response_data(api: httpx.Client, tenant_id: str, event_id: str) -> dict[str, Any]:
    [attempt] = wait_attempts(api, 1, tenant_id=tenant_id, event_id=event_id)
    res = api.get(
        f"/tenants/{tenant_id}/destinations/{attempt['destination_id']}/attempts/{attempt['id']}",
        params={"include": "response_data"},
    )
    assert res.status_code == 200, res.text
    data: dict[str, Any] = res.json()["response_data"]
    return data


def test_delivery_verifies_and_metadata_cannot_replace_the_servers_headers(
    deployment: Deployment, receiver: Receiver, tenant: str
) -> None:
    """Event metadata named like the server's headers is kept on the event, not sent."""
    path = receiver.new_path(f"sig-{deployment.mode}")
    dest = create_webhook(deployment.admin, tenant, receiver.configure(path))
    secret = dest.credentials.secret
    assert secret
    if deployment.mode == "standard":
        # the prefixed forms of the server's headers, and their unprefixed repeats
        claimed = {
            "id": "evt_spoofed",
            "signature": SPOOFED_SIGNATURE,
            "topic": "spoofed.topic",
            deployment.header("id"): "evt_spoofed",
            deployment.header("signature"): SPOOFED_SIGNATURE,
        }
    else:
        claimed = {
            "event-id": "evt_spoofed",
            "signature": SPOOFED_SIGNATURE,
            "topic": "spoofed.topic",
            "timestamp": "spoofed-time",
        }
        if not deployment.prefix:
            claimed["content-type"] = "text/plain"
    metadata = claimed | {"source": "crm"}
    res = publish(deployment.admin, tenant, UNICODE_DATA, metadata=metadata)

    [req] = receiver.wait_for(1, path=path)
    assert verifies(deployment, secret, req)
    event_id_header = "id" if deployment.mode == "standard" else "event-id"
    assert req.header(deployment.header(event_id_header)) == res.id
    assert req.header(deployment.header("topic")) == "user.created"
    assert req.header(deployment.header("source")) == "crm"
    assert req.header("content-type") == "application/json"
    for value in claimed.values():
        assert value not in req.headers.values()
    if deployment.mode == "standard" and deployment.prefix == "webhook-":
        Webhook(secret).verify(req.body, req.headers)  # the receiver's headers as they came

    # the event keeps its metadata; the attempt names what was not sent
    event = wait_event(deployment.api, res.id).json()
    assert event["metadata"] == metadata
    not_sent = attempt_response_data(deployment.api, tenant, res.id)["metadata_not_sent"]
    assert sorted(not_sent) == sorted(claimed)


def test_delivery_metadata_naming_a_servers_header_is_refused(
    deployment: Deployment, receiver: Receiver, tenant: str
) -> None:
    key = "id" if deployment.mode == "standard" else "event-id"
    body = {
        "type": "webhook",
        "topics": "*",
        "config": {"url": receiver.url(receiver.new_path("sig-refused"))},
        "delivery_metadata": {key: "spoofed", "team": "core"},
    }
    res = deployment.api.post(f"/tenants/{tenant}/destinations", json=body)
    assert res.status_code == 422, res.text
    error = res.json()
    assert error["message"] == "validation error"
    [message] = error["data"]
    assert message.startswith(f"delivery_metadata.{key} is forbidden")
    assert f"replace the {deployment.header(key)} header".lower() in message.lower()
    assert deployment.api.get(f"/tenants/{tenant}/destinations").json() == []


def test_rotation_with_a_custom_window_signs_with_both_secrets(
    deployment: Deployment, receiver: Receiver, tenant: str
) -> None:
    path = receiver.new_path("sig-window")
    original = standard_secret() if deployment.mode == "standard" else TEST_SECRET
    dest = create_webhook(deployment.admin, tenant, receiver.configure(path), secret=original)
    window = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.5+00:00")
    patch = {"credentials": {"rotate_secret": True, "previous_secret_invalid_at": window}}
    res = deployment.api.patch(f"/tenants/{tenant}/destinations/{dest.id}", json=patch)
    assert res.status_code == 200, res.text
    shown = deployment.api.get(f"/tenants/{tenant}/destinations/{dest.id}").json()["credentials"]
    assert shown["previous_secret"] == original
    assert shown["previous_secret_invalid_at"] == window  # the given end, as given
    new = shown["secret"]
    assert new not in ("", original)

    publish(deployment.admin, tenant, UNICODE_DATA)
    [req] = receiver.wait_for(1, path=path)
    # an endpoint that knows only the new secret, or only the old one, accepts the delivery
    assert verifies(deployment, new, req)
    assert verifies(deployment, original, req)
    assert not verifies(deployment, standard_secret(), req)
