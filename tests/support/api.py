"""Small helpers over the official SDK and raw HTTP used by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import httpx
from outpost_sdk import Outpost, models

from .ids import unique_id as unique_id  # re-exported: the e2e tests import it from here
from .waiting import poll_until

TEST_SECRET = "testsecret1234567890abcdefghijklmnop"


def as_webhook(dest: object) -> models.DestinationWebhook:
    """Narrow the SDK's destination union to the webhook model."""
    assert isinstance(dest, models.DestinationWebhook), f"not a webhook destination: {dest!r}"
    return dest


def create_webhook(
    client: Outpost,
    tenant_id: str,
    url: str,
    *,
    topics: str | Sequence[str] = "*",
    secret: str | None = None,
    **extra: Any,
) -> models.DestinationWebhook:
    """`destinations.create` for a webhook; `extra` goes into the body as is."""
    body: dict[str, Any] = {
        "type": "webhook",
        "topics": topics if isinstance(topics, str) else list(topics),
        "config": {"url": url},
    }
    if secret is not None:
        body["credentials"] = {"secret": secret}
    body.update(extra)
    return as_webhook(client.destinations.create(tenant_id=tenant_id, body=cast(Any, body)))


def update_webhook(
    client: Outpost, tenant_id: str, destination_id: str, body: Mapping[str, Any]
) -> models.DestinationWebhook:
    """`destinations.update` (PATCH) of a webhook; the SDK requires `type` in the body."""
    patch = {"type": "webhook", **body}
    return as_webhook(
        client.destinations.update(
            tenant_id=tenant_id, destination_id=destination_id, body=cast(Any, patch)
        )
    )


def get_webhook(client: Outpost, tenant_id: str, destination_id: str) -> models.DestinationWebhook:
    return as_webhook(client.destinations.get(tenant_id=tenant_id, destination_id=destination_id))


def publish(
    admin: Outpost,
    tenant_id: str,
    data: Mapping[str, Any],
    *,
    topic: str = "user.created",
    **extra: Any,
) -> models.PublishResponse:
    request: dict[str, Any] = {"tenant_id": tenant_id, "topic": topic, "data": dict(data)}
    request.update(extra)
    return admin.publish(request=cast(Any, request))


def list_attempts(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Raw `GET /attempts` (first page, up to 1000 rows)."""
    params.setdefault("limit", 1000)
    res = api.get("/attempts", params=params)
    assert res.status_code == 200, f"GET /attempts {params} -> {res.status_code} {res.text}"
    models_: list[dict[str, Any]] = res.json()["models"]
    return models_


def wait_attempts(
    api: httpx.Client,
    count: int,
    *,
    timeout: float = 10.0,
    exact: bool = False,
    **params: Any,
) -> list[dict[str, Any]]:
    """Poll `GET /attempts` until at least (or, with `exact`, exactly) `count` rows match."""

    def probe() -> list[dict[str, Any]] | None:
        rows = list_attempts(api, **params)
        ok = len(rows) == count if exact else len(rows) >= count
        return rows if ok else None

    return poll_until(probe, timeout=timeout, what=f"{count} attempt(s) for {params}")


def wait_event(api: httpx.Client, event_id: str, *, timeout: float = 10.0) -> httpx.Response:
    """Poll raw `GET /events/{id}` until the event is in the log; returns the 200 response."""

    def probe() -> httpx.Response | None:
        res = api.get(f"/events/{event_id}")
        return res if res.status_code == 200 else None

    return poll_until(probe, timeout=timeout, what=f"event {event_id} logged")


def is_json_error(res: httpx.Response, status: int) -> bool:
    """The response is `status` with a JSON `{status, message}` body."""
    if res.status_code != status:
        return False
    if not res.headers.get("content-type", "").startswith("application/json"):
        return False
    body = res.json()
    return (
        isinstance(body, dict)
        and body.get("status") == status
        and isinstance(body.get("message"), str)
        and bool(body["message"])
    )
