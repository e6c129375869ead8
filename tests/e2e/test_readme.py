"""The README's first code block, run as written against a real server and receiver.

Only the server URL is swapped for the test server's; `KEY` and `RECEIVER_URL` are given, as the
README says they must be.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from support.receiver import Receiver
from support.server import ServerProcess

# The README's first steps are run against the server they describe, the embedded one.
pytestmark = [pytest.mark.e2e, pytest.mark.backends("sqlite"), pytest.mark.timeout(120)]

README = Path(__file__).parents[2] / "README.md"
README_SERVER = "http://127.0.0.1:3333/api/v1"


def _first_python_block() -> str:
    match = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert match, "README has no python block"
    return match.group(1)


def test_readme_snippet_runs_and_delivers_twice(server: ServerProcess, receiver: Receiver) -> None:
    code = _first_python_block()
    assert README_SERVER in code
    path = receiver.new_path("readme")
    scope: dict[str, Any] = {"KEY": server.api_key, "RECEIVER_URL": receiver.configure(path)}
    exec(compile(code.replace(README_SERVER, server.base_url), "README.md", "exec"), scope)  # noqa: S102

    # the publish, then the replay the snippet asks for
    first, replay = receiver.wait_for(2, path=path)
    assert first.body == replay.body == b'{"user_id":"userid","status":"active"}'
    assert first.header("x-outpost-source") == "crm"
    assert scope["event"].id == "evt_custom_123"
    assert str(scope["token"]).count(".") == 2
