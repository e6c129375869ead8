"""PostgreSQL's group commit: writes of one kind merged into one statement, each keeps its answer.

`Database.write_batched` merges the writes of one commit that share a function into one call;
publishes are merged this way into one INSERT over arrays (`task_ops.accept_events`), and
`task_ops.finish` settles a batch with one statement per kind of row. These tests look at that
machinery directly: which calls were merged, what each caller got, and what the tables hold
afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from waypost.core.models import Event, Outcome
from waypost.core.timefmt import now_ms
from waypost.errors import StoreError
from waypost.storage.postgres import database as database_module
from waypost.storage.postgres import task_ops
from waypost.storage.postgres.backend import PostgresBackend
from waypost.storage.postgres.database import Conn, Database

from ._support import HOUR, attempt, event, uid
from .conftest import PostgresDatabase

pytestmark = pytest.mark.anyio


@pytest.fixture
def backend(postgres_backend: PostgresBackend) -> PostgresBackend:
    return postgres_backend  # here, in place of the contract suite's `backend` of every kind


@pytest.fixture
async def database(postgres_database: PostgresDatabase) -> AsyncIterator[Database]:
    opened = Database(postgres_database.dsn)
    await opened.open(run_migrations=False)
    try:
        yield opened
    finally:
        await opened.close()


async def _together(*calls: Any) -> list[Any]:
    """Start every call at once (so their writes wait for the same commit); their results, in
    order, or the exception each raised."""
    results: dict[int, Any] = {}

    async def run(index: int, call: Any) -> None:
        try:
            results[index] = await call()
        except Exception as exc:
            results[index] = exc

    async with anyio.create_task_group() as group:
        for index, call in enumerate(calls):
            group.start_soon(run, index, call)
    return [results[i] for i in range(len(calls))]


# The seam: Database.write_batched

calls: list[list[int]] = []


async def _doubled(conn: Conn, items: list[int]) -> list[int]:
    calls.append(items)
    return [2 * item for item in await conn.fetchval("SELECT $1::int[]", items)]


async def test_writes_of_one_kind_waiting_together_are_one_call(database: Database) -> None:
    calls.clear()
    plain = lambda c: c.fetchval("SELECT 'plain'")  # noqa: E731
    answers = await _together(
        *(lambda i=i: database.write_batched(_doubled, i) for i in range(10)),
        lambda: database.write(plain),
    )
    assert answers == [2 * i for i in range(10)] + ["plain"]
    assert calls == [list(range(10))], "one call, with the items in the order they came"


async def test_when_one_write_fails_each_runs_alone_and_gets_its_own_answer(
    database: Database,
) -> None:
    calls.clear()

    async def refused(conn: Conn) -> None:
        raise StoreError("refused")

    answers = await _together(
        *(lambda i=i: database.write_batched(_doubled, i) for i in range(5)),
        lambda: database.write(refused),
    )
    assert answers[:5] == [0, 2, 4, 6, 8]
    assert isinstance(answers[5], StoreError)
    assert calls == [list(range(5)), *([i] for i in range(5))], "merged, then one by one"


async def test_a_one_statement_write_alone_runs_outside_a_transaction_and_merged_inside(
    database: Database,
) -> None:
    """Alone in its commit, a one-statement write is sent without BEGIN and COMMIT (its
    statement commits by itself); merged with others, all of them are still one transaction."""

    async def in_transaction(conn: Conn) -> bool:
        return bool(await conn.fetchval("SELECT 1")) and conn.is_in_transaction()

    assert not await database.write(in_transaction, one_statement=True)
    assert await database.write(in_transaction)  # not said to be one statement
    together = await _together(
        lambda: database.write(in_transaction, one_statement=True),
        lambda: database.write(in_transaction, one_statement=True),
    )
    assert together == [True, True]


async def test_a_publish_alone_commits_without_a_transaction_and_is_stored(
    backend: PostgresBackend,
) -> None:
    e = event(uid("evt"), uid("tnt"), matched=("d1", "d2"))
    assert not await backend.accept(e, now_ms(), now_ms() - HOUR)
    assert len(await _task_ids(backend, e.id)) == 2
    assert task_ops.accept_events in database_module._ONE_STATEMENT


# Publishes merged into one statement


async def _task_ids(backend: PostgresBackend, event_id: str) -> list[int]:
    found = await backend._db.read(
        lambda c: c.fetch("SELECT id FROM tasks WHERE event_id = $1 ORDER BY id", event_id)
    )
    return [row[0] for row in found]


def _accepting(backend: PostgresBackend, e: Event, *, hold_ms: int = 0) -> Any:
    now = now_ms()
    return lambda: backend.accept_held(e, now, now - HOUR, hold_ms=hold_ms)


async def test_each_publish_gets_the_ids_of_its_own_tasks(backend: PostgresBackend) -> None:
    tenant_id = uid("tnt")
    events = [
        event(uid("evt"), tenant_id, matched=tuple(f"d{k}" for k in range(i % 4)))
        for i in range(40)
    ]
    answers = await _together(*(_accepting(backend, e, hold_ms=HOUR) for e in events))
    for e, (duplicate, task_ids) in zip(events, answers, strict=True):
        assert duplicate is False
        assert sorted(task_ids) == await _task_ids(backend, e.id)
        assert len(task_ids) == len(e.matched_destination_ids)


async def test_the_same_id_twice_in_one_statement_is_settled_in_order(
    backend: PostgresBackend,
) -> None:
    tenant_id = uid("tnt")
    first = event(uid("evt"), tenant_id, matched=("d1", "d2"))
    again = event(first.id, tenant_id, data=b'{"again":1}', matched=("d3",))
    unmatched = event(uid("evt"), tenant_id, matched=())
    replacing = event(unmatched.id, tenant_id, matched=("d1",))
    now = now_ms()
    acceptances = [
        task_ops.Acceptance(e, now, now - HOUR, now + HOUR)
        for e in (first, unmatched, again, replacing)
    ]

    async def accept_all(conn: Conn) -> list[tuple[bool, list[int]]]:
        return await task_ops.accept_events(conn, acceptances)

    answers = await backend._db.write(accept_all)
    assert [duplicate for duplicate, _ in answers] == [False, False, True, False]
    first_ids, no_ids, again_ids, replaced_ids = (task_ids for _, task_ids in answers)
    assert (no_ids, again_ids) == ([], [])
    assert sorted(first_ids) == await _task_ids(backend, first.id) and len(first_ids) == 2
    assert replaced_ids == await _task_ids(backend, unmatched.id) and len(replaced_ids) == 1
    assert await backend.get_event(first.id) == first
    assert await backend.get_event(unmatched.id) == replacing


async def test_a_publish_the_database_refuses_fails_alone(backend: PostgresBackend) -> None:
    tenant_id = uid("tnt")
    good = [event(uid("evt"), tenant_id, matched=("d1",)) for _ in range(10)]
    bad = event(uid("evt"), tenant_id, topic="nul\x00byte", matched=("d1",))  # not UTF-8 text
    answers = await _together(*(_accepting(backend, e) for e in [*good[:5], bad, *good[5:]]))
    assert isinstance(answers[5], StoreError)
    for e, (duplicate, task_ids) in zip(good, answers[:5] + answers[6:], strict=True):
        assert duplicate is False and task_ids == await _task_ids(backend, e.id)
    assert await backend.get_event(bad.id) is None


# finish(): one statement per kind of row, unless a key repeats within the batch


async def test_finish_records_a_repeated_attempt_once_with_its_latest_result(
    backend: PostgresBackend,
) -> None:
    tenant_id = uid("tnt")
    e = event(uid("evt"), tenant_id, matched=("d1", "d2"))
    now = now_ms()
    await backend.accept_held(e, now - 1000, now - HOUR, hold_ms=0)
    one, two = sorted(
        (t for t in await backend.claim(1000, 60_000) if t.event.id == e.id),
        key=lambda t: t.destination_id,
    )
    attempt_id = uid("att")
    failed = attempt(attempt_id, e, "d1", time=now, number=1, status="failed", code="500")
    succeeded = attempt(attempt_id, e, "d1", time=now + 1, number=1, status="success")
    await backend.finish([Outcome(one, failed), Outcome(two, succeeded)])

    recorded = await backend.get_attempt(attempt_id)
    assert recorded is not None and (recorded.status, recorded.time) == ("success", now + 1)
    assert await _task_ids(backend, e.id) == []


async def test_finish_schedules_retries_and_cancels_them_over_arrays(
    backend: PostgresBackend,
) -> None:
    tenant_id = uid("tnt")
    events = [event(uid("evt"), tenant_id, matched=("d1",)) for _ in range(6)]
    now = now_ms()
    for e in events:
        await backend.accept_held(e, now - 1000, now - HOUR, hold_ms=0)
    mine = {e.id for e in events}
    tasks = sorted(
        (t for t in await backend.claim(1000, 60_000) if t.event.id in mine),
        key=lambda t: t.event.id,
    )
    later = now + HOUR
    retried = [Outcome(t, None, retry_at=later) for t in tasks]
    await backend.finish(retried)
    scheduled = await backend._db.read(
        lambda c: c.fetch(
            "SELECT event_id, attempt_number, visible_at, retry_key FROM tasks "
            "WHERE event_id = ANY($1::text[]) ORDER BY event_id",
            sorted(mine),
        )
    )
    assert [tuple(r) for r in scheduled] == [(t.event.id, 2, later, t.retry_key) for t in tasks]

    # The same tasks finished again (their leases expired elsewhere): their ids are gone, so
    # only the cancellations act, and they remove the retries scheduled above.
    await backend.finish([Outcome(t, None, cancel_retry=True) for t in tasks[:3]])
    left = await backend._db.read(
        lambda c: c.fetch(
            "SELECT event_id FROM tasks WHERE event_id = ANY($1::text[]) ORDER BY event_id",
            sorted(mine),
        )
    )
    assert [r[0] for r in left] == [t.event.id for t in tasks[3:]]
