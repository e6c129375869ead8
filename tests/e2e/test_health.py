"""Health endpoint (contract.md §1.6.1, §10.3 Health)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from outpost_sdk import Outpost
from support.server import ServerProcess

from waypost import __version__

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def _check_health_body(res: httpx.Response, workers: set[str]) -> None:
    assert res.status_code == 200, res.text
    assert res.headers["content-type"].startswith("application/json")
    body = res.json()
    assert body["status"] == "healthy"
    assert isinstance(body["timestamp"], str) and body["timestamp"]
    stamp = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=5)
    assert set(body["workers"]) == workers, body
    for worker in body["workers"].values():
        assert worker == {"status": "healthy"}, body
    # Ours (waypost/api/openapi.yaml, Health.version): the version --version prints.
    assert body["version"] == __version__, body


def test_api_healthz_needs_no_auth_and_reports_workers(server: ServerProcess) -> None:
    with server.http(token=None) as anon:
        _check_health_body(anon.get("/healthz"), server.health_workers())


def test_root_healthz_is_the_same_probe(server: ServerProcess) -> None:
    with httpx.Client(timeout=10) as client:
        _check_health_body(client.get(f"{server.root_url}/healthz"), server.health_workers())


def test_sdk_health_check_parses(server: ServerProcess, admin: Outpost) -> None:
    res = admin.health.check()
    assert res.status.value == "healthy"
    assert res.timestamp is not None
    assert res.workers is not None and set(res.workers) == server.health_workers()
