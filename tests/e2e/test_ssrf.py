"""The SSRF guard end to end, as a hostile tenant would probe it (every backend mode).

The server runs with the guard on and nothing allowed. A tenant's broker destinations point at
loopback: at a listener that counts the TCP connections it accepts (an open port) and at a port
nothing listens on (a closed one). No connection may be made, and what the tenant reads must not
tell the two ports apart, nor name the address a name resolved to.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from support.api import unique_id, wait_attempts

SERVER_ENV = {
    "DESTINATIONS_ALLOWED_NETWORKS": "",
    "DESTINATIONS_UNGUARDED_TYPES": "",
    "MAX_RETRY_LIMIT": "0",
}


class CountingListener:
    """A plain TCP server on 127.0.0.1 that counts (and closes) the connections it accepts."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port: int = self._sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


@pytest.fixture
def listener() -> Iterator[CountingListener]:
    counting = CountingListener()
    try:
        yield counting
    finally:
        counting.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def rabbitmq(address: str) -> dict[str, Any]:
    return {
        "type": "rabbitmq",
        "config": {"server_url": address, "exchange": "x"},
        "credentials": {"username": "guest", "password": "guest"},
    }


def kafka(address: str) -> dict[str, Any]:
    return {
        "type": "kafka",
        "config": {"brokers": address, "topic": "t", "sasl_mechanism": "plain"},
        "credentials": {"username": "u", "password": "p"},
    }


def gcp_pubsub(address: str) -> dict[str, Any]:
    return {
        "type": "gcp_pubsub",
        "config": {"project_id": "p", "topic": "t", "endpoint": address},
        "credentials": {"service_account_json": '{"type": "service_account"}'},
    }


def azure_servicebus(address: str) -> dict[str, Any]:
    connection = f"Endpoint=sb://{address}/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0"
    return {
        "type": "azure_servicebus",
        "config": {"name": "q"},
        "credentials": {"connection_string": connection},
    }


Body = Callable[[str], dict[str, Any]]


def create(api: httpx.Client, tenant_id: str, body: dict[str, Any]) -> httpx.Response:
    return api.post(f"/tenants/{tenant_id}/destinations", json={"topics": "*", **body})


@pytest.mark.parametrize("body", [rabbitmq, kafka, gcp_pubsub], ids=lambda b: b.__name__)
def test_broker_types_cannot_scan_loopback(
    api: httpx.Client, listener: CountingListener, body: Body
) -> None:
    tenant_id = unique_id("ssrf")
    assert api.put(f"/tenants/{tenant_id}").status_code in (200, 201)
    ids = []
    for port in (listener.port, closed_port()):
        # A name: literals are refused at create (below); names resolve when connecting.
        created = create(api, tenant_id, body(f"localhost:{port}"))
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    published = api.post(
        "/publish", json={"tenant_id": tenant_id, "topic": "user.created", "data": {"probe": 1}}
    )
    assert published.status_code == 202, published.text

    attempts = wait_attempts(api, 2, timeout=20, tenant_id=tenant_id, include="response_data")
    assert listener.accepted == 0
    by_destination = {a["destination_id"]: a for a in attempts}
    opened, closed = (by_destination[i] for i in ids)
    assert (opened["status"], opened["code"]) == ("failed", "ssrf_blocked")
    assert (closed["status"], closed["code"]) == ("failed", "ssrf_blocked")
    assert opened["response_data"] == closed["response_data"]
    error = opened["response_data"]["error"]
    assert error == "delivery to localhost refused: the address it resolved to is not allowed"


@pytest.mark.parametrize(
    ("body", "address", "field"),
    [
        (rabbitmq, "127.0.0.1:5672", "config.server_url"),
        (kafka, "127.0.0.1:9092", "config.brokers"),
        (gcp_pubsub, "127.0.0.1:8085", "config.endpoint"),
        (azure_servicebus, "orders.servicebus.windows.net", "credentials.connection_string"),
    ],
    ids=["rabbitmq", "kafka", "gcp_pubsub", "azure_servicebus"],
)
def test_refused_at_create(
    api: httpx.Client, tenant_id: str, body: Body, address: str, field: str
) -> None:
    res = create(api, tenant_id, body(address))
    assert res.status_code == 422
    assert res.json()["data"] == [f"{field} failed ssrf validation"]


@pytest.mark.parametrize("url", ["http://127.0.0.1./hook", "http://0x7f000001./hook"])
def test_trailing_dot_literals_are_refused_at_create(
    api: httpx.Client, tenant_id: str, url: str
) -> None:
    res = create(api, tenant_id, {"type": "webhook", "config": {"url": url}})
    assert res.status_code == 422
    assert res.json()["data"] == ["config.url failed ssrf validation"]
