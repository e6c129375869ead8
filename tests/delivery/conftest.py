"""The embedded store the worker tests deliver from: tenant `t` with one webhook destination `d`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from waypost.core.models import Destination
from waypost.core.timefmt import now_ms
from waypost.storage.sealing import Sealer
from waypost.storage.sqlite.backend import SqliteBackend


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteBackend]:
    backend = SqliteBackend(tmp_path, sealer=Sealer("worker-tests"), synchronous="NORMAL")
    await backend.open()
    await backend.upsert_tenant("t", None, now_ms())
    await backend.create_destination(
        Destination("d", "t", "webhook", ("*",), {}, {}, now_ms(), now_ms()), limit=20
    )
    yield backend
    await backend.close()
