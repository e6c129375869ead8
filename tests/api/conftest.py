"""Fixtures for the in-process API tests.

`api` is the app with the default settings over a fresh SQLite database in a tmp dir;
`make_api(**env)` builds one with extra settings (TOPICS, limits, ...). Both are closed at the
end of the test. `shared_api` is one app per test module, for the many tests that only touch
tenants of their own (unique ids) and so need no fresh database: it keeps the suite fast.
Tests run on asyncio through anyio's pytest plugin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from ._support import Api, running_api

MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(tmp_path: Path) -> AsyncIterator[MakeApi]:
    async with AsyncExitStack() as stack:
        built = 0

        async def factory(**env: str) -> Api:
            nonlocal built
            built += 1
            return await stack.enter_async_context(running_api(tmp_path / f"data{built}", env))

        yield factory


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    return await make_api()


@pytest.fixture(scope="module")
async def shared_api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with running_api(tmp_path_factory.mktemp("shared"), {}) as api:
        yield api
