"""Embedded mode's data folder is its owner's only: event payloads, response bodies, custom
headers and the generated keys are in it.

`waypost serve` under the usual umask (022) creates the folder 0700 and every file in it 0600
(the database and its `-wal`/`-shm`, the lock files, the generated AES secret); started in an
existing folder that others can enter, it says so once.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.api import create_webhook, publish, wait_attempts
from support.receiver import Receiver
from support.server import BACKEND, ServerProcess

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(120),
    pytest.mark.skipif(BACKEND != "sqlite", reason="the data folder is the embedded store's"),
]

WARNING = "is open to other users"


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """Servers started in the test inherit umask 022, which alone would give 0755/0644."""
    saved = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(saved)


def _modes(folder: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}


def _use(server: ServerProcess, receiver: Receiver) -> None:
    """Write through every part of the store: a tenant, a destination, an event, an attempt."""
    with server.admin_client() as admin, server.http() as api:
        admin.tenants.upsert(tenant_id="files")
        create_webhook(admin, "files", receiver.configure(receiver.new_path("files")))
        publish(admin, "files", {"secret": "payload"})
        wait_attempts(api, 1, tenant_id="files", timeout=20)


def test_a_new_folder_and_its_files_are_private(
    make_server: Callable[..., ServerProcess],
    receiver: Receiver,
    tmp_path: Path,
    usual_umask: None,
) -> None:
    folder = tmp_path / "new" / "data"
    server = make_server({"OUTPOST_DATA_DIR": str(folder)})
    _use(server, receiver)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    modes = _modes(folder)
    for name in ("outpost.db", "outpost.db-wal", "outpost.db-shm", "outpost.lock"):
        assert name in modes, modes
    assert "aes_encryption_secret" in modes
    assert {name: mode for name, mode in modes.items() if mode != 0o600} == {}
    assert WARNING not in server.log_text()


def test_an_existing_open_folder_is_warned_about(
    make_server: Callable[..., ServerProcess],
    receiver: Receiver,
    tmp_path: Path,
    usual_umask: None,
) -> None:
    folder = tmp_path / "open"
    folder.mkdir(mode=0o755)
    server = make_server({"OUTPOST_DATA_DIR": str(folder)})
    _use(server, receiver)
    warnings = [line for line in server.log_text().splitlines() if WARNING in line]
    assert len(warnings) == 1 and "0755" in warnings[0], server.log_tail()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755  # the operator's choice is kept
    assert {name: mode for name, mode in _modes(folder).items() if mode != 0o600} == {}
