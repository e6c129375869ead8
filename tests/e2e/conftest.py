"""Fixtures for the black-box end-to-end suite.

The server runs as a real process (`python -m waypost serve`); tests talk to it through the
official `outpost_sdk` client and raw HTTP, and receive webhooks on a real loopback receiver.

Scopes, to keep the suite fast:
- `receiver`: one per session; every test uses its own paths (`receiver.new_path`).
- `server` / `admin` / `api`: one server per test module, configured by the module-level
  `SERVER_ENV` dict (if any). Tests sharing it use unique tenant ids (`tenant_id` fixture).
- `make_server`: function-scoped factory for tests that need a special configuration or that
  stop/kill/restart the process.

`scripts/test` runs this folder once per `OUTPOST_TEST_BACKEND` (embedded, postgres,
postgres+rabbitmq). A test whose outcome does not depend on that mode (its servers pick their own
store, or what it checks is the same in every mode) is marked `backends(...)` with the passes it
runs in, and is skipped in the others instead of repeating itself.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from outpost_sdk import Outpost
from support.api import unique_id
from support.receiver import Receiver
from support.server import BACKEND, ServerProcess

_STARTED = pytest.StashKey[list[ServerProcess]]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("backends")
        if marker is not None and BACKEND not in marker.args:
            passes = " and ".join(marker.args)
            item.add_marker(
                pytest.mark.skip(reason=f"marked backends: runs in the {passes} pass only")
            )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, attach the tail of the server output(s) the test used to the report."""
    report = yield
    if report.failed:
        started: list[ServerProcess] | None = item.stash.get(_STARTED, None)
        servers = list(started or [])
        shared = getattr(item, "funcargs", {}).get("server")
        if isinstance(shared, ServerProcess):
            servers.append(shared)
        for index, srv in enumerate(servers):
            report.sections.append((f"server output #{index} ({srv.root_url})", srv.log_tail(80)))
    return report


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env: Mapping[str, str] = getattr(request.module, "SERVER_ENV", {})
    workdir = tmp_path_factory.mktemp("server")
    srv = ServerProcess(env, workdir=workdir)
    try:
        srv.start()
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> Iterator[Outpost]:
    with server.admin_client() as client:
        yield client


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.http() as client:
        yield client


@pytest.fixture
def tenant_id(request: pytest.FixtureRequest, admin: Outpost) -> str:
    """A tenant that exists and that no other test uses."""
    tid = unique_id(request.node.name)
    admin.tenants.upsert(tenant_id=tid)
    return tid


@pytest.fixture
def make_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers with a special configuration; all are stopped at the end of the test."""
    started: list[ServerProcess] = []
    request.node.stash[_STARTED] = started

    def factory(env: Mapping[str, str] | None = None, **kwargs: object) -> ServerProcess:
        srv = ServerProcess(env, workdir=tmp_path / f"server{len(started)}", **kwargs)  # type: ignore[arg-type]
        started.append(srv)
        return srv.start()

    yield factory
    for srv in started:
        srv.close()
