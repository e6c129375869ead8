"""The official TypeScript SDK (@hookdeck/outpost-sdk, pinned in tests/sdk_ts) against the server.

tests/sdk_ts/smoke.mjs drives tenants, destinations, publish, attempts, events, retry and a
tenant JWT through the SDK, whose zod schemas validate every response; tests/sdk_ts/walk.mjs
calls every operation of the SDK with every enum value and include option. npm installs the SDK
from the lock file on first use.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support.receiver import Receiver
from support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PROJECT = Path(__file__).parents[1] / "sdk_ts"


@pytest.fixture(scope="session")
def node_project() -> Path:
    npm = shutil.which("npm")
    assert npm and shutil.which("node"), "Node.js and npm are needed for the TypeScript SDK check"
    if not (PROJECT / "node_modules" / "@hookdeck" / "outpost-sdk").is_dir():
        subprocess.run([npm, "ci", "--silent", "--no-audit", "--no-fund"], cwd=PROJECT, check=True)
    return PROJECT


def test_typescript_sdk_round_trip(
    node_project: Path, server: ServerProcess, receiver: Receiver
) -> None:
    path = receiver.new_path("ts")
    env = {
        **os.environ,
        "OUTPOST_URL": server.base_url,
        "OUTPOST_KEY": server.api_key,
        "RECEIVER_URL": receiver.configure(path),
        "TENANT": "ts-sdk",
    }
    done = subprocess.run(
        ["node", "smoke.mjs"],
        cwd=node_project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "typescript sdk: ok" in done.stdout
    first, replay = receiver.wait_for(2, path=path)  # the publish, then the SDK's retry
    assert first.json() == {"user_id": "u1", "nested": {"ok": True}}
    assert first.header("x-outpost-source") == "ts"
    assert replay.body == first.body


def test_typescript_sdk_walks_every_operation(
    node_project: Path, server: ServerProcess, receiver: Receiver
) -> None:
    env = {
        **os.environ,
        "OUTPOST_URL": server.base_url,
        "OUTPOST_KEY": server.api_key,
        "RECEIVER_URL": receiver.configure(receiver.new_path("ts-walk-ok")),
        "FAIL_URL": receiver.configure(receiver.new_path("ts-walk-fail"), status=500),
        "TENANT": "ts-sdk-walk",
    }
    done = subprocess.run(
        ["node", "walk.mjs"],
        cwd=node_project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "typescript sdk walk: ok" in done.stdout
