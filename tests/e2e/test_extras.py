"""A server without some optional dependencies (extras): what a `pip install outpost` user without
`[aws]` or `[rabbitmq]` sees.

The suite installs every extra (`[all]`) and cannot uninstall one mid-run, so each server here is
started with the extras' packages made unimportable (support/missing_extras/sitecustomize.py:
`import` fails and `importlib.util.find_spec` finds nothing, as for a package not installed).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from support.api import unique_id, wait_attempts
from support.server import REPO_ROOT, ServerProcess, without_extras

pytestmark = pytest.mark.e2e

AWS_HINT = "pip install 'waypost[aws]'"
SQS_REASON = f"destination type 'aws_sqs' needs the optional dependencies: {AWS_HINT}"
QUEUE_URL = "http://127.0.0.1:9/000000000000/orders"  # never reached: nothing can deliver to it


def _tenant(api: httpx.Client) -> str:
    tenant = unique_id("extras")
    assert api.put(f"/tenants/{tenant}").status_code in (200, 201)
    return tenant


def _sqs(tenant: str) -> dict[str, Any]:
    return {
        "type": "aws_sqs",
        "topics": ["user.created"],
        "config": {"queue_url": QUEUE_URL},
        "credentials": {"key": "AKIAEXAMPLE", "secret": "secret-example"},
    }


def test_types_without_their_extra_are_listed_unavailable_and_refused_at_create(
    make_server: Callable[..., ServerProcess],
) -> None:
    # Not `rabbitmq`: with OUTPOST_TEST_BACKEND=postgres+rabbitmq the server's queue needs it.
    srv = make_server(without_extras("aws", "kafka"))
    with srv.http() as api, srv.admin_client() as admin:
        listed = {t["type"]: t for t in api.get("/destination-types").json()}
        assert listed["aws_sqs"]["available"] is False
        assert listed["aws_sqs"]["unavailable_reason"] == SQS_REASON
        assert listed["kafka"]["available"] is False
        assert "pip install 'waypost[kafka]'" in listed["kafka"]["unavailable_reason"]
        # Available types carry no extra field: the entry is Outpost's as it is.
        assert "available" not in listed["webhook"] and "available" not in listed["rabbitmq"]
        assert listed["aws_sqs"]["config_fields"]  # still the type's whole schema
        one = api.get("/destination-types/aws_s3").json()
        assert one["available"] is False and AWS_HINT in one["unavailable_reason"]

        # The SDK (1.7.0) reads the list as ever: it ignores the extra fields.
        assert {t.type for t in admin.schemas.list_destination_types()} == set(listed)

        tenant = _tenant(api)
        res = api.post(f"/tenants/{tenant}/destinations", json=_sqs(tenant))
        assert res.status_code == 422
        assert res.json() == {"status": 422, "message": SQS_REASON}
        assert api.get(f"/tenants/{tenant}/destinations").json() == []

        webhook = {
            "type": "webhook",
            "topics": ["user.created"],
            "config": {"url": "http://127.0.0.1:9/hook"},
        }
        assert api.post(f"/tenants/{tenant}/destinations", json=webhook).status_code == 201
    assert "Traceback" not in srv.log_text()


def test_a_stored_destination_whose_extra_went_missing_fails_its_deliveries_with_the_reason(
    make_server: Callable[..., ServerProcess],
) -> None:
    """Created while `[aws]` was installed; then the server restarts without it."""
    srv = make_server()
    with srv.http() as api:
        tenant = _tenant(api)
        created = api.post(f"/tenants/{tenant}/destinations", json=_sqs(tenant))
        assert created.status_code == 201, created.text
        destination = created.json()["id"]
    srv.stop()
    srv.overrides.update(without_extras("aws"))
    srv.start()
    with srv.http() as api:
        # Still listed and shown (credentials obfuscated as ever).
        shown = api.get(f"/tenants/{tenant}/destinations/{destination}")
        assert shown.status_code == 200 and shown.json()["config"]["queue_url"] == QUEUE_URL
        # An update cannot be checked or delivered: refused, naming the extra.
        patch = api.patch(
            f"/tenants/{tenant}/destinations/{destination}", json={"topics": ["user.updated"]}
        )
        assert patch.status_code == 422 and patch.json()["message"] == SQS_REASON

        published = api.post(
            "/publish", json={"tenant_id": tenant, "topic": "user.created", "data": {"n": 1}}
        )
        assert published.status_code == 202, published.text
        attempt = wait_attempts(
            api, 1, tenant_id=tenant, destination_id=destination, include="response_data"
        )[0]
        assert attempt["status"] == "failed"
        assert attempt["code"] == "ERR"
        assert attempt["response_data"] == {"error": SQS_REASON}

        # Disabling and deleting need no SDK: a tenant can tidy up.
        assert api.put(f"/tenants/{tenant}/destinations/{destination}/disable").status_code == 200
        assert api.delete(f"/tenants/{tenant}/destinations/{destination}").status_code == 200
    log = srv.log_text()
    assert "Traceback" not in log
    assert SQS_REASON in log  # the operator's cue, once


@pytest.mark.parametrize(
    ("extra", "env", "line"),
    [
        (
            "otel",
            {"OTEL_SERVICE_NAME": "outpost-test"},
            "OTEL_SERVICE_NAME needs the optional dependencies: pip install 'waypost[otel]'",
        ),
        (
            "rabbitmq",
            {
                "RABBITMQ_SERVER_URL": "amqp://guest:guest@127.0.0.1:5672/",
                "POSTGRES_URL": "postgresql://127.0.0.1:5432/test",
                "AES_ENCRYPTION_SECRET": "aes-secret",
            },
            "RABBITMQ_SERVER_URL needs the optional dependencies: pip install 'waypost[rabbitmq]'",
        ),
        (
            "rabbitmq",
            {"OPERATOR_EVENTS_RABBITMQ_SERVER_URL": "amqp://guest:guest@127.0.0.1:5672/"},
            "OPERATOR_EVENTS_RABBITMQ_SERVER_URL needs the optional dependencies: "
            "pip install 'waypost[rabbitmq]'",
        ),
        (
            "aws",
            {"OPERATOR_EVENTS_AWS_SQS_QUEUE_URL": QUEUE_URL},
            "OPERATOR_EVENTS_AWS_SQS_QUEUE_URL needs the optional dependencies: "
            "pip install 'waypost[aws]'",
        ),
    ],
    ids=["otel", "rabbitmq-queue", "rabbitmq-operator-sink", "aws-operator-sink"],
)
def test_a_setting_that_needs_a_missing_extra_refuses_to_start(
    tmp_path: Any, extra: str, env: dict[str, str], line: str
) -> None:
    """One line naming the setting and the extra, exit status 2, before anything is opened."""
    srv = ServerProcess(env, workdir=tmp_path, postgres_url="")
    environment = {**srv.environment(), **without_extras(extra)}
    ran = subprocess.run(
        [sys.executable, "-m", "waypost", "serve"],
        cwd=str(REPO_ROOT),
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 2, ran.stderr
    assert ran.stderr.strip().splitlines() == [f"waypost: {line}"]


def test_config_check_names_the_missing_extra(tmp_path: Any) -> None:
    """`waypost config --check` reports it with the other problems, before a start is tried."""
    srv = ServerProcess({"OTEL_SERVICE_NAME": "outpost-test"}, workdir=tmp_path, postgres_url="")
    ran = subprocess.run(
        [sys.executable, "-m", "waypost", "config", "--check"],
        cwd=str(REPO_ROOT),
        env={**srv.environment(), **without_extras("otel")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 2, ran.stdout + ran.stderr
    problems = [line for line in ran.stdout.splitlines() if line.startswith("problem: ")]
    assert problems == [
        "problem: OTEL_SERVICE_NAME needs the optional dependencies: pip install 'waypost[otel]'"
    ]
