"""Rejected requests: exact statuses and messages of the contract.md §1.3 error catalogue.

Plus what the project adds on top of Outpost: 415 for a body that is not JSON by its
Content-Type, 413 above `API_MAX_REQUEST_BODY_BYTES`, and a JSON 404 for any unknown /api path
or method.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ._support import ADMIN, HOOK_URL, UNSET, Api, assert_error, assert_validation, ok, running_api
from .conftest import MakeApi

pytestmark = pytest.mark.anyio

TOPICS = "user.created,user.updated,order.created"
INVALID_JSON = "invalid JSON"


def _future() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")


def _past() -> str:
    return (datetime.now(UTC) - timedelta(days=1)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def api(shared_api: Api) -> Api:
    """Every test here uses tenants of its own, so one app per module will do."""
    return shared_api


@pytest.fixture(scope="module")
async def topics_api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with running_api(tmp_path_factory.mktemp("topics"), {"TOPICS": TOPICS}) as api:
        yield api


@pytest.fixture
async def tenant(api: Api) -> AsyncIterator[str]:
    yield await api.tenant()


class TestPublish:
    @pytest.mark.parametrize(
        "raw",
        [b"", b"   ", b"{", b"not json", b"[]", b'"text"', b"42", b'{"tenant_id":'],
        ids=["empty", "blank", "truncated", "garbage", "array", "string", "number", "eof"],
    )
    async def test_unparsable_or_non_object_body(self, api: Api, raw: bytes) -> None:
        response = await api.call(
            "POST", "/publish", content=raw, headers={"Content-Type": "application/json"}
        )
        assert_error(response, 422, INVALID_JSON)

    @pytest.mark.parametrize(
        ("body", "messages"),
        [
            ({"data": {"a": 1}}, ["tenant_id is required"]),
            ({"tenant_id": "", "data": {"a": 1}}, ["tenant_id is required"]),
            ({"tenant_id": "t1"}, ["data is required"]),
            ({}, ["tenant_id is required", "data is required"]),
        ],
        ids=["no-tenant", "empty-tenant", "no-data", "neither"],
    )
    async def test_required_fields(self, api: Api, body: Any, messages: list[str]) -> None:
        assert_validation(await api.call("POST", "/publish", json=body), messages)

    @pytest.mark.parametrize("data", [None, "text", 42, 1.5, True, [1, 2], []], ids=repr)
    async def test_data_must_be_an_object(self, api: Api, data: Any) -> None:
        response = await api.call("POST", "/publish", json={"tenant_id": "t1", "data": data})
        assert_validation(response, ["data must be a valid JSON object"])

    @pytest.mark.parametrize(
        "metadata",
        [{"n": 1}, {"b": True}, {"o": {"x": "y"}}, {"l": ["a"]}, "text", ["a"]],
        ids=["number", "bool", "object", "list", "string", "array"],
    )
    async def test_metadata_must_be_strings(self, api: Api, metadata: Any) -> None:
        body = {"tenant_id": "t1", "data": {}, "metadata": metadata}
        assert_error(await api.call("POST", "/publish", json=body), 422, INVALID_JSON)

    @pytest.mark.parametrize(
        ("field", "value"),
        [("tenant_id", 5), ("id", 5), ("topic", ["a"]), ("eligible_for_retry", "yes")],
    )
    async def test_wrongly_typed_fields(self, api: Api, field: str, value: Any) -> None:
        body = {"tenant_id": "t1", "data": {}, field: value}
        assert_error(await api.call("POST", "/publish", json=body), 422, INVALID_JSON)

    async def test_unparsable_time(self, api: Api) -> None:
        body = {"tenant_id": "t1", "data": {}, "time": "yesterday"}
        assert_error(await api.call("POST", "/publish", json=body), 422)

    async def test_unknown_fields_are_ignored(self, api: Api) -> None:
        body = {"tenant_id": "t1", "data": {}, "colour": "blue"}
        assert ok(await api.call("POST", "/publish", json=body), 202)["destination_ids"] == []

    @pytest.mark.parametrize(
        ("topic", "messages"),
        [
            (UNSET, ["topic is required"]),
            ("", ["topic is required"]),
            ("user.deleted", ["topic is invalid"]),
            ("user.*", ["topic is invalid"]),
            ("USER.CREATED", ["topic is invalid"]),
            (" user.created", ["topic is invalid"]),
        ],
        ids=["missing", "empty", "unknown", "pattern", "case", "space"],
    )
    async def test_topic_rules_when_topics_are_configured(
        self, topics_api: Api, topic: Any, messages: list[str]
    ) -> None:
        body: dict[str, Any] = {"tenant_id": "t1", "data": {}}
        if topic is not UNSET:
            body["topic"] = topic
        assert_validation(await topics_api.call("POST", "/publish", json=body), messages)

    @pytest.mark.parametrize("topic", ["user.created", "order.created", "*"])
    async def test_accepted_topics_when_topics_are_configured(
        self, topics_api: Api, topic: str
    ) -> None:
        await topics_api.publish("t1", topic=topic)

    @pytest.mark.parametrize("topic", [UNSET, "", "anything.at.all", "user.*"])
    async def test_any_topic_without_configured_topics(self, api: Api, topic: Any) -> None:
        extra = {} if topic is UNSET else {"topic": topic}
        await api.publish("t1", **extra)


class TestDestinationCreate:
    async def create(self, api: Api, tenant: str, body: Any, auth: str | None = ADMIN) -> Any:
        return await api.call("POST", f"/tenants/{tenant}/destinations", json=body, auth=auth)

    @pytest.mark.parametrize(
        ("body", "messages"),
        [
            ({"topics": "*", "config": {"url": HOOK_URL}}, ["type is required"]),
            ({"type": "webhook", "config": {"url": HOOK_URL}}, ["topics is required"]),
            ({"config": {"url": HOOK_URL}}, ["type is required", "topics is required"]),
            ({"type": None, "topics": "*", "config": {"url": HOOK_URL}}, ["type is required"]),
        ],
        ids=["no-type", "no-topics", "neither", "null-type"],
    )
    async def test_required_fields(
        self, api: Api, tenant: str, body: Any, messages: list[str]
    ) -> None:
        assert_validation(await self.create(api, tenant, body), messages)

    @pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"42"], ids=repr)
    async def test_unparsable_body(self, api: Api, tenant: str, raw: bytes) -> None:
        response = await api.call(
            "POST",
            f"/tenants/{tenant}/destinations",
            content=raw,
            headers={"Content-Type": "application/json"},
        )
        assert_error(response, 422, INVALID_JSON)

    @pytest.mark.parametrize(
        ("topics", "message"),
        [
            ([], "validation failed: invalid topics"),
            (["*", "user.created"], "validation failed: invalid topics"),
            (["user.*"], "validation failed: invalid topics"),  # wildcards not allowed
            ("user.created", "validation failed: invalid topics format"),
            ("", "validation failed: invalid topics format"),
            (5, "validation failed: invalid topics format"),
            ({"a": 1}, "validation failed: invalid topics format"),
            ([1, 2], "validation failed: invalid topics format"),
        ],
        ids=repr,
    )
    async def test_invalid_topics(self, api: Api, tenant: str, topics: Any, message: str) -> None:
        body = {"type": "webhook", "topics": topics, "config": {"url": HOOK_URL}}
        assert_error(await self.create(api, tenant, body), 422, message)

    @pytest.mark.parametrize(
        ("topics", "allow_wildcards", "valid"),
        [
            (["user.created"], "false", True),
            (["user.created", "order.created"], "false", True),
            (["user.deleted"], "false", False),
            (["user.created", "nope"], "false", False),
            (["user.*"], "false", False),
            (["user.*"], "true", True),
            (["*.created"], "true", True),
            (["billing.*"], "true", False),  # matches no configured topic
            (["*", "user.created"], "true", False),
        ],
        ids=repr,
    )
    async def test_topics_against_configured_topics(
        self, make_api: MakeApi, topics: list[str], allow_wildcards: str, valid: bool
    ) -> None:
        api = await make_api(TOPICS=TOPICS, TOPICS_ALLOW_WILDCARDS=allow_wildcards)
        tenant = await api.tenant()
        body = {"type": "webhook", "topics": topics, "config": {"url": HOOK_URL}}
        response = await self.create(api, tenant, body)
        if valid:
            ok(response, 201)
        else:
            assert_error(response, 422, "validation failed: invalid topics")

    async def test_unknown_type(self, api: Api, tenant: str) -> None:
        body = {"type": "carrier_pigeon", "topics": "*", "config": {}}
        assert_error(
            await self.create(api, tenant, body),
            422,
            "no provider registered for destination type: carrier_pigeon",
        )

    @pytest.mark.parametrize(
        ("config", "messages"),
        [
            ({}, ["config.url is required"]),
            (UNSET, ["config.url is required"]),
            ({"url": "ftp://example.com/x"}, ["config.url failed pattern validation"]),
            ({"url": "https://exa mple.com"}, ["config.url failed pattern validation"]),
        ],
        ids=["empty", "absent", "scheme", "space"],
    )
    async def test_webhook_config_validation(
        self, api: Api, tenant: str, config: Any, messages: list[str]
    ) -> None:
        body: dict[str, Any] = {"type": "webhook", "topics": "*"}
        if config is not UNSET:
            body["config"] = config
        assert_validation(await self.create(api, tenant, body), messages)

    @pytest.mark.parametrize("field", ["created_at", "updated_at", "disabled_at"])
    async def test_timestamps_in_the_future(self, api: Api, tenant: str, field: str) -> None:
        body = {"type": "webhook", "topics": "*", "config": {"url": HOOK_URL}, field: _future()}
        assert_error(await self.create(api, tenant, body), 422, f"{field} cannot be in the future")

    @pytest.mark.parametrize("field", ["created_at", "updated_at"])
    async def test_jwt_may_not_set_created_or_updated_at(
        self, api: Api, tenant: str, field: str
    ) -> None:
        body = {"type": "webhook", "topics": "*", "config": {"url": HOOK_URL}, field: _past()}
        response = await self.create(api, tenant, body, auth=await api.jwt(tenant))
        assert_error(
            response, 403, "created_at and updated_at can only be set with API key authentication"
        )
        assert await api.get(f"/tenants/{tenant}/destinations") == []

    async def test_jwt_may_set_disabled_at(self, api: Api, tenant: str) -> None:
        when = "2024-05-06T07:08:09.123Z"
        body = {"type": "webhook", "topics": "*", "config": {"url": HOOK_URL}, "disabled_at": when}
        created = ok(await self.create(api, tenant, body, auth=await api.jwt(tenant)), 201)
        assert created["disabled_at"] == when

    async def test_duplicate_id(self, api: Api, tenant: str) -> None:
        await api.destination(tenant, id="dup")
        body = {"id": "dup", "type": "webhook", "topics": "*", "config": {"url": HOOK_URL}}
        assert_error(await self.create(api, tenant, body), 400, "destination already exists")
        assert len(await api.get(f"/tenants/{tenant}/destinations")) == 1

    async def test_max_destinations_per_tenant(self, make_api: MakeApi) -> None:
        api = await make_api(MAX_DESTINATIONS_PER_TENANT="2")
        tenant = await api.tenant()
        first = await api.destination(tenant)
        await api.destination(tenant)
        body = {"type": "webhook", "topics": "*", "config": {"url": HOOK_URL}}
        assert_error(
            await self.create(api, tenant, body),
            400,
            "maximum number of destinations per tenant reached",
        )
        # The limit is per tenant, and deleting one frees its place.
        await api.destination(await api.tenant())
        ok(await api.call("DELETE", f"/tenants/{tenant}/destinations/{first['id']}"))
        await api.destination(tenant)


class TestDestinationUpdate:
    @pytest.fixture
    async def dest(self, api: Api, tenant: str) -> str:
        created = await api.destination(tenant)
        return f"/tenants/{tenant}/destinations/{created['id']}"

    async def test_type_cannot_change(self, api: Api, dest: str) -> None:
        response = await api.call("PATCH", dest, json={"type": "aws_sqs"})
        assert_error(response, 422, "type cannot be updated")
        assert (await api.get(dest))["type"] == "webhook"

    async def test_same_type_is_fine(self, api: Api, dest: str) -> None:
        ok(await api.call("PATCH", dest, json={"type": "webhook"}))

    async def test_disabled_at_in_the_future(self, api: Api, dest: str) -> None:
        response = await api.call("PATCH", dest, json={"disabled_at": _future()})
        assert_error(response, 422, "disabled_at cannot be in the future")
        assert (await api.get(dest))["disabled_at"] is None

    async def test_unparsable_disabled_at(self, api: Api, dest: str) -> None:
        assert_error(await api.call("PATCH", dest, json={"disabled_at": "soon"}), 422)

    @pytest.mark.parametrize(
        ("topics", "message"),
        [
            ([], "validation failed: invalid topics"),
            ("user.created", "validation failed: invalid topics format"),
        ],
        ids=repr,
    )
    async def test_invalid_topics(self, api: Api, dest: str, topics: Any, message: str) -> None:
        assert_error(await api.call("PATCH", dest, json={"topics": topics}), 422, message)
        assert (await api.get(dest))["topics"] == ["*"]

    async def test_config_cannot_lose_its_url(self, api: Api, dest: str) -> None:
        assert_validation(
            await api.call("PATCH", dest, json={"config": None}), ["config.url is required"]
        )
        assert_validation(
            await api.call("PATCH", dest, json={"config": {"url": None}}),
            ["config.url is required"],
        )
        assert (await api.get(dest))["config"] == {"url": HOOK_URL}

    async def test_unparsable_body(self, api: Api, dest: str) -> None:
        response = await api.call(
            "PATCH", dest, content=b"{", headers={"Content-Type": "application/json"}
        )
        assert_error(response, 422, INVALID_JSON)

    async def test_unknown_destination(self, api: Api, tenant: str) -> None:
        for method, suffix in (
            ("GET", ""),
            ("PATCH", ""),
            ("DELETE", ""),
            ("PUT", "/enable"),
            ("PUT", "/disable"),
            ("GET", "/attempts"),
            ("GET", "/attempts/atm_1"),
        ):
            response = await api.call(
                method,
                f"/tenants/{tenant}/destinations/nope{suffix}",
                json={} if method == "PATCH" else UNSET,
            )
            assert_error(response, 404, "destination not found")


class TestListQueries:
    LOGS = ["/events", "/attempts", "/tenants/{t}/destinations/d1/attempts"]

    @pytest.fixture
    async def paths(self, api: Api, tenant: str) -> list[str]:
        await api.destination(tenant, id="d1")  # an unknown destination's attempts are a 404
        return [p.format(t=tenant) for p in self.LOGS]

    @pytest.mark.parametrize("value", ["up", "ascending", "1"])
    async def test_bad_dir(self, api: Api, paths: list[str], value: str) -> None:
        for path in paths:
            response = await api.call("GET", path, params={"dir": value})
            assert_validation(response, {"query.dir": "must be 'asc' or 'desc'"})

    @pytest.mark.parametrize("value", ["created_at", "id"])
    async def test_bad_order_by(self, api: Api, paths: list[str], value: str) -> None:
        for path in paths:
            response = await api.call("GET", path, params={"order_by": value})
            assert_validation(response, {"query.order_by": "must be one of: [time]"})

    @pytest.mark.parametrize("op", ["gte", "lte", "gt", "lt"])
    @pytest.mark.parametrize("value", ["yesterday", "2024-13-01", "01/02/2024", "1700000000"])
    async def test_bad_time(self, api: Api, paths: list[str], op: str, value: str) -> None:
        for path in paths:
            response = await api.call("GET", path, params={f"time[{op}]": value})
            body = assert_error(response, 422, "validation error")
            assert list(body["data"]) == [f"query.time[{op}]"], body
            detail = body["data"][f"query.time[{op}]"]
            assert detail.startswith("invalid format, expected RFC3339 (e.g. "), detail
            assert detail.endswith(") or YYYY-MM-DD"), detail

    @pytest.mark.parametrize(
        "value", ["2024-01-01", "2024-01-01T00:00:00Z", "2024-01-01T02:00:00.5+02:00"]
    )
    async def test_good_time(self, api: Api, paths: list[str], value: str) -> None:
        for path in paths:
            ok(await api.call("GET", path, params={"time[gte]": value, "time[lt]": value}))

    async def test_time_any(self, api: Api, paths: list[str]) -> None:
        for path in paths:
            response = await api.call("GET", path, params={"time[any]": "2024-01-01"})
            assert_error(
                response, 400, "operator 'any' is not supported, use 'gte', 'lte', 'gt', or 'lt'"
            )

    async def test_next_and_prev(self, api: Api, paths: list[str]) -> None:
        for path in [*paths, "/tenants"]:
            response = await api.call("GET", path, params={"next": "abc", "prev": "def"})
            assert_error(response, 400, "cannot specify both 'next' and 'prev' cursors")

    @pytest.mark.parametrize("cursor", ["garbage!", "x", "AAAA", "%%%"])
    @pytest.mark.parametrize("which", ["next", "prev"])
    async def test_malformed_cursor(
        self, api: Api, paths: list[str], which: str, cursor: str
    ) -> None:
        for path in [*paths, "/tenants"]:
            response = await api.call("GET", path, params={which: cursor})
            body = assert_error(response, 400)
            assert body["message"] == "invalid cursor" or body["message"].startswith(
                "cursor version mismatch"
            ), body

    async def test_cursor_of_another_list(self, api: Api) -> None:
        """A tenants cursor is not an events cursor."""
        for _ in range(3):
            await api.tenant()
        cursor = (await api.get("/tenants", params={"limit": "1"}))["pagination"]["next"]
        assert cursor
        response = await api.call("GET", "/events", params={"next": cursor})
        body = assert_error(response, 400)
        assert body["message"] == "invalid cursor" or body["message"].startswith(
            "cursor version mismatch"
        ), body

    @pytest.mark.parametrize(
        ("limit", "message"),
        [
            ("0", "invalid limit: must be between 1 and 100"),
            ("101", "invalid limit: must be between 1 and 100"),
            ("-5", "invalid limit: must be between 1 and 100"),
            ("abc", "invalid limit: must be an integer"),
            ("1.5", "invalid limit: must be an integer"),
        ],
    )
    async def test_tenants_limit(self, api: Api, limit: str, message: str) -> None:
        assert_error(await api.call("GET", "/tenants", params={"limit": limit}), 400, message)

    @pytest.mark.parametrize("limit", ["1", "100"])
    async def test_tenants_limit_bounds(self, api: Api, limit: str) -> None:
        body = await api.get("/tenants", params={"limit": limit})
        assert body["pagination"]["limit"] == int(limit)

    @pytest.mark.parametrize("limit", ["0", "-1", "abc", "1001", "5000", "1.5"])
    async def test_log_limit_outside_1_to_1000_is_refused(
        self, api: Api, paths: list[str], limit: str
    ) -> None:
        for path in paths:
            response = await api.call("GET", path, params={"limit": limit})
            body = assert_error(response, 400)
            assert body["message"].startswith("invalid limit: must be"), body

    async def test_log_limit_default_and_bounds(self, api: Api, paths: list[str]) -> None:
        for path in paths:
            assert (await api.get(path))["pagination"]["limit"] == 100
            for limit in (1, 7, 1000):
                body = await api.get(path, params={"limit": str(limit)})
                assert body["pagination"]["limit"] == limit


class TestTransport:
    ROUTES = [
        ("POST", "/publish"),
        ("PUT", "/tenants/{t}"),
        ("POST", "/tenants/{t}/destinations"),
        ("POST", "/retry"),
    ]

    @pytest.mark.parametrize(("method", "path"), ROUTES)
    @pytest.mark.parametrize(
        "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
    )
    async def test_wrong_content_type(
        self, api: Api, tenant: str, method: str, path: str, content_type: str
    ) -> None:
        body = b'{"tenant_id":"t1","data":{},"type":"webhook","topics":"*"}'
        response = await api.call(
            method, path.format(t=tenant), content=body, headers={"Content-Type": content_type}
        )
        assert_error(response, 415)

    @pytest.mark.parametrize(
        "content_type",
        ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON"],
    )
    async def test_json_content_types(self, api: Api, content_type: str) -> None:
        response = await api.call(
            "POST",
            "/publish",
            content=b'{"tenant_id":"t1","data":{}}',
            headers={"Content-Type": content_type},
        )
        ok(response, 202)

    async def test_body_over_the_limit(self, make_api: MakeApi) -> None:
        api = await make_api(API_MAX_REQUEST_BODY_BYTES="1024")
        small = {"tenant_id": "t1", "data": {"pad": "x" * 900}}
        ok(await api.call("POST", "/publish", json=small), 202)
        big = {"tenant_id": "t1", "data": {"pad": "x" * 1100}}
        assert_error(await api.call("POST", "/publish", json=big), 413)
        tenant = await api.tenant()
        body = {"type": "webhook", "topics": "*", "config": {"url": HOOK_URL}, "pad": "x" * 2000}
        assert_error(await api.call("POST", f"/tenants/{tenant}/destinations", json=body), 413)
        assert await api.get(f"/tenants/{tenant}/destinations") == []

    async def test_streamed_body_over_the_limit(self, make_api: MakeApi) -> None:
        """Without a Content-Length the limit still holds."""
        api = await make_api(API_MAX_REQUEST_BODY_BYTES="1024")

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"tenant_id":"t1","data":{"pad":"'
            for _ in range(20):
                yield b"x" * 100
            yield b'"}}'

        response = await api.client.request(
            "POST",
            "/publish",
            content=chunks(),
            headers={"Authorization": f"Bearer {api.system.config.api_key}"},
        )
        assert "content-length" not in response.request.headers
        assert_error(response, 413)

    @pytest.mark.parametrize(
        "url",
        [
            "/api/v1/nope",
            "/api/v1/tenants/t1/nope",
            "/api/v1/tenants/t1/destinations/d1/nope",
            "/api/v2/tenants",
            "/api/v1",
            "/api/v1/",
            "/api/v1/metrics/unknown",
        ],
    )
    @pytest.mark.parametrize("authorised", [True, False])
    async def test_unknown_api_path(self, api: Api, url: str, authorised: bool) -> None:
        kwargs: dict[str, Any] = {} if authorised else {"auth": None}
        response = await api.call("GET", "http://testserver" + url, **kwargs)
        assert_error(response, 404, "not found")

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("POST", "/topics"),
            ("DELETE", "/topics"),
            ("GET", "/publish"),
            ("PUT", "/publish"),
            ("POST", "/tenants"),
            ("DELETE", "/tenants"),
            ("POST", "/tenants/t1"),
            ("PATCH", "/tenants/t1"),
            ("PUT", "/tenants/t1/destinations"),
            ("POST", "/tenants/t1/destinations/d1"),
            ("GET", "/tenants/t1/destinations/d1/enable"),
            ("POST", "/tenants/t1/destinations/d1/disable"),
            ("POST", "/events"),
            ("DELETE", "/events/e1"),
            ("GET", "/retry"),
        ],
    )
    async def test_wrong_method(self, api: Api, method: str, path: str) -> None:
        response = await api.call(method, path, json={})
        assert_error(response, 404, "not found")


class TestRetry:
    """`POST /retry` refusals (contract.md §1.6.19); a retry only repeats an earlier attempt (SDK
    1.7.0)."""

    async def retry(self, api: Api, body: Any) -> Any:
        return await api.call("POST", "/retry", json=body)

    @pytest.mark.parametrize(
        ("body", "messages"),
        [
            ({}, ["event_id is required", "destination_id is required"]),
            ({"event_id": "e1"}, ["destination_id is required"]),
            ({"destination_id": "d1"}, ["event_id is required"]),
            ({"event_id": "", "destination_id": "d1"}, ["event_id is required"]),
        ],
        ids=["neither", "no-destination", "no-event", "empty-event"],
    )
    async def test_required_fields(self, api: Api, body: Any, messages: list[str]) -> None:
        assert_validation(await self.retry(api, body), messages)

    async def test_unparsable_body(self, api: Api) -> None:
        response = await api.call(
            "POST", "/retry", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert_error(response, 422, INVALID_JSON)

    async def test_refusals(self, api: Api, tenant: str) -> None:
        event = (await api.publish(tenant, topic="user.created", data={"amount": 5}))["id"]
        body = {"event_id": event}
        unknown = await self.retry(api, {"event_id": "no-such-event", "destination_id": "d"})
        assert_error(unknown, 404, "event not found")
        missing = await self.retry(api, {**body, "destination_id": "no-such-destination"})
        assert_error(missing, 404, "destination not found")

        other_topic = await api.destination(tenant, topics=["user.deleted"])
        mismatch = await self.retry(api, {**body, "destination_id": other_topic["id"]})
        assert_error(mismatch, 400, "destination does not match event")

        filtered = await api.destination(tenant, filter={"data": {"amount": {"$gte": 100}}})
        mismatch = await self.retry(api, {**body, "destination_id": filtered["id"]})
        assert_error(mismatch, 400, "destination does not match event")

        star = await api.destination(tenant)
        never_attempted = await self.retry(api, {**body, "destination_id": star["id"]})
        error = assert_error(never_attempted, 400)
        assert error["data"] == {"error": "no_prior_attempt"}
        later = (await api.publish(tenant, topic="user.created", data={"amount": 5}))["id"]
        assert await api.deliver_queued() == 1  # to `star`, the one destination it matched
        body = {"event_id": later}
        assert ok(await self.retry(api, {**body, "destination_id": star["id"]}), 202) == {
            "success": True
        }
        path = f"/tenants/{tenant}/destinations/{star['id']}"
        ok(await api.call("PUT", path + "/disable"))
        disabled = await self.retry(api, {**body, "destination_id": star["id"]})
        error = assert_error(disabled, 400, "Destination is disabled")
        assert error["data"] == {"error": "destination_disabled"}
        ok(await api.call("DELETE", path))
        deleted = await self.retry(api, {**body, "destination_id": star["id"]})
        assert_error(deleted, 404, "destination not found")
