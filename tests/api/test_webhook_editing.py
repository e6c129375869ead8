"""Webhook destinations over the API: delivery_metadata that would replace the server's headers,
and the rotation request forms of contract.md §4.6."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ._support import ADMIN, Api, assert_validation, ok, running_api

pytestmark = pytest.mark.anyio


def _forbidden(key: str, header: str) -> str:
    return (
        f"delivery_metadata.{key} is forbidden: it would replace the {header} header,"
        " which the server sets"
    )


def _in(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def api(shared_api: Api) -> Api:
    return shared_api


@pytest.fixture(scope="module")
async def standard_api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    env = {"DESTINATIONS_WEBHOOK_MODE": "standard"}
    async with running_api(tmp_path_factory.mktemp("standard"), env) as api:
        yield api


@pytest.fixture(scope="module")
async def blank_prefix_api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    env = {"DESTINATIONS_WEBHOOK_HEADER_PREFIX": " "}
    async with running_api(tmp_path_factory.mktemp("blank"), env) as api:
        yield api


def _create(api: Api, tenant: str, **extra: Any) -> Any:
    body = {"type": "webhook", "topics": "*", "config": {"url": "https://example.com/h"}}
    return api.call("POST", f"/tenants/{tenant}/destinations", json=body | extra)


class TestReservedDeliveryMetadata:
    async def test_default_mode_refuses_the_x_outpost_headers(self, api: Api) -> None:
        tenant = await api.tenant()
        metadata = {"event-id": "x", "Signature": "y", "team": "core"}
        assert_validation(
            await _create(api, tenant, delivery_metadata=metadata),
            [
                _forbidden("event-id", "X-Outpost-Event-Id"),
                _forbidden("Signature", "X-Outpost-Signature"),
            ],
        )
        assert await api.get(f"/tenants/{tenant}/destinations") == []

    async def test_standard_mode_refuses_id_and_signature(self, standard_api: Api) -> None:
        tenant = await standard_api.tenant()
        response = await _create(
            standard_api, tenant, delivery_metadata={"id": "1", "signature": "2"}
        )
        assert_validation(
            response,
            [_forbidden("id", "Webhook-Id"), _forbidden("signature", "Webhook-Signature")],
        )

    async def test_blank_prefix_refuses_the_framing_headers(self, blank_prefix_api: Api) -> None:
        tenant = await blank_prefix_api.tenant()
        response = await _create(blank_prefix_api, tenant, delivery_metadata={"Host": "evil"})
        assert_validation(response, [_forbidden("Host", "Host")])

    async def test_update_refuses_a_colliding_key_and_keeps_the_stored_map(
        self, standard_api: Api
    ) -> None:
        tenant = await standard_api.tenant()
        created = await standard_api.destination(tenant, delivery_metadata={"team": "core"})
        path = f"/tenants/{tenant}/destinations/{created['id']}"
        for auth in (ADMIN, await standard_api.jwt(tenant)):
            response = await standard_api.call(
                "PATCH", path, json={"delivery_metadata": {"topic": "spoof"}}, auth=auth
            )
            assert_validation(response, [_forbidden("topic", "Webhook-Topic")])
        assert (await standard_api.get(path))["delivery_metadata"] == {"team": "core"}
        # other keys, and other fields, still change
        patched = ok(
            await standard_api.call(
                "PATCH", path, json={"delivery_metadata": {"region": "eu"}, "topics": ["a"]}
            )
        )
        assert patched["delivery_metadata"] == {"team": "core", "region": "eu"}

    async def test_event_metadata_with_such_keys_is_accepted(self, api: Api) -> None:
        tenant = await api.tenant()
        await api.destination(tenant)
        published = await api.publish(tenant, metadata={"signature": "x", "event-id": "y"})
        assert published["id"]


class TestRotationForms:
    """contract.md §4.6: rotate_secret (truthy forms), tenant or admin, update only, window given or
    24 h."""

    async def _webhook(self, api: Api) -> tuple[str, str, str]:
        tenant = await api.tenant()
        created = await api.destination(tenant)
        path = f"/tenants/{tenant}/destinations/{created['id']}"
        return tenant, path, created["credentials"]["secret"]

    @pytest.mark.parametrize("flag", [True, "true", "1", "on", "YES"])
    @pytest.mark.parametrize("as_tenant", [False, True])
    async def test_custom_window_on_a_never_rotated_destination(
        self, api: Api, flag: Any, as_tenant: bool
    ) -> None:
        tenant, path, secret = await self._webhook(api)
        window = _in(2).strftime("%Y-%m-%dT%H:%M:%S.250+00:00")
        auth = await api.jwt(tenant) if as_tenant else ADMIN
        body = {"credentials": {"rotate_secret": flag, "previous_secret_invalid_at": window}}
        rotated = ok(await api.call("PATCH", path, json=body, auth=auth))["credentials"]
        assert rotated["previous_secret"] == secret
        assert rotated["previous_secret_invalid_at"] == window  # kept as given
        assert rotated["secret"] not in (secret, "")
        assert set(rotated) == {"secret", "previous_secret", "previous_secret_invalid_at"}
        assert (await api.get(path))["credentials"] == rotated

    async def test_standard_mode_custom_window(self, standard_api: Api) -> None:
        _, path, secret = await self._webhook(standard_api)
        window = _in(1).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"credentials": {"rotate_secret": True, "previous_secret_invalid_at": window}}
        rotated = ok(await standard_api.call("PATCH", path, json=body))["credentials"]
        assert (rotated["previous_secret"], rotated["previous_secret_invalid_at"]) == (
            secret,
            window,
        )
        assert rotated["secret"].startswith("whsec_")

    async def test_without_a_window_the_overlap_is_a_day_each_time(self, api: Api) -> None:
        _, path, first = await self._webhook(api)
        body = {"credentials": {"rotate_secret": True}}
        once = ok(await api.call("PATCH", path, json=body))["credentials"]
        # end the overlap, then rotate again: the new overlap is a fresh day, not the old end
        ended = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        ok(
            await api.call(
                "PATCH", path, json={"credentials": {"previous_secret_invalid_at": ended}}
            )
        )
        twice = ok(await api.call("PATCH", path, json=body))["credentials"]
        assert once["previous_secret"] == first
        assert twice["previous_secret"] == once["secret"]
        for shown in (once, twice):
            left = _parse(shown["previous_secret_invalid_at"]) - datetime.now(UTC)
            assert timedelta(hours=23) < left <= timedelta(hours=24)

    async def test_rotation_on_create_is_refused(self, api: Api) -> None:
        tenant = await api.tenant()
        for credentials in (
            {"rotate_secret": True},
            {"rotate_secret": True, "previous_secret_invalid_at": _in(1).isoformat()},
        ):
            assert_validation(
                await _create(api, tenant, credentials=credentials),
                ["credentials.rotate_secret failed invalid validation"],
            )

    async def test_a_window_that_is_not_rfc3339_is_refused(self, api: Api) -> None:
        _, path, secret = await self._webhook(api)
        body = {"credentials": {"rotate_secret": True, "previous_secret_invalid_at": "tomorrow"}}
        assert_validation(
            await api.call("PATCH", path, json=body),
            ["credentials.previous_secret_invalid_at failed pattern validation"],
        )
        assert (await api.get(path))["credentials"] == {"secret": secret}

    async def test_a_false_flag_does_not_rotate(self, api: Api) -> None:
        _, path, secret = await self._webhook(api)
        window = _in(1).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"credentials": {"rotate_secret": False, "previous_secret_invalid_at": window}}
        assert_validation(
            await api.call("PATCH", path, json=body), ["credentials.previous_secret is required"]
        )
        unchanged = ok(await api.call("PATCH", path, json={"credentials": {"rotate_secret": "no"}}))
        assert unchanged["credentials"] == {"secret": secret}
