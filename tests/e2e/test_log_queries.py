"""Event and attempt log queries (contract.md §1.4, §1.6.16, §10.3 Log queries).

One tenant gets 10 events published with explicit `time` values one second apart, an hour in the
past, all delivered successfully to one wildcard destination. The tests then query the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import quote

import httpx
import pytest
from outpost_sdk import Outpost
from support.api import create_webhook, get_webhook, publish, unique_id, wait_attempts
from support.receiver import Receiver
from support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

N_EVENTS = 10


@dataclass(frozen=True)
class Seeded:
    tenant_id: str
    destination_id: str
    event_ids: list[str]
    """In event-time order, oldest first."""
    times: list[datetime]
    data: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def seeded(admin: Outpost, api: httpx.Client, receiver: Receiver) -> Seeded:
    tenant = unique_id("logq")
    admin.tenants.upsert(tenant_id=tenant)
    path = receiver.new_path("logq")
    dest = create_webhook(admin, tenant, receiver.configure(path, body="ok"))

    base = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    ids: list[str] = []
    times: list[datetime] = []
    data: dict[str, dict[str, Any]] = {}
    for i in range(N_EVENTS):
        when = base + timedelta(seconds=i)
        payload = {"index": i, "name": f"event-{i}"}
        res = publish(admin, tenant, payload, topic="user.created", time=when)
        assert res.destination_ids == [dest.id]
        ids.append(res.id)
        times.append(when)
        data[res.id] = payload

    receiver.wait_for(N_EVENTS, path=path, timeout=20)
    wait_attempts(api, N_EVENTS, tenant_id=tenant, timeout=20)
    return Seeded(tenant, dest.id, ids, times, data)


def _get(api: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    res = api.get(path, params=params)
    assert res.status_code == 200, f"GET {path} {params} -> {res.status_code} {res.text}"
    body: dict[str, Any] = res.json()
    return body


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


# attempts -------------------------------------------------------------------------------------


def test_attempts_list_and_filters(admin: Outpost, seeded: Seeded) -> None:
    rows = admin.attempts.list(request={"tenant_id": seeded.tenant_id}).models or []
    assert len(rows) == N_EVENTS
    first = rows[0]
    assert first.id and first.event_id and first.destination_id and first.time
    assert first.tenant_id == seeded.tenant_id
    assert first.status is not None and first.status.value == "success"
    assert first.attempt_number == 1

    by_dest = admin.attempts.list(
        request={"tenant_id": seeded.tenant_id, "destination_id": seeded.destination_id}
    )
    assert len(by_dest.models or []) == N_EVENTS

    by_event = admin.attempts.list(
        request={"tenant_id": seeded.tenant_id, "event_id": seeded.event_ids[4]}
    )
    assert [a.event_id for a in by_event.models or []] == [seeded.event_ids[4]]

    via_destination = admin.destinations.list_attempts(
        request={"tenant_id": seeded.tenant_id, "destination_id": seeded.destination_id}
    )
    assert len(via_destination.models or []) == N_EVENTS


def test_attempts_include_event_without_data(api: httpx.Client, seeded: Seeded) -> None:
    body = _get(api, "/attempts", tenant_id=seeded.tenant_id, include="event", limit=1)
    [attempt] = body["models"]
    event = attempt["event"]
    assert event["id"] in seeded.event_ids
    assert event["topic"] == "user.created"
    assert event["time"]
    assert "data" not in event


def test_attempts_include_event_data(api: httpx.Client, seeded: Seeded) -> None:
    body = _get(api, "/attempts", tenant_id=seeded.tenant_id, include="event.data", limit=1)
    [attempt] = body["models"]
    assert attempt["event"]["data"] == seeded.data[attempt["event"]["id"]]


def test_attempts_include_response_data(api: httpx.Client, seeded: Seeded) -> None:
    body = _get(api, "/attempts", tenant_id=seeded.tenant_id, include="response_data", limit=1)
    [attempt] = body["models"]
    assert attempt["response_data"] == {"status": 200, "body": "ok"}

    plain = _get(api, "/attempts", tenant_id=seeded.tenant_id, limit=1)
    assert "response_data" not in plain["models"][0]
    assert "event" not in plain["models"][0]


def test_attempts_include_destination_without_its_secret(
    admin: Outpost, api: httpx.Client, server: ServerProcess, seeded: Seeded
) -> None:
    """Secrets show only on the destination routes: an attempt's embedded destination has the
    credential keys (the TypeScript SDK 1.6.0 requires them) with masked values, for the admin
    and for the tenant, on all three attempt routes; the Python SDK reads it."""
    tenant, dest_id = seeded.tenant_id, seeded.destination_id
    secret = get_webhook(admin, tenant, dest_id).credentials.secret
    assert secret and len(secret) > 8
    [attempt_id] = [a["id"] for a in _get(api, "/attempts", tenant_id=tenant, limit=1)["models"]]
    token = admin.tenants.get_token(tenant_id=tenant).token
    routes = [
        ("/attempts", {"tenant_id": tenant}),
        (f"/tenants/{tenant}/destinations/{dest_id}/attempts", {}),
        (f"/attempts/{attempt_id}", {}),
        (f"/tenants/{tenant}/destinations/{dest_id}/attempts/{attempt_id}", {}),
    ]
    for auth in (f"Bearer {server.api_key}", f"Bearer {token}"):
        for path, params in routes:
            res = api.get(
                path, params={**params, "include": "destination"}, headers={"Authorization": auth}
            )
            assert res.status_code == 200, res.text
            assert secret not in res.text
            body = res.json()
            embedded = (body["models"][0] if "models" in body else body)["destination"]
            assert embedded["id"] == dest_id
            assert embedded["credentials"] == {"secret": "********"}
    listed = admin.attempts.list(
        request=cast(Any, {"tenant_id": tenant, "include": ["destination"]})
    )
    assert listed.models and listed.models[0].destination is not None
    assert listed.models[0].destination.id == dest_id


# events ---------------------------------------------------------------------------------------


def test_events_list_get_and_filters(admin: Outpost, api: httpx.Client, seeded: Seeded) -> None:
    body = _get(api, "/events", tenant_id=seeded.tenant_id)
    assert len(body["models"]) == N_EVENTS
    for event in body["models"]:
        assert event["id"] in seeded.event_ids
        assert event["topic"] == "user.created"
        assert event["time"].endswith("Z"), event["time"]
        assert event["data"] == seeded.data[event["id"]]
        assert event["matched_destination_ids"] == [seeded.destination_id]

    by_topic = admin.events.list(request={"tenant_id": seeded.tenant_id, "topic": "user.created"})
    assert len(by_topic.models or []) == N_EVENTS
    other_topic = admin.events.list(
        request={"tenant_id": seeded.tenant_id, "topic": "user.deleted"}
    )
    assert not other_topic.models

    one = admin.events.get(event_id=seeded.event_ids[2])
    assert one.id == seeded.event_ids[2]
    assert one.topic == "user.created"
    assert one.data == seeded.data[seeded.event_ids[2]]
    assert one.time is not None
    got_time = one.time if one.time.tzinfo else one.time.replace(tzinfo=UTC)
    assert got_time == seeded.times[2]

    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = _get(api, "/events", tenant_id=seeded.tenant_id, **{"time[gte]": future})
    assert later["models"] == []


def test_events_sort_direction(api: httpx.Client, seeded: Seeded) -> None:
    desc = _get(api, "/events", tenant_id=seeded.tenant_id, dir="desc")
    asc = _get(api, "/events", tenant_id=seeded.tenant_id, dir="asc")
    assert [e["id"] for e in desc["models"]] == list(reversed(seeded.event_ids))
    assert [e["id"] for e in asc["models"]] == seeded.event_ids
    default = _get(api, "/events", tenant_id=seeded.tenant_id)
    assert [e["id"] for e in default["models"]] == list(reversed(seeded.event_ids))
    assert desc["pagination"]["dir"] == "desc"
    assert asc["pagination"]["order_by"] == "time"


def test_events_cursor_paging(admin: Outpost, api: httpx.Client, seeded: Seeded) -> None:
    pages: list[dict[str, Any]] = []
    params: dict[str, Any] = {"tenant_id": seeded.tenant_id, "limit": 3, "dir": "asc"}
    body = _get(api, "/events", **params)
    pages.append(body)
    assert body["pagination"]["prev"] is None
    while body["pagination"]["next"]:
        body = _get(api, "/events", **params, next=body["pagination"]["next"])
        pages.append(body)
        assert len(pages) <= 10, "paging does not terminate"
    assert [len(p["models"]) for p in pages] == [3, 3, 3, 1]
    ids = [e["id"] for p in pages for e in p["models"]]
    assert ids == seeded.event_ids

    # and back again from the last page
    back = _get(api, "/events", **params, prev=pages[-1]["pagination"]["prev"])
    assert [e["id"] for e in back["models"]] == seeded.event_ids[6:9]

    # the SDK's renamed cursor argument reaches the same page
    sdk_page = admin.events.list(
        request=cast(
            Any,
            {
                "tenant_id": seeded.tenant_id,
                "limit": 3,
                "direction": "asc",
                "next_cursor": pages[0]["pagination"]["next"],
            },
        )
    )
    assert [e.id for e in sdk_page.models or []] == seeded.event_ids[3:6]


def test_events_time_window_with_server_formatted_times(api: httpx.Client, seeded: Seeded) -> None:
    listed = _get(api, "/events", tenant_id=seeded.tenant_id, dir="asc")["models"]
    start, end = listed[2]["time"], listed[6]["time"]
    assert start.endswith("Z") and end.endswith("Z")

    # the server-formatted strings are pasted into the URL unencoded, as a user would
    url = f"/events?tenant_id={seeded.tenant_id}&dir=asc&limit=2&time[gte]={start}&time[lte]={end}"
    seen: list[dict[str, Any]] = []
    pages = 0
    next_url = url
    while True:
        res = api.get(next_url)
        assert res.status_code == 200, res.text
        body = res.json()
        pages += 1
        seen.extend(body["models"])
        cursor = body["pagination"]["next"]
        if not cursor or pages > 10:
            break
        next_url = f"{url}&next={quote(cursor, safe='')}"
    assert pages > 1
    assert 0 < len(seen) < N_EVENTS
    assert [e["id"] for e in seen] == seeded.event_ids[2:7]
    for event in seen:
        assert _parse(start) <= _parse(event["time"]) <= _parse(end)
