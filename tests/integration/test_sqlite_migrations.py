"""The embedded store's migrations: a copy kept before they run, and no going down."""

from __future__ import annotations

import sqlite3
import stat
from importlib import resources
from pathlib import Path

import pytest

from waypost.backup import known_schema
from waypost.errors import ConfigError
from waypost.storage.sqlite.database import Database


def _database_at(path: Path, version: int) -> None:
    """A database as a release whose newest migration was `version` left it, with a tenant."""
    found = resources.files("waypost.storage.sqlite").iterdir()
    conn = sqlite3.connect(path)
    for script in sorted((f for f in found if f.name.endswith(".sql")), key=lambda f: f.name):
        if int(script.name.split("_", 1)[0]) <= version:
            conn.executescript(script.read_text())
    conn.execute(f"PRAGMA user_version={version}")
    conn.execute("INSERT INTO tenants (id, created_at, updated_at) VALUES ('kept', 1, 1)")
    conn.commit()
    conn.close()


@pytest.mark.anyio
async def test_a_copy_is_kept_before_migrating_and_the_database_is_migrated(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outpost.db"
    older = known_schema() - 1
    _database_at(path, older)
    db = Database(path)
    db.open()
    await db.close()
    copy = tmp_path / f"outpost.db.v{older}"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    kept = sqlite3.connect(copy)
    assert kept.execute("PRAGMA user_version").fetchone()[0] == older
    assert kept.execute("SELECT id FROM tenants").fetchall() == [("kept",)]
    kept.close()
    migrated = sqlite3.connect(path)
    assert migrated.execute("PRAGMA user_version").fetchone()[0] == known_schema()
    migrated.close()


@pytest.mark.anyio
async def test_a_new_or_current_database_gets_no_copy(tmp_path: Path) -> None:
    for _ in range(2):  # created, then opened at the current version
        db = Database(tmp_path / "outpost.db")
        db.open()
        await db.close()
    assert sorted(p.name for p in tmp_path.iterdir() if ".v" in p.name) == []


def test_a_newer_schema_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "outpost.db"
    _database_at(path, known_schema())
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={known_schema() + 1}")
    conn.close()
    with pytest.raises(ConfigError, match="newer than this outpost knows"):
        Database(path).open()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == known_schema() + 1
    conn.close()
