"""The SSRF guard through the API, built as `waypost serve` builds it (in-process, SQLite).

Create/update refuse IP literals in refused ranges (names are never resolved there); a delivery
the guard refuses is an ordinary failed attempt, with its reason, and is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from waypost import bootstrap, config
from waypost.api.app import build as build_app

pytestmark = pytest.mark.timeout(60)

ADMIN = {"Authorization": "Bearer ssrf-admin-key"}
REFUSED = {
    "status": 422,
    "message": "validation error",
    "data": ["config.url failed ssrf validation"],
}


@contextlib.asynccontextmanager
async def running(data_dir: Path, **env: str) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    settings = config.load(
        {
            "OUTPOST_DATA_DIR": str(data_dir),
            "API_KEY": "ssrf-admin-key",
            "API_JWT_SECRET": "ssrf-jwt-secret-0123456789abcdefghijklmn",
            "AES_ENCRYPTION_SECRET": "ssrf-aes-secret",
            "SQLITE_SYNCHRONOUS": "NORMAL",
            **env,
        },
        config_file=None,
    )
    system = bootstrap.build(settings)
    await system.backend.open()
    try:
        transport = httpx.ASGITransport(app=build_app(system.services))
        base = "http://testserver/api/v1"
        async with httpx.AsyncClient(transport=transport, base_url=base, headers=ADMIN) as client:
            yield client, system
    finally:
        await system.registry.close()
        await system.backend.close()


async def create(client: httpx.AsyncClient, url: str) -> httpx.Response:
    await client.put("/tenants/acme")
    body = {"type": "webhook", "topics": "*", "config": {"url": url}}
    return await client.post("/tenants/acme/destinations", json=body)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.0.0.5/hook",
        "https://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fd00::1]/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_create_refuses_ip_literals_in_refused_ranges(tmp_path: Path, url: str) -> None:
    async def main() -> httpx.Response:
        async with running(tmp_path) as (client, _):
            return await create(client, url)

    response = asyncio.run(main())
    assert (response.status_code, response.json()) == (422, REFUSED)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "http://localhost:8080/hook",  # a name: not resolved at create time
        "http://internal.invalid/hook",
        "http://93.184.216.34/hook",
        "http://[2606:4700::1]/hook",
    ],
)
def test_create_accepts_names_and_public_literals(tmp_path: Path, url: str) -> None:
    async def main() -> httpx.Response:
        async with running(tmp_path) as (client, _):
            return await create(client, url)

    assert asyncio.run(main()).status_code == 201


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1./hook",
        "http://0x7f000001./hook",
        "http://169.254.169.254./latest/meta-data/",
        "http://%31%32%37.0.0.1/hook",
    ],
)
def test_with_a_proxy_create_refuses_literals_a_proxy_would_resolve(
    tmp_path: Path, url: str
) -> None:
    """Behind DESTINATIONS_WEBHOOK_PROXY_URL only literals can be checked; a trailing dot (or
    percent-encoding) must not turn one into a "name" the proxy then resolves to loopback."""
    proxied: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        proxied.append(await reader.read(1024))  # a CONNECT or a proxied request line
        writer.close()

    async def main() -> httpx.Response:
        server = await asyncio.start_server(record, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            proxy = {"DESTINATIONS_WEBHOOK_PROXY_URL": f"http://127.0.0.1:{port}"}
            async with running(tmp_path, **proxy) as (client, _):
                return await create(client, url)
        finally:
            server.close()
            await server.wait_closed()

    response = asyncio.run(main())
    assert (response.status_code, response.json()) == (422, REFUSED)
    assert proxied == []


def test_update_refuses_a_refused_literal(tmp_path: Path) -> None:
    async def main() -> tuple[httpx.Response, httpx.Response]:
        async with running(tmp_path) as (client, _):
            created = (await create(client, "https://example.com/hook")).json()
            path = f"/tenants/acme/destinations/{created['id']}"
            patched = await client.patch(path, json={"config": {"url": "http://10.1.2.3/"}})
            return patched, await client.get(path)

    patched, kept = asyncio.run(main())
    assert (patched.status_code, patched.json()) == (422, REFUSED)
    assert kept.json()["config"]["url"] == "https://example.com/hook"


def test_allow_list_and_off_switch_open_literals_at_create(tmp_path: Path) -> None:
    async def main() -> list[int]:
        codes = []
        async with running(tmp_path / "a", DESTINATIONS_ALLOWED_NETWORKS="127.0.0.0/8") as (c, _):
            codes.append((await create(c, "http://127.0.0.1:9/hook")).status_code)
            codes.append((await create(c, "http://10.0.0.1/hook")).status_code)
        async with running(tmp_path / "b", DESTINATIONS_ALLOW_PRIVATE_NETWORKS="true") as (c, _):
            codes.append((await create(c, "http://10.0.0.1/hook")).status_code)
        return codes

    assert asyncio.run(main()) == [201, 422, 201]


def test_a_refused_delivery_is_a_failed_attempt_that_is_retried(tmp_path: Path) -> None:
    connections = 0

    async def count(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    async def main() -> list[dict[str, Any]]:
        server = await asyncio.start_server(count, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        env = {"RETRY_SCHEDULE": "1", "RETRY_POLL_BACKOFF_MS": "50"}
        try:
            async with running(tmp_path, **env) as (client, system):
                assert (await create(client, f"http://localhost:{port}/hook")).status_code == 201
                published = await client.post("/publish", json={"tenant_id": "acme", "data": {}})
                assert published.status_code == 202
                worker = asyncio.create_task(system.worker.run())
                try:
                    query = {"tenant_id": "acme", "include": "response_data"}
                    for _ in range(200):
                        attempts: list[dict[str, Any]] = (
                            await client.get("/attempts", params=query)
                        ).json()["models"]
                        if len(attempts) == 2:
                            return attempts
                        await asyncio.sleep(0.05)
                    raise AssertionError(f"expected 2 attempts, got {attempts}")
                finally:
                    system.worker.stop()
                    await worker
        finally:
            server.close()
            await server.wait_closed()

    attempts = asyncio.run(main())
    assert sorted(a["attempt_number"] for a in attempts) == [1, 2]
    for attempt in attempts:
        assert (attempt["status"], attempt["code"]) == ("failed", "ssrf_blocked")
        error = attempt["response_data"]["error"]
        assert error == "delivery to localhost refused: the address it resolved to is not allowed"
    assert connections == 0
