"""The optional dependencies ("extras" of the distribution) and whether each is installed.

The base install serves webhooks, Hookdeck and Cloudflare Queues destinations with SQLite or
PostgreSQL; each cloud or broker SDK is an extra (pyproject.toml's `optional-dependencies`).
Whether one is installed is asked of the import system without importing it
(`importlib.util.find_spec`, about a millisecond for all of them; only namespace packages such as
`google` or `azure` are imported on the way), so a server never pays for an SDK it does not use.

Who asks: the destination catalog (a type whose extra is missing is listed as unavailable,
refused at create and update, and its stored destinations' deliveries fail with `refusal`'s
text), and the settings' checks (RABBITMQ_SERVER_URL, OTEL_SERVICE_NAME and the operator events
sinks refuse to start without theirs).
"""

from __future__ import annotations

from importlib.util import find_spec

DISTRIBUTION = "waypost"  # what `pip install` is told

# extra → the modules the server imports from it (those it needs, not all the extra installs).
MODULES: dict[str, tuple[str, ...]] = {
    "aws": ("aiobotocore", "jmespath"),
    "gcp": ("google.pubsub_v1", "google.api_core", "google.oauth2"),
    "azure": ("azure.servicebus",),
    "kafka": ("aiokafka", "jmespath"),
    "rabbitmq": ("aio_pika",),
    "otel": (
        "opentelemetry.sdk",
        "opentelemetry.exporter.otlp.proto.http",
        "opentelemetry.exporter.otlp.proto.grpc",
    ),
}


def installed(extra: str) -> bool:
    """Whether every module `extra` provides can be imported (nothing is imported to know)."""
    return all(_findable(module) for module in MODULES[extra])


def _findable(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken entry
        return False


def install_hint(extra: str) -> str:
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def refusal(what: str, extra: str) -> str:
    """`<what> needs the optional dependencies: pip install 'waypost[<extra>]'`."""
    return f"{what} needs the optional dependencies: {install_hint(extra)}"
