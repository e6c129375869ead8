"""Input the API could not answer well: every error in Outpost's shape, and only data it can serve
back and ids it can address afterwards.

- a method no route takes (`TRACE`, `PROPFIND`): 405 with `Allow`, JSON;
- a path with a control character (`%0a`, `%1b`): JSON 404 (a final `%0a` used to reach the
  route before it: `/api/v1/tenants%0a` listed tenants, `/%0a` served the portal);
- a body that is not UTF-8: 422 (invalid bytes in event `data` were stored and served back raw,
  and event listings stopped being JSON);
- a new tenant, destination or event id the API cannot address (`a/b`, `..`, a space, too long):
  422 naming the rule; tenants stored before the rule stay reachable.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from ._support import Api, assert_error, ok, unique

pytestmark = pytest.mark.anyio

ROOT = "http://testserver"


class TestUnknownMethods:
    @pytest.mark.parametrize(
        ("method", "path", "allow"),
        [
            ("TRACE", "/api/v1/tenants/acme", "DELETE, GET, HEAD, PUT"),
            ("PROPFIND", "/api/v1/tenants", "GET, HEAD"),
            ("TRACE", "/api/v1/publish", "POST"),
            ("CONNECT", "/", "GET, HEAD"),
        ],
    )
    async def test_405_in_the_error_shape_with_allow(
        self, shared_api: Api, method: str, path: str, allow: str
    ) -> None:
        response = await shared_api.call(method, ROOT + path)
        assert_error(response, 405, "method not allowed")
        assert response.headers["allow"] == allow

    async def test_an_unknown_method_on_an_unknown_path_is_404(self, shared_api: Api) -> None:
        assert_error(await shared_api.call("PROPFIND", ROOT + "/nowhere"), 404, "not found")


class TestControlCharactersInPaths:
    @pytest.mark.parametrize(
        "path",
        [
            "/%0a",
            "/new%0a",
            "/api/v1/tenants%0a",
            "/api/v1/topics%0A",
            "/api/v1/tenants/acme%1b[2J",
            "/api/v1/%0d%0aSet-Cookie:x=1",
            "/healthz%0a",
        ],
    )
    @pytest.mark.parametrize("method", ["GET", "PUT", "TRACE"])
    async def test_json_404(self, shared_api: Api, path: str, method: str) -> None:
        assert_error(await shared_api.call(method, ROOT + path), 404, "not found")


class TestUtf8Only:
    @pytest.mark.parametrize(
        "raw",
        [
            b'{"tenant_id":"t","topic":"x","data":{"a":"\xff\xfe"}}',
            b'{"tenant_id":"t","topic":"x","data":{"\xc3":"overlong"}}',
            b'{"tenant_id":"t","topic":"x","data":{"a":"\xed\xa0\x80"}}',  # a surrogate, encoded
            b'{"tenant_id":"t","topic":"\xff","data":{}}',  # was a 500
            b'{"tenant_id":"t","topic":"x","data":{"a":"\\ud800"}}',  # no UTF-8 can carry it
            b'{"tenant_id":"t","topic":"x","data":{"a":"\\udc00\\ud800"}}',
        ],
        ids=["bytes", "truncated", "encoded-surrogate", "in-a-field", "lone-escape", "reversed"],
    )
    async def test_publish_refuses_it(self, api: Api, raw: bytes) -> None:
        response = await api.call(
            "POST", "/publish", content=raw, headers={"Content-Type": "application/json"}
        )
        assert_error(response, 422, "invalid JSON")
        listing = await api.call("GET", "/events")
        assert json.loads(listing.content)["models"] == []  # nothing stored, still JSON

    async def test_escaped_pairs_and_real_characters_are_kept(self, api: Api) -> None:
        data = {"emoji": "\U0001f600", "accent": "é", "escaped": "\\ud83d\\ude00"}
        raw = b'{"tenant_id":"t","topic":"x","data":{"pair":"\\ud83d\\ude00","text":"\xc3\xa9"}}'
        published = await api.publish("t", data)
        sent = ok(
            await api.call(
                "POST", "/publish", content=raw, headers={"Content-Type": "application/json"}
            ),
            202,
        )
        events = {e["id"]: e for e in (await api.get("/events"))["models"]}
        assert events[published["id"]]["data"] == data
        assert events[sent["id"]]["data"] == {"pair": "\U0001f600", "text": "é"}

    @pytest.mark.parametrize(
        ("method", "path"), [("PUT", "/tenants/{t}"), ("POST", "/tenants/{t}/destinations")]
    )
    async def test_other_bodies_too(self, shared_api: Api, method: str, path: str) -> None:
        tenant = await shared_api.tenant()
        response = await shared_api.call(
            method,
            path.format(t=tenant),
            content=b'{"metadata":{"k":"\xff"}}',
            headers={"Content-Type": "application/json"},
        )
        assert_error(response, 422, "invalid JSON")


RULE = "1 to 255 of A-Z a-z 0-9 - _ . ~ : @, not . or .."
UNADDRESSABLE = ["a/b", "..", ".", "has space", "a?b", "a#b", "a%2Fb", "é", "x" * 256, "a\nb"]


def _refused(response: object, field: str) -> None:
    body = assert_error(response, 422, "validation error")  # type: ignore[arg-type]
    assert body["data"] == [f"{field} failed pattern validation ({RULE})"]


class TestAddressableIds:
    @pytest.mark.parametrize("given", UNADDRESSABLE)
    async def test_destination_ids(self, shared_api: Api, given: str) -> None:
        tenant = await shared_api.tenant()
        body = {"id": given, "type": "webhook", "topics": "*", "config": {"url": "https://x.test"}}
        _refused(await shared_api.call("POST", f"/tenants/{tenant}/destinations", json=body), "id")
        assert await shared_api.get(f"/tenants/{tenant}/destinations") == []

    @pytest.mark.parametrize("given", UNADDRESSABLE)
    async def test_event_ids(self, shared_api: Api, given: str) -> None:
        tenant = await shared_api.tenant()
        body = {"id": given, "tenant_id": tenant, "topic": "x", "data": {}}
        _refused(await shared_api.call("POST", "/publish", json=body), "id")
        assert (await shared_api.get("/events", params={"tenant_id": tenant}))["models"] == []

    @pytest.mark.parametrize("given", ["%2E%2E", "has%20space", "a%3Fb", "%C3%A9", "x" * 256])
    async def test_tenant_ids(self, shared_api: Api, given: str) -> None:
        _refused(await shared_api.call("PUT", f"/tenants/{given}", json={}), "tenant_id")

    @pytest.mark.parametrize(
        "given", ["acme", "evt_01HZY", "user@example.com", "urn:x:1", "a.b~c-d", "x" * 255]
    )
    async def test_what_is_accepted(self, shared_api: Api, given: str) -> None:
        tenant = await shared_api.tenant(f"{given[:200]}{unique('')}")
        created = await shared_api.destination(tenant, id=given)
        assert (await shared_api.get(f"/tenants/{tenant}/destinations/{given}"))["id"] == given
        published = await shared_api.publish(tenant, id=f"{given[:200]}{unique('')}", topic="x")
        assert published["destination_ids"] == [created["id"]]

    async def test_a_tenant_stored_before_the_rule_stays_reachable(self, api: Api) -> None:
        """Stored ids are left alone: written behind the API's back as an older version would."""
        tenant = await api.tenant("legacy")
        path = api.system.config.data_dir + "/outpost.db"
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE tenants SET id = 'old id' WHERE id = ?", (tenant,))
        ok(await api.call("PUT", "/tenants/old%20id", json={"metadata": {"k": "v"}}), 200)
        assert (await api.get("/tenants/old%20id"))["metadata"] == {"k": "v"}
