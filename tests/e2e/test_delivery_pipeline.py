"""Publish → match → deliver → log, seen from the outside (contract.md §2, §3, §4, §10.3 Delivery
pipeline)."""

from __future__ import annotations

import json

import httpx
import pytest
from outpost_sdk import Outpost
from support.api import (
    TEST_SECRET,
    create_webhook,
    list_attempts,
    publish,
    unique_id,
    wait_attempts,
    wait_event,
)
from support.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

QUIET = 0.75
"""Bounded observation window (seconds) for "nothing (more) arrives" checks."""


def test_wildcard_destination_gets_signed_delivery_and_attempt_is_logged(
    admin: Outpost, api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    path = receiver.new_path("wildcard")
    url = receiver.configure(path, secret=TEST_SECRET)
    dest = create_webhook(admin, tenant_id, url, topics="*", secret=TEST_SECRET)

    data = {"user_id": "u_1", "email": "u1@example.com", "n": 3}
    res = publish(admin, tenant_id, data, topic="user.created")
    assert res.duplicate is False
    assert res.destination_ids == [dest.id]

    [req] = receiver.wait_for(1, path=path)
    assert req.json() == data
    assert req.header("x-outpost-event-id") == res.id
    assert req.header("x-outpost-topic") == "user.created"
    assert req.verified is True

    [attempt] = wait_attempts(api, 1, tenant_id=tenant_id)
    assert attempt["id"]
    assert attempt["destination_id"] == dest.id
    assert attempt["event_id"] == res.id
    assert attempt["status"] == "success"
    assert attempt["code"] == "200"
    assert attempt["attempt_number"] == 1
    assert attempt["manual"] is False


def test_filter_selects_events_by_data(admin: Outpost, receiver: Receiver, tenant_id: str) -> None:
    path = receiver.new_path("filter")
    url = receiver.configure(path)
    dest = create_webhook(
        admin, tenant_id, url, topics="*", filter={"data": {"amount": {"$gte": 100}}}
    )

    results = {
        amount: publish(admin, tenant_id, {"amount": amount}, topic="user.created")
        for amount in (150, 50, 200)
    }
    assert results[150].destination_ids == [dest.id]
    assert results[50].destination_ids == []
    assert results[200].destination_ids == [dest.id]

    receiver.wait_for(2, path=path)
    got = receiver.assert_quiet(path, expected=2, window=QUIET)
    assert sorted(r.json()["amount"] for r in got) == [150, 200]


def test_disabled_destination_receives_nothing(
    admin: Outpost, receiver: Receiver, tenant_id: str
) -> None:
    path = receiver.new_path("disabled")
    url = receiver.configure(path)
    dest = create_webhook(admin, tenant_id, url)
    disabled = admin.destinations.disable(tenant_id=tenant_id, destination_id=dest.id)
    assert disabled.disabled_at is not None

    res = publish(admin, tenant_id, {"x": 1})
    assert res.destination_ids == []
    receiver.assert_quiet(path, expected=0, window=QUIET)


def test_two_wildcard_destinations_both_receive_the_event(
    admin: Outpost, receiver: Receiver, tenant_id: str
) -> None:
    path_a, path_b = receiver.new_path("both-a"), receiver.new_path("both-b")
    dest_a = create_webhook(admin, tenant_id, receiver.configure(path_a))
    dest_b = create_webhook(admin, tenant_id, receiver.configure(path_b))

    res = publish(admin, tenant_id, {"fan": "out"})
    assert sorted(res.destination_ids) == sorted([dest_a.id, dest_b.id])

    [req_a] = receiver.wait_for(1, path=path_a)
    [req_b] = receiver.wait_for(1, path=path_b)
    assert req_a.event_id == req_b.event_id == res.id
    assert req_a.body == req_b.body == b'{"fan":"out"}'


def test_same_event_id_twice_is_a_duplicate_and_delivered_once(
    admin: Outpost, receiver: Receiver, tenant_id: str
) -> None:
    path = receiver.new_path("dup")
    dest = create_webhook(admin, tenant_id, receiver.configure(path))
    event_id = unique_id("evt-dup")

    first = publish(admin, tenant_id, {"try": 1}, id=event_id)
    second = publish(admin, tenant_id, {"try": 2}, id=event_id)
    assert (first.id, first.duplicate, first.destination_ids) == (event_id, False, [dest.id])
    assert (second.id, second.duplicate) == (event_id, True)

    receiver.wait_for(1, path=path)
    [req] = receiver.assert_quiet(path, expected=1, window=QUIET)
    assert req.json() == {"try": 1}


def test_topic_routing(admin: Outpost, receiver: Receiver, tenant_id: str) -> None:
    path_created, path_deleted = receiver.new_path("created"), receiver.new_path("deleted")
    dest_created = create_webhook(
        admin, tenant_id, receiver.configure(path_created), topics=["user.created"]
    )
    dest_deleted = create_webhook(
        admin, tenant_id, receiver.configure(path_deleted), topics=["user.deleted"]
    )

    created = publish(admin, tenant_id, {"kind": "created"}, topic="user.created")
    deleted = publish(admin, tenant_id, {"kind": "deleted"}, topic="user.deleted")
    updated = publish(admin, tenant_id, {"kind": "updated"}, topic="user.updated")
    assert created.destination_ids == [dest_created.id]
    assert deleted.destination_ids == [dest_deleted.id]
    assert updated.destination_ids == []

    [req_c] = receiver.wait_for(1, path=path_created)
    [req_d] = receiver.wait_for(1, path=path_deleted)
    assert req_c.header("x-outpost-topic") == "user.created"
    assert req_d.header("x-outpost-topic") == "user.deleted"
    receiver.assert_quiet(path_created, expected=1, window=QUIET)
    receiver.assert_quiet(path_deleted, expected=1, window=0.1)


def test_disable_then_enable(admin: Outpost, receiver: Receiver, tenant_id: str) -> None:
    path = receiver.new_path("toggle")
    dest = create_webhook(admin, tenant_id, receiver.configure(path))

    admin.destinations.disable(tenant_id=tenant_id, destination_id=dest.id)
    while_disabled = publish(admin, tenant_id, {"phase": "disabled"})
    assert while_disabled.destination_ids == []
    receiver.assert_quiet(path, expected=0, window=QUIET)

    enabled = admin.destinations.enable(tenant_id=tenant_id, destination_id=dest.id)
    assert enabled.disabled_at is None
    after = publish(admin, tenant_id, {"phase": "enabled"})
    assert after.destination_ids == [dest.id]

    receiver.wait_for(1, path=path)
    [req] = receiver.assert_quiet(path, expected=1, window=QUIET)
    assert req.json() == {"phase": "enabled"}
    assert req.event_id == after.id


ORDERED = b'{"zebra":1,"alpha":2,"mango":3}'


def test_payload_key_order_is_preserved_everywhere(
    admin: Outpost, api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    path = receiver.new_path("order")
    dest = create_webhook(admin, tenant_id, receiver.configure(path))
    event_id = unique_id("evt-order")

    # raw HTTP so that no client library re-orders the keys on the way in
    raw = (
        b'{"tenant_id":' + json.dumps(tenant_id).encode() + b","
        b'"id":' + json.dumps(event_id).encode() + b","
        b'"topic":"user.created",'
        b'"data":' + ORDERED + b"}"
    )
    res = api.post("/publish", content=raw, headers={"Content-Type": "application/json"})
    assert res.status_code == 202, res.text
    assert res.json()["destination_ids"] == [dest.id]

    # 1. the delivered body, byte for byte
    [first] = receiver.wait_for(1, path=path)
    assert first.body == ORDERED

    # 2. the raw GET /events/{id} response text
    event_res = wait_event(api, event_id)
    assert b'"data":' + ORDERED in event_res.content, event_res.text

    # 3. a manual retry delivers the same bytes
    wait_attempts(api, 1, tenant_id=tenant_id, event_id=event_id)
    retry = api.post("/retry", json={"event_id": event_id, "destination_id": dest.id})
    assert retry.status_code == 202, retry.text
    [_, second] = receiver.wait_for(2, path=path)
    assert second.body == ORDERED
    assert second.event_id == event_id

    attempts = wait_attempts(api, 2, tenant_id=tenant_id, event_id=event_id, dir="asc")
    assert [(a["attempt_number"], a["manual"]) for a in attempts] == [(1, False), (2, True)]


def test_deleted_destination_gets_nothing_more(
    admin: Outpost, api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    path = receiver.new_path("deleted-dest")
    dest = create_webhook(admin, tenant_id, receiver.configure(path))
    admin.destinations.delete(tenant_id=tenant_id, destination_id=dest.id)

    res = publish(admin, tenant_id, {"after": "delete"})
    assert res.destination_ids == []
    receiver.assert_quiet(path, expected=0, window=QUIET)
    assert list_attempts(api, tenant_id=tenant_id) == []
