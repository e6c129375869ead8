"""Topic patterns: matching, validation and normalisation of destination topic sets.

A pattern is a topic in which `*` stands for any run of characters (dots included, possibly empty).
No other character is special. The whole set `["*"]` means "every topic".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from outpost.errors import InputError

WILDCARD = "*"

_INVALID_FORMAT = "validation failed: invalid topics format"
_INVALID_SET = "validation failed: invalid topics"


def _glob(pattern: str, text: Sequence[str | None]) -> bool:
    """Match `pattern` against a sequence of text tokens.

    Greedy two-pointer match that, on a mismatch, only rewinds to the most recent `*`: with `*` as
    the sole metacharacter that is enough to be exact, and it is O(len(pattern) * len(text)) where
    a recursive matcher can go exponential on inputs like `*a*a*a*a*b`.
    A `None` token equals no pattern character, so only a `*` can absorb it (see `covers`).
    """
    p = t = 0
    star = -1  # position in pattern of the last `*` seen
    resume = 0  # text position that last `*` currently absorbs up to
    while t < len(text):
        if p < len(pattern) and pattern[p] == WILDCARD:
            star, resume = p, t
            p += 1
        elif p < len(pattern) and pattern[p] == text[t]:
            p += 1
            t += 1
        elif star >= 0:
            resume += 1
            p, t = star + 1, resume
        else:
            return False
    return all(ch == WILDCARD for ch in pattern[p:])


def matches(pattern: str, topic: str) -> bool:
    """True when `topic` is matched by the glob `pattern`."""
    if WILDCARD not in pattern:
        return pattern == topic
    return _glob(pattern, topic)


def covers(general: str, specific: str) -> bool:
    """True when every topic matched by `specific` is also matched by `general`.

    Reading `specific` as text whose `*` are opaque tokens is exact: substitute each of them with a
    character that `general` does not contain; `general` can then only match that topic by letting
    its own `*` swallow those characters, which is precisely what the token match checks.
    """
    tokens = [None if ch == WILDCARD else ch for ch in specific]
    return _glob(general, tokens)


def destination_accepts(destination_topics: Sequence[str], event_topic: str) -> bool:
    """Whether a destination subscribed to `destination_topics` gets an event of `event_topic`."""
    # Events published without a topic (or as "*") are broadcast to every destination.
    if event_topic in ("", WILDCARD):
        return True
    return any(matches(pattern, event_topic) for pattern in destination_topics)


def filter_destinations_by_topics(dest_topics: Sequence[str], wanted: Sequence[str]) -> bool:
    """The destinations list endpoint's `topics` query filter (AND over `wanted`)."""
    if list(wanted) == [WILDCARD]:
        return WILDCARD in dest_topics
    if WILDCARD in dest_topics:
        return True
    return all(any(matches(p, topic) for p in dest_topics) for topic in wanted)


def tenant_topics(all_destination_topics: Iterable[Sequence[str]]) -> list[str]:
    """Sorted union of a tenant's destination topics; `["*"]` if any destination takes all."""
    union: set[str] = set()
    for topics in all_destination_topics:
        if WILDCARD in topics:
            return [WILDCARD]
        union.update(topics)
    return sorted(union)


def validate_and_normalise(
    topics: object, configured: Sequence[str], allow_wildcards: bool
) -> tuple[str, ...]:
    """Check a destination's `topics` field and return its normalised form.

    Raises InputError (422) with Outpost's two messages: one for a value of the wrong JSON shape,
    one for a well-formed but unacceptable set.
    """
    if topics == WILDCARD:
        return (WILDCARD,)
    if not isinstance(topics, list | tuple) or not all(isinstance(t, str) for t in topics):
        raise InputError(_INVALID_FORMAT, status=422)
    entries: list[str] = list(dict.fromkeys(topics))  # exact duplicates out, first-seen order kept
    if entries == [WILDCARD]:
        return (WILDCARD,)
    if not entries or not all(_entry_allowed(e, configured, allow_wildcards) for e in entries):
        raise InputError(_INVALID_SET, status=422)
    return normalise(entries)


def _entry_allowed(entry: str, configured: Sequence[str], allow_wildcards: bool) -> bool:
    # A bare "*" is only meaningful on its own, which the caller has already handled.
    if entry in ("", WILDCARD):
        return False
    if WILDCARD in entry:
        if not allow_wildcards:
            return False
        # A pattern that can never fire is almost certainly a typo, so refuse it.
        return not configured or any(matches(entry, topic) for topic in configured)
    return not configured or entry in configured


def normalise(entries: Sequence[str]) -> tuple[str, ...]:
    """Drop duplicates and entries made redundant by a more general sibling; keep first-seen order.

    Two different spellings of the same set (e.g. `a*` and `a**`) cover each other; the first one
    is kept so that the accepted set of topics never changes.
    """
    unique = list(dict.fromkeys(entries))
    return tuple(
        entry
        for index, entry in enumerate(unique)
        if not any(_redundant(entry, index, other, j) for j, other in enumerate(unique))
    )


def _redundant(entry: str, index: int, other: str, other_index: int) -> bool:
    if other_index == index or not covers(other, entry):
        return False
    return other_index < index or not covers(entry, other)
