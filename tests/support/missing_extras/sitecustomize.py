"""Makes optional dependencies unimportable in a process started with this folder on PYTHONPATH.

The suite installs every extra (`[all]`), and uninstalling one mid-run would break every other
test, so a missing extra is simulated instead: a finder at the front of `sys.meta_path` refuses
the modules `TEST_MISSING_EXTRAS` names (extras, comma-separated; see `BLOCKED`), the
way the import system answers for a package that is not installed: `import` raises
ModuleNotFoundError and `importlib.util.find_spec` finds nothing. Python imports `sitecustomize`
at start-up, before any of the server's code, so nothing of those packages is loaded before the
finder is in place (and the embedded delivery process, started with the same environment, gets
it too).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

# extra → the import names of what it installs (its SDK and the SDK's own dependencies that a
# base install does not have). jmespath comes with both `aws` and `kafka`, so it is an entry of
# its own: a server without `[aws]` but with `[kafka]` still has it.
BLOCKED: dict[str, tuple[str, ...]] = {
    "aws": ("aiobotocore", "botocore", "aiohttp"),
    "jmespath": ("jmespath",),
    "gcp": ("google.pubsub_v1", "google.cloud.pubsub", "google.api_core", "google.oauth2", "grpc"),
    "azure": ("azure.servicebus", "azure.core", "uamqp"),
    "kafka": ("aiokafka",),
    "rabbitmq": ("aio_pika", "aiormq", "pamqp"),
    "otel": ("opentelemetry.sdk", "opentelemetry.exporter"),
}


class MissingExtras:
    def __init__(self, prefixes: Sequence[str]) -> None:
        self.prefixes = tuple(prefixes)

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if any(name == prefix or name.startswith(prefix + ".") for prefix in self.prefixes):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None  # the other finders look as usual


def _install() -> None:
    wanted = [e.strip() for e in os.environ.get("TEST_MISSING_EXTRAS", "").split(",")]
    prefixes = [prefix for extra in wanted if extra for prefix in BLOCKED[extra]]
    if prefixes:
        sys.meta_path.insert(0, MissingExtras(prefixes))


_install()
