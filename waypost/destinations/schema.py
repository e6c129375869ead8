"""The schema-driven half of every destination type (contract.md §1.5, §5).

A type is a folder with `metadata.json` (label, icon, field schema), `instructions.md`, and a
provider. `SchemaProvider` gives a provider the parts that depend only on that schema: the
`/destination-types` entry, required/pattern validation, and obfuscation of sensitive credentials.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import replace
from importlib import resources
from typing import TYPE_CHECKING, Any, Self

from waypost.core.models import Destination, StrMap
from waypost.destinations.provider import Display
from waypost.transport.guard import AddressGuard

if TYPE_CHECKING:
    from waypost.destinations.shared import Shared

_TLS_TRUE = frozenset({"true", "on"})


def load_schema(package: str, filename: str = "metadata.json") -> dict[str, Any]:
    """A metadata file of a type's package, with its `instructions` (`instructions.md` when the
    file has none of its own)."""
    folder = resources.files(package)
    metadata: dict[str, Any] = json.loads((folder / filename).read_text("utf-8"))
    instructions = metadata.get("instructions")
    if instructions is None:
        instructions = (folder / "instructions.md").read_text("utf-8")
    return {
        "type": metadata["type"],
        "label": metadata["label"],
        "description": metadata["description"],
        "icon": metadata["icon"],
        "instructions": instructions,
        "config_fields": metadata["config_fields"],
        "credential_fields": metadata["credential_fields"],
    }


def field_errors(fields: list[dict[str, Any]], values: StrMap, group: str) -> list[str]:
    """`<group>.<key> is required` / `... failed pattern validation`, in schema order."""
    errors = []
    for field in fields:
        value, path = values.get(field["key"], ""), f"{group}.{field['key']}".lower()
        if not value:
            if field.get("required"):
                errors.append(f"{path} is required")
        elif "pattern" in field and not _pattern(field["pattern"]).fullmatch(value):
            errors.append(f"{path} failed pattern validation")
    return errors


@functools.lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def obfuscate(value: str) -> str:
    """Outpost's display of a sensitive value: 4 characters kept from 10 up, else all stars."""
    if len(value) < 10:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 4)


def normalised_tls(value: str | None) -> str:
    """Stored form of a `tls` setting: `on`/`true` → "true", anything else (or absent) → "false"."""
    return "true" if (value or "").lower() in _TLS_TRUE else "false"


class SchemaProvider:
    """The schema-driven half of a provider. Subclasses set `type` and `package`, add their
    extra rules in `extra_errors`, normalise in `normalise`, and name the target in `target`."""

    type: str
    package: str
    extra: str | None = None  # the optional dependencies it delivers with (waypost/extras.py)

    def __init__(self, metadata_file: str = "metadata.json") -> None:
        self._schema = load_schema(self.package, metadata_file)
        self._config_fields: list[dict[str, Any]] = self._schema["config_fields"]
        self._credential_fields: list[dict[str, Any]] = self._schema["credential_fields"]
        self._sensitive = frozenset(f["key"] for f in self._credential_fields if f.get("sensitive"))

    def describe(self) -> dict[str, Any]:
        return copy.deepcopy(self._schema)

    def validate(self, destination: Destination) -> list[str]:
        if destination.type != self.type:
            return ["type failed invalid_type validation"]
        return (
            field_errors(self._config_fields, destination.config, "config")
            or field_errors(self._credential_fields, destination.credentials, "credentials")
            or self.extra_errors(destination)
        )

    def extra_errors(self, destination: Destination) -> list[str]:
        return []

    def preprocess(
        self, destination: Destination, original: Destination | None, *, admin: bool, now: int
    ) -> Destination:
        return replace(destination, config=self.normalise(dict(destination.config)))

    def normalise(self, config: StrMap) -> StrMap:
        return config

    def display(self, destination: Destination, now: int) -> Display:
        credentials = {
            key: obfuscate(value) if key in self._sensitive else value
            for key, value in destination.credentials.items()
        }
        target, target_url = self.target(destination)
        return Display(credentials=credentials, target=target, target_url=target_url)

    def target(self, destination: Destination) -> tuple[str, str]:
        """(target, target_url) as contract.md §1.5's table gives them for this type."""
        return "", ""


class BrokerProvider(SchemaProvider):
    """A schema-driven provider that delivers through a broker's own client (RabbitMQ, Kafka,
    Pub/Sub, Service Bus), with the settings those types share: how long an attempt may take,
    whether metadata carries `timestamp-ms`, and the SSRF guard (None: off or exempted)."""

    def __init__(
        self,
        *,
        timeout_seconds: float,
        include_millisecond_timestamp: bool = False,
        guard: AddressGuard | None = None,
    ) -> None:
        super().__init__()
        self._timeout = timeout_seconds
        self._include_ms = include_millisecond_timestamp
        self._guard = guard

    @classmethod
    def from_shared(cls, shared: Shared) -> Self:
        """The provider as configured (the catalog's factory for the type)."""
        return cls(
            timeout_seconds=shared.config.delivery_timeout_seconds,
            include_millisecond_timestamp=shared.config.destinations_include_millisecond_timestamp,
            guard=shared.guard_for(cls.type),
        )
