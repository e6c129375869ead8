"""docs/openapi-extensions.yaml documents exactly the route table's extension operations."""

from __future__ import annotations

from pathlib import Path

import yaml

from outpost.api.routes import OPERATIONS

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi-extensions.yaml"


def test_every_extension_operation_is_documented_and_nothing_else() -> None:
    document = yaml.safe_load(DOCUMENT.read_text())
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    ours = {(op.method, op.path) for op in OPERATIONS if op.extension}
    assert documented == ours
    assert document["servers"][0]["url"].endswith("/api/v1")
