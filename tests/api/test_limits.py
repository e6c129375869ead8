"""Hostile input: every limit answers its own 4xx in Outpost's error shape.

- body over `API_MAX_REQUEST_BODY_BYTES`: 413;
- request line + headers over `API_MAX_REQUEST_HEADER_BYTES`: 431, then the connection closes
  (checked over a real socket against uvicorn with the server's own protocol class, since the
  in-process transport has no HTTP parser);
- `metadata` / `delivery_metadata` over `MAX_METADATA_KEYS` / `MAX_METADATA_KEY_BYTES` /
  `MAX_METADATA_VALUE_BYTES` on events, tenants and destinations: 422 `validation error`;
- a filter nested deeper than 32 levels: 422;
- page sizes: tenants 1–100, events and attempts 1–1000 (400 outside, as SDK 1.7.0 documents).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import uvicorn

from waypost.api.app import build as build_app
from waypost.api.protocol import server_protocol
from waypost.core import filters

from ._support import ADMIN, HOOK_URL, Api, assert_error, assert_validation, ok, running_api

pytestmark = pytest.mark.anyio

LIMITS = {
    "MAX_METADATA_KEYS": "3",
    "MAX_METADATA_KEY_BYTES": "8",
    "MAX_METADATA_VALUE_BYTES": "16",
    "API_MAX_REQUEST_BODY_BYTES": "4096",
    "API_MAX_REQUEST_HEADER_BYTES": "2048",
}
TOO_MANY = {"a": "1", "b": "2", "c": "3", "d": "4"}
LONG_KEY = {"k" * 9: "v"}
LONG_VALUE = {"k": "é" * 9}  # 9 characters but 18 bytes: sizes are in UTF-8 bytes
AT_THE_LIMITS = {"a" * 8: "v" * 16, "b": "", "c": "x"}
OVER = [
    (TOO_MANY, "{field} must have at most 3 keys"),
    (LONG_KEY, "{field} keys must be at most 8 bytes"),
    (LONG_VALUE, "{field} values must be at most 16 bytes"),
]


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with running_api(tmp_path_factory.mktemp("limits"), LIMITS) as api:
        yield api


async def _destination(api: Api, tenant: str, **extra: Any) -> Any:
    body = {"type": "webhook", "topics": "*", "config": {"url": HOOK_URL}, **extra}
    return await api.call("POST", f"/tenants/{tenant}/destinations", json=body)


class TestMetadata:
    @pytest.mark.parametrize(("metadata", "message"), OVER)
    async def test_event(self, api: Api, metadata: dict[str, str], message: str) -> None:
        tenant = await api.tenant()
        body = {"tenant_id": tenant, "topic": "t", "data": {}, "metadata": metadata}
        response = await api.call("POST", "/publish", json=body)
        assert_validation(response, [message.format(field="metadata")])

    @pytest.mark.parametrize(("metadata", "message"), OVER)
    async def test_tenant(self, api: Api, metadata: dict[str, str], message: str) -> None:
        tenant = await api.tenant()
        response = await api.call("PUT", f"/tenants/{tenant}", json={"metadata": metadata})
        assert_validation(response, [message.format(field="metadata")])
        assert (await api.get(f"/tenants/{tenant}")).get("metadata") is None  # unchanged

    @pytest.mark.parametrize("field", ["metadata", "delivery_metadata"])
    @pytest.mark.parametrize(("metadata", "message"), OVER)
    async def test_destination_create(
        self, api: Api, field: str, metadata: dict[str, str], message: str
    ) -> None:
        tenant = await api.tenant()
        response = await _destination(api, tenant, **{field: metadata})
        assert_validation(response, [message.format(field=field)])
        assert await api.get(f"/tenants/{tenant}/destinations") == []

    @pytest.mark.parametrize("field", ["metadata", "delivery_metadata"])
    async def test_destination_update_counts_the_merged_map(self, api: Api, field: str) -> None:
        tenant = await api.tenant()
        created = ok(await _destination(api, tenant, **{field: {"a": "1", "b": "2"}}), 201)
        path = f"/tenants/{tenant}/destinations/{created['id']}"
        # Two keys already there: two more make four, one over the limit, although the patch
        # itself has only two; deleting one (null) keeps it at three, which is allowed.
        response = await api.call("PATCH", path, json={field: {"c": "3", "d": "4"}})
        assert_validation(response, [f"{field} must have at most 3 keys"])
        patched = ok(await api.call("PATCH", path, json={field: {"a": None, "c": "3", "d": "4"}}))
        assert patched[field] == {"b": "2", "c": "3", "d": "4"}

    async def test_every_limit_reported_at_once(self, api: Api) -> None:
        tenant = await api.tenant()
        metadata = {"k" * 9: "v" * 17, "a": "1", "b": "2", "c": "3"}
        response = await api.call("PUT", f"/tenants/{tenant}", json={"metadata": metadata})
        assert_validation(
            response,
            [
                "metadata must have at most 3 keys",
                "metadata keys must be at most 8 bytes",
                "metadata values must be at most 16 bytes",
            ],
        )

    async def test_at_the_limits_is_accepted(self, api: Api) -> None:
        tenant = await api.tenant(metadata=AT_THE_LIMITS)
        created = ok(
            await _destination(
                api, tenant, metadata=AT_THE_LIMITS, delivery_metadata=AT_THE_LIMITS
            ),
            201,
        )
        assert created["metadata"] == created["delivery_metadata"] == AT_THE_LIMITS
        published = await api.publish(tenant, topic="t", metadata=AT_THE_LIMITS)
        event = await api.get(f"/events/{published['id']}")
        assert event["metadata"] == AT_THE_LIMITS

    async def test_defaults(self, shared_api: Api) -> None:
        """64 keys, 256-byte keys, 4096-byte values unless configured."""
        tenant = await shared_api.tenant()
        fine = {f"k{i}": "v" * 4096 for i in range(63)} | {"x" * 256: "v"}
        ok(await shared_api.call("PUT", f"/tenants/{tenant}", json={"metadata": fine}))
        over = fine | {"one-more": "v"}
        response = await shared_api.call("PUT", f"/tenants/{tenant}", json={"metadata": over})
        assert_validation(response, ["metadata must have at most 64 keys"])


class TestBodyAndPages:
    async def test_body_over_the_limit(self, api: Api) -> None:
        tenant = await api.tenant()
        body = {"tenant_id": tenant, "topic": "t", "data": {"blob": "x" * 4096}}
        response = await api.call("POST", "/publish", json=body)
        assert_error(response, 413, "request body exceeds 4096 bytes")

    async def test_a_destination_body_has_a_smaller_bound(self, shared_api: Api) -> None:
        """A destination past API_MAX_DESTINATION_BODY_BYTES (256 KiB) is refused unread, while
        events may still be as large as API_MAX_REQUEST_BODY_BYTES (1 MiB)."""
        tenant = await shared_api.tenant()
        filter = {"data": {"tag": {"$in": ["v" * 100] * 3000}}}  # ~310 KB
        response = await _destination(shared_api, tenant, filter=filter)
        assert_error(response, 413, "request body exceeds 262144 bytes")
        created = ok(await _destination(shared_api, tenant), 201)
        patched = await shared_api.call(
            "PATCH", f"/tenants/{tenant}/destinations/{created['id']}", json={"filter": filter}
        )
        assert_error(patched, 413, "request body exceeds 262144 bytes")
        event = {"tenant_id": tenant, "topic": "t", "data": {"blob": "x" * 400_000}}
        ok(await shared_api.call("POST", "/publish", json=event), 202)

    async def test_filter_depth(self, api: Api) -> None:
        tenant = await api.tenant()
        deep: dict[str, Any] = {"leaf": 1}
        for _ in range(filters.MAX_DEPTH):  # one level more than allowed
            deep = {"k": deep}
        response = await _destination(api, tenant, filter=deep)
        message = f"filter is too deeply nested (more than {filters.MAX_DEPTH} levels)"
        assert_validation(response, [message])
        ok(await _destination(api, tenant, filter=deep["k"]), 201)

    @pytest.mark.parametrize("limit", ["0", "101"])
    async def test_tenant_page_size(self, api: Api, limit: str) -> None:
        response = await api.call("GET", "/tenants", params={"limit": limit})
        assert_error(response, 400, "invalid limit: must be between 1 and 100")

    @pytest.mark.parametrize("path", ["/events", "/attempts"])
    @pytest.mark.parametrize("limit", ["0", "1001", "-1", "1000000"])
    async def test_log_page_size_out_of_range(self, api: Api, path: str, limit: str) -> None:
        response = await api.call("GET", path, params={"limit": limit})
        assert_error(response, 400, "invalid limit: must be between 1 and 1000")

    @pytest.mark.parametrize("path", ["/events", "/attempts"])
    async def test_log_page_size_not_a_number(self, api: Api, path: str) -> None:
        response = await api.call("GET", path, params={"limit": "abc"})
        assert_error(response, 400, "invalid limit: must be an integer")

    @pytest.mark.parametrize("path", ["/events", "/attempts"])
    async def test_log_page_size_bounds_are_accepted(self, api: Api, path: str) -> None:
        for limit in (1, 1000):
            body = await api.get(path, params={"limit": str(limit)})
            assert body["pagination"]["limit"] == limit


class TestNulCharacters:
    """PostgreSQL cannot store U+0000 in text: refused up front in every mode, never a 503."""

    async def test_in_the_query(self, api: Api) -> None:
        response = await api.call("GET", "/events", params={"tenant_id": "a\x00b"})
        assert_error(response, 400, "NUL characters are not allowed in the request target")

    async def test_in_the_path(self, api: Api) -> None:
        response = await api.call("PUT", "/tenants/a%00b")
        assert_error(response, 400, "NUL characters are not allowed in the request target")

    @pytest.mark.parametrize(
        "raw",
        [
            b'{"tenant_id": "t\\u0000", "topic": "t", "data": {}}',
            b'{"tenant_id": "t", "topic": "t", "data": {"k": "\\\\\\u0000"}}',
        ],
        ids=["escaped", "after-an-escaped-backslash"],
    )
    async def test_in_a_json_body(self, api: Api, raw: bytes) -> None:
        headers = {"Content-Type": "application/json"}
        response = await api.call("POST", "/publish", content=raw, headers=headers)
        body = assert_error(response, 422, "invalid JSON")
        assert body["data"] == ["NUL characters (\\u0000) are not allowed"]

    async def test_an_escaped_backslash_before_u0000_is_text(self, api: Api) -> None:
        tenant = await api.tenant()
        published = await api.publish(tenant, {"k": "\\u0000"}, topic="t")  # backslash, u0000
        event = await api.get(f"/events/{published['id']}")
        assert event["data"] == {"k": "\\u0000"}


# --- the request head, over a real socket -------------------------------------------------------


@pytest.fixture(scope="module")
async def listening(api: Api) -> AsyncIterator[int]:
    """The same app behind uvicorn with the server's protocol class, on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(api.system.services),
            host="127.0.0.1",
            port=port,
            http=server_protocol(2048),
            lifespan="off",
            log_level="error",
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield port
    server.should_exit = True
    await task


async def _exchange(port: int, request: bytes) -> bytes:
    """Send `request` (as far as the server lets us) and read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def send() -> None:
        try:
            writer.write(request)
            await writer.drain()
        except ConnectionError:
            pass  # the server answered and closed while we were still sending

    sending = asyncio.create_task(send())
    try:
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        sending.cancel()
        writer.close()


def _parse(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return status, headers, msgspec.json.decode(body) if body else None


class TestRequestHead:
    @pytest.mark.parametrize(
        "request_bytes",
        [
            b"GET /api/v1/tenants HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n",
            b"GET /api/v1/" + b"u" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            # many small headers, and a head that never ends: the bytes are counted as they come
            b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(400)) + b"\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Endless: " + b"a" * 200_000,
        ],
        ids=["one-big-header", "long-url", "many-headers", "unterminated"],
    )
    async def test_oversized_head_gets_431_and_close(
        self, listening: int, request_bytes: bytes
    ) -> None:
        raw = await _exchange(listening, request_bytes)
        status, headers, body = _parse(raw)
        assert status == 431
        assert headers["connection"] == "close"
        assert headers["content-type"].startswith("application/json")
        assert body == {"status": 431, "message": "request header fields too large"}

    async def test_a_head_under_the_limit_with_a_big_body_is_served(
        self, api: Api, listening: int
    ) -> None:
        """Only the head counts: a body arriving in the same packets is not part of it."""
        tenant = await api.tenant()
        payload = msgspec.json.encode(
            {"tenant_id": tenant, "topic": "t", "data": {"x": "y" * 3500}}
        )
        request = (
            b"POST /api/v1/publish HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: " + ADMIN.encode() + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
        )
        status, _, body = _parse(await _exchange(listening, request))
        assert status == 202, body

    async def test_connection_keeps_working_after_a_normal_request(self, listening: int) -> None:
        """Pipelined requests under the limit: each head is counted on its own."""
        one = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 1500 + b"\r\n\r\n"
        last = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        raw = await _exchange(listening, one + one + last)
        assert raw.count(b"HTTP/1.1 200") == 3, raw
