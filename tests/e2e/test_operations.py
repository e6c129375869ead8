"""What an operator meets: refusals at start, backup and restore, `config --check`, the banner.

Each refusal is a real `waypost serve` that must exit non-zero at once with one line on stderr
naming the problem and its fix, never a traceback. The backup test backs up a server that is
publishing and delivering, restores into a new folder, and starts a server there.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import asyncpg
import httpx
import pytest
from support.api import create_webhook, publish, unique_id
from support.receiver import Receiver
from support.server import BACKEND, REPO_ROOT, ServerProcess
from support.waiting import poll_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

embedded_only = pytest.mark.skipif(BACKEND != "sqlite", reason="the embedded store's folder")


def _outpost(
    args: list[str], env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "waypost", *args],
        cwd=str(REPO_ROOT),
        env={**env, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _refused(server: ServerProcess, **overrides: str) -> str:
    """Start `waypost serve` as `server` would, with `overrides`; it must refuse: its one line."""
    done = _outpost(["serve"], {**server.environment(), **overrides})
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("waypost: "), done.stderr
    return lines[0]


def _with_destination(server: ServerProcess, receiver: Receiver) -> None:
    """A destination with sealed credentials (its signing secret) in the store."""
    with server.admin_client() as admin:
        admin.tenants.upsert(tenant_id="ops")
        create_webhook(admin, "ops", receiver.configure(receiver.new_path("ops")))


# -- refusals -------------------------------------------------------------------------------------


def test_a_port_out_of_range_is_refused() -> None:
    server = ServerProcess()
    try:
        line = _refused(server, PORT="99999", API_PORT="99999")
    finally:
        server.close()
    assert line == "waypost: API_PORT or PORT must be between 1 and 65535, not 99999"


def test_contradicting_settings_are_refused() -> None:
    server = ServerProcess()
    try:
        line = _refused(server, TOPICS="user.created,user.*")
    finally:
        server.close()
    assert "TOPICS: 'user.*' is a pattern, which needs TOPICS_ALLOW_WILDCARDS=true" in line


def test_a_wrong_aes_secret_for_sealed_data_is_refused(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    server = make_server()
    _with_destination(server, receiver)
    server.stop()
    line = _refused(server, AES_ENCRYPTION_SECRET="not-the-secret-it-was-written-with")
    assert "destination credentials are sealed under key id" in line
    assert "set AES_ENCRYPTION_SECRET to the secret they were written with" in line
    server.start()  # with the right secret it starts, and reads them
    with server.http() as api:
        assert api.get("/tenants/ops/destinations").status_code == 200


@embedded_only
def test_a_data_folder_restored_without_its_aes_secret_is_refused(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    server = make_server()
    _with_destination(server, receiver)
    server.stop()
    secret = server.data_dir / "aes_encryption_secret"
    kept = secret.read_text()
    secret.unlink()
    line = _refused(server)
    assert "restored without its aes_encryption_secret file? put it back" in line
    secret.write_text(kept)  # put back, the server starts
    server.start()


def test_a_schema_newer_than_the_code_is_refused(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server()
    server.stop()
    if server.postgres_url:

        async def bump() -> None:
            conn = await asyncpg.connect(server.postgres_url)
            try:
                await conn.execute("INSERT INTO outpost_migrations (version) VALUES (999)")
            finally:
                await conn.close()

        asyncio.run(bump())
        line = _refused(server)
        assert "the PostgreSQL database has schema version 999, newer than this outpost" in line
    else:
        conn = sqlite3.connect(server.data_dir / "outpost.db")
        conn.execute("PRAGMA user_version=999")
        conn.close()
        line = _refused(server)
        assert "has schema version 999, newer than this outpost knows" in line
    assert "run that version, or restore" in line


@embedded_only
def test_a_data_folder_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    server = ServerProcess({"OUTPOST_DATA_DIR": str(blocked / "data"), "API_KEY": ""})
    try:
        line = _refused(server)
    finally:
        server.close()
    assert f"cannot keep api_key in OUTPOST_DATA_DIR {blocked / 'data'}" in line


@embedded_only
def test_a_file_that_is_not_a_database_is_refused(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server()
    server.stop()
    for suffix in ("", "-wal", "-shm"):
        (server.data_dir / f"outpost.db{suffix}").unlink(missing_ok=True)
    (server.data_dir / "outpost.db").write_bytes(b"not a database" * 100)
    assert "outpost.db: file is not a database" in _refused(server)


# -- start-up output ------------------------------------------------------------------------------


@embedded_only
def test_the_api_key_is_printed_only_when_generated_and_the_banner_follows_log_format(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server({"API_KEY": "", "LOG_FORMAT": "json"})
    generated = (server.data_dir / "api_key").read_text().strip()
    server.restart()
    banners = [
        json.loads(line)
        for line in server.log_text().splitlines()
        if line.startswith("{") and '"message":"starting"' in line
    ]
    assert len(banners) == 2
    assert banners[0]["api_key"] == generated
    assert banners[0]["url"] == f"http://127.0.0.1:{server.port}/api/v1"
    assert "api_key" not in banners[1]
    assert server.log_text().count(generated) == 1


# -- config --check -------------------------------------------------------------------------------


def test_config_check_prints_the_effective_settings_masked_and_every_problem(
    tmp_path: Path,
) -> None:
    settings = tmp_path / "outpost.yaml"
    settings.write_text(
        "api_port: 4100\nportal:\n  org_name: Acme\nredis:\n  host: cache\n"
        "destinations:\n  webhook:\n    modes: standard\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "CONFIG": str(settings),
        "API_KEY": "admin-key-never-shown",
        "POSTGRES_URL": "postgresql://app:hunter2@127.0.0.1/outpost",
        "API_JWT_SECRET": "j",
        "AES_ENCRYPTION_SECRET": "a",
        "MAX_RETRY_LIMT": "3",
        "LOG_FORMAT": "xml",
    }
    done = _outpost(["config", "--check"], env)
    assert done.returncode == 2, done.stderr
    out = done.stdout
    assert "admin-key-never-shown" not in out and "hunter2" not in out
    assert "API_KEY=********  # environment" in out
    assert f"API_PORT=4100  # {settings}" in out
    assert f"PORTAL_ORGANIZATION_NAME=Acme  # {settings}" in out
    assert "warning: MAX_RETRY_LIMT is not a setting (did you mean MAX_RETRY_LIMIT?)" in out
    assert "`redis.host` configures a part of Outpost this server does not have" in out
    assert "problem: LOG_FORMAT must be text or json, not 'xml'" in out
    assert "`destinations.webhook.modes` is not a setting" in out
    assert out.rstrip().endswith("2 problem(s)")

    fine = {k: v for k, v in env.items() if k not in ("CONFIG", "LOG_FORMAT", "MAX_RETRY_LIMT")}
    done = _outpost(["config", "--check"], fine)
    assert done.returncode == 0, done.stdout
    assert done.stdout.rstrip().endswith("ok")


# -- backup and restore ---------------------------------------------------------------------------


class _Publisher(threading.Thread):
    """Publishes one event after another, noting when each 202 came back."""

    def __init__(self, server: ServerProcess, tenant: str) -> None:
        super().__init__(daemon=True)
        self._server = server
        self._tenant = tenant
        self.accepted: list[tuple[float, str]] = []
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self._server.http() as api:
                n = 0
                while not self.stopping.is_set() and n < 900:
                    event_id = f"load-{n}"
                    res = api.post(
                        "/publish",
                        json={
                            "id": event_id,
                            "tenant_id": self._tenant,
                            "topic": "user.created",
                            "data": {"n": n},
                        },
                    )
                    assert res.status_code == 202, res.text
                    self.accepted.append((time.monotonic(), event_id))
                    n += 1
        except BaseException as exc:  # reported by the test
            self.error = exc


def _event_ids(api: httpx.Client, tenant: str) -> set[str]:
    found: set[str] = set()
    params: dict[str, str | int] = {"tenant_id": tenant, "limit": 1000}
    while True:
        res = api.get("/events", params=params)
        assert res.status_code == 200, res.text
        body = res.json()
        found.update(e["id"] for e in body["models"])
        cursor = (body.get("pagination") or {}).get("next")
        if not cursor:
            return found
        params["next"] = cursor


@embedded_only
def test_backup_under_load_restores_every_accepted_event_and_pending_retry(
    make_server: Callable[..., ServerProcess], receiver: Receiver, tmp_path: Path
) -> None:
    # Retries wait 15 s: every failed first attempt still has its retry pending at the backup.
    server = make_server({"RETRY_SCHEDULE": "15"})
    tenant = unique_id("backup")
    ok_path, failing_path = receiver.new_path("ok"), receiver.new_path("failing")
    with server.admin_client() as admin:
        admin.tenants.upsert(tenant_id=tenant)
        create_webhook(admin, tenant, receiver.configure(ok_path))
        create_webhook(admin, tenant, receiver.configure(failing_path, status=500))
        publish(admin, tenant, {"warm": "up"}, id="warm-up")

    load = _Publisher(server, tenant)
    load.start()
    poll_until(lambda: len(load.accepted) >= 150 or None, timeout=30, what="150 publishes")
    poll_until(lambda: receiver.requests_for(failing_path) or None, timeout=30, what="failures")
    started = time.monotonic()
    backup_dir = tmp_path / "backup"
    done = _outpost(["backup", str(backup_dir)], server.environment())
    load.stopping.set()
    load.join(timeout=30)
    assert load.error is None, load.error
    assert done.returncode == 0, done.stderr
    assert "backed up" in done.stdout and "aes_encryption_secret" in done.stdout
    before = {event_id for at, event_id in load.accepted if at < started} | {"warm-up"}
    assert len(before) >= 150 and len(load.accepted) > len(before)  # publishing went on
    assert (backup_dir.stat().st_mode & 0o777) == 0o700
    assert {p.name: p.stat().st_mode & 0o777 for p in backup_dir.iterdir()} == {
        name: 0o600 for name in ("outpost.db", "aes_encryption_secret", "backup.json")
    }
    server.kill()  # the machine is lost; only the backup is left

    restored = tmp_path / "restored" / "data"
    done = _outpost(["restore", str(backup_dir), str(restored)], server.environment())
    assert done.returncode == 0, done.stderr
    receiver.configure(failing_path, status=200)  # the failing destination is back
    answered = len(receiver.requests_for(failing_path))
    second = make_server({"OUTPOST_DATA_DIR": str(restored), "RETRY_SCHEDULE": "15"})
    with second.http() as api:
        assert before <= _event_ids(api, tenant)

    def redelivered() -> set[str] | None:
        seen = {r.event_id or "" for r in receiver.requests_for(failing_path)[answered:]}
        return seen if before <= seen else None

    # Each event accepted before the backup reaches the failing destination from the restored
    # server: its pending retry fired, or its first attempt had not been made yet.
    poll_until(redelivered, timeout=60, what="every pending retry delivered")


@embedded_only
def test_restore_refuses_a_folder_in_use_a_non_empty_one_and_a_damaged_backup(
    make_server: Callable[..., ServerProcess], receiver: Receiver, tmp_path: Path
) -> None:
    server = make_server()
    _with_destination(server, receiver)
    env = server.environment()
    backup_dir = tmp_path / "backup"
    assert _outpost(["backup", str(backup_dir)], env).returncode == 0

    done = _outpost(["restore", str(backup_dir), str(server.data_dir)], env)
    assert done.returncode == 2
    assert "is not empty: restore into a new folder, or add --force" in done.stderr
    done = _outpost(["restore", "--force", str(backup_dir), str(server.data_dir)], env)
    assert done.returncode == 2
    assert f"a server is running on {server.data_dir}: stop it first" in done.stderr
    server.stop()
    done = _outpost(["restore", "--force", str(backup_dir), str(server.data_dir)], env)
    assert done.returncode == 0, done.stderr
    assert "set the former contents" in done.stdout
    server.start()
    with server.http() as api:
        assert len(api.get("/tenants/ops/destinations").json()) == 1

    with (backup_dir / "outpost.db").open("r+b") as db:
        db.seek(4096)
        db.write(b"\xff" * 64)
    done = _outpost(["restore", str(backup_dir), str(tmp_path / "elsewhere")], env)
    assert done.returncode == 2
    assert "does not match its checksum: the backup is damaged" in done.stderr
    assert not (tmp_path / "elsewhere").exists()


def test_backup_refuses_postgres_mode_naming_pg_dump(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    if BACKEND == "sqlite":
        pytest.skip("PostgreSQL mode's refusal")
    server = make_server()
    done = _outpost(["backup", str(tmp_path / "b")], server.environment())
    assert done.returncode == 2
    assert "with POSTGRES_URL use pg_dump" in done.stderr
