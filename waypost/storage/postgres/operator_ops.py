"""Operator events in PostgreSQL: the outbox, destination health, and judging recorded attempts.

The same tables and rules as storage/sqlite/operator_ops.py. What differs is concurrency: many
processes record attempts of one destination at once, so the health rows of a batch are locked
(one upsert that returns them, in a fixed order so that lock waits cannot form a cycle) before
they are read; disabling is a compare-and-set whose NOTIFY refreshes every process's destination
cache at commit. A batch costs a few statements, however many attempts it holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from waypost.core.models import Destination, Outcome
from waypost.core.operator_records import Health, OperatorRecord, OutcomeJudge
from waypost.storage import judging
from waypost.storage.judging import DestinationKey
from waypost.storage.postgres import task_ops
from waypost.storage.postgres.channels import DESTINATIONS_CHANNEL, notify
from waypost.storage.postgres.database import Conn

_LOCK_HEALTH = """
INSERT INTO destination_health (tenant_id, destination_id)
SELECT * FROM unnest($1::text[], $2::text[])
ON CONFLICT (tenant_id, destination_id) DO UPDATE
    SET consecutive_failures = destination_health.consecutive_failures
RETURNING tenant_id, destination_id, consecutive_failures, exhausted_alerted_at
"""

_STORE_HEALTH = """
UPDATE destination_health h SET consecutive_failures = n.failures, exhausted_alerted_at = n.alerted
FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[]) AS n(tenant, destination, failures,
                                                                  alerted)
WHERE h.tenant_id = n.tenant AND h.destination_id = n.destination
"""


async def finish_judged(
    conn: Conn,
    outcomes: list[Outcome],
    destinations: Mapping[DestinationKey, Destination | None],
    judge: OutcomeJudge,
    now: int,
) -> tuple[dict[DestinationKey, str], int]:
    """`task_ops.finish`, then judge each attempt not recorded before, in the same transaction.

    Returns the destinations it disabled, and how many events were queued.
    """
    ids = [o.attempt.id for o in outcomes if o.attempt is not None]
    seen = {r[0] for r in await conn.fetch("SELECT id FROM attempts WHERE id = ANY($1)", ids)}
    await task_ops.finish(conn, outcomes)
    ordered = judging.judged_order(outcomes, seen)
    if not ordered:
        return {}, 0
    healths = await _locked_healths(conn, judging.keys(ordered)) if judge.tracks_health else {}
    judged, changed = judging.verdicts(judge, ordered, destinations, healths, now)
    if changed:
        await conn.execute(
            _STORE_HEALTH,
            [tenant for tenant, _ in changed],
            [destination for _, destination in changed],
            [h.consecutive_failures for h in changed.values()],
            [h.exhausted_alerted_at for h in changed.values()],
        )
    requests = judging.disable_requests(judged)
    disabled = {key: requests[key] for key in requests if await _disable(conn, key, now)}
    events = judging.events_of(judge, judged, destinations, disabled, now)
    await add_events(conn, events, now)
    return disabled, len(events)


async def _locked_healths(conn: Conn, keys: list[DestinationKey]) -> dict[DestinationKey, Health]:
    """The health of these destinations, rows created if need be and locked until commit."""
    found = await conn.fetch(_LOCK_HEALTH, [t for t, _ in keys], [d for _, d in keys])
    return {(r[0], r[1]): Health(r[2], r[3]) for r in found}


async def _disable(conn: Conn, key: DestinationKey, now: int) -> bool:
    """Compare-and-set: True only for the write that disabled a live, enabled destination."""
    status = await conn.execute(
        "UPDATE destinations SET disabled_at = $3 WHERE tenant_id = $1 AND id = $2 "
        "AND disabled_at IS NULL AND deleted_at IS NULL",
        *key,
        now,
    )
    if status == "UPDATE 0":
        return False
    await notify(conn, DESTINATIONS_CHANNEL, key[0])
    return True


async def add_events(conn: Conn, events: Sequence[OperatorRecord], now: int) -> None:
    if events:
        await conn.execute(
            "INSERT INTO operator_events (id, topic, body, created_at, visible_at) "
            "SELECT e.id, e.topic, e.body, e.created_at, $5 "
            "FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bigint[]) "
            "WITH ORDINALITY AS e(id, topic, body, created_at, n) "
            "ORDER BY e.n ON CONFLICT (id) DO NOTHING",
            [e.id for e in events],
            [e.topic for e in events],
            [e.body for e in events],
            [e.created_at for e in events],
            now,
        )


_CLAIM = """
WITH picked AS (
    SELECT seq FROM operator_events WHERE visible_at <= $1
    ORDER BY visible_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED
)
UPDATE operator_events o SET visible_at = $3 FROM picked WHERE o.seq = picked.seq
RETURNING o.seq, o.id, o.topic, o.body, o.created_at, o.tries
"""


async def claim(conn: Conn, now: int, limit: int, lease_ms: int) -> list[OperatorRecord]:
    found = sorted(tuple(r) for r in await conn.fetch(_CLAIM, now, limit, now + lease_ms))
    return [OperatorRecord(r[1], r[2], bytes(r[3]), r[4], r[5]) for r in found]


async def settle(conn: Conn, done: Sequence[str], retry: Sequence[tuple[str, int]]) -> None:
    if done:
        await conn.execute("DELETE FROM operator_events WHERE id = ANY($1::text[])", list(done))
    if retry:
        await conn.executemany(
            "UPDATE operator_events SET visible_at = $2, tries = tries + 1 WHERE id = $1", retry
        )


async def health(conn: Conn, tenant_id: str, destination_id: str) -> Health:
    row = await conn.fetchrow(
        "SELECT consecutive_failures, exhausted_alerted_at FROM destination_health "
        "WHERE tenant_id = $1 AND destination_id = $2",
        tenant_id,
        destination_id,
    )
    return Health(row[0], row[1]) if row else Health()
