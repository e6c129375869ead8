"""Who may set a destination's flow limits (`outpost.max_concurrency`,
`outpost.rate_limit_per_second` in its metadata): the admin key any value, a tenant's own token
only values that tighten the server's, since the delivery slots are shared by every tenant."""

from __future__ import annotations

import pytest

from ._support import ADMIN, Api, ok
from .conftest import MakeApi

pytestmark = pytest.mark.anyio

CAP = "outpost.max_concurrency"
RATE = "outpost.rate_limit_per_second"


async def _patch(api: Api, tenant: str, dest: str, metadata: dict[str, str], auth: str) -> int:
    res = await api.call(
        "PATCH", f"/tenants/{tenant}/destinations/{dest}", json={"metadata": metadata}, auth=auth
    )
    return res.status_code


async def test_a_tenant_may_tighten_but_not_loosen_the_concurrency_cap(make_api: MakeApi) -> None:
    api = await make_api(DELIVERY_MAX_CONCURRENCY="64")  # a destination's cap: 64 / 8 = 8
    tenant = await api.tenant()
    jwt = await api.jwt(tenant)

    looser = await api.call(
        "POST",
        f"/tenants/{tenant}/destinations",
        json={
            "type": "webhook",
            "topics": "*",
            "config": {"url": "https://example.com/x"},
            "metadata": {CAP: "64"},
        },
        auth=jwt,
    )
    assert looser.status_code == 403 and CAP in looser.json()["message"], looser.text

    dest = (await api.destination(tenant, auth=jwt, metadata={CAP: "2"}))["id"]
    assert await _patch(api, tenant, dest, {CAP: "8"}, jwt) == 200  # the server's own cap
    assert await _patch(api, tenant, dest, {CAP: "9"}, jwt) == 403

    # The operator raises it; the tenant's later edits keep that value without being refused.
    assert await _patch(api, tenant, dest, {CAP: "32"}, ADMIN) == 200
    assert await _patch(api, tenant, dest, {"team": "billing"}, jwt) == 200
    current = ok(await api.call("GET", f"/tenants/{tenant}/destinations/{dest}", auth=jwt))
    assert current["metadata"] == {CAP: "32", "team": "billing"}


async def test_under_a_server_rate_a_tenant_may_only_lower_it(make_api: MakeApi) -> None:
    api = await make_api(DESTINATION_RATE_LIMIT_PER_SECOND="10")
    tenant = await api.tenant()
    jwt = await api.jwt(tenant)
    dest = (await api.destination(tenant, auth=jwt))["id"]
    assert await _patch(api, tenant, dest, {RATE: "2.5"}, jwt) == 200
    assert await _patch(api, tenant, dest, {RATE: "0"}, jwt) == 403  # 0 is no limit at all
    assert await _patch(api, tenant, dest, {RATE: "11"}, jwt) == 403
    assert await _patch(api, tenant, dest, {RATE: "0"}, ADMIN) == 200


async def test_without_a_server_rate_a_tenant_may_set_any(api: Api) -> None:
    tenant = await api.tenant()
    jwt = await api.jwt(tenant)
    dest = (await api.destination(tenant, auth=jwt))["id"]
    assert await _patch(api, tenant, dest, {RATE: "1000"}, jwt) == 200
