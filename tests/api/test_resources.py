"""Resource behaviour through the HTTP API: tenants, destinations, publish, events and the
small endpoints (contract.md §0.1, §1.5, §1.6, §2, §7.1).

No delivery worker runs: publishing is checked up to the response, the matching and the stored
event; deliveries and attempts are the end-to-end suite's business.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import jwt
import pytest

from ._support import (
    API_KEY,
    HOOK_URL,
    JWT_SECRET,
    TOKEN_LIFETIME,
    UNSET,
    Api,
    assert_error,
    assert_validation,
    bearer,
    ok,
    running_api,
    unique,
)
from .conftest import MakeApi

pytestmark = pytest.mark.anyio

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
DESTINATION_KEYS = {
    "id",
    "tenant_id",
    "type",
    "topics",
    "config",
    "credentials",
    "created_at",
    "updated_at",
    "disabled_at",
    "target",
}


def when(text: str) -> datetime:
    assert TIMESTAMP.match(text), text
    return datetime.fromisoformat(text)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def tick() -> None:
    """Let the millisecond clock move on, so that timestamps can be told apart."""
    await anyio.sleep(0.003)


@pytest.fixture(scope="module")
async def wild_api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    """Wildcard destination topics allowed (TOPICS unset)."""
    env = {"TOPICS_ALLOW_WILDCARDS": "true"}
    async with running_api(tmp_path_factory.mktemp("wild"), env) as api:
        yield api


def dest_path(tenant: str, dest: dict[str, Any] | str, suffix: str = "") -> str:
    dest_id = dest if isinstance(dest, str) else dest["id"]
    return f"/tenants/{tenant}/destinations/{dest_id}{suffix}"


# ----------------------------------------------------------------------------------------------
# Tenants


class TestTenants:
    async def test_upsert_creates_then_updates(self, shared_api: Api) -> None:
        api = shared_api
        tenant = unique("t")
        created = ok(await api.call("PUT", f"/tenants/{tenant}"), 201)
        assert created == {
            "id": tenant,
            "destinations_count": 0,
            "topics": [],
            "created_at": created["created_at"],
            "updated_at": created["created_at"],
        }
        when(created["created_at"])
        await tick()
        updated = ok(await api.call("PUT", f"/tenants/{tenant}", json={"metadata": {"a": "1"}}))
        assert updated["created_at"] == created["created_at"]
        assert when(updated["updated_at"]) > when(created["updated_at"])
        assert updated["metadata"] == {"a": "1"}
        assert await api.get(f"/tenants/{tenant}") == updated

    async def test_metadata_is_replaced_not_merged(self, shared_api: Api) -> None:
        api = shared_api
        tenant = unique("t")
        path = f"/tenants/{tenant}"
        first = ok(await api.call("PUT", path, json={"metadata": {"a": "1", "b": "2"}}), 201)
        assert first["metadata"] == {"a": "1", "b": "2"}
        second = ok(await api.call("PUT", path, json={"metadata": {"c": "3"}}))
        assert second["metadata"] == {"c": "3"}
        clearings: list[Any] = [{"metadata": None}, {}, {"metadata": {}}, UNSET]
        for clearing in clearings:
            ok(await api.call("PUT", path, json={"metadata": {"x": "y"}}))
            cleared = ok(await api.call("PUT", path, json=clearing))
            assert "metadata" not in cleared, (clearing, cleared)
            assert "metadata" not in await api.get(path)

    async def test_metadata_values_are_coerced_to_strings(self, shared_api: Api) -> None:
        metadata = {
            "s": "text",
            "t": True,
            "f": False,
            "i": 5,
            "neg": -3,
            "x": 1.5,
            "whole": 10.0,
            "z": None,
            "arr": [1, "a"],
            "obj": {"k": 1},
        }
        tenant = unique("t")
        body = ok(
            await shared_api.call("PUT", f"/tenants/{tenant}", json={"metadata": metadata}), 201
        )
        expected = {
            "s": "text",
            "t": "true",
            "f": "false",
            "i": "5",
            "neg": "-3",
            "x": "1.5",
            "whole": "10",
            "z": "",
            "arr": '[1,"a"]',
            "obj": '{"k":1}',
        }
        assert body["metadata"] == expected
        assert (await shared_api.get(f"/tenants/{tenant}"))["metadata"] == expected

    @pytest.mark.parametrize("metadata", ["text", ["a"], 5])
    async def test_metadata_must_be_an_object(self, shared_api: Api, metadata: Any) -> None:
        tenant = unique("t")
        response = await shared_api.call("PUT", f"/tenants/{tenant}", json={"metadata": metadata})
        assert_error(response, 422)
        assert_error(await shared_api.call("GET", f"/tenants/{tenant}"), 404, "tenant not found")

    async def test_destinations_count_and_topics(self, wild_api: Api) -> None:
        api = wild_api
        tenant = await api.tenant()
        first = await api.destination(tenant, topics=["user.updated", "a.b"])
        await api.destination(tenant, topics=["order.*"])
        disabled = await api.destination(tenant, topics=["zeta"])
        ok(await api.call("PUT", dest_path(tenant, disabled, "/disable")))
        body = await api.get(f"/tenants/{tenant}")
        assert body["destinations_count"] == 3
        assert body["topics"] == ["a.b", "order.*", "user.updated", "zeta"]
        star = await api.destination(tenant, topics="*")
        body = await api.get(f"/tenants/{tenant}")
        assert (body["destinations_count"], body["topics"]) == (4, ["*"])
        ok(await api.call("DELETE", dest_path(tenant, star)))
        ok(await api.call("DELETE", dest_path(tenant, first)))
        body = await api.get(f"/tenants/{tenant}")
        assert (body["destinations_count"], body["topics"]) == (2, ["order.*", "zeta"])
        listed = await api.get("/tenants", params={"id": tenant})
        assert listed["models"] == [body]
        upserted = ok(await api.call("PUT", f"/tenants/{tenant}"))
        assert (upserted["destinations_count"], upserted["topics"]) == (2, ["order.*", "zeta"])

    async def test_delete(self, shared_api: Api) -> None:
        api = shared_api
        tenant = await api.tenant()
        await api.destination(tenant)
        assert ok(await api.call("DELETE", f"/tenants/{tenant}")) == {"success": True}
        assert_error(await api.call("GET", f"/tenants/{tenant}"), 404, "tenant not found")
        assert_error(await api.call("DELETE", f"/tenants/{tenant}"), 404, "tenant not found")
        assert_error(
            await api.call("GET", f"/tenants/{tenant}/destinations"), 404, "tenant not found"
        )
        assert (await api.get("/tenants", params={"id": tenant}))["models"] == []
        # Publishing for it matches nothing; re-creating it does not bring destinations back.
        assert (await api.publish(tenant))["destination_ids"] == []
        again = ok(await api.call("PUT", f"/tenants/{tenant}"), 201)
        assert (again["destinations_count"], again["topics"]) == (0, [])
        assert await api.get(f"/tenants/{tenant}/destinations") == []


class TestTenantList:
    @pytest.fixture
    async def tenants(self, api: Api) -> list[str]:
        """Five tenants, oldest first, in a database of their own."""
        created = []
        for n in range(5):
            created.append(await api.tenant(f"list-{n}-{unique('t')}"))
            await tick()
        return created

    async def page(self, api: Api, **params: str) -> tuple[list[str], dict[str, Any]]:
        body = await api.get("/tenants", params=params)
        assert body["count"] == 5
        return [t["id"] for t in body["models"]], body["pagination"]

    async def test_defaults(self, api: Api, tenants: list[str]) -> None:
        ids, pagination = await self.page(api)
        assert ids == tenants[::-1]
        assert pagination == {
            "order_by": "created_at",
            "dir": "desc",
            "limit": 20,
            "next": None,
            "prev": None,
        }

    @pytest.mark.parametrize("direction", ["desc", "asc"])
    async def test_paging_both_ways(self, api: Api, tenants: list[str], direction: str) -> None:
        order = tenants[::-1] if direction == "desc" else tenants
        q = {"limit": "2", "dir": direction}
        ids1, p1 = await self.page(api, **q)
        assert (ids1, p1["prev"]) == (order[0:2], None)
        assert (p1["order_by"], p1["dir"], p1["limit"]) == ("created_at", direction, 2)
        ids2, p2 = await self.page(api, **q, next=p1["next"])
        assert ids2 == order[2:4]
        assert p2["prev"] and p2["next"]
        ids3, p3 = await self.page(api, **q, next=p2["next"])
        assert (ids3, p3["next"]) == (order[4:], None)
        assert p3["prev"]
        # Backwards: the same pages again, in the requested order.
        back2, b2 = await self.page(api, **q, prev=p3["prev"])
        assert back2 == order[2:4]
        assert b2["next"] and b2["prev"]
        back1, b1 = await self.page(api, **q, prev=b2["prev"])
        assert (back1, b1["prev"]) == (order[0:2], None)
        assert b1["next"]
        forward_again, _ = await self.page(api, **q, next=b1["next"])
        assert forward_again == order[2:4]

    async def test_ties_on_created_at_are_not_lost(self, api: Api) -> None:
        """Tenants created in the same millisecond still each appear exactly once."""
        async with anyio.create_task_group() as group:
            for n in range(12):
                group.start_soon(api.tenant, f"tie-{n:02d}")
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(20):
            params = {"limit": "5", **({"next": cursor} if cursor else {})}
            body = await api.get("/tenants", params=params)
            seen += [t["id"] for t in body["models"]]
            cursor = body["pagination"]["next"]
            if not cursor:
                break
        assert sorted(seen) == [f"tie-{n:02d}" for n in range(12)]

    @pytest.mark.parametrize("form", ["plain", "brackets", "indexed"])
    async def test_id_filter(self, api: Api, tenants: list[str], form: str) -> None:
        wanted = [tenants[1], tenants[3]]
        key = {"plain": "id", "brackets": "id[]"}.get(form)
        params = [(key, t) for t in wanted] if key else [("id[1]", wanted[0]), ("id[0]", wanted[1])]
        body = await api.get("/tenants", params=params)
        assert [t["id"] for t in body["models"]] == [tenants[3], tenants[1]]
        assert body["count"] == 2

    async def test_id_filter_with_paging_and_unknown_ids(
        self, api: Api, tenants: list[str]
    ) -> None:
        params = [("id", t) for t in tenants[:3]] + [("id", "nobody"), ("limit", "2")]
        body = await api.get("/tenants", params=params)
        assert [t["id"] for t in body["models"]] == [tenants[2], tenants[1]]
        assert body["count"] == 3
        rest = await api.get("/tenants", params=[*params, ("next", body["pagination"]["next"])])
        assert [t["id"] for t in rest["models"]] == [tenants[0]]
        none = await api.get("/tenants", params={"id": "nobody"})
        assert (none["models"], none["count"]) == ([], 0)

    async def test_deleted_tenants_are_not_listed(self, api: Api, tenants: list[str]) -> None:
        ok(await api.call("DELETE", f"/tenants/{tenants[2]}"))
        body = await api.get("/tenants")
        assert [t["id"] for t in body["models"]] == [tenants[4], tenants[3], tenants[1], tenants[0]]
        assert body["count"] == 4


# ----------------------------------------------------------------------------------------------
# Destinations


class TestDestinationShape:
    async def test_minimal_create(self, shared_api: Api) -> None:
        api = shared_api
        tenant = await api.tenant()
        body = await api.destination(tenant)
        assert set(body) - {"target_url"} == DESTINATION_KEYS
        assert body["tenant_id"] == tenant
        assert body["type"] == "webhook"
        assert body["topics"] == ["*"]
        assert body["config"] == {"url": HOOK_URL}
        assert body["disabled_at"] is None
        assert body["created_at"] == body["updated_at"]
        when(body["created_at"])
        assert body["target"] == HOOK_URL
        # A secret is generated when none is given: whsec_ + 64 hex characters (contract.md §4.6).
        assert set(body["credentials"]) == {"secret"}
        assert re.fullmatch(r"whsec_[0-9a-f]{64}", body["credentials"]["secret"])
        assert await api.get(dest_path(tenant, body)) == body
        assert await api.get(f"/tenants/{tenant}/destinations") == [body]

    async def test_full_create(self, shared_api: Api) -> None:
        api = shared_api
        tenant = await api.tenant()
        flt = {"data": {"amount": {"$gte": 100}}}
        body = await api.destination(
            tenant,
            topics=["user.created", "user.updated"],
            filter=flt,
            metadata={"team": "core", "n": 5},
            delivery_metadata={"app": "x", "on": True},
            credentials={"secret": "testsecret1234567890abcdefghijklmnop"},
        )
        assert set(body) - {"target_url"} == DESTINATION_KEYS | {
            "filter",
            "metadata",
            "delivery_metadata",
        }
        assert body["topics"] == ["user.created", "user.updated"]
        assert body["filter"] == flt
        assert body["metadata"] == {"team": "core", "n": "5"}
        assert body["delivery_metadata"] == {"app": "x", "on": "true"}
        assert body["credentials"] == {"secret": "testsecret1234567890abcdefghijklmnop"}
        assert await api.get(dest_path(tenant, body)) == body

    @pytest.mark.parametrize("empty", [{}, None], ids=["empty", "null"])
    async def test_empty_optional_maps_are_omitted(self, shared_api: Api, empty: Any) -> None:
        api = shared_api
        tenant = await api.tenant()
        body = await api.destination(tenant, filter=empty, metadata=empty, delivery_metadata=empty)
        assert set(body) - {"target_url"} == DESTINATION_KEYS

    async def test_user_provided_id(self, shared_api: Api) -> None:
        api = shared_api
        one, two = await api.tenant(), await api.tenant()
        mine = await api.destination(one, id="my-own-id")
        assert mine["id"] == "my-own-id"
        # Ids are unique per tenant only.
        assert (await api.destination(two, id="my-own-id"))["id"] == "my-own-id"
        assert (await api.get(dest_path(one, "my-own-id")))["tenant_id"] == one
        assert (await api.get(dest_path(two, "my-own-id")))["tenant_id"] == two

    async def test_generated_ids_are_distinct(self, shared_api: Api) -> None:
        tenant = await shared_api.tenant()
        ids = {(await shared_api.destination(tenant))["id"] for _ in range(3)}
        assert len(ids) == 3
        assert all(ids)

    async def test_soft_deleted_id_can_be_reused(self, shared_api: Api) -> None:
        api = shared_api
        tenant = await api.tenant()
        await api.destination(tenant, id="again", topics=["old.topic"])
        assert ok(await api.call("DELETE", dest_path(tenant, "again"))) == {"success": True}
        assert_error(await api.call("GET", dest_path(tenant, "again")), 404)
        assert_error(await api.call("DELETE", dest_path(tenant, "again")), 404)
        reborn = await api.destination(tenant, id="again", topics=["new.topic"])
        assert reborn["topics"] == ["new.topic"]
        listed = await api.get(f"/tenants/{tenant}/destinations")
        assert [(d["id"], d["topics"]) for d in listed] == [("again", ["new.topic"])]
        assert (await api.get(f"/tenants/{tenant}"))["destinations_count"] == 1

    async def test_admin_imports_timestamps(self, shared_api: Api) -> None:
        api = shared_api
        tenant = await api.tenant()
        created = await api.destination(tenant, created_at="2023-01-02T05:04:05.678+02:00")
        assert created["created_at"] == "2023-01-02T03:04:05.678Z"
        assert created["updated_at"] == created["created_at"]
        both = await api.destination(
            tenant,
            created_at="2023-01-02T03:04:05Z",
            updated_at="2023-06-07T08:09:10.5Z",
            disabled_at="2023-06-07T08:09:10.5Z",
        )
        assert (both["created_at"], both["updated_at"], both["disabled_at"]) == (
            "2023-01-02T03:04:05Z",
            "2023-06-07T08:09:10.5Z",
            "2023-06-07T08:09:10.5Z",
        )
        assert await api.get(dest_path(tenant, both)) == both

    @pytest.mark.parametrize("moment", ["0999-12-31T23:59:59.5Z", "0101-09-18T17:44:57.141Z"])
    async def test_timestamps_far_in_the_past(self, shared_api: Api, moment: str) -> None:
        """Four-digit years in RFC 3339 output, also before the year 1000."""
        api = shared_api
        tenant = await api.tenant()
        created = await api.destination(tenant, created_at=moment, disabled_at=moment)
        assert (created["created_at"], created["disabled_at"]) == (moment, moment)
        patched = ok(
            await api.call("PATCH", dest_path(tenant, created), json={"disabled_at": moment})
        )
        assert patched["disabled_at"] == moment


class TestTopicNormalisation:
    @pytest.mark.parametrize(
        ("topics", "stored"),
        [
            ("*", ["*"]),
            (["*"], ["*"]),
            (["user.created", "user.created"], ["user.created"]),
            (["b", "a", "b"], ["b", "a"]),
            (["user.*", "user.created", "order.paid"], ["user.*", "order.paid"]),
            (["user.created", "user.*"], ["user.*"]),
            (["a.b", "*.b", "a.*"], ["*.b", "a.*"]),
            (["user.*.done", "user.*"], ["user.*"]),
        ],
        ids=repr,
    )
    async def test_create_and_patch(self, wild_api: Api, topics: Any, stored: list[str]) -> None:
        tenant = await wild_api.tenant()
        created = await wild_api.destination(tenant, topics=topics)
        assert created["topics"] == stored
        plain = await wild_api.destination(tenant, topics=["x"])
        patched = ok(
            await wild_api.call("PATCH", dest_path(tenant, plain), json={"topics": topics})
        )
        assert patched["topics"] == stored
        assert (await wild_api.get(dest_path(tenant, plain)))["topics"] == stored


class TestDestinationList:
    async def test_order_and_type_filter(self, shared_api: Api) -> None:
        api = shared_api
        tenant = await api.tenant()
        assert await api.get(f"/tenants/{tenant}/destinations") == []
        made = []
        for _ in range(3):
            made.append((await api.destination(tenant))["id"])
            await tick()
        path = f"/tenants/{tenant}/destinations"

        async def ids(params: Any = None) -> list[str]:
            return [d["id"] for d in await api.get(path, params=params)]

        assert await ids() == made
        assert await ids({"type": "webhook"}) == made
        assert await ids({"type[]": "webhook"}) == made
        assert await ids({"type": "aws_sqs"}) == []
        assert await ids([("type", "aws_sqs"), ("type", "webhook")]) == made
        ok(await api.call("DELETE", dest_path(tenant, made[1])))
        assert await ids() == [made[0], made[2]]

    async def test_topics_filter(self, wild_api: Api) -> None:
        api = wild_api
        tenant = await api.tenant()
        one = (await api.destination(tenant, topics=["user.created"]))["id"]
        two = (await api.destination(tenant, topics=["user.created", "user.updated"]))["id"]
        star = (await api.destination(tenant, topics="*"))["id"]
        orders = (await api.destination(tenant, topics=["order.*"]))["id"]
        path = f"/tenants/{tenant}/destinations"

        async def ids(params: Any) -> set[str]:
            return {d["id"] for d in await api.get(path, params=params)}

        assert await ids({"topics": "user.created"}) == {one, two, star}
        assert await ids([("topics", "user.created"), ("topics", "user.updated")]) == {two, star}
        assert await ids([("topics[]", "user.created"), ("topics[]", "user.updated")]) == {
            two,
            star,
        }
        assert await ids({"topics": "*"}) == {star}
        assert await ids({"topics": "order.paid"}) == {star, orders}
        assert await ids({"topics": "billing.x"}) == {star}
        assert await ids([("topics", "order.paid"), ("type", "webhook")]) == {star, orders}


class TestDestinationUpdate:
    @pytest.fixture
    def api(self, shared_api: Api) -> Api:
        return shared_api

    async def fresh(self, api: Api, **extra: Any) -> tuple[str, dict[str, Any]]:
        tenant = await api.tenant()
        return tenant, await api.destination(tenant, **extra)

    MAP_CASES = [
        (UNSET, {"a": "1", "b": "2"}),
        ({}, {"a": "1", "b": "2"}),
        ({"c": "3"}, {"a": "1", "b": "2", "c": "3"}),
        ({"a": "9"}, {"a": "9", "b": "2"}),
        ({"a": None}, {"b": "2"}),
        ({"a": None, "b": None}, None),
        (None, None),
        ({"a": None, "c": 7, "b": True}, {"b": "true", "c": "7"}),
    ]

    @pytest.mark.parametrize("field", ["metadata", "delivery_metadata"])
    @pytest.mark.parametrize(("patch", "result"), MAP_CASES, ids=repr)
    async def test_merge_patch_of_string_maps(
        self, api: Api, field: str, patch: Any, result: dict[str, str] | None
    ) -> None:
        tenant, dest = await self.fresh(api, **{field: {"a": "1", "b": "2"}})
        body = {} if patch is UNSET else {field: patch}
        patched = ok(await api.call("PATCH", dest_path(tenant, dest), json=body))
        if result is None:
            assert field not in patched, patched
        else:
            assert patched[field] == result
        assert await api.get(dest_path(tenant, dest)) == patched

    HEADERS = '{"X-Team":"core"}'
    CONFIG_CASES = [
        (UNSET, {"url": HOOK_URL, "custom_headers": HEADERS}),
        ({}, {"url": HOOK_URL, "custom_headers": HEADERS}),
        (
            {"url": "https://example.org/other"},
            {"url": "https://example.org/other", "custom_headers": HEADERS},
        ),
        ({"custom_headers": None}, {"url": HOOK_URL}),
        (
            {"custom_headers": '{"X-Other":"1"}'},
            {"url": HOOK_URL, "custom_headers": '{"X-Other":"1"}'},
        ),
    ]

    @pytest.mark.parametrize(("patch", "result"), CONFIG_CASES, ids=repr)
    async def test_merge_patch_of_config(
        self, api: Api, patch: Any, result: dict[str, str]
    ) -> None:
        tenant, dest = await self.fresh(
            api, config={"url": HOOK_URL, "custom_headers": self.HEADERS}
        )
        body = {} if patch is UNSET else {"config": patch}
        patched = ok(await api.call("PATCH", dest_path(tenant, dest), json=body))
        assert patched["config"] == result
        assert patched["target"] == result["url"]
        assert await api.get(dest_path(tenant, dest)) == patched

    S1 = "first-secret-0123456789abcdef"
    S2 = "second-secret-0123456789abcdef"
    S0 = "older-secret-0123456789abcdef"
    LATER = "2099-01-01T00:00:00Z"
    CREDENTIAL_CASES = [
        (UNSET, {"secret": S1}),
        ({}, {"secret": S1}),
        ({"secret": S2}, {"secret": S2}),
        (
            {"previous_secret": S0, "previous_secret_invalid_at": LATER},
            {"secret": S1, "previous_secret": S0, "previous_secret_invalid_at": LATER},
        ),
        (None, {}),
    ]

    @pytest.mark.parametrize(("patch", "result"), CREDENTIAL_CASES, ids=repr)
    async def test_merge_patch_of_credentials(
        self, api: Api, patch: Any, result: dict[str, str]
    ) -> None:
        tenant, dest = await self.fresh(api, credentials={"secret": self.S1})
        body = {} if patch is UNSET else {"credentials": patch}
        patched = ok(await api.call("PATCH", dest_path(tenant, dest), json=body))
        assert patched["credentials"] == result
        assert await api.get(dest_path(tenant, dest)) == patched

    async def test_credentials_key_removal(self, api: Api) -> None:
        full = {
            "secret": self.S1,
            "previous_secret": self.S0,
            "previous_secret_invalid_at": self.LATER,
        }
        tenant, dest = await self.fresh(api, credentials=full)
        assert dest["credentials"] == full
        patch = {"credentials": {"previous_secret": None, "previous_secret_invalid_at": None}}
        patched = ok(await api.call("PATCH", dest_path(tenant, dest), json=patch))
        assert patched["credentials"] == {"secret": self.S1}

    async def test_tenant_may_not_change_the_secret(self, api: Api) -> None:
        tenant, dest = await self.fresh(api, credentials={"secret": self.S1})
        auth = await api.jwt(tenant)
        path = dest_path(tenant, dest)
        response = await api.call(
            "PATCH", path, auth=auth, json={"credentials": {"secret": self.S2}}
        )
        assert_validation(response, ["credentials.secret is forbidden"])
        same = ok(
            await api.call("PATCH", path, auth=auth, json={"credentials": {"secret": self.S1}})
        )
        assert same["credentials"] == {"secret": self.S1}

    async def test_filter_is_replaced_wholesale(self, api: Api) -> None:
        first = {"data": {"amount": {"$gte": 100}}, "topic": "user.created"}
        second = {"data": {"status": "paid"}}
        tenant, dest = await self.fresh(api, filter=first)
        path = dest_path(tenant, dest)
        assert ok(await api.call("PATCH", path, json={"filter": second}))["filter"] == second
        unchanged = ok(await api.call("PATCH", path, json={"metadata": {"k": "v"}}))
        assert unchanged["filter"] == second
        clearings: list[Any] = [{}, None]
        for clearing in clearings:
            ok(await api.call("PATCH", path, json={"filter": first}))
            cleared = ok(await api.call("PATCH", path, json={"filter": clearing}))
            assert "filter" not in cleared, (clearing, cleared)
            assert "filter" not in await api.get(path)

    async def test_disabled_at(self, api: Api) -> None:
        tenant, dest = await self.fresh(api)
        path = dest_path(tenant, dest)
        moment = "2024-02-03T04:05:06.789Z"
        disabled = ok(await api.call("PATCH", path, json={"disabled_at": moment}))
        assert disabled["disabled_at"] == moment
        kept = ok(await api.call("PATCH", path, json={"metadata": {"k": "v"}}))
        assert kept["disabled_at"] == moment
        enabled = ok(await api.call("PATCH", path, json={"disabled_at": None}))
        assert enabled["disabled_at"] is None
        offset = ok(
            await api.call("PATCH", path, json={"disabled_at": "2024-02-03T06:05:06+02:00"})
        )
        assert offset["disabled_at"] == "2024-02-03T04:05:06Z"

    async def test_patch_bumps_updated_at_only(self, api: Api) -> None:
        tenant, dest = await self.fresh(api)
        await tick()
        patched = ok(await api.call("PATCH", dest_path(tenant, dest), json={"topics": ["a"]}))
        assert patched["created_at"] == dest["created_at"]
        assert when(patched["updated_at"]) > when(dest["updated_at"])
        assert patched["topics"] == ["a"]
        assert patched["id"] == dest["id"]

    async def test_patch_without_type(self, api: Api) -> None:
        """The SDK always sends `type`; the server must not require it."""
        tenant, dest = await self.fresh(api)
        patched = ok(await api.call("PATCH", dest_path(tenant, dest), json={"topics": ["b"]}))
        assert patched["type"] == "webhook"

    async def test_enable_disable_leave_updated_at_alone(self, api: Api) -> None:
        tenant, dest = await self.fresh(api)
        path = dest_path(tenant, dest)
        await tick()
        disabled = ok(await api.call("PUT", path + "/disable"))
        assert disabled["disabled_at"] is not None
        assert when(disabled["disabled_at"]) > when(dest["created_at"])
        assert disabled["updated_at"] == dest["updated_at"]
        await tick()
        again = ok(await api.call("PUT", path + "/disable"))
        assert again["disabled_at"] == disabled["disabled_at"]
        enabled = ok(await api.call("PUT", path + "/enable"))
        assert enabled["disabled_at"] is None
        assert enabled["updated_at"] == dest["updated_at"]
        assert ok(await api.call("PUT", path + "/enable")) == enabled
        assert await api.get(path) == enabled

    async def test_tenant_jwt_manages_its_destinations(self, api: Api) -> None:
        tenant = await api.tenant()
        auth = await api.jwt(tenant)
        dest = await api.destination(tenant, auth=auth, topics=["t.one"])
        path = dest_path(tenant, dest)
        assert (await api.get(path, auth=auth))["topics"] == ["t.one"]
        patched = ok(await api.call("PATCH", path, auth=auth, json={"topics": ["t.two"]}))
        assert patched["topics"] == ["t.two"]
        assert ok(await api.call("PUT", path + "/disable", auth=auth))["disabled_at"]
        assert ok(await api.call("DELETE", path, auth=auth)) == {"success": True}
        assert await api.get(f"/tenants/{tenant}/destinations", auth=auth) == []


# ----------------------------------------------------------------------------------------------
# Publish and the event log


class TestPublish:
    @pytest.fixture
    def api(self, shared_api: Api) -> Api:
        return shared_api

    async def test_response_shape_and_generated_ids(self, api: Api) -> None:
        tenant = await api.tenant()
        dest = await api.destination(tenant)
        first = await api.publish(tenant, topic="user.created")
        assert set(first) == {"id", "duplicate", "destination_ids"}
        assert isinstance(first["id"], str) and first["id"]
        assert first["duplicate"] is False
        assert first["destination_ids"] == [dest["id"]]
        second = await api.publish(tenant, topic="user.created")
        assert second["id"] != first["id"]
        assert second["duplicate"] is False

    async def test_duplicate_of_a_matched_event(self, api: Api) -> None:
        tenant = await api.tenant()
        dest = await api.destination(tenant)
        event_id = unique("evt")
        first = await api.publish(tenant, id=event_id)
        assert first == {"id": event_id, "duplicate": False, "destination_ids": [dest["id"]]}
        second = await api.publish(tenant, id=event_id, data={"other": True})
        assert second == {"id": event_id, "duplicate": True, "destination_ids": [dest["id"]]}
        # The stored event is the first one.
        assert (await api.get(f"/events/{event_id}"))["data"] == {"n": 1}

    async def test_unmatched_publish_is_no_duplicate_later(self, api: Api) -> None:
        tenant = await api.tenant()
        event_id = unique("evt")
        for _ in range(2):
            assert await api.publish(tenant, id=event_id) == {
                "id": event_id,
                "duplicate": False,
                "destination_ids": [],
            }
        dest = await api.destination(tenant)
        later = await api.publish(tenant, id=event_id)
        assert later == {"id": event_id, "duplicate": False, "destination_ids": [dest["id"]]}
        assert (await api.publish(tenant, id=event_id))["duplicate"] is True

    async def test_topic_matching(self, wild_api: Api) -> None:
        api = wild_api
        tenant = await api.tenant()
        created = (await api.destination(tenant, topics=["user.created"]))["id"]
        deleted = (await api.destination(tenant, topics=["user.deleted"]))["id"]
        users = (await api.destination(tenant, topics=["user.*"]))["id"]
        star = (await api.destination(tenant, topics="*"))["id"]

        async def matched(**extra: Any) -> set[str]:
            return set((await api.publish(tenant, **extra))["destination_ids"])

        assert await matched(topic="user.created") == {created, users, star}
        assert await matched(topic="user.deleted") == {deleted, users, star}
        assert await matched(topic="user.profile.updated") == {users, star}
        assert await matched(topic="order.created") == {star}
        assert await matched(topic="") == {created, deleted, users, star}
        assert await matched() == {created, deleted, users, star}
        assert await matched(topic="*") == {created, deleted, users, star}

    async def test_destination_id_narrows_but_does_not_bypass(self, api: Api) -> None:
        tenant = await api.tenant()
        one = (await api.destination(tenant, topics=["user.created"]))["id"]
        await api.destination(tenant, topics=["user.created"])
        other = (await api.destination(tenant, topics=["user.updated"]))["id"]

        async def matched(**extra: Any) -> list[str]:
            ids = (await api.publish(tenant, topic="user.created", **extra))["destination_ids"]
            assert isinstance(ids, list)
            return ids

        assert await matched(destination_id=one) == [one]
        assert await matched(destination_id=other) == []
        assert await matched(destination_id="no-such-destination") == []
        ok(await api.call("PUT", dest_path(tenant, one, "/disable")))
        assert await matched(destination_id=one) == []
        foreign_tenant = await api.tenant()
        foreign = (await api.destination(foreign_tenant))["id"]
        assert await matched(destination_id=foreign) == []

    async def test_disabled_destinations_are_not_matched(self, api: Api) -> None:
        tenant = await api.tenant()
        dest = (await api.destination(tenant))["id"]
        ok(await api.call("PUT", dest_path(tenant, dest, "/disable")))
        assert (await api.publish(tenant))["destination_ids"] == []
        ok(await api.call("PUT", dest_path(tenant, dest, "/enable")))
        assert (await api.publish(tenant))["destination_ids"] == [dest]
        ok(
            await api.call(
                "PATCH",
                dest_path(tenant, dest),
                json={"disabled_at": iso(datetime.now(UTC) - timedelta(minutes=1))},
            )
        )
        assert (await api.publish(tenant))["destination_ids"] == []
        ok(await api.call("DELETE", dest_path(tenant, dest)))
        assert (await api.publish(tenant))["destination_ids"] == []

    async def test_filters_are_applied(self, api: Api) -> None:
        tenant = await api.tenant()
        big = (await api.destination(tenant, filter={"data": {"amount": {"$gte": 100}}}))["id"]
        crm = (await api.destination(tenant, filter={"metadata": {"source": "crm"}}))["id"]
        either = (
            await api.destination(
                tenant,
                filter={"$or": [{"data": {"status": "paid"}}, {"topic": "order.refunded"}]},
            )
        )["id"]
        plain = (await api.destination(tenant))["id"]

        async def matched(data: Any, **extra: Any) -> set[str]:
            return set((await api.publish(tenant, data=data, **extra))["destination_ids"])

        assert await matched({"amount": 150}) == {big, plain}
        assert await matched({"amount": 50}) == {plain}
        assert await matched({"amount": 100}, metadata={"source": "crm"}) == {big, crm, plain}
        assert await matched({"status": "paid"}, metadata={"source": "web"}) == {either, plain}
        assert await matched({}, topic="order.refunded") == {either, plain}
        ok(await api.call("PATCH", dest_path(tenant, big), json={"filter": None}))
        assert await matched({"amount": 1}) == {big, plain}

    async def test_unknown_and_deleted_tenants_match_nothing(self, api: Api) -> None:
        assert (await api.publish(unique("nobody")))["destination_ids"] == []
        tenant = await api.tenant()
        await api.destination(tenant)
        ok(await api.call("DELETE", f"/tenants/{tenant}"))
        assert (await api.publish(tenant))["destination_ids"] == []

    async def test_jwt_cannot_publish_even_for_itself(self, api: Api) -> None:
        tenant = await api.tenant()
        body = {"tenant_id": tenant, "data": {}}
        response = await api.call("POST", "/publish", json=body, auth=await api.jwt(tenant))
        assert_error(response, 403)


class TestEvents:
    async def test_stored_event_shape(self, shared_api: Api) -> None:
        api = shared_api
        tenant = await api.tenant()
        dest = (await api.destination(tenant))["id"]
        event_id = unique("evt")
        await api.publish(
            tenant,
            id=event_id,
            topic="user.created",
            time="2024-03-04T07:06:07.089+02:00",
            eligible_for_retry=False,
            metadata={"source": "crm"},
            data={"user": {"id": 7}},
        )
        expected = {
            "id": event_id,
            "tenant_id": tenant,
            "matched_destination_ids": [dest],
            "topic": "user.created",
            "time": "2024-03-04T05:06:07.089Z",
            "eligible_for_retry": False,
            "metadata": {"source": "crm"},
            "data": {"user": {"id": 7}},
        }
        assert await api.get(f"/events/{event_id}") == expected
        assert await api.get(f"/events/{event_id}", auth=await api.jwt(tenant)) == expected
        listed = await api.get("/events", params={"tenant_id": tenant})
        assert listed["models"] == [expected]
        assert_error(await api.call("GET", f"/events/{unique('nope')}"), 404, "event not found")

    async def test_defaults(self, shared_api: Api) -> None:
        api = shared_api
        tenant = await api.tenant()
        before = datetime.now(UTC) - timedelta(seconds=1)
        event_id = (await api.publish(tenant))["id"]
        event = await api.get(f"/events/{event_id}")
        assert event["eligible_for_retry"] is True
        assert event["topic"] == ""
        assert "metadata" not in event
        assert event["matched_destination_ids"] == []
        assert before <= when(event["time"]) <= datetime.now(UTC) + timedelta(seconds=1)

    @pytest.mark.parametrize(
        "moment",
        ["0410-06-01T16:17:01Z", "0001-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z"],
    )
    async def test_times_far_in_the_past(self, shared_api: Api, moment: str) -> None:
        """RFC 3339 years have four digits, also before the year 1000 (found by schemathesis)."""
        api = shared_api
        tenant = await api.tenant()
        event_id = (await api.publish(tenant, time=moment))["id"]
        assert (await api.get(f"/events/{event_id}"))["time"] == moment
        listed = await api.get("/events", params={"tenant_id": tenant})
        assert [e["time"] for e in listed["models"]] == [moment]

    async def test_unmatched_events_are_listed(self, shared_api: Api) -> None:
        api = shared_api
        tenant = await api.tenant()
        event_id = (await api.publish(tenant, topic="nobody.listens"))["id"]
        listed = await api.get("/events", params={"tenant_id": tenant})
        assert [(e["id"], e["matched_destination_ids"]) for e in listed["models"]] == [
            (event_id, [])
        ]

    async def test_raw_data_is_kept_verbatim(self, shared_api: Api) -> None:
        """Key order and number literals survive; only insignificant whitespace goes (contract.md
        §0.1)."""
        api = shared_api
        tenant = await api.tenant()
        event_id = unique("evt")
        raw = (
            b'{"tenant_id":"' + tenant.encode() + b'","id":"' + event_id.encode() + b'",'
            b'"data": {"zebra": 1, "alpha": 2.50, "mango": [3, 1e3, -0.0],'
            b' "nested": {"z": true, "a": null, "m": "\\u00e9x"}}}'
        )
        ok(
            await api.call(
                "POST", "/publish", content=raw, headers={"Content-Type": "application/json"}
            ),
            202,
        )
        compact = b'{"zebra":1,"alpha":2.50,"mango":[3,1e3,-0.0],"nested":{"z":true,"a":null,"m":"'
        one = await api.call("GET", f"/events/{event_id}")
        assert b'"data":' + compact in one.content, one.content
        listed = await api.call("GET", "/events", params={"tenant_id": tenant})
        assert b'"data":' + compact in listed.content, listed.content
        assert one.json()["data"]["nested"]["m"] == "éx"

    async def test_paging_and_filters(self, api: Api) -> None:
        tenant = await api.tenant()
        other = await api.tenant()
        start = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
        ids = []
        for n in range(5):
            topic = "user.created" if n % 2 == 0 else "user.updated"
            event = await api.publish(
                tenant, id=f"e{n}", topic=topic, time=iso(start + timedelta(seconds=n))
            )
            ids.append(event["id"])
        await api.publish(other, id="x0", time=iso(start))

        async def page(**params: str) -> tuple[list[str], dict[str, Any]]:
            body = await api.get("/events", params={"tenant_id": tenant, **params})
            return [e["id"] for e in body["models"]], body["pagination"]

        newest, pagination = await page()
        assert newest == ids[::-1]
        assert pagination == {
            "order_by": "time",
            "dir": "desc",
            "limit": 100,
            "next": None,
            "prev": None,
        }
        first, p1 = await page(limit="2", dir="asc")
        assert (first, p1["prev"]) == (ids[0:2], None)
        second, p2 = await page(limit="2", dir="asc", next=p1["next"])
        assert second == ids[2:4]
        third, p3 = await page(limit="2", dir="asc", next=p2["next"])
        assert (third, p3["next"]) == (ids[4:], None)
        back, pb = await page(limit="2", dir="asc", prev=p3["prev"])
        assert back == ids[2:4]
        assert pb["next"] and pb["prev"]
        assert (await page(topic="user.updated"))[0] == [ids[3], ids[1]]
        assert sorted((await page(id="e1"))[0] + (await page(**{"id[]": "e4"}))[0]) == [
            "e1",
            "e4",
        ]
        window = {"time[gte]": iso(start + timedelta(seconds=1))}
        window["time[lte]"] = iso(start + timedelta(seconds=3))
        assert (await page(**window))[0] == [ids[3], ids[2], ids[1]]
        exclusive = {
            "time[gt]": iso(start + timedelta(seconds=1)),
            "time[lt]": iso(start + timedelta(seconds=3)),
        }
        assert (await page(**exclusive))[0] == [ids[2]]
        assert (await page(**{"time[gte]": "2024-01-02"}))[0] == []
        assert (await page(**{"time[lt]": "2024-01-02"}))[0] == ids[::-1]


# ----------------------------------------------------------------------------------------------
# Small endpoints


class TestSmallEndpoints:
    async def test_topics(self, make_api: MakeApi, shared_api: Api) -> None:
        configured = await make_api(TOPICS="user.created,order.created,user.updated")
        assert await configured.get("/topics") == ["user.created", "order.created", "user.updated"]
        assert await shared_api.get("/topics") == []

    async def test_destination_types(self, shared_api: Api) -> None:
        api = shared_api
        listed = await api.get("/destination-types")
        assert isinstance(listed, list)
        assert listed
        assert listed[0]["type"] == "webhook"
        for entry in listed:
            assert {
                "type",
                "label",
                "description",
                "icon",
                "instructions",
                "config_fields",
                "credential_fields",
            } <= set(entry)
            for field in entry["config_fields"] + entry["credential_fields"]:
                assert {"key", "type", "label", "required"} <= set(field)
                assert field["type"] in ("text", "checkbox", "key_value_map", "select")
            assert await api.get(f"/destination-types/{entry['type']}") == entry
        webhook = listed[0]
        url = next(f for f in webhook["config_fields"] if f["key"] == "url")
        assert url["required"] is True
        assert webhook["credential_fields"] == []
        assert_error(await api.call("GET", "/destination-types/carrier_pigeon"), 404)

    async def test_token(self, shared_api: Api) -> None:
        api = shared_api
        tenant = await api.tenant()
        body = await api.get(f"/tenants/{tenant}/token")
        assert set(body) == {"token", "tenant_id"}
        assert body["tenant_id"] == tenant
        header = jwt.get_unverified_header(body["token"])
        assert (header["alg"], header["typ"]) == ("HS256", "JWT")
        claims = jwt.decode(body["token"], JWT_SECRET, algorithms=["HS256"], issuer="outpost")
        assert claims["sub"] == tenant
        assert claims["exp"] - claims["iat"] == TOKEN_LIFETIME
        assert "deployment_id" not in claims
        assert (await api.get(f"/tenants/{tenant}", auth=bearer(body["token"])))["id"] == tenant
        assert_error(await api.call("GET", f"/tenants/{unique('x')}/token"), 404)

    async def test_token_carries_the_deployment_id(self, make_api: MakeApi) -> None:
        api = await make_api(DEPLOYMENT_ID="dp_api_test")
        tenant = await api.tenant()
        token = await api.token(tenant)
        claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"], issuer="outpost")
        assert claims["deployment_id"] == "dp_api_test"
        assert (await api.get(f"/tenants/{tenant}", auth=bearer(token)))["id"] == tenant

    @pytest.mark.parametrize(
        ("query", "suffix"),
        [
            ({}, ""),
            ({"theme": "dark"}, "&theme=dark"),
            ({"theme": "light"}, "&theme=light"),
            ({"theme": "neon"}, ""),
        ],
    )
    async def test_portal(self, shared_api: Api, query: dict[str, str], suffix: str) -> None:
        api = shared_api
        tenant = await api.tenant()
        response = await api.call(
            "GET",
            f"/tenants/{tenant}/portal",
            params=query,
            headers={"Host": "portal.example.com:8443"},
        )
        body = ok(response)
        assert set(body) == {"redirect_url", "tenant_id"}
        assert body["tenant_id"] == tenant
        token = parse_qs(urlsplit(body["redirect_url"]).query)["token"][0]
        assert body["redirect_url"] == f"http://portal.example.com:8443?token={token}{suffix}"
        claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"], issuer="outpost")
        assert claims["sub"] == tenant
        assert (await api.get(f"/tenants/{tenant}", auth=bearer(token)))["id"] == tenant

    async def test_portal_of_unknown_tenant(self, shared_api: Api) -> None:
        response = await shared_api.call("GET", f"/tenants/{unique('x')}/portal")
        assert_error(response, 404, "tenant not found")

    async def test_admin_key_is_not_a_tenant(self, shared_api: Api) -> None:
        """The admin key never shows up in what the API returns."""
        tenant = await shared_api.tenant()
        for path in (f"/tenants/{tenant}/token", f"/tenants/{tenant}/portal", "/tenants"):
            assert API_KEY not in (await shared_api.call("GET", path)).text
