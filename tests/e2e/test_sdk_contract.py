"""The SDK contract (contract.md §10.1) through the official Python client, plus auth and error
bodies.

Only the parts that need no internet: tenants, topics, webhook destinations (CRUD, validation,
404s, type filter, PATCH, the Python merge-patch matrix), tenant JWTs, error bodies.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest
from outpost_sdk import Outpost, errors, models
from support.api import (
    as_webhook,
    create_webhook,
    is_json_error,
    publish,
    unique_id,
    update_webhook,
)
from support.receiver import Receiver
from support.server import ServerProcess
from support.waiting import poll_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

TOPICS = ["user.created", "user.updated", "user.deleted", "order.created", "heartbeat"]
SERVER_ENV = {"TOPICS": ",".join(TOPICS)}


webhook = as_webhook
update = update_webhook


def as_map(value: Any) -> dict[str, Any]:
    """A cleared map may come back absent (UNSET), null or {}: all read as {}."""
    return dict(value) if value else {}


def assert_typed(exc: errors.OutpostError, status: int) -> None:
    assert exc.status_code == status, exc
    assert not isinstance(exc, errors.APIError), f"untyped SDK error: {exc}"


# tenants --------------------------------------------------------------------------------------


def test_tenant_lifecycle(admin: Outpost, api: httpx.Client) -> None:
    tid = unique_id("tenant-life")
    first = api.put(f"/tenants/{tid}")
    assert first.status_code == 201, first.text
    again = api.put(f"/tenants/{tid}", json={"metadata": {"name": "Acme"}})
    assert again.status_code == 200, again.text

    tenant = admin.tenants.upsert(tenant_id=tid, body={"metadata": {"name": "Acme", "tier": "b"}})
    assert tenant.id == tid
    assert tenant.destinations_count == 0
    assert tenant.topics == []
    assert tenant.metadata == {"name": "Acme", "tier": "b"}
    assert tenant.created_at is not None and tenant.updated_at is not None

    got = admin.tenants.get(tenant_id=tid)
    assert got.id == tid
    assert got.metadata == {"name": "Acme", "tier": "b"}

    page = admin.tenants.list(request={"limit": 5})
    assert isinstance(page.models, list)
    assert 0 < len(page.models) <= 5
    assert all(isinstance(t, models.Tenant) for t in page.models)
    mine = admin.tenants.list(request={"id": [tid]})
    assert [t.id for t in mine.models or []] == [tid]
    assert mine.count == 1

    deleted = admin.tenants.delete(tenant_id=tid)
    assert deleted.success is True
    with pytest.raises(errors.NotFoundError) as info:
        admin.tenants.get(tenant_id=tid)
    assert_typed(info.value, 404)

    reborn = api.put(f"/tenants/{tid}")
    assert reborn.status_code == 201
    assert reborn.json()["destinations_count"] == 0


def test_tenant_reflects_destinations(admin: Outpost, receiver: Receiver, tenant_id: str) -> None:
    url = receiver.url(receiver.new_path("tenant-topics"))
    create_webhook(admin, tenant_id, url, topics=["user.updated", "order.created"])
    create_webhook(admin, tenant_id, url, topics=["user.created"])
    tenant = admin.tenants.get(tenant_id=tenant_id)
    assert tenant.destinations_count == 2
    assert tenant.topics == ["order.created", "user.created", "user.updated"]

    create_webhook(admin, tenant_id, url, topics="*")
    assert admin.tenants.get(tenant_id=tenant_id).topics == ["*"]


def test_topics_list(admin: Outpost) -> None:
    topics = admin.topics.list()
    assert topics == TOPICS


# webhook destinations -------------------------------------------------------------------------


def test_create_webhook_destination(admin: Outpost, receiver: Receiver, tenant_id: str) -> None:
    url = receiver.url(receiver.new_path("crud-create"))
    dest = webhook(create_webhook(admin, tenant_id, url, topics=["user.created"]))
    assert dest.id
    assert dest.type.value == "webhook"
    assert dest.config.url == url
    assert dest.topics == ["user.created"]
    assert dest.disabled_at is None
    assert dest.target == url
    assert dest.credentials.secret is not None
    assert re.fullmatch(r"whsec_[0-9a-f]{64}", dest.credentials.secret)

    two = webhook(create_webhook(admin, tenant_id, url, topics=["user.created", "user.updated"]))
    assert two.topics == ["user.created", "user.updated"]


def test_create_with_user_provided_id(admin: Outpost, receiver: Receiver, tenant_id: str) -> None:
    url = receiver.url(receiver.new_path("crud-id"))
    custom = unique_id("des_custom")
    dest = create_webhook(admin, tenant_id, url, id=custom)
    assert dest.id == custom
    assert admin.destinations.get(tenant_id=tenant_id, destination_id=custom).id == custom

    with pytest.raises(errors.BadRequestError) as info:
        create_webhook(admin, tenant_id, url, id=custom)
    assert_typed(info.value, 400)
    assert info.value.data.message == "destination already exists"


def test_create_rejects_missing_url(api: httpx.Client, admin: Outpost, tenant_id: str) -> None:
    res = api.post(
        f"/tenants/{tenant_id}/destinations",
        json={"type": "webhook", "topics": ["user.created"], "config": {}},
    )
    assert is_json_error(res, 422), res.text
    assert "config.url is required" in res.json()["data"]
    # the SDK refuses it before sending
    with pytest.raises((ValueError, errors.OutpostError)):  # pydantic error, client-side
        create_webhook(admin, tenant_id, "", config={})


def test_create_rejects_missing_type(api: httpx.Client, tenant_id: str) -> None:
    res = api.post(
        f"/tenants/{tenant_id}/destinations",
        json={"topics": ["user.created"], "config": {"url": "http://127.0.0.1:9/x"}},
    )
    assert is_json_error(res, 422), res.text
    assert "type is required" in res.json()["data"]


def test_create_rejects_empty_topics(admin: Outpost, receiver: Receiver, tenant_id: str) -> None:
    url = receiver.url(receiver.new_path("crud-empty"))
    with pytest.raises(errors.OutpostError) as info:
        create_webhook(admin, tenant_id, url, topics=[])
    assert_typed(info.value, 422)
    assert admin.destinations.list(tenant_id=tenant_id) == []


def test_get_and_404s(admin: Outpost, receiver: Receiver, tenant_id: str) -> None:
    url = receiver.url(receiver.new_path("crud-get"))
    dest = create_webhook(admin, tenant_id, url)
    got = webhook(admin.destinations.get(tenant_id=tenant_id, destination_id=dest.id))
    assert got.id == dest.id and got.config.url == url

    missing = unique_id("missing")
    with pytest.raises(errors.NotFoundError) as info:
        admin.destinations.get(tenant_id=tenant_id, destination_id=missing)
    assert_typed(info.value, 404)
    with pytest.raises(errors.NotFoundError):
        update(admin, tenant_id, missing, {"topics": ["user.created"]})
    with pytest.raises(errors.NotFoundError):
        admin.destinations.delete(tenant_id=tenant_id, destination_id=missing)
    with pytest.raises(errors.OutpostError) as spaces_info:
        admin.destinations.get(tenant_id=tenant_id, destination_id="invalid id with spaces")
    assert spaces_info.value.status_code in (400, 404)
    with pytest.raises(errors.NotFoundError) as tenant_info:
        admin.destinations.list(tenant_id=unique_id("no-such-tenant"))
    assert_typed(tenant_info.value, 404)


def test_list_and_filter_by_type(admin: Outpost, receiver: Receiver, tenant_id: str) -> None:
    url = receiver.url(receiver.new_path("crud-list"))
    a = create_webhook(admin, tenant_id, url, topics=["user.created"])
    b = create_webhook(admin, tenant_id, url, topics=["user.updated"])
    listed = admin.destinations.list(tenant_id=tenant_id)
    assert sorted(d.id for d in listed) == sorted([a.id, b.id])
    stamps = [d.created_at for d in listed]
    assert stamps == sorted(stamps)  # created_at ascending
    webhooks = admin.destinations.list(tenant_id=tenant_id, type_=cast(Any, "webhook"))
    assert sorted(d.id for d in webhooks) == sorted([a.id, b.id])
    assert admin.destinations.list(tenant_id=tenant_id, type_=cast(Any, "aws_sqs")) == []


def test_patch_topics_and_url(admin: Outpost, receiver: Receiver, tenant_id: str) -> None:
    old_path, new_path = receiver.new_path("patch-old"), receiver.new_path("patch-new")
    dest = create_webhook(admin, tenant_id, receiver.configure(old_path), topics=["user.deleted"])

    patched = webhook(
        update(admin, tenant_id, dest.id, {"topics": ["user.created", "user.updated"]})
    )
    assert patched.topics == ["user.created", "user.updated"]
    moved = webhook(update(admin, tenant_id, dest.id, {"config": {"url": receiver.url(new_path)}}))
    assert moved.config.url == receiver.url(new_path)
    assert moved.topics == ["user.created", "user.updated"]
    again = webhook(admin.destinations.get(tenant_id=tenant_id, destination_id=dest.id))
    assert again.config.url == receiver.url(new_path)
    assert again.topics == ["user.created", "user.updated"]

    publish(admin, tenant_id, {"after": "patch"}, topic="user.updated")
    [req] = receiver.wait_for(1, path=new_path)
    assert req.json() == {"after": "patch"}
    assert receiver.requests_for(old_path) == []


def test_delete_destination(admin: Outpost, receiver: Receiver, tenant_id: str) -> None:
    dest = create_webhook(admin, tenant_id, receiver.url(receiver.new_path("crud-del")))
    assert admin.destinations.delete(tenant_id=tenant_id, destination_id=dest.id).success is True
    with pytest.raises(errors.NotFoundError):
        admin.destinations.get(tenant_id=tenant_id, destination_id=dest.id)
    with pytest.raises(errors.NotFoundError):
        admin.destinations.delete(tenant_id=tenant_id, destination_id=dest.id)
    assert admin.destinations.list(tenant_id=tenant_id) == []


# events and attempts through the SDK (spec-sdk-tests events.test.ts, with a local receiver) ---


def test_events_and_attempts_via_sdk(admin: Outpost, receiver: Receiver, tenant_id: str) -> None:
    path = receiver.new_path("sdk-events")
    dest = create_webhook(admin, tenant_id, receiver.configure(path, body="thanks"), topics="*")
    payload = {"user_id": "u_42", "nested": {"list": [1, 2, 3], "flag": True}}
    res = publish(admin, tenant_id, payload, topic="user.created")

    listed = poll_until(
        lambda: admin.events.list(request={"tenant_id": tenant_id}).models,
        what="event listed",
    )
    assert [e.id for e in listed] == [res.id]
    assert listed[0].matched_destination_ids == [dest.id]
    got = admin.events.get(event_id=res.id)
    assert (got.id, got.tenant_id, got.topic, got.data) == (
        res.id,
        tenant_id,
        "user.created",
        payload,
    )
    assert got.eligible_for_retry is True

    attempts = poll_until(
        lambda: (
            admin.destinations.list_attempts(
                request=cast(
                    Any,
                    {
                        "tenant_id": tenant_id,
                        "destination_id": dest.id,
                        "event_id": res.id,
                        "include": ["event.data", "response_data"],
                    },
                )
            ).models
        ),
        what="attempt listed",
    )
    [attempt] = attempts
    assert attempt.status is not None and attempt.status.value == "success"
    assert attempt.response_data == {"status": 200, "body": "thanks"}
    assert isinstance(attempt.event, models.EventFull), attempt.event
    assert attempt.event.data == payload

    assert attempt.id is not None
    single = admin.attempts.get(attempt_id=attempt.id)
    assert (single.id, single.event_id, single.destination_id) == (attempt.id, res.id, dest.id)
    nested = admin.destinations.get_attempt(
        tenant_id=tenant_id, destination_id=dest.id, attempt_id=attempt.id
    )
    assert nested.id == attempt.id
    with pytest.raises(errors.NotFoundError):
        admin.attempts.get(attempt_id=unique_id("no-attempt"))


# merge-patch matrix ---------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["metadata", "delivery_metadata"])
def test_merge_patch_string_maps(
    admin: Outpost, receiver: Receiver, tenant_id: str, field: str
) -> None:
    url = receiver.url(receiver.new_path(f"merge-{field}"))
    extra: dict[str, Any] = {field: {"a": "1", "b": "2"}}
    dest = create_webhook(admin, tenant_id, url, **extra)
    assert as_map(getattr(dest, field)) == {"a": "1", "b": "2"}

    def patch(value: Any) -> dict[str, Any]:
        return as_map(getattr(update(admin, tenant_id, dest.id, {field: value}), field))

    def current() -> dict[str, Any]:
        return as_map(
            getattr(admin.destinations.get(tenant_id=tenant_id, destination_id=dest.id), field)
        )

    assert patch({"c": "3"}) == {"a": "1", "b": "2", "c": "3"}  # add
    assert patch({"a": "10"}) == {"a": "10", "b": "2", "c": "3"}  # update
    assert patch({"b": None}) == {"a": "10", "c": "3"}  # delete a key with null
    assert patch({}) == {"a": "10", "c": "3"}  # {} changes nothing
    omitted = update(admin, tenant_id, dest.id, {"topics": ["user.created"]})
    assert as_map(getattr(omitted, field)) == {"a": "10", "c": "3"}  # omitted changes nothing
    assert patch({"a": None, "c": "30", "d": "4"}) == {"c": "30", "d": "4"}  # mixed
    assert current() == {"c": "30", "d": "4"}
    assert patch(None) == {}  # null clears the whole map
    assert current() == {}


def test_delivery_metadata_becomes_headers(
    admin: Outpost, receiver: Receiver, tenant_id: str
) -> None:
    path = receiver.new_path("dm-headers")
    dest = create_webhook(
        admin, tenant_id, receiver.configure(path), delivery_metadata={"app": "shop", "env": "x"}
    )
    update(admin, tenant_id, dest.id, {"delivery_metadata": {"env": None, "region": "eu"}})
    publish(admin, tenant_id, {"dm": 1}, metadata={"app": "from-event"})
    [req] = receiver.wait_for(1, path=path)
    assert req.header("x-outpost-app") == "from-event"  # event metadata wins
    assert req.header("x-outpost-region") == "eu"
    assert req.header("x-outpost-env") is None


def test_filter_is_replaced_not_merged(admin: Outpost, receiver: Receiver, tenant_id: str) -> None:
    url = receiver.url(receiver.new_path("merge-filter"))
    first = {"data": {"amount": {"$gte": 100}}}
    dest = create_webhook(admin, tenant_id, url, filter=first)
    assert webhook(dest).filter_ == first

    def filter_of(obj: Any) -> dict[str, Any]:
        return as_map(webhook(obj).filter_)

    second = {"data": {"kind": "refund"}}
    assert filter_of(update(admin, tenant_id, dest.id, {"filter": second})) == second  # replaced
    omitted = update(admin, tenant_id, dest.id, {"topics": ["user.created"]})
    assert filter_of(omitted) == second  # unchanged when omitted
    assert filter_of(update(admin, tenant_id, dest.id, {"filter": {}})) == {}  # {} clears
    assert filter_of(update(admin, tenant_id, dest.id, {"filter": first})) == first
    assert filter_of(update(admin, tenant_id, dest.id, {"filter": None})) == {}  # null clears
    assert filter_of(admin.destinations.get(tenant_id=tenant_id, destination_id=dest.id)) == {}


# tenant JWT -----------------------------------------------------------------------------------


@pytest.fixture
def tenant_session(
    server: ServerProcess, admin: Outpost, tenant_id: str
) -> Iterator[tuple[Outpost, str]]:
    token = admin.tenants.get_token(tenant_id=tenant_id)
    assert token.tenant_id == tenant_id
    assert token.token and token.token.count(".") == 2
    with server.tenant_client(token.token) as client:
        yield client, token.token


def test_portal_url_for_admin(server: ServerProcess, admin: Outpost, tenant_id: str) -> None:
    portal = admin.tenants.get_portal_url(tenant_id=tenant_id)
    assert portal.tenant_id == tenant_id
    assert portal.redirect_url is not None
    assert portal.redirect_url.startswith(f"{server.root_url}?token=")
    token = portal.redirect_url.split("token=", 1)[1].split("&", 1)[0]
    with server.tenant_client(token) as client:
        assert client.tenants.get(tenant_id=tenant_id).id == tenant_id


def test_tenant_jwt_reads_its_own_tenant(
    tenant_session: tuple[Outpost, str], receiver: Receiver, tenant_id: str
) -> None:
    client, _ = tenant_session
    assert client.tenants.get(tenant_id=tenant_id).id == tenant_id
    listed = client.tenants.list(request={})
    assert [t.id for t in listed.models or []] == [tenant_id]
    assert listed.count == 1
    dest = create_webhook(client, tenant_id, receiver.url(receiver.new_path("jwt-own")))
    assert [d.id for d in client.destinations.list(tenant_id=tenant_id)] == [dest.id]


def test_tenant_jwt_is_refused_admin_operations(
    tenant_session: tuple[Outpost, str], admin: Outpost, tenant_id: str
) -> None:
    client, _ = tenant_session
    other = unique_id("other-tenant")
    admin.tenants.upsert(tenant_id=other)

    with pytest.raises(errors.OutpostError) as publish_info:
        publish(client, tenant_id, {"jwt": "publish"})
    assert_typed(publish_info.value, 403)

    with pytest.raises(errors.OutpostError) as token_info:
        client.tenants.get_token(tenant_id=tenant_id)
    assert_typed(token_info.value, 403)

    with pytest.raises(errors.OutpostError) as portal_info:
        client.tenants.get_portal_url(tenant_id=tenant_id)
    assert_typed(portal_info.value, 403)

    with pytest.raises(errors.OutpostError) as other_info:
        client.tenants.get(tenant_id=other)
    assert_typed(other_info.value, 403)

    with pytest.raises(errors.OutpostError) as other_dest_info:
        client.destinations.list(tenant_id=other)
    assert_typed(other_dest_info.value, 403)

    with pytest.raises(errors.OutpostError) as events_info:
        client.events.list(request={"tenant_id": other})
    assert_typed(events_info.value, 403)


def test_bad_or_stale_token_is_401(
    server: ServerProcess, tenant_session: tuple[Outpost, str], admin: Outpost, tenant_id: str
) -> None:
    _, token = tenant_session
    with (
        server.tenant_client(token[:-4] + "AAAA") as forged,
        pytest.raises(errors.OutpostError) as forged_info,
    ):
        forged.tenants.get(tenant_id=tenant_id)
    assert_typed(forged_info.value, 401)

    admin.tenants.delete(tenant_id=tenant_id)
    with server.tenant_client(token) as stale, pytest.raises(errors.OutpostError) as stale_info:
        stale.tenants.get(tenant_id=tenant_id)
    assert_typed(stale_info.value, 401)


# error bodies ---------------------------------------------------------------------------------


def test_error_bodies_are_json(server: ServerProcess, api: httpx.Client, tenant_id: str) -> None:
    with server.http(token=None) as anon:
        assert is_json_error(anon.get("/tenants"), 401)
    with server.http(token="not-a-valid-token") as bad:
        assert is_json_error(bad.get("/tenants"), 401)

    token = api.get(f"/tenants/{tenant_id}/token").json()["token"]
    with server.http(token=token) as jwt:
        res = jwt.post("/publish", json={"tenant_id": tenant_id, "data": {"a": 1}})
        assert is_json_error(res, 403), res.text

    missing_tenant = api.get(f"/tenants/{unique_id('ghost')}")
    assert is_json_error(missing_tenant, 404)
    assert missing_tenant.json()["message"] == "tenant not found"
    assert is_json_error(api.get(f"/tenants/{tenant_id}/destinations/{unique_id('ghost')}"), 404)
    no_route = api.get("/no-such-route")
    assert is_json_error(no_route, 404)
    assert no_route.json()["message"] == "not found"
    missing_event = api.get(f"/events/{unique_id('ghost')}")
    assert is_json_error(missing_event, 404)
    assert missing_event.json()["message"] == "event not found"

    broken = api.post(
        "/publish", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert is_json_error(broken, 422)
    assert broken.json()["message"] == "invalid JSON"
    not_object = api.post("/publish", json={"tenant_id": tenant_id, "data": [1, 2]})
    assert is_json_error(not_object, 422)
    assert not_object.json()["data"] == ["data must be a valid JSON object"]


def test_sdk_raises_typed_errors(server: ServerProcess, admin: Outpost, tenant_id: str) -> None:
    with pytest.raises(errors.NotFoundError) as not_found:
        admin.tenants.get(tenant_id=unique_id("ghost"))
    assert_typed(not_found.value, 404)
    assert not_found.value.data.message == "tenant not found"

    with pytest.raises(errors.BadRequestError) as bad_topic:
        publish(admin, tenant_id, {"a": 1}, topic="not.a.configured.topic")
    assert_typed(bad_topic.value, 422)
    body = bad_topic.value.raw_response.json()
    assert body == {"status": 422, "message": "validation error", "data": ["topic is invalid"]}

    with (
        server.tenant_client("wrong-key") as wrong,
        pytest.raises(errors.UnauthorizedError) as unauthorized,
    ):
        wrong.tenants.get(tenant_id=tenant_id)
    assert_typed(unauthorized.value, 401)
