"""The seam every destination type implements.

A provider owns everything type-specific about a destination: the field schema served by
`/destination-types`, validation and preprocessing on create/update, how credentials are shown,
and delivery itself. Delivery reports a remote failure as a `DeliveryResult` value; it raises
`DeliveryInfrastructureError` only when no attempt was made at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from waypost.core.models import DeliveryResult, Destination, Event, StrMap


@dataclass(frozen=True, slots=True)
class Display:
    """The type-specific parts of a destination's JSON form."""

    credentials: StrMap
    target: str
    target_url: str = ""


class Provider(Protocol):
    type: str

    def describe(self) -> dict[str, Any]:
        """This type's entry in `GET /destination-types` (label, icon, fields, ...)."""
        ...

    def validate(self, destination: Destination) -> list[str]:
        """Messages such as "config.url is required"; empty when valid."""
        ...

    def preprocess(
        self, destination: Destination, original: Destination | None, *, admin: bool, now: int
    ) -> Destination:
        """Normalise before storing (generate or rotate secrets, ...). `original` is None on create.

        Raises `ValidationError` for what only preprocessing can see (a tenant changing a secret).
        """
        ...

    def display(self, destination: Destination, now: int) -> Display: ...

    async def publish(self, event: Event, destination: Destination) -> DeliveryResult: ...

    async def close(self) -> None: ...


@runtime_checkable
class RemoteVerifier(Protocol):
    """A type whose create/update also asks the remote side (hookdeck's token check, contract.md
    §5.1).

    Called after `preprocess`, on the event loop; raises `ValidationError` when the remote
    refuses, and returns the destination to store (e.g. with names the remote reported).
    """

    async def verify(
        self, destination: Destination, original: Destination | None
    ) -> Destination: ...


@runtime_checkable
class MetadataChecker(Protocol):
    """A type that sends `delivery_metadata` under names some of which are the server's own.

    Called on create, and on update when `delivery_metadata` changed; messages as `validate`'s.
    """

    def metadata_errors(self, delivery_metadata: StrMap | None) -> list[str]: ...
