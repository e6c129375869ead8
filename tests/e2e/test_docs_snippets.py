"""The code of the documentation site (docs/snippets/, included as is in its pages), run against a
real server and, for the receivers, by the language a reader would run them with.

- quickstart.sh (curl) and quickstart.py (the official Python SDK), as the quick start shows them,
  each against a fresh server of its own (both create the tenant `acme`); only the server's
  address is replaced by the test server's, as tests/e2e/test_readme.py does for the README.
- receiver.py (python) and receiver.mjs (node), started as the receiving-webhooks page says
  (`WEBHOOK_SECRET=... PORT=... python receiver.py`), behind a webhook destination with that
  secret: an event is delivered and verified, a secret rotation keeps verifying, and requests
  whose signature is wrong or missing are refused with 401.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.api import unique_id
from support.receiver import Receiver
from support.server import ServerProcess, free_port
from support.waiting import poll_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SNIPPETS = Path(__file__).parents[2] / "docs" / "snippets"
DOCS_SERVER = "http://127.0.0.1:3333/api/v1"  # the address the snippets are written for


def _snippet(name: str, server: ServerProcess) -> str:
    text = (SNIPPETS / name).read_text()
    assert DOCS_SERVER in text
    return text.replace(DOCS_SERVER, server.base_url)


def test_quickstart_curl(make_server: Callable[..., ServerProcess], receiver: Receiver) -> None:
    server = make_server()
    path = receiver.new_path("docs-curl")
    done = subprocess.run(
        ["bash", "-c", _snippet("quickstart.sh", server)],
        env={**os.environ, "KEY": server.api_key, "RECEIVER_URL": receiver.configure(path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tenant, destination, published, attempts = map(json.loads, done.stdout.splitlines())
    assert tenant["id"] == "acme"
    assert destination["type"] == "webhook"
    assert destination["credentials"]["secret"].startswith("whsec_")
    assert published == {
        "id": "evt_curl_1",
        "duplicate": False,
        "destination_ids": [destination["id"]],
    }
    assert "models" in attempts
    [request] = receiver.wait_for(1, path=path)
    assert request.json() == {"user_id": "userid", "status": "active"}
    assert request.event_id == "evt_curl_1"
    assert request.signature_valid_for(destination["credentials"]["secret"])


def test_quickstart_python_sdk(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    server = make_server()
    path = receiver.new_path("docs-sdk")
    done = subprocess.run(
        [sys.executable, "-c", _snippet("quickstart.py", server)],
        env={**os.environ, "KEY": server.api_key, "RECEIVER_URL": receiver.configure(path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    _, dest_id, _, _, secret = lines[0].split()  # "destination <id> signs with <secret>"
    assert lines[1] == f"published evt_sdk_1 to ['{dest_id}']"
    assert lines[2] == "attempt 200 delivered"
    [request] = receiver.wait_for(1, path=path)
    assert request.json() == {"user_id": "userid", "status": "active"}
    assert request.header("x-outpost-source") == "crm"
    assert request.signature_valid_for(secret)


# The receivers -----------------------------------------------------------------------------------

RECEIVERS = {
    "python": [sys.executable, str(SNIPPETS / "receiver.py")],
    "node": ["node", str(SNIPPETS / "receiver.mjs")],
}
SECRET = "whsec_docs_snippet_secret"


class RunningReceiver:
    def __init__(self, url: str, output: Path) -> None:
        self.url = url
        self.output = output

    def lines(self) -> list[str]:
        return self.output.read_text().splitlines()


@pytest.fixture(params=sorted(RECEIVERS))
def snippet_receiver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningReceiver]:
    command = RECEIVERS[request.param]
    assert shutil.which(command[0]), f"{command[0]} is needed to run the {request.param} snippet"
    port = free_port()
    output, errors = tmp_path / "receiver.out", tmp_path / "receiver.err"
    with output.open("wb") as sink, errors.open("wb") as error_sink:
        proc = subprocess.Popen(
            command,
            env={**os.environ, "WEBHOOK_SECRET": SECRET, "PORT": str(port)},
            stdin=subprocess.DEVNULL,
            stdout=sink,  # what the snippet prints for each verified event
            stderr=error_sink,  # Python's http.server logs each request there
        )
    try:

        def listening() -> bool:
            assert proc.poll() is None, output.read_text() + errors.read_text()
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True

        poll_until(listening, timeout=15, what=f"the {request.param} receiver listening")
        yield RunningReceiver(f"http://127.0.0.1:{port}/", output)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _attempts(api: httpx.Client, tenant: str, event_id: str) -> list[dict[str, Any]]:
    answer = api.get("/attempts", params={"tenant_id": tenant, "event_id": event_id})
    answer.raise_for_status()
    models: list[dict[str, Any]] = answer.json()["models"]
    return models


def _publish_and_wait(api: httpx.Client, tenant: str, event_id: str) -> dict[str, Any]:
    body = {"tenant_id": tenant, "topic": "user.created", "id": event_id, "data": {"n": event_id}}
    assert api.post("/publish", json=body).status_code == 202
    [attempt] = poll_until(lambda: _attempts(api, tenant, event_id), what=f"{event_id}'s attempt")
    return attempt


def test_receiver_snippet_verifies_deliveries(
    snippet_receiver: RunningReceiver, server: ServerProcess, api: httpx.Client
) -> None:
    tenant = unique_id("docs-receiver")
    assert api.put(f"/tenants/{tenant}").status_code == 201
    created = api.post(
        f"/tenants/{tenant}/destinations",
        json={
            "type": "webhook",
            "topics": ["user.created"],
            "config": {"url": snippet_receiver.url},
            "credentials": {"secret": SECRET},
        },
    )
    assert created.status_code == 201, created.text
    dest_id = created.json()["id"]

    attempt = _publish_and_wait(api, tenant, "evt_docs_1")
    assert (attempt["status"], attempt["code"]) == ("success", "200")
    printed = poll_until(snippet_receiver.lines, what="the receiver's output")
    verified, event_id, topic, data = printed[0].split(" ", 3)
    assert (verified, event_id, topic) == ("verified", "evt_docs_1", "user.created")
    assert json.loads(data) == {"n": "evt_docs_1"}

    # After a rotation the receiver still holds the old secret: the previous secret's signature,
    # sent alongside the new one during the grace period, still verifies.
    rotated = api.patch(
        f"/tenants/{tenant}/destinations/{dest_id}", json={"credentials": {"rotate_secret": True}}
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["credentials"]["secret"] != SECRET
    attempt = _publish_and_wait(api, tenant, "evt_docs_2")
    assert (attempt["status"], attempt["code"]) == ("success", "200")

    # Requests not signed with the secret are refused and not acted on.
    body = b'{"n":"forged"}'
    good = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    bad = hmac.new(b"whsec_other", body, hashlib.sha256).hexdigest()
    headers = {"x-outpost-event-id": "evt_forged", "x-outpost-topic": "user.created"}
    for signature in (f"v0={bad}", None, good, f"v0={good[:-1]}0"):
        sent = dict(headers, **({"x-outpost-signature": signature} if signature else {}))
        assert httpx.post(snippet_receiver.url, content=body, headers=sent).status_code == 401
    assert all("evt_forged" not in line for line in snippet_receiver.lines())
    # the two-signature form, the valid one second
    sent = dict(headers, **{"x-outpost-signature": f"v0={bad},{good}"})
    assert httpx.post(snippet_receiver.url, content=body, headers=sent).status_code == 200
    assert snippet_receiver.lines()[-1].startswith("verified evt_forged user.created")
