"""Throwaway PostgreSQL databases for tests, on the server this machine runs (127.0.0.1:5432).

`OUTPOST_TEST_POSTGRES` changes the admin URL used to create and drop them.
"""

from __future__ import annotations

import asyncio
import os
import secrets

import asyncpg

ADMIN_URL = os.environ.get("OUTPOST_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _url_for(name: str) -> str:
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
    return name, _url_for(name)


def drop_database(name: str) -> None:
    asyncio.run(_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
