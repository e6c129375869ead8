"""The README quickstart, run against a real server and a real receiver.

The quickstart as handed to us reads::

    with Outpost(security=models.Security(admin_api_key=KEY), server_url=...) as outpost:
        outpost.tenants.upsert(tenant_id="acme")
        dest = outpost.destinations.create(tenant_id="acme", params={...})
        res = outpost.publish.event(data=..., id=..., tenant_id=..., topic=..., metadata=...)

That spelling does not exist in the pinned official client (outpost_sdk 1.7.0): its constructor
takes `api_key=` (no `security=` argument, and `models.Security` has no `admin_api_key` field),
`destinations.create` takes `body=`, and publishing is the top-level method
`outpost.publish(request=...)`. The test below runs the same steps with the 1.7.0 spelling.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from outpost_sdk import Outpost, errors
from support.receiver import Receiver
from support.server import ServerProcess

# The quickstart is run against the server the README sets up, the embedded one.
pytestmark = [pytest.mark.e2e, pytest.mark.backends("sqlite"), pytest.mark.timeout(120)]


def test_quickstart_delivers_signed_event(server: ServerProcess, receiver: Receiver) -> None:
    KEY = server.api_key
    path = receiver.new_path("quickstart")
    RECEIVER_URL = receiver.configure(path)

    with Outpost(api_key=KEY, server_url=server.base_url) as outpost:
        outpost.tenants.upsert(tenant_id="acme")
        dest = outpost.destinations.create(
            tenant_id="acme",
            body={"type": "webhook", "topics": ["user.created"], "config": {"url": RECEIVER_URL}},
        )
        res = outpost.publish(
            request={
                "data": {"user_id": "userid", "status": "active"},
                "id": "evt_custom_123",
                "tenant_id": "acme",
                "topic": "user.created",
                "metadata": {"source": "crm"},
            }
        )
        assert res.id == "evt_custom_123"
        assert res.duplicate is False
        assert res.destination_ids == [dest.id]

        secret = outpost.destinations.get(tenant_id="acme", destination_id=dest.id).credentials
        assert secret is not None

    generated = secret.secret
    assert generated is not None
    assert re.fullmatch(r"whsec_[0-9a-f]{64}", generated), generated

    [req] = receiver.wait_for(1, path=path)
    assert req.method == "POST"
    assert req.body == b'{"user_id":"userid","status":"active"}'
    assert req.json() == {"user_id": "userid", "status": "active"}
    assert (req.header("content-type") or "").startswith("application/json")
    assert req.header("x-outpost-event-id") == "evt_custom_123"
    assert req.header("x-outpost-topic") == "user.created"
    assert req.header("x-outpost-source") == "crm"
    stamp = req.header("x-outpost-timestamp")
    assert stamp is not None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp), stamp  # UTC, seconds
    sent_at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - sent_at) < timedelta(minutes=2)
    assert (req.header("user-agent") or "").startswith("Outpost/")
    assert (req.header("x-outpost-signature") or "").startswith("v0=")
    assert req.signature_valid_for(generated)
    assert not req.signature_valid_for("whsec_" + "0" * 64)

    # exactly one delivery (bounded observation window: 0.75 s)
    receiver.assert_quiet(path, expected=1, window=0.75)


def test_request_without_credentials_gets_typed_401(server: ServerProcess) -> None:
    """What a reader who copies `models.Security(admin_api_key=...)` would effectively send:
    a request without credentials. The server must refuse it with a typed 401."""
    with (
        Outpost(server_url=server.base_url) as anonymous,
        pytest.raises(errors.OutpostError) as info,
    ):
        anonymous.tenants.upsert(tenant_id="acme-anon")
    assert info.value.status_code == 401
    assert not isinstance(info.value, errors.APIError), info.value
