"""The test suite's tiers, and what every test shares.

A test's tier is decided by what it needs to run, and its top folder says which:

- **unit** (`tests/unit/`): pure. No network, no child process, no database; at most a file in
  `tmp_path` (a settings file, a generated key). The guard below fails a unit test that opens a
  socket, starts a process or opens SQLite, so the tier keeps meaning what it says.
- **integration** (`tests/integration/`, `api/`, `contracts/`, `delivery/`, `destinations/`,
  `queues/`, `docs/`): the code under test runs in the test's process, against real services on
  loopback: SQLite files, PostgreSQL, RabbitMQ, brokers and emulators, loopback receivers and
  servers the test starts itself.
- **e2e** (`tests/e2e/`, `portal/`, `container/`, `package/`): `waypost serve` runs as a separate
  process (in `container/`, inside the image; in `package/`, installed from the built wheel) and is
  reached over HTTP only (the portal tests through a browser).

Each test gets its tier as a marker (`pytest -m unit`, `-m integration`, `-m e2e`); a new top
folder must be added to `TIERS`. `scripts/test --fast` runs the unit tier after lint and types.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TIERS = {
    "unit": "unit",
    "integration": "integration",
    "api": "integration",
    "contracts": "integration",
    "delivery": "integration",
    "destinations": "integration",
    "queues": "integration",
    "docs": "integration",
    "e2e": "e2e",
    "portal": "e2e",
    "container": "e2e",
    "package": "e2e",
}

_ROOT = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "unit: pure, no I/O (tests/unit)")
    config.addinivalue_line("markers", "integration: in-process, against services on loopback")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.relative_to(_ROOT).parts[0]
        if folder not in TIERS:
            raise pytest.UsageError(f"tests/{folder}/ has no tier: add it to TIERS in {__file__}")
        item.add_marker(TIERS[folder])


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests (`pytest.mark.anyio`) run on asyncio, as the server does."""
    return "asyncio"


class IOInUnitTest(AssertionError):
    """A unit test reached for a socket, a process or a database."""


def _refuse(what: str) -> Any:
    def refuse(*args: object, **kwargs: object) -> None:
        raise IOInUnitTest(f"{what} in a unit test: move the test to tests/integration/")

    return refuse


@pytest.fixture(autouse=True)
def _unit_tests_do_no_io(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("unit") is None:
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        for method in ("connect", "connect_ex", "bind"):
            patch.setattr(socket.socket, method, _refuse(f"socket.{method}"))
        patch.setattr(subprocess.Popen, "__init__", _refuse("a child process"))
        patch.setattr(sqlite3, "connect", _refuse("a SQLite database"))
        yield
