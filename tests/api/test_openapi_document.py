"""This server's OpenAPI document (waypost/api/openapi.yaml): it lists exactly the operations of
the route table, the server serves it without credentials, and the server answers as it says.

The conformance run is schemathesis in process, like tests/api/test_openapi_conformance.py
(which checks compatibility with Outpost's document), with one more check: since this document
describes what the server really answers, every status must be one it lists
(`status_code_conformance`). Path parameters are pinned as there, so cases reach the handlers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import schemathesis
import yaml
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support.fuzzing import cases, run_examples

from waypost import bootstrap
from waypost.api import openapi
from waypost.api.app import build as build_app
from waypost.api.routes import OPERATIONS

from ._support import ADMIN, BASE_URL, Api, load_config, ok
from .test_openapi_conformance import PINNED, World

METHODS = ("get", "put", "post", "patch", "delete")
# Served beside the route table, without credentials.
PUBLIC = {("GET", "/healthz"), ("GET", "/openapi.json"), ("GET", "/openapi.yaml")}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 6, GenerationMode.NEGATIVE: 3}


def documented(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def test_documents_every_route_and_nothing_else() -> None:
    operations = documented(openapi.document())
    served = {(op.method, op.path) for op in OPERATIONS} | PUBLIC
    assert set(operations) == served, (served - set(operations), set(operations) - served)


def test_extensions_are_marked_as_in_the_route_table() -> None:
    operations = documented(openapi.document())
    for op in OPERATIONS:
        assert operations[op.method, op.path].get("x-extension", False) == op.extension, op.path


def test_public_operations_need_no_credentials_and_the_rest_do() -> None:
    document = openapi.document()
    assert document["security"] == [{"AdminApiKey": []}, {"TenantJwt": []}]
    for key, operation in documented(document).items():
        assert ("security" in operation and operation["security"] == []) == (key in PUBLIC), key
        if key not in PUBLIC:
            assert "401" in operation["responses"], key


def test_every_reference_resolves() -> None:
    document = openapi.document()

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    for ref in walk(document):
        assert ref.startswith("#/components/"), ref
        kind, _, name = ref.removeprefix("#/components/").partition("/")
        assert name in document["components"][kind], ref


@pytest.mark.anyio
async def test_served_without_credentials(api: Api) -> None:
    response = await api.call("GET", "http://testserver/api/v1/openapi.json", auth=None)
    assert response.headers["content-type"].startswith("application/json")
    assert ok(response) == openapi.document()
    response = await api.call("GET", "http://testserver/api/v1/openapi.yaml", auth=None)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/yaml")
    served = yaml.safe_load(response.text)
    served.pop("x-error-sets")
    assert served == openapi.document()
    assert served["openapi"].startswith("3.1")


# The server against the document ---------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    env = {"MAX_DESTINATIONS_PER_TENANT": "10000"}
    system = bootstrap.build(load_config(tmp_path_factory.mktemp("own-document"), env))
    anyio.run(system.backend.open)
    try:
        app = build_app(system.services)
        schema = schemathesis.openapi.from_dict(openapi.document())
        schema.app = app
        world = World(app, schema)
        world.ensure()
        yield world
    finally:
        anyio.run(system.registry.close)
        anyio.run(system.backend.close)


# The public operations take no input at all: there is nothing to make invalid.
CASES = cases(sorted(documented(openapi.document())), EXAMPLES, no_input=PUBLIC)


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_server_answers_as_documented(
    world: World, method: str, path: str, mode: GenerationMode
) -> None:
    def send(case: Any) -> None:
        if method == "DELETE":
            world.ensure()
        case.call_and_validate(base_url=BASE_URL, headers={"Authorization": ADMIN}, checks=CHECKS)

    world.ensure()
    run_examples(
        world.schema,
        method,
        path,
        mode,
        max_examples=EXAMPLES[mode],
        pinned=PINNED,
        send=send,
        shrink=False,
    )
