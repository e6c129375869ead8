"""The catalog: every type built from its own folder's factory, and the settings that pick types."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from support.server import without_extras

from destinations.harness import make_destination, make_event
from waypost import extras
from waypost.config import Config
from waypost.core.models import DeliveryResult
from waypost.destinations import catalog
from waypost.destinations.registry import Registry
from waypost.errors import ConfigError, DeliveryInfrastructureError, InputError

pytestmark = pytest.mark.anyio

ALL_TYPES = [
    "webhook",
    "aws_sqs",
    "rabbitmq",
    "hookdeck",
    "aws_kinesis",
    "azure_servicebus",
    "aws_s3",
    "gcp_pubsub",
    "kafka",
    "aws_eventbridge",
    "cloudflare_queues",
]


async def test_every_type_is_built_and_listed_in_order() -> None:
    built = catalog.build(Config())
    try:
        assert built.registry.types() == ALL_TYPES
        assert [d["type"] for d in built.registry.describe()] == ALL_TYPES
    finally:
        await built.registry.close()


async def test_enabled_types_limit_what_is_listed_but_every_type_delivers() -> None:
    built = catalog.build(Config(destinations_enabled_types=("webhook", "kafka")))
    try:
        assert [d["type"] for d in built.registry.describe()] == ["webhook", "kafka"]
        assert built.registry.types() == ALL_TYPES
    finally:
        await built.registry.close()


@pytest.mark.parametrize(
    "config",
    [
        Config(destinations_enabled_types=("webhook", "carrier_pigeon")),
        Config(destinations_unguarded_types=("carrier_pigeon",)),
    ],
)
def test_an_unknown_type_in_a_setting_is_refused(config: Config) -> None:
    with pytest.raises(ConfigError, match="unknown destination type"):
        catalog.build(config)


async def test_the_unguarded_copy_refuses_no_private_address() -> None:
    built = catalog.build(Config())
    unguarded = built.unguarded()
    private = make_destination(
        "rabbitmq", {"server_url": "10.0.0.1:5672"}, {"username": "u", "password": "p"}
    )
    try:
        assert built.guarded
        assert built.registry.get("rabbitmq").validate(private) == [
            "config.server_url failed ssrf validation"
        ]
        assert unguarded.get("rabbitmq").validate(private) == []
    finally:
        await built.registry.close()
        await unguarded.close()


async def test_a_type_closed_before_any_delivery_refuses_to_deliver() -> None:
    built = catalog.build(Config())
    await built.registry.close()
    kafka = make_destination("kafka", {"brokers": "127.0.0.1:9", "topic": "t"}, {})
    with pytest.raises(DeliveryInfrastructureError):
        await built.registry.get("kafka").publish(make_event(), kafka)


def test_building_and_closing_every_type_imports_no_sdk() -> None:
    """The SDKs load on a type's first delivery: a server that never delivers to them (an API
    process, a webhook-only deployment) does not pay for importing them. (Asking whether an
    extra is installed imports namespace packages such as `google` and `azure` on the way:
    they hold no code, so only modules with a file count.)"""
    script = textwrap.dedent(
        """
        import asyncio, sys
        import waypost.bootstrap
        from waypost.config import Config
        from waypost.destinations import catalog

        asyncio.run(catalog.build(Config()).registry.close())
        sdks = ("aiobotocore", "botocore", "google", "grpc", "azure", "aiokafka", "aio_pika",
                "aiormq", "jmespath", "opentelemetry")
        print(sorted({name.split(".")[0] for name, module in list(sys.modules.items())
                      if name.split(".")[0] in sdks and getattr(module, "__file__", None)}))
        """
    )
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert ran.stdout.strip() == "[]"


def test_without_the_extras_every_type_is_built_and_the_sdk_ones_are_unavailable() -> None:
    """A base install (no extra): the catalog still builds every type, because no type's module
    imports its SDK, and lists the SDK-backed ones as unavailable, naming the extra to install.

    The suite installs every extra, so the missing ones are simulated in a subprocess whose
    import system refuses their packages (support/missing_extras/sitecustomize.py)."""
    script = textwrap.dedent(
        """
        import asyncio, json
        import waypost.bootstrap
        from waypost.config import Config
        from waypost.destinations import catalog

        built = catalog.build(Config())
        listed = built.registry.describe()
        print(json.dumps({t["type"]: t.get("unavailable_reason") for t in listed}))
        asyncio.run(built.registry.close())
        """
    )
    env = {
        **os.environ,
        **without_extras("aws", "jmespath", "gcp", "azure", "kafka", "rabbitmq", "otel"),
    }
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert ran.returncode == 0, ran.stderr
    reasons = json.loads(ran.stdout)
    assert list(reasons) == ALL_TYPES
    extra = {"aws_sqs": "aws", "aws_kinesis": "aws", "aws_s3": "aws", "aws_eventbridge": "aws"}
    extra |= {"rabbitmq": "rabbitmq", "azure_servicebus": "azure", "gcp_pubsub": "gcp"}
    extra |= {"kafka": "kafka"}
    assert reasons == {
        type_: (
            f"destination type '{type_}' needs the optional dependencies: "
            f"pip install 'waypost[{extra[type_]}]'"
            if type_ in extra
            else None
        )
        for type_ in ALL_TYPES
    }


# -- a type whose extra is missing ----------------------------------------------------------------
# What a registry does with a type it is told is unavailable; which types are unavailable is found
# by `extras.installed` (the subprocess test above and tests/e2e/test_extras.py).

SQS = make_destination("aws_sqs", {"queue_url": "http://127.0.0.1:9/000000000000/q"}, {})
REASON = "destination type 'aws_sqs' needs the optional dependencies: pip install 'waypost[aws]'"


def _without_aws(config: Config) -> tuple[catalog.Destinations, Registry]:
    built = catalog.build(config)
    return built, Registry(
        catalog.providers(built.shared),
        enabled=config.destinations_enabled_types or None,
        unavailable={"aws_sqs": "aws"},
    )


async def test_an_unavailable_type_is_refused_at_create_and_update_naming_the_extra() -> None:
    built, registry = _without_aws(Config())
    try:
        for check in (registry.creatable, registry.editable):
            with pytest.raises(InputError) as refused:
                check("aws_sqs")
            assert (refused.value.status, str(refused.value)) == (422, REASON)
        assert registry.unavailable("aws_sqs") == REASON
        assert registry.unavailable("webhook") is None
        assert registry.creatable("webhook").type == "webhook"
    finally:
        await built.registry.close()
        await registry.close()


async def test_a_disabled_type_stays_unknown_to_tenants_whether_or_not_its_extra_is_there() -> None:
    built, registry = _without_aws(Config(destinations_enabled_types=("webhook",)))
    try:
        with pytest.raises(InputError, match="no provider registered"):
            registry.creatable("aws_sqs")
        assert [t["type"] for t in registry.describe()] == ["webhook"]
    finally:
        await built.registry.close()
        await registry.close()


async def test_an_unavailable_type_is_listed_with_the_reason_and_its_deliveries_fail() -> None:
    built, registry = _without_aws(Config())
    try:
        listed = {t["type"]: t for t in registry.describe()}
        assert list(listed) == ALL_TYPES
        assert listed["aws_sqs"] == {
            **built.registry.get("aws_sqs").describe(),
            "available": False,
            "unavailable_reason": REASON,
        }
        assert "available" not in listed["aws_kinesis"]
        result = await registry.get("aws_sqs").publish(make_event(), SQS)
        assert result == DeliveryResult("failed", "ERR", {"error": REASON})
        # Shown as ever: display needs no SDK.
        assert registry.get("aws_sqs").display(SQS, 0).target
    finally:
        await built.registry.close()
        await registry.close()


def test_an_extra_is_installed_when_each_of_its_modules_can_be_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(extras.MODULES, "present", ("json", "email.mime"))
    monkeypatch.setitem(extras.MODULES, "partly", ("json", "no_such_module_here"))
    monkeypatch.setitem(extras.MODULES, "no_parent", ("no_such_package_here.sub",))
    assert extras.installed("present")
    assert not extras.installed("partly")
    assert not extras.installed("no_parent")
    assert "no_such_module_here" not in sys.modules
