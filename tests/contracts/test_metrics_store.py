"""MetricsStore contract (contract.md §1.6.17): the metrics answers equal counts computed here,
independently.

A generated log (events with their matched destinations, attempts with statuses, codes, manual
retries and attempt numbers) is stored through the seams, then every combination of measures,
dimensions, granularities and filters below is asked of the store (`metrics_tallies`, shaped by
`waypost.core.metrics.answer` exactly as the API does) and compared with an oracle written from the
contract's words: calendar arithmetic with `datetime`, plain loops, no code shared with the server.
Every query filters on this test's tenants, so rows of other tests on a shared database are out.
"""

from __future__ import annotations

import calendar
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from waypost.core.metrics import Kind, answer, build_query
from waypost.core.timefmt import format_ms, now_ms
from waypost.errors import InputError

from ._support import BASE, HOUR, Backend, attempt, event, record_attempts, uid

pytestmark = pytest.mark.anyio

MINUTE = 60_000
DAY = 24 * HOUR
TOPICS = ("user.created", "user.updated", "order.paid")
CODES = ("200", "201", "500", "503", "")


@dataclass
class Log:
    """What the test stored, as plain dicts: the oracle reads only these."""

    tenants: tuple[str, ...]
    destinations: tuple[str, ...]
    events: list[dict[str, Any]]
    attempts: list[dict[str, Any]]


async def _store(backend: Backend, seed: int) -> Log:
    rng = random.Random(seed)
    tenants = (uid("tnt"), uid("tnt"))
    destinations = tuple(uid("des") for _ in range(3))
    events: list[dict[str, Any]] = []
    recorded = []
    for _ in range(40):
        tenant = rng.choice(tenants)
        stored = event(
            uid("evt"),
            tenant,
            topic=rng.choice(TOPICS),
            time=BASE + rng.randrange(0, 75 * 24) * HOUR // 24 + rng.randrange(0, HOUR),
            matched=rng.sample(destinations, rng.randrange(0, 4)),
        )
        now = now_ms()
        assert not await backend.accept(stored, now, now - HOUR)
        events.append(
            {
                "tenant_id": tenant,
                "topic": stored.topic,
                "time": stored.time,
                "matched": list(stored.matched_destination_ids),
            }
        )
        for destination in stored.matched_destination_ids:
            for number in range(1, rng.randrange(1, 4) + 1):
                failed = rng.random() < 0.4
                recorded.append(
                    attempt(
                        uid("atm"),
                        stored,
                        destination,
                        time=stored.time + number * rng.randrange(1, 90) * MINUTE,
                        number=number,
                        status="failed" if failed else "success",
                        manual=number > 1 and rng.random() < 0.3,
                        code=rng.choice(CODES[2:] if failed else CODES[:2]),
                        destination_type=rng.choice(("webhook", "rabbitmq")),
                        # Some attempts never reached a provider (or predate latency): None.
                        latency_ms=None if rng.random() < 0.2 else rng.randrange(0, 3000),
                    )
                )
    await record_attempts(backend, recorded)
    attempts = [
        {
            "tenant_id": a.tenant_id,
            "destination_id": a.destination_id,
            "destination_type": a.destination_type,
            "topic": a.topic,
            "status": a.status,
            "code": a.code,
            "manual": "true" if a.manual else "false",
            "attempt_number": str(a.attempt_number),
            "time": a.time,
            "number": a.attempt_number,
            "is_manual": a.manual,
            "latency_ms": a.latency_ms,
        }
        for a in recorded
    ]
    return Log(tenants, destinations, events, attempts)


# The oracle


def _utc(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def _ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _truncate(ms: int, granularity: str) -> datetime:
    """The start of the bucket holding `ms`, per contract.md §1.6.17's alignment rules."""
    n, unit = int(granularity[:-1]), granularity[-1]
    moment = _utc(ms)
    if unit == "M":
        months = (moment.year - 1970) * 12 + moment.month - 1
        months -= months % n
        return datetime(1970 + months // 12, months % 12 + 1, 1, tzinfo=UTC)
    if unit == "w":
        sunday = datetime(1970, 1, 4, tzinfo=UTC)
        weeks = (moment - sunday) // timedelta(weeks=1)
        return sunday + timedelta(weeks=weeks - weeks % n)
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit] * n
    epoch_seconds = ms // 1000
    return _utc((epoch_seconds - epoch_seconds % seconds) * 1000)


def _next_slot(moment: datetime, granularity: str) -> datetime:
    n, unit = int(granularity[:-1]), granularity[-1]
    if unit == "M":
        months = moment.month - 1 + n
        return datetime(moment.year + months // 12, months % 12 + 1, 1, tzinfo=UTC)
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}[unit] * n
    return moment + timedelta(seconds=seconds)


def _rows(
    kind: Kind, log: Log, filters: dict[str, list[str]], dims: Sequence[str]
) -> list[dict[str, Any]]:
    if kind == "attempts":
        return [a for a in log.attempts if all(a[k] in v for k, v in filters.items())]
    rows = []
    wanted = filters.get("destination_id")
    for e in log.events:
        if not all(e[k] in v for k, v in filters.items() if k != "destination_id"):
            continue
        shares = [d for d in e["matched"] if wanted is None or d in wanted]
        if wanted is not None and not shares:
            continue
        if "destination_id" in dims:
            rows += [{**e, "destination_id": d} for d in shares]
        else:
            rows.append(e)
    return rows


def _percentile(values: list[int], percent: int) -> int | None:
    """Nearest rank: sorted ascending, the value at 1-based rank ceil(percent/100 * n)."""
    if not values:
        return None
    rank = max(1, math.ceil(percent * len(values) / 100))
    return sorted(values)[rank - 1]


def _measure(name: str, rows: list[dict[str, Any]], seconds: float) -> float | None:
    latencies = [r["latency_ms"] for r in rows if r.get("latency_ms") is not None]
    if name == "avg_latency":
        return sum(latencies) / len(latencies) if latencies else None
    if name in ("p50_latency", "p95_latency", "p99_latency"):
        return _percentile(latencies, int(name[1:3]))
    count = len(rows)
    ok = sum(1 for r in rows if r.get("status") == "success")
    failed = sum(1 for r in rows if r.get("status") == "failed")
    if name == "count":
        return count
    if name == "rate":
        return count / seconds
    if name.startswith("successful_"):
        return ok if name == "successful_count" else ok / seconds
    if name.startswith("failed_"):
        return failed if name == "failed_count" else failed / seconds
    if name == "error_rate":
        return failed / count if count else 0.0
    if name == "first_attempt_count":
        return sum(1 for r in rows if r["number"] == 1 and not r["is_manual"])
    if name == "retry_count":
        return sum(1 for r in rows if r["number"] > 1)
    if name == "manual_retry_count":
        return sum(1 for r in rows if r["is_manual"])
    assert name == "avg_attempt_number"
    return sum(r["number"] for r in rows) / count if count else 0.0


def _dimension_order(dims: Sequence[str], combo: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(int(v) if d == "attempt_number" else v for d, v in zip(dims, combo, strict=True))


def oracle(
    kind: Kind,
    log: Log,
    *,
    start: int,
    end: int,
    measures: Sequence[str],
    dims: Sequence[str],
    granularity: str | None,
    filters: dict[str, list[str]],
) -> list[dict[str, Any]]:
    rows = [r for r in _rows(kind, log, filters, dims) if start <= r["time"] < end]
    combos = sorted(
        {tuple(r[d] for d in dims) for r in rows}, key=lambda c: _dimension_order(dims, c)
    )
    if not dims:
        combos = [()]
    slots: list[tuple[datetime | None, float]] = []
    if granularity is None:
        slots = [(None, (end - start) / 1000)]
    else:
        moment = _truncate(start, granularity)
        while _ms(moment) < end:
            following = _next_slot(moment, granularity)
            slots.append((moment, (following - moment).total_seconds()))
            moment = following
    points = []
    for slot, seconds in slots:
        for combo in combos:
            group = [
                r
                for r in rows
                if tuple(r[d] for d in dims) == combo
                and (slot is None or _truncate(r["time"], granularity or "") == slot)
            ]
            point: dict[str, Any] = {}
            if slot is not None:
                point["time_bucket"] = slot.strftime("%Y-%m-%dT%H:%M:%SZ")
            point["dimensions"] = dict(zip(dims, combo, strict=True))
            point["metrics"] = {m: _measure(m, group, seconds) for m in measures}
            points.append(point)
    return points


async def ask(
    backend: Backend,
    kind: Kind,
    *,
    start: int,
    end: int,
    measures: Sequence[str],
    dims: Sequence[str] = (),
    granularity: str | None = None,
    filters: dict[str, list[str]],
) -> list[dict[str, Any]]:
    query = build_query(
        kind,
        start=format_ms(start),
        end=format_ms(end),
        measures=measures,
        granularity=granularity,
        dimensions=dims,
        filters={k: tuple(v) for k, v in filters.items()},
    )
    body = answer(query, await backend.metrics_tallies(query), 0)
    assert body["metadata"]["row_count"] == len(body["data"])
    data: list[dict[str, Any]] = body["data"]
    return data


def _same(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> bool:
    if len(actual) != len(expected):
        return False
    for got, want in zip(actual, expected, strict=True):
        if got.get("time_bucket") != want.get("time_bucket"):
            return False
        if got["dimensions"] != want["dimensions"]:
            return False
        if got["metrics"].keys() != want["metrics"].keys():
            return False
        for name, value in want["metrics"].items():
            if value is None or got["metrics"][name] is None:
                if got["metrics"][name] is not value:
                    return False
                continue
            if got["metrics"][name] != pytest.approx(value, rel=1e-9, abs=1e-12):
                return False
            if name.endswith("count") and type(got["metrics"][name]) is not int:
                return False
    return True


EVENT_CASES: list[tuple[tuple[str, ...], str | None]] = [
    ((), None),
    ((), "6h"),
    (("topic",), None),
    (("destination_id",), "1d"),
    (("tenant_id", "topic"), "1w"),
    (("destination_id", "topic"), "1M"),
    (("topic",), "45m"),
]
ATTEMPT_CASES: list[tuple[tuple[str, ...], str | None]] = [
    ((), None),
    ((), "12h"),
    (("status",), "1d"),
    (("destination_id", "status"), None),
    (("manual", "attempt_number"), "2d"),
    (("code",), "1w"),
    (("tenant_id", "destination_type", "topic"), "1M"),
    (("attempt_number",), "3h"),
]
ALL_ATTEMPT_MEASURES = (
    "count",
    "successful_count",
    "failed_count",
    "error_rate",
    "first_attempt_count",
    "retry_count",
    "manual_retry_count",
    "avg_attempt_number",
    "rate",
    "successful_rate",
    "failed_rate",
    "avg_latency",
    "p50_latency",
    "p95_latency",
    "p99_latency",
)


async def test_metrics_equal_independent_counts(backend: Backend) -> None:
    log = await _store(backend, seed=7)
    start, end = BASE + 30 * MINUTE, BASE + 40 * DAY + 7 * HOUR
    own = {"tenant_id": list(log.tenants)}
    everything = await ask(
        backend, "attempts", start=BASE, end=BASE + 80 * DAY, measures=("count",), filters=own
    )
    assert everything[0]["metrics"]["count"] == len(log.attempts) > 50
    wrong = []
    for kind, cases, measures in (
        ("events", EVENT_CASES, ("count", "rate")),
        ("attempts", ATTEMPT_CASES, ALL_ATTEMPT_MEASURES),
    ):
        for dims, granularity in cases:
            for extra in (
                {},
                {"topic": ["user.created", "order.paid"]},
                {"destination_id": [log.destinations[0]]},
                {"tenant_id": [log.tenants[1]]},
            ):
                filters = {**own, **extra}
                args: dict[str, Any] = {
                    "start": start,
                    "end": end,
                    "measures": measures,
                    "dims": dims,
                    "granularity": granularity,
                    "filters": filters,
                }
                kind_: Kind = "events" if kind == "events" else "attempts"
                got = await ask(backend, kind_, **args)
                want = oracle(kind_, log, **args)
                if not _same(got, want):
                    wrong.append(f"{kind} {dims} {granularity} {extra}:\n {got}\n !=\n {want}")
    assert not wrong, "\n".join(wrong[:3]) + f"\n({len(wrong)} cases differ)"


async def test_attempt_filters_of_every_dimension(backend: Backend) -> None:
    log = await _store(backend, seed=11)
    start, end = BASE, BASE + 80 * DAY
    own = {"tenant_id": list(log.tenants)}
    wrong = []
    for extra in (
        {"status": ["failed"]},
        {"code": ["500", "503"]},
        {"manual": ["true"]},
        {"manual": ["false"]},
        {"attempt_number": ["2", "3"]},
        {"destination_type": ["rabbitmq"]},
        {"destination_id": list(log.destinations[1:])},
    ):
        args: dict[str, Any] = {
            "start": start,
            "end": end,
            "measures": ("count", "error_rate", "avg_attempt_number", "p50_latency", "p99_latency"),
            "dims": ("destination_id",),
            "granularity": None,
            "filters": {**own, **extra},
        }
        got = await ask(backend, "attempts", **args)
        want = oracle("attempts", log, **args)
        if not _same(got, want):
            wrong.append(f"{extra}: {got} != {want}")
    assert not wrong, "\n".join(wrong)


async def test_no_data_without_dimensions_is_one_zero_row_per_slot(backend: Backend) -> None:
    nobody = {"tenant_id": [uid("tnt")]}
    start, end = BASE, BASE + 3 * HOUR
    whole = await ask(
        backend, "attempts", start=start, end=end, measures=("count", "error_rate"), filters=nobody
    )
    assert whole == [{"dimensions": {}, "metrics": {"count": 0, "error_rate": 0.0}}]
    hourly = await ask(
        backend,
        "events",
        start=start,
        end=end,
        measures=("count",),
        granularity="1h",
        filters=nobody,
    )
    assert [p["time_bucket"] for p in hourly] == [
        "2026-01-01T00:00:00Z",
        "2026-01-01T01:00:00Z",
        "2026-01-01T02:00:00Z",
    ]
    grouped = await ask(
        backend,
        "events",
        start=start,
        end=end,
        measures=("count",),
        dims=("topic",),
        granularity="1h",
        filters=nobody,
    )
    assert grouped == [], "no data and dimensions: no rows"


@pytest.mark.parametrize(
    ("granularity", "start", "end", "buckets"),
    [
        # 2026-01-01 is a Thursday: weeks start on the Sunday before (2025-12-28).
        ("1w", BASE, BASE + DAY, ["2025-12-28T00:00:00Z"]),
        ("1M", BASE - DAY, BASE + DAY, ["2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z"]),
        ("5M", BASE, BASE + DAY, ["2025-11-01T00:00:00Z"]),  # 671 months since 1970: 670..674
        ("2d", BASE, BASE + DAY, ["2026-01-01T00:00:00Z"]),  # epoch day 20454 is even
        ("7h", BASE + 3 * HOUR, BASE + 9 * HOUR, ["2026-01-01T00:00:00Z", "2026-01-01T07:00:00Z"]),
    ],
)
async def test_buckets_are_aligned_as_the_contract_says(
    backend: Backend, granularity: str, start: int, end: int, buckets: list[str]
) -> None:
    nobody = {"tenant_id": [uid("tnt")]}
    got = await ask(
        backend,
        "attempts",
        start=start,
        end=end,
        measures=("count",),
        granularity=granularity,
        filters=nobody,
    )
    assert [p["time_bucket"] for p in got] == buckets


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    granularity=st.builds(
        lambda unit, n: (
            f"{n % {'s': 60, 'm': 60, 'h': 24, 'd': 31, 'w': 4, 'M': 12}[unit] + 1}{unit}"
        ),
        st.sampled_from("smhdwM"),
        st.integers(0, 1000),
    ),
    instant=st.integers(0, 4_102_444_800_000),  # up to 2100
)
def test_bucket_start_matches_calendar_truncation(granularity: str, instant: int) -> None:
    """The bucket arithmetic the stores use, against `datetime` truncation (pure; no store)."""
    from waypost.core.metrics import Granularity

    g = Granularity.parse(granularity)
    index = g.bucket(instant)
    assert _utc(g.start(index)) == _truncate(instant, granularity)
    assert g.start(index) <= instant < g.start(index + 1)
    following = _next_slot(_truncate(instant, granularity), granularity)
    assert g.seconds(index) == (following - _truncate(instant, granularity)).total_seconds()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": None}, "time[start] and time[end] are required"),
        ({"end": "2026-01-01T00:00:00Z"}, "invalid time range: start must be before end"),
        ({"measures": ()}, "at least one measure is required"),
        ({"measures": ("count", "bogus")}, 'unknown measure "bogus"'),
        ({"dimensions": ("status",)}, 'unknown dimension "status"'),  # an attempt dimension
        ({"granularity": "13M"}, None),
        ({"granularity": "1y"}, None),
        ({"granularity": "0h"}, None),
        ({"granularity": "1s", "end": "2026-01-03T00:00:00Z"}, None),  # 172 800 slots
        ({"start": "yesterday"}, None),
    ],
)
def test_invalid_queries_are_input_errors(kwargs: dict[str, Any], message: str | None) -> None:
    args: dict[str, Any] = {
        "start": "2026-01-01T00:00:00Z",
        "end": "2026-01-02T00:00:00Z",
        "measures": ("count",),
        "granularity": None,
        "dimensions": (),
        "filters": {},
    }
    args.update(kwargs)
    with pytest.raises(InputError) as raised:
        build_query("events", **args)
    assert raised.value.status == 400
    if message is not None:
        assert raised.value.message == message
    if "granularity" in kwargs and "end" in kwargs:
        assert "query too broad" in raised.value.message


async def test_latency_percentiles_are_nearest_rank(backend: Backend) -> None:
    """Four recorded latencies and one without: p50 is the 2nd smallest, p95 and p99 the
    largest; the average leaves the unrecorded one out; a bucket with none answers null."""
    tenant = uid("tnt")
    stored = event(uid("evt"), tenant, topic="user.created", time=BASE, matched=[uid("des")])
    now = now_ms()
    assert not await backend.accept(stored, now, now - HOUR)
    destination = stored.matched_destination_ids[0]
    # The i-th at minute i - 1; in 5-minute buckets the sixth (no latency) is alone in the second.
    await record_attempts(
        backend,
        [
            attempt(
                uid("atm"),
                stored,
                destination,
                time=BASE + (i - 1) * MINUTE,
                number=i,
                latency_ms=ms,
            )
            for i, ms in enumerate((40, 10, None, 30, 20, None), start=1)
        ],
    )
    got = await ask(
        backend,
        "attempts",
        start=BASE,
        end=BASE + 10 * MINUTE,
        measures=("count", "avg_latency", "p50_latency", "p95_latency", "p99_latency"),
        granularity="5m",
        filters={"tenant_id": [tenant]},
    )
    assert [p["metrics"] for p in got] == [
        {"count": 5, "avg_latency": 25.0, "p50_latency": 20, "p95_latency": 40, "p99_latency": 40},
        {"count": 1, "avg_latency": None, "p50_latency": None, "p95_latency": None,
         "p99_latency": None},
    ]  # fmt: skip


def test_month_lengths_make_rates() -> None:
    """A monthly rate divides by that month's seconds (February 2026: 28 days)."""
    query = build_query(
        "events",
        start="2026-02-01T00:00:00Z",
        end="2026-03-01T00:00:00Z",
        measures=("rate",),
        granularity="1M",
        dimensions=(),
        filters={},
    )
    days = calendar.monthrange(2026, 2)[1]
    from waypost.core.metrics import Tally

    body = answer(query, [Tally(query.slots()[0], (), {"count": days * 86400})], 0)
    assert body["data"][0]["metrics"]["rate"] == 1.0
