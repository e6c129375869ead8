"""This server's OpenAPI document (`openapi.yaml` beside this module): read once, served as it is
at `GET /api/v1/openapi.yaml` and as JSON at `GET /api/v1/openapi.json`, without authentication.

The document is hand-written; tests/api/test_openapi_document.py keeps its operations equal to
the route table's (waypost/api/routes.py) and fuzzes the server against it.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import yaml

# Not part of OpenAPI: the shared error statuses, merged into each operation by YAML merge keys.
_HELPERS = ("x-error-sets",)


@functools.cache
def yaml_text() -> str:
    return resources.files(__package__).joinpath("openapi.yaml").read_text("utf-8")


def document() -> dict[str, Any]:
    """The document, merge keys resolved (a fresh copy: callers may change it)."""
    loaded: dict[str, Any] = json.loads(json_bytes())
    return loaded


@functools.cache
def json_bytes() -> bytes:
    loaded = yaml.safe_load(yaml_text())
    for key in _HELPERS:
        loaded.pop(key, None)
    return json.dumps(loaded, ensure_ascii=False, separators=(",", ":")).encode()
