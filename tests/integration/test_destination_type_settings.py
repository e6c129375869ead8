"""DESTINATIONS_ENABLED_TYPES (which types tenants may create) and DESTINATIONS_UNGUARDED_TYPES
(which may deliver without the SSRF guard), through the API as `waypost serve` builds it."""

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
from waypost.errors import ConfigError

pytestmark = pytest.mark.timeout(60)

ADMIN = {"Authorization": "Bearer types-admin-key"}
AZURE = {
    "type": "azure_servicebus",
    "topics": "*",
    "config": {"name": "orders"},
    "credentials": {
        "connection_string": "Endpoint=sb://orders.servicebus.windows.net/;"
        "SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0"
    },
}
WEBHOOK = {"type": "webhook", "topics": "*", "config": {"url": "https://example.com/hook"}}
KAFKA = {
    "type": "kafka",
    "topics": "*",
    "config": {"brokers": "kafka.example:9092", "topic": "t", "sasl_mechanism": "plain"},
    "credentials": {"username": "u", "password": "p"},
}


def _settings(data_dir: Path, **env: str) -> config.Config:
    return config.load(
        {
            "OUTPOST_DATA_DIR": str(data_dir),
            "API_KEY": "types-admin-key",
            "API_JWT_SECRET": "types-jwt-secret-0123456789abcdefghijklmn",
            "AES_ENCRYPTION_SECRET": "types-aes-secret",
            **env,
        },
        config_file=None,
    )


@contextlib.asynccontextmanager
async def api(data_dir: Path, **env: str) -> AsyncIterator[httpx.AsyncClient]:
    system = bootstrap.build(_settings(data_dir, **env))
    await system.backend.open()
    try:
        transport = httpx.ASGITransport(app=build_app(system.services))
        base = "http://testserver/api/v1"
        async with httpx.AsyncClient(transport=transport, base_url=base, headers=ADMIN) as client:
            await client.put("/tenants/acme")
            yield client
    finally:
        await system.registry.close()
        await system.backend.close()


def test_enabled_types_limit_what_is_listed_and_created(tmp_path: Path) -> None:
    async def main() -> dict[str, Any]:
        async with api(tmp_path, DESTINATIONS_ENABLED_TYPES="webhook, rabbitmq") as client:
            return {
                "listed": [t["type"] for t in (await client.get("/destination-types")).json()],
                "one": (await client.get("/destination-types/kafka")).status_code,
                "kafka": await client.post("/tenants/acme/destinations", json=KAFKA),
                "webhook": (
                    await client.post("/tenants/acme/destinations", json=WEBHOOK)
                ).status_code,
            }

    got = asyncio.run(main())
    assert got["listed"] == ["webhook", "rabbitmq"]
    assert got["one"] == 404
    assert got["kafka"].status_code == 422
    assert got["kafka"].json()["message"] == "no provider registered for destination type: kafka"
    assert got["webhook"] == 201


def test_every_type_is_listed_by_default(tmp_path: Path) -> None:
    async def main() -> list[str]:
        async with api(tmp_path) as client:
            return [t["type"] for t in (await client.get("/destination-types")).json()]

    assert len(asyncio.run(main())) == 11


@pytest.mark.parametrize("setting", ["DESTINATIONS_ENABLED_TYPES", "DESTINATIONS_UNGUARDED_TYPES"])
def test_an_unknown_type_name_stops_the_start(tmp_path: Path, setting: str) -> None:
    with pytest.raises(ConfigError, match=f"{setting}: unknown destination type"):
        bootstrap.build(_settings(tmp_path, **{setting: "webhook,carrier_pigeon"}))


def test_azure_needs_listing_as_unguarded_while_the_guard_is_on(tmp_path: Path) -> None:
    async def main() -> list[httpx.Response]:
        created = []
        async with api(tmp_path / "a") as client:
            created.append(await client.post("/tenants/acme/destinations", json=AZURE))
        unguarded = {"DESTINATIONS_UNGUARDED_TYPES": "azure_servicebus"}
        async with api(tmp_path / "b", **unguarded) as client:
            created.append(await client.post("/tenants/acme/destinations", json=AZURE))
        async with api(tmp_path / "c", DESTINATIONS_ALLOW_PRIVATE_NETWORKS="true") as client:
            created.append(await client.post("/tenants/acme/destinations", json=AZURE))
        return created

    refused, *allowed = asyncio.run(main())
    assert (refused.status_code, refused.json()) == (
        422,
        {
            "status": 422,
            "message": "validation error",
            "data": ["credentials.connection_string failed ssrf validation"],
        },
    )
    assert [r.status_code for r in allowed] == [201, 201]
