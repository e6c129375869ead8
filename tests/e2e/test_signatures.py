"""Default-mode webhook signatures (§4.2, §4.6, §10.3 Signatures)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from outpost_sdk import Outpost
from support.api import (
    TEST_SECRET,
    create_webhook,
    get_webhook,
    publish,
    update_webhook,
    wait_attempts,
)
from support.receiver import Receiver, sign, signature_candidates

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
