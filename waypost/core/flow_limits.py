"""Per-destination flow limits carried in a destination's `metadata` (pure).

The official SDKs type a destination's `config` per destination type and drop keys they do not
know, but pass `metadata` (a free string map) through unchanged, so an override travels there,
under reserved keys:

- `outpost.max_concurrency`: deliveries to this destination in flight at once (an integer ≥ 1);
- `outpost.rate_limit_per_second`: deliveries started per second (a number > 0, or 0 for none).

Absent keys mean the server-wide defaults (DESTINATION_MAX_CONCURRENCY and
DESTINATION_RATE_LIMIT_PER_SECOND). The admin key may set any value; a tenant's own token may only
tighten them (`looser_than`), so a tenant cannot give its destinations more of the shared slots.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

CONCURRENCY_KEY = "outpost.max_concurrency"
RATE_KEY = "outpost.rate_limit_per_second"
MAX_CONCURRENCY = 10_000
MAX_RATE = 1_000_000.0


@dataclass(frozen=True, slots=True)
class Overrides:
    concurrency: int | None = None
    rate_per_second: float | None = None


NO_OVERRIDES = Overrides()


class BadOverride(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def read_overrides(metadata: Mapping[str, str] | None) -> Overrides:
    """The overrides in `metadata`; raises BadOverride for a value that is not one."""
    if not metadata:
        return Overrides()
    concurrency = rate = None
    if (raw := metadata.get(CONCURRENCY_KEY)) is not None:
        text = raw.strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_CONCURRENCY:
            raise BadOverride(CONCURRENCY_KEY, f"must be an integer from 1 to {MAX_CONCURRENCY}")
        concurrency = int(text)
    if (raw := metadata.get(RATE_KEY)) is not None:
        try:
            rate = float(raw.strip())
        except ValueError:
            rate = math.nan
        if not 0 <= rate <= MAX_RATE:  # also refuses nan and inf
            raise BadOverride(RATE_KEY, f"must be a number from 0 (no limit) to {MAX_RATE:.0f}")
    return Overrides(concurrency, rate)


def lenient_overrides(metadata: Mapping[str, str] | None) -> Overrides:
    """As `read_overrides`, but a bad value (stored before validation existed) is ignored."""
    try:
        return read_overrides(metadata)
    except BadOverride:
        return Overrides()


def looser_than(overrides: Overrides, defaults: Overrides) -> list[str]:
    """The keys of `overrides` that would allow more than the server-wide `defaults`: a higher
    concurrency, or a higher (or no) rate where the server sets one."""
    looser = []
    if (
        overrides.concurrency is not None
        and defaults.concurrency is not None
        and overrides.concurrency > defaults.concurrency
    ):
        looser.append(CONCURRENCY_KEY)
    if overrides.rate_per_second is not None and defaults.rate_per_second:
        rate = overrides.rate_per_second
        if rate == 0 or rate > defaults.rate_per_second:  # 0 is no limit at all
            looser.append(RATE_KEY)
    return looser
