"""The metrics API over HTTP (contract.md §1.6.17): parameters in every encoding, scoping, errors,
shapes.

Events come in through `POST /publish`. These apps run no delivery worker, so attempts are
recorded the way the worker records them: claim the queued task, `finish` it with an attempt.
The numbers themselves are checked against an independent count in
tests/contracts/test_metrics_store.py; here it is what a caller of the HTTP API sees.
"""

from __future__ import annotations

from typing import Any

import pytest

from waypost.core import timefmt
from waypost.core.models import Attempt, Outcome

from ._support import ADMIN, Api, assert_error, ok, unique

pytestmark = pytest.mark.anyio

DAY = "2026-01-01"
START, END = f"{DAY}T00:00:00Z", "2026-01-02T00:00:00Z"


def _at(hour: int, minute: int = 0) -> str:
    return f"{DAY}T{hour:02d}:{minute:02d}:00Z"


async def _world(api: Api) -> dict[str, Any]:
    """Tenant A with two destinations, three events and four attempts; tenant B with one each."""
    a, b = await api.tenant(unique("tenant-a")), await api.tenant(unique("tenant-b"))
    d1 = (await api.destination(a, id=unique("d1")))["id"]
    d2 = (await api.destination(a, id=unique("d2"), topics=["order.paid"]))["id"]
    db = (await api.destination(b, id=unique("db")))["id"]
    await api.publish(a, id=unique("e1"), topic="user.created", time=_at(1, 5))
    await api.publish(a, id=unique("e2"), topic="order.paid", time=_at(1, 40))
    await api.publish(a, id=unique("e3"), topic="user.created", time=_at(3))
    await api.publish(b, id=unique("eb"), topic="user.created", time=_at(1))
    # Attempt times follow what the test chooses (the worker would use the clock).
    outcomes = {
        (d1, "user.created", _at(1, 5)): [("success", "200", _at(1, 6))],
        (d1, "order.paid", _at(1, 40)): [("failed", "500", _at(1, 41))],
        (d2, "order.paid", _at(1, 40)): [("success", "200", _at(2, 1))],
        (d1, "user.created", _at(3)): [("failed", "503", _at(3, 1))],
        (db, "user.created", _at(1)): [("success", "200", _at(1, 2))],
    }
    await _deliver(api, outcomes)
    return {"a": a, "b": b, "d1": d1, "d2": d2}


async def _deliver(
    api: Api, outcomes: dict[tuple[str, str, str], list[tuple[str, str, str]]]
) -> None:
    backend = api.system.backend
    for _ in range(10):
        tasks = await backend.claim(100, 60_000)
        if not tasks:
            return
        finished = []
        for task in tasks:
            key = (task.destination_id, task.event.topic, timefmt.format_seconds(task.event.time))
            planned = outcomes.get(key, [])
            attempt = None
            if planned:
                status, code, at = planned[0]
                attempt = Attempt(
                    id=unique("atm"),
                    tenant_id=task.event.tenant_id,
                    event_id=task.event.id,
                    destination_id=task.destination_id,
                    destination_type="webhook",
                    topic=task.event.topic,
                    status="success" if status == "success" else "failed",
                    time=timefmt.parse(at),
                    attempt_number=task.attempt_number,
                    manual=task.manual,
                    code=code,
                )
            finished.append(Outcome(task, attempt))
        await backend.finish(finished)


async def test_event_counts_by_hour_and_topic_with_the_sdk_encoding(api: Api) -> None:
    w = await _world(api)
    body = await api.get(
        "/metrics/events",
        params=[
            ("time[start]", START),
            ("time[end]", "2026-01-01T04:00:00Z"),
            ("measures", "count"),
            ("measures", "rate"),
            ("granularity", "1h"),
            ("dimensions", "topic"),
            ("filters[tenant_id]", w["a"]),
        ],
    )
    counts = [
        (p["time_bucket"], p["dimensions"]["topic"], p["metrics"]["count"]) for p in body["data"]
    ]
    assert counts == [
        (_at(0), "order.paid", 0),
        (_at(0), "user.created", 0),
        (_at(1), "order.paid", 1),
        (_at(1), "user.created", 1),
        (_at(2), "order.paid", 0),
        (_at(2), "user.created", 0),
        (_at(3), "order.paid", 0),
        (_at(3), "user.created", 1),
    ]
    assert body["data"][2]["metrics"]["rate"] == pytest.approx(1 / 3600)
    assert body["metadata"] == {
        "granularity": "1h",
        "query_time_ms": body["metadata"]["query_time_ms"],
        "row_count": 8,
        "row_limit": 100000,
        "truncated": False,
    }
    assert isinstance(body["metadata"]["query_time_ms"], int)


@pytest.mark.parametrize(
    "encoding",
    [
        [("measures[0]", "count"), ("measures[1]", "error_rate"), ("dimensions[0]", "status")],
        [("measures[]", "count"), ("measures[]", "error_rate"), ("dimensions[]", "status")],
        [("measures", "count"), ("measures", "error_rate"), ("dimensions", "status")],
    ],
    ids=["indexed", "brackets", "repeated"],
)
async def test_attempt_metrics_in_every_array_encoding(
    api: Api, encoding: list[tuple[str, str]]
) -> None:
    w = await _world(api)
    body = await api.get(
        "/metrics/attempts",
        params=[
            ("time[start]", START),
            ("time[end]", END),
            *encoding,
            ("filters[tenant_id][0]", w["a"]),
            ("filters[destination_id][]", w["d1"]),
        ],
    )
    assert body["data"] == [
        {"dimensions": {"status": "failed"}, "metrics": {"count": 2, "error_rate": 1.0}},
        {"dimensions": {"status": "success"}, "metrics": {"count": 1, "error_rate": 0.0}},
    ]
    assert "granularity" not in body["metadata"]


async def test_manual_and_attempt_number_dimensions_are_strings(api: Api) -> None:
    """The OpenAPI document and the SDKs type dimension values as strings."""
    w = await _world(api)
    body = await api.get(
        "/metrics/attempts",
        params=[
            ("time[start]", START),
            ("time[end]", END),
            ("measures", "count"),
            ("measures", "first_attempt_count"),
            ("measures", "avg_attempt_number"),
            ("dimensions", "manual"),
            ("dimensions", "attempt_number"),
            ("filters[tenant_id]", w["a"]),
            ("filters[manual]", "false"),
        ],
    )
    assert body["data"] == [
        {
            "dimensions": {"manual": "false", "attempt_number": "1"},
            "metrics": {"count": 4, "first_attempt_count": 4, "avg_attempt_number": 1.0},
        }
    ]


async def test_a_tenant_token_sees_its_own_tenant_only(api: Api) -> None:
    w = await _world(api)
    token = await api.jwt(w["a"])
    query = [("time[start]", START), ("time[end]", END), ("measures", "count")]
    own = await api.get("/metrics/attempts", auth=token, params=query)
    assert own["data"] == [{"dimensions": {}, "metrics": {"count": 4}}]
    same = await api.get(
        "/metrics/events", auth=token, params=[*query, ("filters[tenant_id]", w["a"])]
    )
    assert same["data"] == [{"dimensions": {}, "metrics": {"count": 3}}]
    everyone = await api.get(
        "/metrics/events",
        params=[*query, ("filters[tenant_id]", w["a"]), ("filters[tenant_id]", w["b"])],
    )
    assert everyone["data"] == [{"dimensions": {}, "metrics": {"count": 4}}]

    grouped = await api.call(
        "GET", "/metrics/events", auth=token, params=[*query, ("dimensions", "tenant_id")]
    )
    assert_error(grouped, 403, "tenant_id dimension is not allowed for tenant-scoped requests")
    for foreign in ([w["b"]], [w["a"], w["b"]]):
        asked = [*query, *(("filters[tenant_id]", t) for t in foreign)]
        response = await api.call("GET", "/metrics/attempts", auth=token, params=asked)
        assert_error(response, 403, "filters[tenant_id] does not match authenticated tenant")
        assert w["b"] not in response.text


async def test_the_destination_dimension_fans_an_event_out(api: Api) -> None:
    w = await _world(api)
    body = await api.get(
        "/metrics/events",
        params=[
            ("time[start]", START),
            ("time[end]", END),
            ("measures", "count"),
            ("dimensions", "destination_id"),
            ("filters[tenant_id]", w["a"]),
        ],
    )
    by_destination = {
        p["dimensions"]["destination_id"]: p["metrics"]["count"] for p in body["data"]
    }
    assert by_destination == {w["d1"]: 3, w["d2"]: 1}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ([("measures", "count")], "time[start] and time[end] are required"),
        ([("time[start]", START), ("measures", "count")], "time[start] and time[end] are required"),
        (
            [("time[start]", END), ("time[end]", START), ("measures", "count")],
            "invalid time range: start must be before end",
        ),
        (
            [("time[start]", START), ("time[end]", START), ("measures", "count")],
            "invalid time range: start must be before end",
        ),
        ([("time[start]", START), ("time[end]", END)], "at least one measure is required"),
        (
            [("time[start]", START), ("time[end]", END), ("measures", "bogus")],
            'unknown measure "bogus"',
        ),
        (
            [
                ("time[start]", START),
                ("time[end]", END),
                ("measures", "count"),
                ("dimensions", "status"),
            ],
            'unknown dimension "status"',
        ),
        (
            [
                ("time[start]", START),
                ("time[end]", END),
                ("measures", "count"),
                ("granularity", "25h"),
            ],
            None,
        ),
        (
            [
                ("time[start]", START),
                ("time[end]", END),
                ("measures", "count"),
                ("granularity", "hour"),
            ],
            None,
        ),
        (
            [
                ("time[start]", "2020-01-01T00:00:00Z"),
                ("time[end]", END),
                ("measures", "count"),
                ("granularity", "1m"),
            ],
            "query too broad: try fewer dimensions, more filters, or a shorter time range",
        ),
        ([("time[start]", "soon"), ("time[end]", END), ("measures", "count")], None),
    ],
)
async def test_bad_parameters_are_400_in_outposts_error_shape(
    shared_api: Api, query: list[tuple[str, str]], message: str | None
) -> None:
    response = await shared_api.call("GET", "/metrics/events", params=query)
    assert_error(response, 400, message)


async def test_attempt_filters_are_validated(shared_api: Api) -> None:
    base = [("time[start]", START), ("time[end]", END), ("measures", "count")]
    for key, value in (("manual", "maybe"), ("attempt_number", "first")):
        response = await shared_api.call(
            "GET", "/metrics/attempts", params=[*base, (f"filters[{key}]", value)]
        )
        assert_error(response, 400)
    # Unknown filter keys are ignored, as in Outpost.
    ok(await shared_api.call("GET", "/metrics/attempts", params=[*base, ("filters[colour]", "x")]))


async def test_deleting_a_tenant_keeps_its_logs_by_default(api: Api) -> None:
    w = await _world(api)
    ok(await api.call("DELETE", f"/tenants/{w['a']}"))
    events = await api.get("/events", params={"tenant_id": w["a"]})
    assert len(events["models"]) == 3


async def test_deleting_a_tenant_can_erase_its_logs(make_api: Any) -> None:
    api = await make_api(LOG_ERASE_ON_TENANT_DELETE="true", LOG_RETENTION_BATCH_SIZE="2")
    w = await _world(api)
    ok(await api.call("DELETE", f"/tenants/{w['a']}", auth=ADMIN))
    assert (await api.get("/events", params={"tenant_id": w["a"]}))["models"] == []
    assert (await api.get("/attempts", params={"tenant_id": w["a"]}))["models"] == []
    assert len((await api.get("/events", params={"tenant_id": w["b"]}))["models"]) == 1
    assert len((await api.get("/attempts", params={"tenant_id": w["b"]}))["models"]) == 1
