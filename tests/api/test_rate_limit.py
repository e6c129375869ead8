"""The optional API rate limit (`API_RATE_LIMIT`): per admin key and per tenant, 429 over it.

In-process, embedded mode (counted in memory); tests/e2e/test_rate_limit.py covers two API
processes sharing one limit through PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from waypost.api.ratelimit import MemoryHitCounter, RateLimiter

from ._support import ADMIN, Api, assert_error, make_jwt, ok, running_api

pytestmark = pytest.mark.anyio

LIMIT = 3
HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


@pytest.fixture
async def limited(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    env = {"API_RATE_LIMIT": str(LIMIT), "API_RATE_LIMIT_WINDOW_SECONDS": "3600"}
    async with running_api(tmp_path_factory.mktemp("limited"), env) as api:
        yield api


def remaining(response: httpx.Response) -> int:
    return int(response.headers["x-ratelimit-remaining"])


async def test_off_by_default(shared_api: Api) -> None:
    for _ in range(LIMIT + 2):
        response = await shared_api.call("GET", "/topics")
        ok(response)
        assert not any(name in response.headers for name in HEADERS)


async def test_admin_over_the_limit_gets_429(limited: Api) -> None:
    answers = [await limited.call("GET", "/topics") for _ in range(LIMIT)]
    assert [remaining(r) for r in answers] == [2, 1, 0]
    for response in answers:
        ok(response)
        assert response.headers["x-ratelimit-limit"] == str(LIMIT)
    reset = int(answers[0].headers["x-ratelimit-reset"])

    over = await limited.call("GET", "/topics")
    assert_error(over, 429, "too many requests")
    assert over.headers["x-ratelimit-limit"] == str(LIMIT)
    assert remaining(over) == 0
    assert int(over.headers["x-ratelimit-reset"]) == reset
    assert 1 <= int(over.headers["retry-after"]) <= 3600
    # Every route of the API spends the same budget, whatever it is.
    assert_error(await limited.call("POST", "/publish", json={}), 429)


async def test_each_tenant_has_its_own_budget(limited: Api) -> None:
    # Set up as the admin (spending 2 of its 3), then the tenants act with their own JWTs.
    one, two = await limited.tenant("rl-one"), await limited.tenant("rl-two")
    first, second = make_jwt(one), make_jwt(one, expires_in=7200)  # two tokens, one tenant
    for auth in (f"Bearer {first}", f"Bearer {second}", f"Bearer {first}"):
        ok(await limited.call("GET", f"/tenants/{one}", auth=auth))
    assert_error(await limited.call("GET", f"/tenants/{one}", auth=f"Bearer {second}"), 429)

    other = await limited.call("GET", f"/tenants/{two}", auth=f"Bearer {make_jwt(two)}")
    ok(other)
    assert remaining(other) == LIMIT - 1
    admin = await limited.call("GET", "/topics", auth=ADMIN)
    ok(admin)
    assert remaining(admin) == 0  # its third request


async def test_requests_without_valid_credentials_are_not_counted(limited: Api) -> None:
    for auth in (None, "Bearer wrong", f"Bearer {make_jwt('t', secret='x' * 32)}"):
        for _ in range(LIMIT + 1):
            response = await limited.call("GET", "/topics", auth=auth)
            assert_error(response, 401)
            assert "x-ratelimit-remaining" not in response.headers
    assert remaining(await limited.call("GET", "/topics")) == LIMIT - 1


async def test_errors_are_counted_and_carry_the_headers(limited: Api) -> None:
    response = await limited.call("GET", "/tenants/missing-tenant")
    assert_error(response, 404)
    assert remaining(response) == LIMIT - 1


async def test_health_is_never_limited(limited: Api) -> None:
    for _ in range(LIMIT + 2):
        response = await limited.client.get("http://testserver/healthz")
        assert response.status_code == 200
        assert "x-ratelimit-limit" not in response.headers


async def test_a_new_window_starts_afresh() -> None:
    now = [1_000_000.5]
    limiter = RateLimiter(MemoryHitCounter(), limit=2, window_seconds=60, clock=lambda: now[0])
    verdicts = [await limiter.check("admin") for _ in range(3)]
    assert [v.allowed for v in verdicts] == [True, True, False]
    assert verdicts[2].reset == 1_000_020  # 1,000,000.5 is 20.5 s before a multiple of 60
    assert verdicts[2].retry_after == 20  # ceil(19.5)
    now[0] = 1_000_020.0
    fresh = await limiter.check("admin")
    assert fresh.allowed and fresh.remaining == 1 and fresh.reset == 1_000_080
