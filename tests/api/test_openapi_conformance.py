"""Property-based conformance against Outpost's OpenAPI document (schemathesis, in-process).

For every operation of our route table (plus health), schemathesis generates requests from
`../shared/reference/outpost-openapi.yaml` (positive and negative data), sends them to the ASGI
app in-process with the admin key, and checks:

- `not_a_server_error`: no 5xx, whatever the input;
- `response_schema_conformance`: a response whose status the document lists matches its schema;
- `content_type_conformance`: ... and has a documented media type.

Deliberately not checked (contract.md §11 divergences, decided by the project):
- `status_code_conformance`: we answer statuses the document does not list: 422 (not 400) for
  invalid JSON (contract.md §11.2), 403 for tenant mismatches, 413/415 for oversized or non-JSON
  bodies, 404 for an unknown destination type or id.
- `negative_data_rejection` / `positive_data_acceptance`: the server is lenient where Outpost is
  (unknown fields ignored, `tenant_id` required on publish although the document makes it optional
  (contract.md §11.3), `kafka` accepted although the `DestinationType` enum omits it (contract.md
  §11.12), destination types other than `webhook` not implemented here (422)).
- Extra response fields (destination `tenant_id`, attempt `destination_type`, contract.md §11.13)
  are allowed by the document's open schemas, so they need no exclusion.

Excluded operations: `/config` (managed-only, absent from self-hosted Outpost, contract.md §11.15).

Path parameters are pinned to one pre-created tenant, destination and event so that the cases
reach the handlers instead of stopping at 404 "tenant not found"; they are re-created before each
operation's run and before each DELETE case, since a DELETE may have removed them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)
from starlette.types import ASGIApp
from support.fuzzing import cases, run_examples

from waypost import bootstrap
from waypost.api.app import build as build_app
from waypost.api.routes import OPERATIONS

from ._support import ADMIN, BASE_URL, HOOK_URL, load_config

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO.parent / "shared" / "reference" / "outpost-openapi.yaml"

CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}

TENANT = "conformance-tenant"
DESTINATION = "conformance-destination"
EVENT = "conformance-event"
PINNED = {"tenant_id": TENANT, "destination_id": DESTINATION, "event_id": EVENT}

# Ours (the route table) plus health; each must exist in the document.
# The extension operations (waypost/api/openapi.yaml) are not in Outpost's document.
ROUTES = [(op.method, op.path) for op in OPERATIONS if not op.extension] + [("GET", "/healthz")]


@dataclass
class World:
    """The app and the schema bound to it."""

    app: ASGIApp
    schema: Any

    def ensure(self) -> None:
        """The pinned tenant, destination and event exist (a case may have deleted them)."""
        anyio.run(self._ensure)

    async def _ensure(self) -> None:
        transport = httpx.ASGITransport(app=self.app)
        headers = {"Authorization": ADMIN}
        async with httpx.AsyncClient(
            transport=transport, base_url=BASE_URL, headers=headers
        ) as client:
            upsert = await client.put(f"/tenants/{TENANT}")
            assert upsert.status_code in (200, 201), upsert.text
            path = f"/tenants/{TENANT}/destinations/{DESTINATION}"
            if (await client.get(path)).status_code == 404:
                body: dict[str, Any] = {"id": DESTINATION, "type": "webhook", "topics": "*"}
                body["config"] = {"url": HOOK_URL}
                created = await client.post(f"/tenants/{TENANT}/destinations", json=body)
                assert created.status_code == 201, created.text
            if (await client.get(f"/events/{EVENT}")).status_code == 404:
                event: dict[str, Any] = {"id": EVENT, "tenant_id": TENANT, "topic": "user.created"}
                event["data"] = {"a": 1}
                published = await client.post("/publish", json=event)
                assert published.status_code == 202, published.text


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    assert SPEC.is_file(), f"Outpost's OpenAPI document is expected at {SPEC}"
    # Room for every destination the generated creates make.
    env = {"MAX_DESTINATIONS_PER_TENANT": "10000"}
    system = bootstrap.build(load_config(tmp_path_factory.mktemp("conformance"), env))
    anyio.run(system.backend.open)
    try:
        app = build_app(system.services)
        schema = schemathesis.openapi.from_path(SPEC)
        schema.app = app
        world = World(app, schema)
        world.ensure()
        yield world
    finally:
        anyio.run(system.registry.close)
        anyio.run(system.backend.close)


# Health takes no input at all (not even credentials): there is nothing to make invalid.
CASES = cases(ROUTES, EXAMPLES, no_input=[("GET", "/healthz")])


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_conforms_to_the_openapi_document(
    world: World, method: str, path: str, mode: GenerationMode
) -> None:
    def send(case: Any) -> None:
        if method == "DELETE":  # the previous case may have deleted the pinned resources
            world.ensure()
        case.call_and_validate(base_url=BASE_URL, headers={"Authorization": ADMIN}, checks=CHECKS)

    world.ensure()
    run_examples(
        world.schema, method, path, mode, max_examples=EXAMPLES[mode], pinned=PINNED, send=send
    )


def test_excluded_operations_are_the_documented_ones(world: World) -> None:
    """Everything in the document that we do not test is /config (see above)."""
    methods = {"get", "put", "post", "patch", "delete", "head", "options"}
    documented = {
        (method.upper(), path)
        for path in world.schema
        for method in world.schema[path]
        if method in methods
    }
    untested = documented - set(ROUTES)
    assert untested == {
        ("GET", "/config"),
        ("PATCH", "/config"),
    }
