"""`waypost backup` and `waypost restore`: the embedded store and its secrets, copied whole.

A backup is a folder holding `outpost.db`, the secret files of the data folder (`api_key`,
`jwt_secret`, `aes_encryption_secret`: without the last, the destinations' credentials cannot be
opened) and `backup.json` (versions, and a SHA-256 per file). The database is copied with
SQLite's online backup API from a connection of this process: one read transaction's snapshot,
so the copy is consistent while a server keeps accepting and delivering (WAL lets its writers go
on). An event the server answered 202 before the copy began is in it, with its tasks and
scheduled retries; deliveries in flight are leased tasks, which the restored server releases at
start, so they are delivered again rather than lost.

`restore` checks the whole backup (checksums, SQLite's integrity check, a schema this code
knows) before it writes anything, builds the data folder beside the target and renames it into
place, and never overwrites: with `--force` the current folder is set aside, not deleted.
Everything is created 0700/0600, as the data folder is.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from waypost import __version__
from waypost.errors import ConfigError
from waypost.storage.sqlite import private

DATABASE = "outpost.db"
MANIFEST = "backup.json"
SECRET_FILES = ("api_key", "jwt_secret", "aes_encryption_secret")
FORMAT = 1


@dataclass(frozen=True)
class Summary:
    schema: int
    events: int
    tasks: int
    files: tuple[str, ...]


def known_schema() -> int:
    """The newest embedded-store schema this code can open."""
    found = resources.files("waypost.storage.sqlite").iterdir()
    return max(int(f.name.split("_", 1)[0]) for f in found if f.name.endswith(".sql"))


def backup(data_dir: Path, dest: Path) -> Summary:
    source = data_dir / DATABASE
    if not source.is_file():
        raise ConfigError(f"{source} does not exist: OUTPOST_DATA_DIR names no embedded store")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(f"{dest} exists and is not an empty folder: back up into a new one")
    staging = dest.with_name(f"{dest.name}.partial-{os.getpid()}")
    _make_folder(staging)
    try:
        _copy_database(source, staging / DATABASE)
        summary = _inspect(staging / DATABASE)
        copied = [DATABASE]
        for name in SECRET_FILES:
            if (data_dir / name).is_file():
                _write_private(staging / name, (data_dir / name).read_bytes())
                copied.append(name)
        manifest = {
            "format": FORMAT,
            "outpost": __version__,
            "schema": summary.schema,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": {name: _sha256(staging / name) for name in copied},
        }
        _write_private(staging / MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n")
        _sync_folder(staging)
        if dest.exists():
            dest.rmdir()  # empty, checked above
        staging.rename(dest)
        _sync_folder(dest.parent)
    except BaseException:
        _remove(staging)
        raise
    return Summary(summary.schema, summary.events, summary.tasks, tuple(copied))


def verify(src: Path) -> dict[str, Any]:
    """The backup's manifest, once every file matches it and the database is sound."""
    try:
        manifest = json.loads((src / MANIFEST).read_text())
        files: dict[str, str] = manifest["files"]
        schema = int(manifest["schema"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{src} is not a backup made by `waypost backup` ({MANIFEST})") from None
    if DATABASE not in files:
        raise ConfigError(f"{src}/{MANIFEST} lists no {DATABASE}")
    for name, digest in files.items():
        if name != Path(name).name or not (src / name).is_file():
            raise ConfigError(f"{src} lacks {name}, which its {MANIFEST} lists")
        if _sha256(src / name) != digest:
            raise ConfigError(f"{src / name} does not match its checksum: the backup is damaged")
    if schema > known_schema():
        raise ConfigError(
            f"{src} holds schema version {schema}, newer than this server knows "
            f"({known_schema()}): restore it with the version that made it"
        )
    conn = sqlite3.connect(f"file:{src / DATABASE}?mode=ro&immutable=1", uri=True)
    try:
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.Error as exc:
        raise ConfigError(f"{src / DATABASE} is not a sound database: {exc}") from None
    finally:
        conn.close()
    if result != "ok":
        raise ConfigError(f"{src / DATABASE} fails SQLite's integrity check: {result}")
    if "aes_encryption_secret" not in files:
        manifest["warning"] = (
            "the backup holds no aes_encryption_secret file: set AES_ENCRYPTION_SECRET to the "
            "secret the server ran with"
        )
    return dict(manifest)


def restore(
    src: Path, data_dir: Path, *, force: bool = False
) -> tuple[dict[str, Any], Path | None]:
    """Put a verified backup in place as `data_dir`; returns the manifest and where the folder
    that was there went (with `force`), or None."""
    manifest = verify(src)
    aside: Path | None = None
    staging = data_dir.with_name(f"{data_dir.name}.restoring-{os.getpid()}")
    _make_folder(staging)
    try:
        for name in manifest["files"]:
            _write_private(staging / name, (src / name).read_bytes())
        _sync_folder(staging)
        if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
            if not force:
                raise ConfigError(
                    f"{data_dir} is not empty: restore into a new folder, or add --force to set "
                    "its contents aside"
                )
            with _unused(data_dir):
                aside = data_dir.with_name(f"{data_dir.name}.before-restore-{int(time.time())}")
                data_dir.rename(aside)
        elif data_dir.exists():
            data_dir.rmdir()
        staging.rename(data_dir)
        _sync_folder(data_dir.parent)
    except BaseException:
        _remove(staging)
        raise
    return manifest, aside


@contextlib.contextmanager
def _unused(data_dir: Path) -> Any:
    """Hold the data folder's lock, which a server holds while it runs on the folder."""
    lock_path = data_dir / "outpost.lock"
    if not lock_path.exists():
        yield
        return
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"a server is running on {data_dir}: stop it first") from None
        yield


def _copy_database(source: Path, target: Path) -> None:
    private.create_file(str(target))
    src = sqlite3.connect(str(source), timeout=10)
    try:
        src.execute("PRAGMA query_only=ON")
        dst = sqlite3.connect(str(target))
        try:
            src.backup(dst)  # all pages in one step: one snapshot, however busy the server is
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot copy {source}: {exc}") from None
    finally:
        src.close()


def _inspect(path: Path) -> Summary:
    conn = sqlite3.connect(str(path))
    try:
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise ConfigError(f"the copy of the database fails SQLite's integrity check: {result}")
        schema = conn.execute("PRAGMA user_version").fetchone()[0]
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        tasks = conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
        conn.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    finally:
        conn.close()
    return Summary(schema, events, tasks, ())


def _make_folder(path: Path) -> None:
    try:
        path.parent.mkdir(mode=private.FOLDER_MODE, parents=True, exist_ok=True)
        path.mkdir(mode=private.FOLDER_MODE)
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from None


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, private.FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _sync_folder(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _remove(path: Path) -> None:
    if not path.exists():
        return
    for child in path.iterdir():
        child.unlink()
    path.rmdir()
