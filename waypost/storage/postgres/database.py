"""PostgreSQL access: a pool, group commit, migrations and LISTEN/NOTIFY.

Writes are functions of a connection. `WRITERS` loops each take whatever writes are waiting (up to
`batch_limit`) and commit them in one transaction: concurrent publishes share a commit, and each
caller's future resolves only once its write is durable. A batchable write (`write_batched`) names
a function that does many writes of its kind in one call: those waiting in one commit are merged
into that one call (one statement over arrays instead of one per write). If a write fails, the
batch is rolled back and each write runs again alone, in its own transaction.
Every driver and network error is translated here: nothing above sees asyncpg.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from waypost.errors import ConfigError, InputError, StoreError, StoreUnavailable
from waypost.storage.group_commit import settle
from waypost.storage.keyset import numbered

T = TypeVar("T")
Item = TypeVar("Item")
Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"

Op = Callable[[Conn], Awaitable[Any]]
# Does the writes of one kind waiting in a commit in one call: one result per item, in order.
BatchOp = Callable[[Conn, list[Any]], Awaitable[list[Any]]]
log = logging.getLogger(__name__)

WRITERS = 4
MIGRATION_LOCK = 7_313_773  # pg_advisory_lock key: one process migrates at a time
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
# Errors that belong to one write (rolled back to its savepoint); anything else fails the batch.
_OP_ERRORS = (InputError, StoreError, asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)


@dataclass(frozen=True)
class _Write:
    run: BatchOp  # writes with the same `run` in one commit are merged into one call
    item: Any
    future: asyncio.Future[Any]


async def _each(conn: Conn, ops: list[Op]) -> list[Any]:
    """The `run` of plain writes: one after another."""
    return [await op(conn) for op in ops]


# The `run`s that write one item in one statement. Such a write, in a commit of its own, is sent
# without BEGIN and COMMIT: the statement commits alone, as atomically and as durably, and two
# round trips fewer. At 1,000 publishes/s most group commits hold one publish (bench/README.md).
_ONE_STATEMENT: set[object] = set()
BatchOpT = TypeVar("BatchOpT", bound=BatchOp)


def one_statement(run: BatchOpT) -> BatchOpT:
    """Mark a batch op whose `run(conn, [item])` is one statement (see `_ONE_STATEMENT`)."""
    _ONE_STATEMENT.add(run)
    return run


@one_statement
async def _each_one_statement(conn: Conn, ops: list[Op]) -> list[Any]:
    """The `run` of plain writes that are one statement each."""
    return [await op(conn) for op in ops]


async def _merged(conn: Conn, writes: list[_Write]) -> list[tuple[asyncio.Future[Any], Any]]:
    """Each kind of write once, with the items of all its writes (kinds in order of arrival).

    Writes may so run in another order than they were queued: that is free, since none of their
    callers has seen another one's result yet (they are concurrent).
    """
    kinds: dict[BatchOp, list[_Write]] = {}
    for write in writes:
        kinds.setdefault(write.run, []).append(write)
    outcomes: list[tuple[asyncio.Future[Any], Any]] = []
    for run, same in kinds.items():
        results = await run(conn, [w.item for w in same])
        outcomes += zip((w.future for w in same), results, strict=True)  # one answer per write
    return outcomes


async def fetch(conn: Conn, sql: str, params: Sequence[Any]) -> list[Any]:
    """Rows of `sql` written with `?` placeholders (keyset.Where, the shared SQL modules)."""
    return list(await conn.fetch(numbered(sql), *params))


async def _keep_session(conn: object) -> None:
    """The pool's reset: nothing (see `Database.open`)."""


def translate(exc: BaseException) -> BaseException:
    """Driver errors become StoreUnavailable (retry later) or StoreError; ours pass through.

    A query the server refused is a StoreError. Anything else from the driver is about the
    connection (refused, reset, or broken mid-operation, which asyncpg reports as
    InternalClientError "cannot switch to state ...") and so StoreUnavailable.
    """
    if isinstance(exc, InputError | StoreError):
        return exc
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(f"database unavailable: {exc!r}")
    if isinstance(exc, asyncpg.PostgresError):
        return StoreError(str(exc))
    if type(exc).__module__.startswith("asyncpg"):
        return StoreUnavailable(f"database unavailable: {exc!r}")
    return exc


def _scripts() -> list[Any]:
    found = resources.files(__package__).iterdir()
    return sorted((f for f in found if f.name.endswith(".sql")), key=lambda f: f.name)


async def refuse_newer_schema(conn: Conn) -> None:
    """ConfigError when a newer version has migrated this database: this code would misread it.

    Checked by every process, migrating or not; there is no going back down (restore a dump)."""
    if not await conn.fetchval("SELECT to_regclass('outpost_migrations') IS NOT NULL"):
        return
    newest = await conn.fetchval("SELECT max(version) FROM outpost_migrations")
    known = max(int(f.name.split("_", 1)[0]) for f in _scripts())
    if newest is not None and newest > known:
        raise ConfigError(
            f"the PostgreSQL database has schema version {newest}, newer than this outpost knows "
            f"({known}): it was migrated by a newer version; run that version, or restore a "
            "dump taken before the upgrade"
        )


async def migrate(conn: Conn) -> None:
    """Apply the numbered .sql files of this package that the database has not seen yet."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS outpost_migrations "
            "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        await refuse_newer_schema(conn)
        done = {r[0] for r in await conn.fetch("SELECT version FROM outpost_migrations")}
        for script in _scripts():
            version = int(script.name.split("_", 1)[0])
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(script.read_text())
                await conn.execute("INSERT INTO outpost_migrations (version) VALUES ($1)", version)
            log.info("applied migration %s", script.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)


class Database:
    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 10,
        timeout: float = 5.0,
        batch_limit: int = 1000,
    ) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._timeout = timeout
        self._batch_limit = batch_limit
        self._pool: asyncpg.Pool | None = None
        self._writes: asyncio.Queue[_Write] = asyncio.Queue()
        self._writers: list[asyncio.Task[None]] = []
        self._listeners: list[asyncio.Task[None]] = []

    async def open(self, *, run_migrations: bool = True) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                command_timeout=self._timeout,
                timeout=self._timeout,
                # asyncpg prepares every statement, and after five runs PostgreSQL may keep a
                # generic plan made from the table sizes of that moment. On a fresh database
                # those are "empty": the plan found for a claim's events was a sequential scan,
                # kept until autovacuum next analyzed the table (a minute or more), each run
                # slower as the table grew (0.2 → 2.2 ms over the first 25,000 events). Every
                # query here is meant to walk an index, so scans are made the last resort: the
                # index is taken whatever the statistics say (0.16 ms at any size), at no cost
                # to publishing or claiming. (force_custom_plan also fixes it, but planning
                # each run cost +90 µs of PostgreSQL CPU per publish.) Metrics over every
                # tenant, the one reader of whole tables, read covering indexes anyway.
                server_settings={"enable_seqscan": "off"},
                # asyncpg resets a connection each time it returns to the pool: four statements
                # (unlock advisory locks, close cursors, unlisten, reset settings) per group
                # commit and per read, which nothing here needs: transactions are always closed,
                # LISTEN and the session advisory locks (migrations, retention) use connections
                # of their own (`session`). Measured, alternating runs at saturation: 261/282 →
                # 254/266 µs of our CPU and 108/122 → 102/113 µs of PostgreSQL's per event.
                reset=_keep_session,
            )
            await self.session(migrate if run_migrations else refuse_newer_schema)
        except Exception as exc:
            raise translate(exc) from exc
        self._writers = [asyncio.create_task(self._write_loop()) for _ in range(WRITERS)]

    async def close(self) -> None:
        for task in self._writers + self._listeners:
            task.cancel()
        for task in self._writers + self._listeners:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pool is not None:
            await self._pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "database not opened"
        return self._pool

    async def session(self, op: Callable[[Conn], Awaitable[T]]) -> T:
        """Run `op` on a connection of its own, closed afterwards: for session state (advisory
        locks held across statements) that must not outlive `op` in a pooled connection."""
        try:
            conn = await asyncpg.connect(self._dsn, timeout=self._timeout)
        except Exception as exc:
            raise translate(exc) from exc
        try:
            return await op(conn)
        except Exception as exc:
            raise translate(exc) from exc
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=self._timeout)

    async def read(self, op: Callable[[Conn], Awaitable[T]]) -> T:
        try:
            async with self.pool.acquire(timeout=self._timeout) as conn:
                return await op(conn)
        except Exception as exc:
            raise translate(exc) from exc

    async def write(self, op: Callable[[Conn], Awaitable[T]], *, one_statement: bool = False) -> T:
        """Run `op` in the next group commit; return its result once that commit is durable.
        `one_statement`: `op` is a single statement (see `_ONE_STATEMENT`)."""
        result: T = await self.write_batched(_each_one_statement if one_statement else _each, op)
        return result

    async def write_batched(
        self, run: Callable[[Conn, list[Item]], Awaitable[list[T]]], item: Item
    ) -> T:
        """Write `item` in the next group commit, by `run(conn, items)` together with the other
        items given to the same `run` for that commit; return its own result once durable.

        `run` must give one result per item, in order, and do for each what `run(conn, [item])`
        alone would: if any write of the commit fails, each is run again that way. Writes merge
        when their `run` is the same object: pass a module-level function, not a new lambda.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._writes.put_nowait(_Write(run, item, future))
        try:
            # Queued behind failing batches during an outage, a caller would wait for each of them:
            # bound the wait. The write may still commit later; the caller saw no success, and a
            # retried publish is answered `duplicate: true`.
            # (asyncio.timeout, not wait_for: no task of its own per write.)
            async with asyncio.timeout(self._timeout * 2):
                return await asyncio.shield(future)
        except TimeoutError:
            raise StoreUnavailable("database did not answer in time") from None

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._writes.get()]
            while len(batch) < self._batch_limit and not self._writes.empty():
                batch.append(self._writes.get_nowait())
            batch = [write for write in batch if not write.future.cancelled()]
            if batch:
                await self._commit(batch)

    async def _commit(self, batch: list[_Write]) -> None:
        for attempt in range(3):
            try:
                outcomes = await self._run(batch)
            except _RETRYABLE:
                log.warning("group commit conflicted; running it again (%d)", attempt + 1)
                continue
            except Exception as exc:
                failure = translate(exc)
                log.error("group commit failed: %r", failure)
                outcomes = [(write.future, None, failure) for write in batch]
            break
        else:
            failure = StoreError("write kept conflicting")
            outcomes = [(write.future, None, failure) for write in batch]
        settle(outcomes)

    async def _run(
        self, batch: list[_Write]
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        """All writes in one transaction, merged by kind; if any fails, each again alone in its own.

        The common case (nothing fails) then costs no savepoints: a savepoint per write would add
        two round trips each, more than most writes themselves.
        """
        async with self.pool.acquire(timeout=self._timeout) as conn:
            if len(batch) > 1:
                with contextlib.suppress(*_OP_ERRORS):
                    async with conn.transaction():
                        merged = await _merged(conn, batch)
                    return [(future, result, None) for future, result in merged]
            outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
            for write in batch:
                try:
                    if write.run in _ONE_STATEMENT:
                        [result] = await write.run(conn, [write.item])
                    else:
                        async with conn.transaction():
                            [result] = await write.run(conn, [write.item])
                    outcomes.append((write.future, result, None))
                except _OP_ERRORS as exc:
                    outcomes.append((write.future, None, translate(exc)))
            return outcomes

    def listen(
        self, channel: str, on_message: Callable[[str], None], on_state: Callable[[bool], None]
    ) -> None:
        """Call `on_message(payload)` for each NOTIFY on `channel`, on a dedicated connection.

        `on_state(True)` runs once listening has started, `on_state(False)` when the connection is
        lost: notifications may have been missed meanwhile, so whatever they keep fresh is stale.
        """
        self._listeners.append(asyncio.create_task(self._listen(channel, on_message, on_state)))

    async def _listen(
        self, channel: str, on_message: Callable[[str], None], on_state: Callable[[bool], None]
    ) -> None:
        def deliver(conn: object, pid: int, name: str, payload: object) -> None:
            on_message(str(payload))

        while True:
            try:
                conn = await asyncpg.connect(self._dsn, timeout=self._timeout)
            except Exception as exc:
                log.warning("LISTEN %s: cannot connect (%r); retrying", channel, exc)
                await asyncio.sleep(1)
                continue
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _, lost=lost: lost.set())
            try:
                await conn.add_listener(channel, deliver)
                on_state(True)
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), 5)
                    if not lost.is_set():
                        await conn.execute("SELECT 1")  # notice a silently dead connection
            except Exception as exc:
                log.warning("LISTEN %s: connection lost (%r)", channel, exc)
            finally:
                on_state(False)
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)
            await asyncio.sleep(0.5)
