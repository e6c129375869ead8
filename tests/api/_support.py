"""Shared by the in-process API tests: a running app over SQLite and a thin client for it."""

from __future__ import annotations

import json as jsonlib
import time
import warnings
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
from support.ids import unique_id

from waypost import bootstrap, config
from waypost.core.models import Attempt, Outcome

API_KEY = "api-suite-admin-key"
JWT_SECRET = "api-suite-jwt-secret-0123456789abcdefghij"  # >= 32 bytes: PyJWT warns below
ADMIN = f"Bearer {API_KEY}"
BASE_URL = "http://testserver/api/v1"
HOOK_URL = "https://example.com/hooks/outpost"
TOKEN_LIFETIME = 24 * 3600

Params = Mapping[str, str] | Sequence[tuple[str, str]] | None
Query = list[tuple[str, str | int | float | bool | None]]


class _Unset:
    """Marks "send no body" / "leave the field out" (`None` means a JSON `null`)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

unique = unique_id  # an id no other test uses, recognisable in a response body


def bearer(token: str) -> str:
    return f"Bearer {token}"


def make_jwt(
    sub: str,
    *,
    secret: str = JWT_SECRET,
    issuer: str = "outpost",
    expires_in: int = 3600,
    algorithm: str = "HS256",
) -> str:
    """A tenant JWT forged with our own hands (for expired / foreign-key / wrong-issuer cases)."""
    now = int(time.time())
    claims = {"iss": issuer, "sub": sub, "iat": now - 10, "exp": now + expires_in}
    with warnings.catch_warnings():  # e.g. HS512 with a key shorter than 64 bytes
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return jwt.encode(claims, secret, algorithm=algorithm)


def assert_error(
    response: httpx.Response, status: int, message: str | None = None
) -> dict[str, Any]:
    """An error in Outpost's shape: JSON `{status, message[, data]}`, status = the HTTP status."""
    assert response.status_code == status, (
        response.request.url,
        response.status_code,
        response.text,
    )
    content_type = response.headers.get("content-type", "")
    assert content_type.startswith("application/json"), (response.status_code, content_type)
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) <= {"status", "message", "data"}, body
    assert body["status"] == status, body
    assert isinstance(body["message"], str), body
    assert body["message"], body
    if message is not None:
        assert body["message"] == message, body
    return body


def assert_validation(response: httpx.Response, data: object) -> None:
    """422 `validation error` with exactly these details (a list is compared as a set)."""
    body = assert_error(response, 422, "validation error")
    if isinstance(data, list):
        assert isinstance(body.get("data"), list), body
        assert sorted(body["data"]) == sorted(data), body
    else:
        assert body.get("data") == data, body


def ok(response: httpx.Response, status: int = 200) -> Any:
    """The JSON body of a response that must have this status."""
    assert response.status_code == status, (
        response.request.method,
        response.request.url,
        response.status_code,
        response.text,
    )
    assert response.headers.get("content-type", "").startswith("application/json")
    return response.json()


class Api:
    """Requests to the app under test, authenticated as the admin unless told otherwise."""

    def __init__(self, client: httpx.AsyncClient, system: bootstrap.System) -> None:
        self.client = client
        self.system = system

    async def call(
        self,
        method: str,
        path: str,
        *,
        auth: str | None = ADMIN,
        json: Any = UNSET,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Params = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if auth is not None:
            sent["Authorization"] = auth
        if json is not UNSET:
            content = jsonlib.dumps(json).encode()
            sent.setdefault("Content-Type", "application/json")
        pairs = params.items() if isinstance(params, Mapping) else params or ()
        query: Query = [(key, value) for key, value in pairs]
        return await self.client.request(method, path, content=content, headers=sent, params=query)

    async def get(self, path: str, *, auth: str | None = ADMIN, params: Params = None) -> Any:
        return ok(await self.call("GET", path, auth=auth, params=params))

    async def deliver_queued(self, *, failed: bool = False) -> int:
        """No worker runs here: record a successful (or failed) attempt for every queued
        delivery, as the worker would (a retry needs an earlier attempt), and schedule no retry.
        Returns how many were recorded."""
        backend = self.system.backend
        tasks = await backend.claim(1000, 60_000)
        outcomes = [
            Outcome(
                t,
                Attempt(
                    id=unique("atm"),
                    tenant_id=t.event.tenant_id,
                    event_id=t.event.id,
                    destination_id=t.destination_id,
                    destination_type="webhook",
                    topic=t.event.topic,
                    status="failed" if failed else "success",
                    time=int(time.time() * 1000),
                    attempt_number=t.attempt_number,
                    manual=t.manual,
                    code="500" if failed else "200",
                    latency_ms=1,
                ),
                cancel_retry=True,
            )
            for t in tasks
        ]
        await backend.finish(outcomes)
        return len(outcomes)

    async def tenant(self, tenant_id: str | None = None, **body: Any) -> str:
        tenant_id = tenant_id or unique("tenant")
        ok(await self.call("PUT", f"/tenants/{tenant_id}", json=body), 201)
        return tenant_id

    async def destination(
        self,
        tenant_id: str,
        *,
        topics: str | list[str] = "*",
        url: str = HOOK_URL,
        auth: str | None = ADMIN,
        **extra: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "webhook", "topics": topics, "config": {"url": url}}
        body.update(extra)
        created = ok(
            await self.call("POST", f"/tenants/{tenant_id}/destinations", json=body, auth=auth),
            201,
        )
        assert isinstance(created, dict)
        return created

    async def publish(self, tenant_id: str, data: Any = UNSET, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"tenant_id": tenant_id, "data": {"n": 1} if data is UNSET else data}
        body.update(extra)
        published = ok(await self.call("POST", "/publish", json=body), 202)
        assert isinstance(published, dict)
        return published

    async def token(self, tenant_id: str) -> str:
        body = await self.get(f"/tenants/{tenant_id}/token")
        token = body["token"]
        assert isinstance(token, str)
        return token

    async def jwt(self, tenant_id: str) -> str:
        """The `Authorization` value for a tenant, with a token the server issued."""
        return bearer(await self.token(tenant_id))


def load_config(data_dir: Path, env: Mapping[str, str]) -> config.Config:
    return config.load(
        {
            "OUTPOST_DATA_DIR": str(data_dir),
            "API_KEY": API_KEY,
            "API_JWT_SECRET": JWT_SECRET,
            "AES_ENCRYPTION_SECRET": "api-tests-aes-secret",
            "SQLITE_SYNCHRONOUS": "NORMAL",
            "SQLITE_DELIVERY_PROCESS": "false",  # no worker runs here, nor a delivery process
            **env,
        }
    )


@asynccontextmanager
async def running_api(data_dir: Path, env: Mapping[str, str]) -> AsyncIterator[Api]:
    """The app built as `waypost serve` builds it, over a fresh SQLite database; no worker."""
    system = bootstrap.build(load_config(data_dir, env))
    await system.backend.open()
    try:
        transport = httpx.ASGITransport(app=bootstrap.http_app(system))
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield Api(client, system)
    finally:
        await system.registry.close()
        await system.backend.close()
