"""The gcp_pubsub, hookdeck, cloudflare_queues and azure_servicebus types end to end: the
official SDK against a real `waypost serve`.

What each remote is here:
- gcp_pubsub: Google's Pub/Sub emulator on loopback (skipped when not installed), reached
  through `config.endpoint`; messages are read back from a subscription.
- hookdeck: the test receiver stands in for both api.hookdeck.com (token verification, left on)
  and hkdk.events (deliveries), through DESTINATIONS_HOOKDECK_API_URL / _EVENTS_URL.
- cloudflare_queues: the test receiver stands in for Cloudflare's API
  (DESTINATIONS_CLOUDFLARE_API_URL), answering with Cloudflare's JSON envelope.
- azure_servicebus: no Service Bus peer can run here (see tests/integration/test_destination_azure_
  servicebus.py), so only the API side and a real failing delivery (a refused connection on
  loopback) are exercised, not a successful one.
"""

from __future__ import annotations

import base64
import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest
from outpost_sdk import Outpost, errors, models
from support.api import publish, wait_attempts
from support.pubsub import PubSubEmulator, emulator_binary, running_emulator
from support.receiver import Receiver
from support.server import ServerProcess
from support.waiting import poll_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

HOOKDECK_EVENTS = "/hookdeck-events"
HOOKDECK_API = "/hookdeck-api"
CLOUDFLARE_API = "/cloudflare/client/v4"
ACCOUNT = "0123456789abcdef0123456789abcdef"
CF_OK = '{"success":true,"errors":[],"messages":[],"result":null}'
CF_DENIED = '{"success":false,"errors":[{"code":10000,"message":"Authentication error"}]}'
PROJECT = "e2e-project"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PubSubEmulator | None]:
    if emulator_binary() is None:
        yield None
        return
    with running_emulator(tmp_path_factory.mktemp("pubsub")) as running:
        yield running


@pytest.fixture
def pubsub(emulator: PubSubEmulator | None) -> PubSubEmulator:
    if emulator is None:
        pytest.skip("the Pub/Sub emulator (google-cloud-cli-pubsub-emulator) is not installed")
    return emulator


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[ServerProcess]:
    srv = ServerProcess(
        {
            "DESTINATIONS_HOOKDECK_EVENTS_URL": receiver.base_url + HOOKDECK_EVENTS,
            "DESTINATIONS_HOOKDECK_API_URL": receiver.base_url + HOOKDECK_API,
            "DESTINATIONS_HOOKDECK_VERIFY_TOKENS": "true",
            "DESTINATIONS_CLOUDFLARE_API_URL": receiver.base_url + CLOUDFLARE_API,
        },
        workdir=tmp_path_factory.mktemp("server"),
    )
    try:
        srv.start()
        yield srv
    finally:
        srv.close()


def create(admin: Outpost, tenant_id: str, body: dict[str, Any]) -> Any:
    return admin.destinations.create(tenant_id=tenant_id, body=cast(Any, body))


def update(admin: Outpost, tenant_id: str, destination_id: str, body: dict[str, Any]) -> Any:
    return admin.destinations.update(
        tenant_id=tenant_id, destination_id=destination_id, body=cast(Any, body)
    )


def assert_deleted(admin: Outpost, tenant_id: str, destination_id: str) -> None:
    admin.destinations.delete(tenant_id=tenant_id, destination_id=destination_id)
    with pytest.raises(errors.OutpostError) as gone:
        admin.destinations.get(tenant_id=tenant_id, destination_id=destination_id)
    assert gone.value.status_code == 404


def assert_failed_and_retried(
    api: httpx.Client, tenant_id: str, event_id: str, code: str
) -> list[dict[str, Any]]:
    attempts = wait_attempts(api, 2, tenant_id=tenant_id, event_id=event_id, dir="asc")
    assert [a["attempt_number"] for a in attempts[:2]] == [1, 2]  # the retry came
    assert {(a["status"], a["code"]) for a in attempts} == {("failed", code)}
    return attempts


def response_data(api: httpx.Client, attempt_id: str) -> Any:
    res = api.get(f"/attempts/{attempt_id}", params={"include": "response_data"})
    assert res.status_code == 200, res.text
    return res.json().get("response_data")


def hookdeck_token(source_id: str) -> str:
    return base64.b64encode(f"{source_id}:e2e-signing-part".encode()).decode()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- /destination-types -----------------------------------------------------------------------


def test_the_four_types_are_described(api: httpx.Client) -> None:
    res = api.get("/destination-types")
    assert res.status_code == 200
    described = {entry["type"]: entry for entry in res.json()}
    for type_ in ("gcp_pubsub", "hookdeck", "cloudflare_queues", "azure_servicebus"):
        assert described[type_]["icon"].startswith("<svg")
        assert described[type_]["instructions"]
    assert set(described["hookdeck"]["setup_link"]) == {"href", "cta"}
    assert "setup_link" not in described["gcp_pubsub"]


# -- gcp_pubsub -------------------------------------------------------------------------------


def test_gcp_pubsub_lifecycle_and_delivery(
    admin: Outpost, api: httpx.Client, tenant_id: str, pubsub: PubSubEmulator
) -> None:
    topic = f"e2e-{tenant_id}"[:200]
    subscription = pubsub.create_topic(PROJECT, topic)
    created = create(
        admin,
        tenant_id,
        {
            "type": "gcp_pubsub",
            "topics": "*",
            "config": {"project_id": PROJECT, "topic": "placeholder", "endpoint": pubsub.endpoint},
            "credentials": {"service_account_json": '{"type":"service_account"}'},
            "delivery_metadata": {"team": "billing"},
        },
    )
    assert isinstance(created, models.DestinationGCPPubSub)
    assert created.target == f"{PROJECT}/placeholder"
    assert created.credentials.service_account_json.startswith('{"ty')
    assert "*" in created.credentials.service_account_json

    updated = update(
        admin, tenant_id, created.id, {"type": "gcp_pubsub", "config": {"topic": topic}}
    )
    assert isinstance(updated, models.DestinationGCPPubSub)
    assert updated.config.topic == topic
    assert updated.target_url == (
        f"https://console.cloud.google.com/cloudpubsub/topic/detail/{topic}?project={PROJECT}"
    )
    listed = admin.destinations.list(tenant_id=tenant_id, type_=cast(Any, "gcp_pubsub"))
    assert [d.id for d in listed] == [created.id]

    sent = publish(admin, tenant_id, {"user": 7}, metadata={"region": "eu"})

    def pulled() -> Any:
        return pubsub.pull(subscription) or None

    [message] = poll_until(pulled, timeout=15, what="the Pub/Sub message")
    assert json.loads(message.data) == {"user": 7}
    assert message.attributes["event-id"] == sent.id
    assert message.attributes["topic"] == "user.created"
    assert (message.attributes["team"], message.attributes["region"]) == ("billing", "eu")
    [attempt] = wait_attempts(api, 1, tenant_id=tenant_id, event_id=sent.id)
    assert (attempt["status"], attempt["code"]) == ("success", "OK")
    assert response_data(api, attempt["id"]) == {
        "message_id": message.message_id,
        "topic": topic,
        "project": PROJECT,
    }

    assert_deleted(admin, tenant_id, created.id)


def test_gcp_pubsub_missing_topic_is_failed_and_retried(
    admin: Outpost, api: httpx.Client, tenant_id: str, pubsub: PubSubEmulator
) -> None:
    create(
        admin,
        tenant_id,
        {
            "type": "gcp_pubsub",
            "topics": "*",
            "config": {"project_id": PROJECT, "topic": "never-made", "endpoint": pubsub.endpoint},
            "credentials": {"service_account_json": "{}"},
        },
    )
    sent = publish(admin, tenant_id, {"fails": True})
    attempts = assert_failed_and_retried(api, tenant_id, sent.id, "ERR")
    assert response_data(api, attempts[0]["id"])["error"].startswith("NOT_FOUND")


def test_gcp_pubsub_rejects_a_key_that_is_not_json(api: httpx.Client, tenant_id: str) -> None:
    body = {
        "type": "gcp_pubsub",
        "topics": "*",
        "config": {"project_id": PROJECT, "topic": "t"},
        "credentials": {"service_account_json": "not-valid-json"},
    }
    res = api.post(f"/tenants/{tenant_id}/destinations", json=body)
    assert res.status_code == 422, res.text
    assert res.json()["data"] == ["credentials.service_account_json failed format validation"]


# -- hookdeck ---------------------------------------------------------------------------------


def test_hookdeck_verified_lifecycle_and_signed_delivery(
    admin: Outpost, api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    source = f"src_{tenant_id}".replace("-", "_")
    receiver.configure(
        f"{HOOKDECK_API}/2025-01-01/sources/{source}/managed/verify",
        body=json.dumps({"id": source, "name": "Orders source"}),
        content_type="application/json",
    )
    token = hookdeck_token(source)
    created = create(
        admin, tenant_id, {"type": "hookdeck", "topics": "*", "credentials": {"token": token}}
    )
    assert isinstance(created, models.DestinationHookdeck)
    assert created.config == {"source_name": "Orders source", "source_id": source}
    assert created.target == "Orders source"
    assert created.target_url == f"https://dashboard.hookdeck.com/sources/{source}"
    assert created.credentials.token == token[:4] + "*" * (len(token) - 4)
    fetched = admin.destinations.get(tenant_id=tenant_id, destination_id=created.id)
    assert isinstance(fetched, models.DestinationHookdeck)
    assert fetched.target == "Orders source"

    updated = update(
        admin, tenant_id, created.id, {"type": "hookdeck", "delivery_metadata": {"team": "ops"}}
    )
    assert isinstance(updated, models.DestinationHookdeck)
    assert updated.delivery_metadata == {"team": "ops"}

    sent = publish(admin, tenant_id, {"user": 8})
    [request] = receiver.wait_for(1, path=f"{HOOKDECK_EVENTS}/{source}", timeout=15)
    assert request.json() == {"user": 8}
    assert (request.header("x-hookdeck-signature") or "").startswith("v0=")
    assert request.header("x-outpost-event-id") == sent.id
    assert request.header("x-outpost-team") == "ops"
    [attempt] = wait_attempts(api, 1, tenant_id=tenant_id, event_id=sent.id)
    assert (attempt["status"], attempt["code"]) == ("success", "200")

    assert_deleted(admin, tenant_id, created.id)


def test_hookdeck_refused_token_is_422(
    api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    source = "src_refused"
    receiver.configure(
        f"{HOOKDECK_API}/2025-01-01/sources/{source}/managed/verify", status=401, body="{}"
    )
    body = {"type": "hookdeck", "topics": "*", "credentials": {"token": hookdeck_token(source)}}
    res = api.post(f"/tenants/{tenant_id}/destinations", json=body)
    assert res.status_code == 422, res.text
    assert res.json()["data"] == ["credentials.token failed token_verification_failed validation"]

    bad = {**body, "credentials": {"token": "not-a-token"}}
    res = api.post(f"/tenants/{tenant_id}/destinations", json=bad)
    assert res.json()["data"] == ["credentials.token failed invalid_token_format validation"]


def test_hookdeck_error_status_is_failed_and_retried(
    admin: Outpost, api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    source = f"src_{tenant_id}".replace("-", "_")
    receiver.configure(
        f"{HOOKDECK_API}/2025-01-01/sources/{source}/managed/verify",
        body=json.dumps({"id": source, "name": "Failing"}),
        content_type="application/json",
    )
    receiver.configure(f"{HOOKDECK_EVENTS}/{source}", status=503, body="paused")
    create(
        admin,
        tenant_id,
        {"type": "hookdeck", "topics": "*", "credentials": {"token": hookdeck_token(source)}},
    )
    sent = publish(admin, tenant_id, {"fails": True})
    attempts = assert_failed_and_retried(api, tenant_id, sent.id, "503")
    assert response_data(api, attempts[0]["id"]) == {"status_code": 503, "body": "paused"}


# -- cloudflare_queues ------------------------------------------------------------------------


def cloudflare_path(queue: str) -> str:
    return f"{CLOUDFLARE_API}/accounts/{ACCOUNT}/queues/{queue}/messages"


def test_cloudflare_queues_lifecycle_and_delivery(
    admin: Outpost, api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    queue = uuid.uuid4().hex
    receiver.configure(cloudflare_path(queue), body=CF_OK, content_type="application/json")
    created = create(
        admin,
        tenant_id,
        {
            "type": "cloudflare_queues",
            "topics": "*",
            "config": {"account_id": ACCOUNT, "queue_id": "0" * 32},
            "credentials": {"api_token": "cf-e2e-api-token"},
        },
    )
    assert isinstance(created, models.DestinationCloudflareQueues)
    assert created.credentials.api_token == "cf-e" + "*" * 12
    updated = update(
        admin,
        tenant_id,
        created.id,
        {"type": "cloudflare_queues", "config": {"queue_id": queue}},
    )
    assert isinstance(updated, models.DestinationCloudflareQueues)
    assert updated.target == queue
    assert updated.target_url == f"https://dash.cloudflare.com/{ACCOUNT}/queues/{queue}"
    listed = admin.destinations.list(tenant_id=tenant_id, type_=cast(Any, "cloudflare_queues"))
    assert [d.id for d in listed] == [created.id]

    sent = publish(admin, tenant_id, {"user": 9}, metadata={"region": "eu"})
    [request] = receiver.wait_for(1, path=cloudflare_path(queue), timeout=15)
    assert request.header("authorization") == "Bearer cf-e2e-api-token"
    message = request.json()
    assert message["body"]["data"] == {"user": 9}
    assert message["body"]["metadata"]["event-id"] == sent.id
    assert message["body"]["metadata"]["region"] == "eu"
    [attempt] = wait_attempts(api, 1, tenant_id=tenant_id, event_id=sent.id)
    assert (attempt["status"], attempt["code"]) == ("success", "OK")

    assert_deleted(admin, tenant_id, created.id)


def test_cloudflare_queues_api_error_is_failed_and_retried(
    admin: Outpost, api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    queue = "f" * 32
    receiver.configure(
        cloudflare_path(queue), status=403, body=CF_DENIED, content_type="application/json"
    )
    create(
        admin,
        tenant_id,
        {
            "type": "cloudflare_queues",
            "topics": "*",
            "config": {"account_id": ACCOUNT, "queue_id": queue},
            "credentials": {"api_token": "wrong-token"},
        },
    )
    sent = publish(admin, tenant_id, {"fails": True})
    attempts = assert_failed_and_retried(api, tenant_id, sent.id, "403")
    data = response_data(api, attempts[0]["id"])
    assert data["errors"] == [{"code": 10000, "message": "Authentication error"}]


# -- azure_servicebus -------------------------------------------------------------------------


def test_azure_servicebus_lifecycle_and_refused_delivery(
    admin: Outpost, api: httpx.Client, tenant_id: str
) -> None:
    port = closed_port()
    connection_string = (
        f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0;"
        "UseDevelopmentEmulator=true"
    )
    created = create(
        admin,
        tenant_id,
        {
            "type": "azure_servicebus",
            "topics": "*",
            "config": {"name": "orders"},
            "credentials": {"connection_string": connection_string},
        },
    )
    assert isinstance(created, models.DestinationAzureServiceBus)
    assert created.target == "127/orders"  # the namespace is the endpoint host's first label
    assert created.credentials.connection_string.startswith("Endp")
    assert "SharedAccessKey=" not in created.credentials.connection_string
    updated = update(
        admin, tenant_id, created.id, {"type": "azure_servicebus", "config": {"name": "billing"}}
    )
    assert isinstance(updated, models.DestinationAzureServiceBus)
    assert updated.config.name == "billing"
    listed = admin.destinations.list(tenant_id=tenant_id, type_=cast(Any, "azure_servicebus"))
    assert [d.id for d in listed] == [created.id]

    sent = publish(admin, tenant_id, {"fails": True})
    attempts = assert_failed_and_retried(api, tenant_id, sent.id, "ERR")
    error = response_data(api, attempts[0]["id"])["error"]
    assert "Failed to initiate the connection" in error

    assert_deleted(admin, tenant_id, created.id)


def test_azure_servicebus_validation(api: httpx.Client, tenant_id: str) -> None:
    body = {
        "type": "azure_servicebus",
        "topics": "*",
        "config": {"name": "-bad-"},
        "credentials": {"connection_string": "Endpoint=sb://ns.servicebus.windows.net/"},
    }
    res = api.post(f"/tenants/{tenant_id}/destinations", json=body)
    assert res.status_code == 422, res.text
    assert res.json()["data"] == ["config.name failed pattern validation"]
