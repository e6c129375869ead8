"""Who may call what (contract.md §1.1 route table, §1.2 authentication and tenant scoping).

The matrix crosses every operation of the server's route table (`OPERATIONS`, so a new route
cannot be forgotten: it has no probe and its cells fail) with every kind of credential, and
asserts the exact status of each cell:

- a credential that is not one (no header, not `Bearer <token>`, a JWT that is expired, signed
  with another secret or issued by someone else) is 401 everywhere;
- a valid JWT on an admin-only route (publish, token, portal) is 403;
- a valid JWT on a path of another tenant is 403;
- a valid JWT whose tenant was deleted is 401 (after the two 403 rules above);
- otherwise the admin and tenant A's JWT get the route's normal answer.

Every error is JSON `{status, message}` with `status` equal to the HTTP status, and nothing that
tenant B (or any non-A caller) receives contains tenant A's tenant, destination or event ids.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from waypost.api.routes import OPERATIONS, Operation

from ._support import (
    ADMIN,
    API_KEY,
    HOOK_URL,
    UNSET,
    Api,
    assert_error,
    bearer,
    make_jwt,
    ok,
    unique,
)

pytestmark = pytest.mark.anyio

T = "/tenants/{tenant_id}"
D = T + "/destinations/{destination_id}"

# Per the contract's route table, not the server's own `access` labels.
ADMIN_ONLY = {("POST", "/publish"), ("GET", T + "/token"), ("GET", T + "/portal")}

VALID = ("admin", "jwt_a", "jwt_b", "jwt_deleted_tenant")
INVALID = (
    "jwt_expired",
    "jwt_other_secret",
    "jwt_wrong_issuer",
    "no_header",
    "malformed_header",
)
CREDENTIALS = VALID + INVALID


@dataclass(frozen=True)
class World:
    """Tenants A and B with a destination and an event each, plus a tenant already deleted."""

    a: str
    b: str
    gone: str
    dest_a: str
    event_a: str
    dest_b: str
    auth: dict[str, str | None]

    def a_ids(self) -> tuple[str, str, str]:
        return (self.a, self.dest_a, self.event_a)


async def build_world(api: Api) -> World:
    a = await api.tenant(unique("tenant-a"))
    b = await api.tenant(unique("tenant-b"))
    gone = await api.tenant(unique("tenant-gone"))
    dest_a = (await api.destination(a, id=unique("dest-a")))["id"]
    dest_b = (await api.destination(b, id=unique("dest-b")))["id"]
    event_a = (await api.publish(a, id=unique("evt-a"), topic="user.created"))["id"]
    await api.publish(b, id=unique("evt-b"), topic="user.created")
    await api.deliver_queued()  # attempts, so that the events can be retried
    auth: dict[str, str | None] = {
        "admin": ADMIN,
        "jwt_a": await api.jwt(a),
        "jwt_b": await api.jwt(b),
        "jwt_deleted_tenant": await api.jwt(gone),
        "jwt_expired": bearer(make_jwt(a, expires_in=-3600)),
        "jwt_other_secret": bearer(make_jwt(a, secret="some-other-secret-0123456789abcdefghijkl")),
        "jwt_wrong_issuer": bearer(make_jwt(a, issuer="not-outpost")),
        "no_header": None,
        "malformed_header": API_KEY,  # the right key, without the `Bearer ` scheme
    }
    ok(await api.call("DELETE", f"/tenants/{gone}"))
    return World(a, b, gone, dest_a, event_a, dest_b, auth)


@dataclass(frozen=True)
class Probe:
    """One request to an operation, on tenant A's resources, and its normal outcome."""

    path: Callable[[World], str]
    body: Callable[[World], Any] | None = None
    status: int = 200  # for the admin and tenant A's JWT
    message: str | None = None  # when `status` is an error
    foreign_status: int | None = None  # tenant B's JWT, on a route without {tenant_id}
    foreign_message: str | None = None


METRICS_WITHOUT_RANGE = "time[start] and time[end] are required"


def _dest(w: World, suffix: str = "") -> str:
    return f"/tenants/{w.a}/destinations/{w.dest_a}{suffix}"


PROBES: dict[tuple[str, str], Probe] = {
    ("GET", "/destination-types"): Probe(lambda w: "/destination-types"),
    ("GET", "/destination-types/{type}"): Probe(lambda w: "/destination-types/webhook"),
    ("GET", "/topics"): Probe(lambda w: "/topics"),
    ("POST", "/publish"): Probe(
        lambda w: "/publish",
        lambda w: {"tenant_id": w.a, "topic": "user.created", "data": {"x": 1}},
        status=202,
    ),
    # 202 for the owner (the pair has an attempt); tenant B must get 404 for A's event, not a 403
    # that would confirm it exists.
    ("POST", "/retry"): Probe(
        lambda w: "/retry",
        lambda w: {"event_id": w.event_a, "destination_id": w.dest_a},
        status=202,
        foreign_status=404,
        foreign_message="event not found",
    ),
    ("GET", "/tenants"): Probe(lambda w: "/tenants"),
    ("PUT", T): Probe(lambda w: f"/tenants/{w.a}", lambda w: {"metadata": {"k": "v"}}),
    ("GET", T): Probe(lambda w: f"/tenants/{w.a}"),
    ("DELETE", T): Probe(lambda w: f"/tenants/{w.a}"),
    ("GET", T + "/token"): Probe(lambda w: f"/tenants/{w.a}/token"),
    ("GET", T + "/portal"): Probe(lambda w: f"/tenants/{w.a}/portal"),
    ("GET", T + "/destinations"): Probe(lambda w: f"/tenants/{w.a}/destinations"),
    ("POST", T + "/destinations"): Probe(
        lambda w: f"/tenants/{w.a}/destinations",
        lambda w: {"type": "webhook", "topics": "*", "config": {"url": HOOK_URL}},
        status=201,
    ),
    ("GET", D): Probe(_dest),
    ("PATCH", D): Probe(_dest, lambda w: {"metadata": {"k": "v"}}),
    ("DELETE", D): Probe(_dest),
    ("PUT", D + "/enable"): Probe(lambda w: _dest(w, "/enable")),
    ("PUT", D + "/disable"): Probe(lambda w: _dest(w, "/disable")),
    ("GET", D + "/attempts"): Probe(lambda w: _dest(w, "/attempts")),
    ("GET", D + "/attempts/{attempt_id}"): Probe(
        lambda w: _dest(w, "/attempts/atm-does-not-exist"), status=404, message="attempt not found"
    ),
    ("GET", "/events"): Probe(lambda w: "/events"),
    ("GET", "/events/{event_id}"): Probe(
        lambda w: f"/events/{w.event_a}", foreign_status=404, foreign_message="event not found"
    ),
    ("GET", "/attempts"): Probe(lambda w: "/attempts"),
    ("GET", "/attempts/{attempt_id}"): Probe(
        lambda w: "/attempts/atm-does-not-exist", status=404, message="attempt not found"
    ),
    # Probes carry no query string, and metrics need one: every credential that is let through
    # reaches the parameter check (tests/api/test_metrics.py covers the scoped answers).
    ("GET", "/metrics/events"): Probe(
        lambda w: "/metrics/events", status=400, message=METRICS_WITHOUT_RANGE
    ),
    ("GET", "/metrics/attempts"): Probe(
        lambda w: "/metrics/attempts", status=400, message=METRICS_WITHOUT_RANGE
    ),
    # The recovery extension: a tenant's JWT reaches its own tenant's only.
    ("GET", T + "/undelivered"): Probe(lambda w: f"/tenants/{w.a}/undelivered"),
    ("POST", T + "/recoveries"): Probe(
        lambda w: f"/tenants/{w.a}/recoveries", lambda w: {"status": "failed"}, status=201
    ),
    ("GET", T + "/recoveries"): Probe(lambda w: f"/tenants/{w.a}/recoveries"),
    ("GET", T + "/recoveries/{recovery_id}"): Probe(
        lambda w: f"/tenants/{w.a}/recoveries/rcv_none", status=404, message="recovery not found"
    ),
    ("DELETE", T + "/recoveries/{recovery_id}"): Probe(
        lambda w: f"/tenants/{w.a}/recoveries/rcv_none", status=404, message="recovery not found"
    ),
    ("POST", D + "/test"): Probe(lambda w: _dest(w, "/test"), lambda w: {}, status=202),
}


def _label(op: Operation) -> str:
    return f"{op.method} {op.path}"


def expected(op: Operation, credential: str) -> tuple[int, str | None]:
    """The status (and error message, when known) of one cell, per contract.md §1.2's algorithm."""
    key = (op.method, op.path)
    probe = PROBES[key]
    if credential == "admin" or (credential == "jwt_a" and key not in ADMIN_ONLY):
        return probe.status, probe.message
    if credential in INVALID:
        return 401, "unauthorized"
    if key in ADMIN_ONLY or "{tenant_id}" in op.path:  # the path's tenant is A
        return 403, "forbidden"
    if credential == "jwt_deleted_tenant":
        return 401, "unauthorized"
    if probe.foreign_status is not None:
        return probe.foreign_status, probe.foreign_message
    return probe.status, probe.message


async def send(api: Api, w: World, op: Operation, auth: str | None) -> httpx.Response:
    probe = PROBES[(op.method, op.path)]
    body = probe.body(w) if probe.body else UNSET
    return await api.call(op.method, probe.path(w), auth=auth, json=body)


def test_every_route_has_a_probe() -> None:
    routes = {(op.method, op.path) for op in OPERATIONS}
    assert routes == set(PROBES), (routes - set(PROBES), set(PROBES) - routes)


@pytest.fixture(scope="module")
async def shared_world(shared_api: Api) -> World:
    return await build_world(shared_api)


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("op", OPERATIONS, ids=_label)
async def test_auth_matrix(
    shared_api: Api, shared_world: World, op: Operation, credential: str
) -> None:
    api = shared_api
    # Reads share one world; anything that may change it gets a world of its own.
    w = shared_world if op.method == "GET" else await build_world(api)
    response = await send(api, w, op, w.auth[credential])
    status, message = expected(op, credential)
    if status >= 400:
        assert_error(response, status, message)
    else:
        ok(response, status)
    if credential not in ("admin", "jwt_a"):
        for leaked in w.a_ids():
            assert leaked not in response.text, (credential, leaked, response.text)


@pytest.mark.parametrize("op", [op for op in OPERATIONS if "{tenant_id}" in op.path], ids=_label)
async def test_admin_on_unknown_tenant(shared_api: Api, op: Operation) -> None:
    """Tenant routes resolve the path's tenant for the admin; upsert creates it instead."""
    api = shared_api
    ghost = unique("ghost")
    path = op.path.format(tenant_id=ghost, destination_id="d1", attempt_id="a1", recovery_id="r1")
    body = {"type": "webhook", "topics": "*", "config": {"url": HOOK_URL}}
    response = await api.call(op.method, path, json=body if op.method == "POST" else UNSET)
    if (op.method, op.path) == ("PUT", T):
        assert ok(response, 201)["id"] == ghost
    else:
        assert_error(response, 404, "tenant not found")


@pytest.mark.parametrize("op", [op for op in OPERATIONS if "{tenant_id}" in op.path], ids=_label)
async def test_deleted_tenant_jwt_on_its_own_routes(shared_api: Api, op: Operation) -> None:
    """A stale token is 401 even on its own paths, upsert included; admin-only stays 403."""
    api = shared_api
    tenant = await api.tenant()
    dest = (await api.destination(tenant))["id"]
    auth = await api.jwt(tenant)
    ok(await api.call("DELETE", f"/tenants/{tenant}"))
    path = op.path.format(tenant_id=tenant, destination_id=dest, attempt_id="a1", recovery_id="r1")
    body = {"type": "webhook", "topics": "*", "config": {"url": HOOK_URL}}
    response = await api.call(
        op.method, path, auth=auth, json=body if op.method == "POST" else UNSET
    )
    if (op.method, op.path) in ADMIN_ONLY:
        assert_error(response, 403, "forbidden")
    else:
        assert_error(response, 401, "unauthorized")


async def test_jwt_of_a_tenant_that_never_existed(api: Api) -> None:
    """A well-signed token for an unknown tenant cannot create that tenant or read anything."""
    tenant = unique("never")
    auth = bearer(make_jwt(tenant))
    assert_error(await api.call("PUT", f"/tenants/{tenant}", auth=auth), 401, "unauthorized")
    assert_error(await api.call("GET", f"/tenants/{tenant}", auth=auth), 401, "unauthorized")
    assert_error(await api.call("GET", "/events", auth=auth), 401, "unauthorized")
    assert_error(await api.call("GET", "/topics", auth=auth), 401, "unauthorized")
    assert_error(await api.call("GET", f"/tenants/{tenant}", auth=ADMIN), 404, "tenant not found")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        f"bearer {API_KEY}",
        f"BEARER {API_KEY}",
        f"Basic {API_KEY}",
        f"Token {API_KEY}",
        f"Bearer  {API_KEY}",
        f"Bearer {API_KEY} ",
        f"Bearer {API_KEY}x",
        f"{API_KEY}",
    ],
)
async def test_malformed_authorization_headers(shared_api: Api, header: str) -> None:
    api = shared_api
    assert_error(await api.call("GET", "/tenants", auth=header), 401, "unauthorized")
    assert_error(await api.call("GET", "/topics", auth=header), 401, "unauthorized")


def _unsigned_jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_only_hs256_tokens_are_accepted(api: Api) -> None:
    tenant = await api.tenant()
    path = f"/tenants/{tenant}"
    assert ok(await api.call("GET", path, auth=bearer(make_jwt(tenant))))["id"] == tenant
    hs512 = bearer(make_jwt(tenant, algorithm="HS512"))
    assert_error(await api.call("GET", path, auth=hs512), 401, "unauthorized")
    claims = {"iss": "outpost", "sub": tenant, "iat": 0, "exp": 4_102_444_800}
    unsigned = bearer(_unsigned_jwt(claims))
    assert_error(await api.call("GET", path, auth=unsigned), 401, "unauthorized")


async def test_health_needs_no_credentials(api: Api) -> None:
    for url in ("http://testserver/healthz", "http://testserver/api/v1/healthz"):
        body = ok(await api.call("GET", url, auth=None))
        assert body["status"] == "healthy"
        assert isinstance(body["timestamp"], str)
        assert body["workers"]["http-server"] == {"status": "healthy"}


class TestTenantScopingOfLogs:
    """JWT callers of /events and /attempts see their tenant only (contract.md §1.2, §1.6.16)."""

    @pytest.mark.parametrize("path", ["/events", "/attempts"])
    @pytest.mark.parametrize(
        ("asked", "status"),
        [
            ([], 200),
            (["a"], 200),
            (["b"], 403),
            (["a", "b"], 403),
            (["a", "a"], 403),
            (["someone-else"], 403),
        ],
    )
    async def test_tenant_id_query_for_jwt(
        self, api: Api, path: str, asked: list[str], status: int
    ) -> None:
        w = await build_world(api)
        names = {"a": w.a, "b": w.b}
        params = [("tenant_id", names.get(x, x)) for x in asked]
        response = await api.call("GET", path, auth=w.auth["jwt_a"], params=params)
        if status == 403:
            assert_error(
                response, 403, "tenant_id query parameter does not match authenticated tenant"
            )
        else:
            ok(response)

    async def test_event_lists_are_scoped(self, api: Api) -> None:
        w = await build_world(api)
        as_b = await api.get("/events", auth=w.auth["jwt_b"])
        assert {e["tenant_id"] for e in as_b["models"]} == {w.b}
        as_a = await api.get("/events", auth=w.auth["jwt_a"])
        assert w.event_a in {e["id"] for e in as_a["models"]}
        assert {e["tenant_id"] for e in as_a["models"]} == {w.a}
        every = await api.get("/events")
        assert {w.a, w.b} <= {e["tenant_id"] for e in every["models"]}
        only_a = await api.get("/events", params={"tenant_id": w.a})
        assert {e["tenant_id"] for e in only_a["models"]} == {w.a}
        both = await api.get("/events", params=[("tenant_id", w.a), ("tenant_id", w.b)])
        assert {e["tenant_id"] for e in both["models"]} == {w.a, w.b}

    async def test_single_event_reads(self, api: Api) -> None:
        """A JWT's `tenant_id` query is ignored on single reads; the admin's filters."""
        w = await build_world(api)
        path = f"/events/{w.event_a}"
        as_a = await api.get(path, auth=w.auth["jwt_a"], params={"tenant_id": w.b})
        assert as_a["id"] == w.event_a
        as_b = await api.call("GET", path, auth=w.auth["jwt_b"], params={"tenant_id": w.a})
        assert_error(as_b, 404, "event not found")
        assert w.a not in as_b.text
        assert (await api.get(path, params={"tenant_id": w.a}))["id"] == w.event_a
        assert_error(await api.call("GET", path, params={"tenant_id": w.b}), 404, "event not found")

    async def test_jwt_tenant_list_shows_itself_only(self, api: Api) -> None:
        w = await build_world(api)
        body = await api.get("/tenants", auth=w.auth["jwt_b"], params=[("id", w.a), ("limit", "1")])
        assert [t["id"] for t in body["models"]] == [w.b]
        assert body["count"] == 1
        assert body["pagination"] == {
            "order_by": "created_at",
            "dir": "desc",
            "limit": 20,
            "next": None,
            "prev": None,
        }

    async def test_foreign_destination_is_invisible_through_own_path(self, api: Api) -> None:
        """Tenant B asking for A's destination under B's own path finds nothing."""
        w = await build_world(api)
        for method, suffix in (("GET", ""), ("PATCH", ""), ("PUT", "/disable"), ("DELETE", "")):
            response = await api.call(
                method,
                f"/tenants/{w.b}/destinations/{w.dest_a}{suffix}",
                auth=w.auth["jwt_b"],
                json={} if method == "PATCH" else UNSET,
            )
            assert_error(response, 404)
            assert w.a not in response.text
        # ... and A's destination is untouched.
        dest = await api.get(f"/tenants/{w.a}/destinations/{w.dest_a}")
        assert dest["disabled_at"] is None
