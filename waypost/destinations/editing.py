"""Turning create and update requests into destinations (contract.md §1.6.9, §1.6.11).

Create validates in Outpost's order (required fields, who may set timestamps, timestamps not in
the future, topics, the type's own rules, then its preprocessing). Update applies RFC 7396
merge-patch to the flat string maps, replaces topics and filter wholesale, and re-validates
config and credentials only when they changed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from waypost.core import coerce, filters, id_rule, timefmt, topics
from waypost.core.flow_limits import (
    NO_OVERRIDES,
    BadOverride,
    Overrides,
    lenient_overrides,
    looser_than,
    read_overrides,
)
from waypost.core.ids import IdGenerator
from waypost.core.limits import DEFAULT_METADATA_LIMITS, MetadataLimits
from waypost.core.models import Destination, StrMap
from waypost.core.topics import DEFAULT_TOPIC_LIMITS, TopicLimits
from waypost.destinations.provider import MetadataChecker, RemoteVerifier
from waypost.destinations.registry import Registry
from waypost.errors import ForbiddenError, InputError, ValidationError

_TIMESTAMPS = ("created_at", "updated_at", "disabled_at")
_MAPS = ("config", "credentials", "delivery_metadata", "metadata")


@dataclass(frozen=True, slots=True)
class Rules:
    registry: Registry
    ids: IdGenerator
    configured_topics: tuple[str, ...]
    allow_wildcards: bool
    metadata_limits: MetadataLimits = DEFAULT_METADATA_LIMITS
    topic_limits: TopicLimits = DEFAULT_TOPIC_LIMITS
    filter_limits: filters.FilterLimits = filters.DEFAULT_FILTER_LIMITS
    flow_defaults: Overrides = NO_OVERRIDES  # the server-wide limits a tenant may only tighten


def create(
    body: dict[str, Any], tenant_id: str, rules: Rules, *, admin: bool, now: int
) -> Destination:
    missing = [f"{name} is required" for name in ("type", "topics") if body.get(name) is None]
    if missing:
        raise ValidationError(missing)
    if not admin and (body.get("created_at") is not None or body.get("updated_at") is not None):
        raise ForbiddenError(
            "created_at and updated_at can only be set with API key authentication"
        )
    stamps = {name: _timestamp(body, name, now) for name in _TIMESTAMPS}
    destination_topics = _topics(body["topics"], rules)
    type_ = body["type"]
    if not isinstance(type_, str):
        raise InputError("invalid JSON", status=422)
    provider = rules.registry.creatable(type_)
    created_at = stamps["created_at"] or now
    draft = Destination(
        id=_id(body.get("id")) or rules.ids.destination(),
        tenant_id=tenant_id,
        type=type_,
        topics=destination_topics,
        filter=_filter(body.get("filter"), rules),
        config=coerce.to_str_map(body.get("config"), "config") or {},
        credentials=coerce.to_str_map(body.get("credentials"), "credentials") or {},
        delivery_metadata=coerce.to_str_map(body.get("delivery_metadata"), "delivery_metadata"),
        metadata=coerce.to_str_map(body.get("metadata"), "metadata"),
        created_at=created_at,
        updated_at=stamps["updated_at"] or created_at,
        disabled_at=stamps["disabled_at"],
    )
    _check_metadata(draft, rules, None, admin=admin)
    _raise_invalid(provider.validate(draft))
    _raise_invalid(_delivery_metadata_errors(provider, draft))
    return provider.preprocess(draft, None, admin=admin, now=now)


def update(
    body: dict[str, Any], current: Destination, rules: Rules, *, admin: bool, now: int
) -> Destination:
    type_ = body.get("type")
    if type_ is not None and type_ != current.type:
        raise InputError("type cannot be updated", status=422)
    provider = rules.registry.editable(current.type)  # 422 when the type's extra is missing
    changes: dict[str, Any] = {"updated_at": now}
    if "topics" in body:
        changes["topics"] = _topics(body["topics"], rules)
    for name in _MAPS:
        if name in body:
            merged = _merge_patch(getattr(current, name), body[name], name)
            required = name in ("config", "credentials")
            changes[name] = merged if merged or not required else {}
    if "filter" in body:
        changes["filter"] = _filter(body["filter"], rules)
    if "disabled_at" in body:
        changes["disabled_at"] = _timestamp(body, "disabled_at", now)
    patched = replace(current, **changes)
    _check_metadata(patched, rules, current, admin=admin)
    if patched.config != current.config or patched.credentials != current.credentials:
        _raise_invalid(provider.validate(patched))
    if patched.delivery_metadata != current.delivery_metadata:
        _raise_invalid(_delivery_metadata_errors(provider, patched))
    return provider.preprocess(patched, current, admin=admin, now=now)


def _check_metadata(
    destination: Destination, rules: Rules, current: Destination | None, *, admin: bool
) -> None:
    rules.metadata_limits.check("metadata", destination.metadata)
    rules.metadata_limits.check("delivery_metadata", destination.delivery_metadata)
    try:
        overrides = read_overrides(destination.metadata)
    except BadOverride as exc:  # a flow limit the delivery worker would have to ignore
        raise ValidationError([f"metadata.{exc.key} {exc.message}"]) from None
    if admin:
        return
    # A tenant may tighten its destinations' limits, never loosen them past the server's: the
    # slots are shared. An unchanged value (the operator's) is kept as it is.
    kept = lenient_overrides(current.metadata if current else None)
    changed = Overrides(
        overrides.concurrency if overrides.concurrency != kept.concurrency else None,
        overrides.rate_per_second if overrides.rate_per_second != kept.rate_per_second else None,
    )
    if looser := looser_than(changed, rules.flow_defaults):
        raise ForbiddenError(
            f"metadata.{looser[0]} above the server's limit can only be set with the admin key"
        )


def _delivery_metadata_errors(provider: object, destination: Destination) -> list[str]:
    if isinstance(provider, MetadataChecker):
        return provider.metadata_errors(destination.delivery_metadata)
    return []


async def verified(
    destination: Destination, original: Destination | None, rules: Rules
) -> Destination:
    """The remote side's say on a created or updated destination, for types that have one."""
    provider = rules.registry.get(destination.type)
    if isinstance(provider, RemoteVerifier):
        return await provider.verify(destination, original)
    return destination


def _raise_invalid(messages: list[str]) -> None:
    if messages:
        raise ValidationError(messages)


def _id(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError("invalid JSON", status=422)
    if value:
        id_rule.check("id", value)
    return value


def _topics(value: Any, rules: Rules) -> tuple[str, ...]:
    return topics.validate_and_normalise(
        value, rules.configured_topics, rules.allow_wildcards, rules.topic_limits
    )


def _filter(value: Any, rules: Rules) -> dict[str, Any] | None:
    if value is None or value == {}:
        return None
    filters.validate(value, rules.filter_limits)
    return dict(value)


def _timestamp(body: dict[str, Any], name: str, now: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError("invalid JSON", status=422)
    try:
        parsed = timefmt.parse(value)
    except ValueError:
        raise InputError("invalid JSON", [f"{name} must be an RFC 3339 time"], status=422) from None
    if parsed > now:
        raise InputError(f"{name} cannot be in the future", status=422)
    return parsed


def _merge_patch(current: StrMap | None, patch: Any, name: str) -> StrMap | None:
    """RFC 7396 on a flat map: null clears, {} changes nothing, null values delete keys."""
    if patch is None:
        return None
    if not isinstance(patch, dict):
        raise InputError("invalid JSON", [f"{name} must be an object"], status=422)
    merged = dict(current or {})
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = coerce.to_str(value)
    return merged or None
