"""The NOTIFY channels of the PostgreSQL backend: how one process's writes reach the others.

PostgreSQL sends a notification only when the transaction that sent it commits. Every backend
LISTENs on both (`PostgresBackend.open`): a task queued wakes the workers of every process, a
destination written makes every process forget that tenant's cached destinations.
"""

from __future__ import annotations

from waypost.storage.postgres.database import Conn

TASKS_CHANNEL = "outpost_tasks"
DESTINATIONS_CHANNEL = "outpost_destinations"


async def notify(conn: Conn, channel: str, payload: str = "") -> None:
    await conn.execute("SELECT pg_notify($1, $2)", channel, payload)
