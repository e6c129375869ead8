"""Throwaway PostgreSQL databases for tests, on the server this machine runs (127.0.0.1:5432).

`OUTPOST_TEST_POSTGRES` changes the admin URL used to create and drop them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import time
from pathlib import Path

import asyncpg

ADMIN_URL = os.environ.get("OUTPOST_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def database_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


async def _execute(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database(prefix: str = "outpost_test") -> tuple[str, str]:
    """A new empty database: (name, URL)."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    asyncio.run(_execute(f'CREATE DATABASE "{name}"'))
    return name, database_url(name)


def drop_database(name: str) -> None:
    asyncio.run(_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# The local server itself, for fault tests: stopping it affects everything on this machine, so a
# test that calls `stop_server()` calls `ensure_running()` in a `finally`.

PG_HOST = "127.0.0.1"


def cluster_version() -> str:
    """The major version of the local cluster (`ls /etc/postgresql`), e.g. `15`."""
    versions = sorted(
        (p.name for p in Path("/etc/postgresql").iterdir() if p.name.isdigit()), key=int
    )
    if not versions:
        raise RuntimeError("no PostgreSQL cluster under /etc/postgresql")
    return versions[-1]


def _ctl(action: str, timeout: float = 60.0) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", cluster_version(), "main", action],
        check=True,
        timeout=timeout,
        capture_output=True,
    )


def is_ready() -> bool:
    """`pg_isready -h 127.0.0.1` succeeds."""
    try:
        done = subprocess.run(
            ["pg_isready", "-h", PG_HOST, "-t", "2"], capture_output=True, timeout=10
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def wait_ready(timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not is_ready():
        if time.monotonic() >= deadline:
            raise RuntimeError(f"PostgreSQL not ready within {timeout:.0f}s")
        time.sleep(0.1)


def stop_server() -> None:
    """Stop the local PostgreSQL server (fast mode: clients are disconnected at once)."""
    _ctl("stop")


def start_server() -> None:
    _ctl("start")


def ensure_running(timeout: float = 60.0) -> None:
    """Start the local server unless it answers already, and wait until it does."""
    if not is_ready():
        with contextlib.suppress(subprocess.CalledProcessError):
            _ctl("start")  # fails if it is already starting; wait_ready decides
    wait_ready(timeout)
