"""Topic patterns: matching, validation and normalisation of destination topic sets.

A pattern is a topic in which `*` stands for any run of characters (dots included, possibly empty).
No other character is special. The whole set `["*"]` means "every topic".

Every operation here is linear in the bytes it looks at (times the number of patterns with a `*`
anywhere but at the end, which `TopicLimits` bounds): a pattern is matched segment by segment with
`str.find` (leftmost placement of each literal segment is exact when `*` is the only
metacharacter), exact topics are set members, and `prefix*` patterns are looked up by prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from waypost.errors import InputError, ValidationError

WILDCARD = "*"

_INVALID_FORMAT = "validation failed: invalid topics format"
_INVALID_SET = "validation failed: invalid topics"


@dataclass(frozen=True, slots=True)
class TopicLimits:
    """Bounds on a destination's topic set (and on a published topic's length)."""

    max_topics: int = 128
    max_topic_bytes: int = 256

    def check_set(self, entries: Sequence[str]) -> None:
        if len(entries) > self.max_topics:
            raise ValidationError([f"topics must have at most {self.max_topics} entries"])
        if any(_too_long(entry, self.max_topic_bytes) for entry in entries):
            raise ValidationError([f"topics must be at most {self.max_topic_bytes} bytes each"])

    def check_topic(self, topic: str) -> None:
        if _too_long(topic, self.max_topic_bytes):
            raise ValidationError([f"topic must be at most {self.max_topic_bytes} bytes"])


DEFAULT_TOPIC_LIMITS = TopicLimits()


def _too_long(text: str, limit: int) -> bool:
    # Characters first: a string with more characters than the limit has more bytes too.
    return len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit


def _segments(pattern: str) -> list[str]:
    return pattern.split(WILDCARD)


def _glob(segments: Sequence[str], text: str) -> bool:
    """Whether `text` matches the pattern split at its `*`s into `segments` (at least two)."""
    first, last = segments[0], segments[-1]
    if len(text) < len(first) + len(last) or not text.startswith(first):
        return False
    end = len(text) - len(last)
    if not text.endswith(last):
        return False
    position = len(first)
    for middle in segments[1:-1]:
        found = text.find(middle, position, end)
        if found < 0:
            return False
        position = found + len(middle)
    return True


def matches(pattern: str, topic: str) -> bool:
    """True when `topic` is matched by the glob `pattern`."""
    if WILDCARD not in pattern:
        return pattern == topic
    return _glob(_segments(pattern), topic)


def covers(general: str, specific: str) -> bool:
    """True when every topic matched by `specific` is also matched by `general`.

    Reading `specific` as text whose `*` are opaque characters is exact: `general`'s literal
    segments contain no `*`, so only its own `*` can absorb one, which is precisely the question.
    """
    return matches(general, specific)


class TopicMatcher:
    """A destination's topic set, compiled once: exact topics in a set, `prefix*` patterns by
    prefix length, any other pattern kept split into its segments."""

    __slots__ = ("_everything", "_exact", "_patterns", "_prefix_lengths", "_prefixes")

    def __init__(self, entries: Iterable[str]) -> None:
        self._everything = False
        self._exact: set[str] = set()
        self._prefixes: set[str] = set()
        self._patterns: list[list[str]] = []
        for entry in entries:
            if entry == WILDCARD:
                self._everything = True
            elif WILDCARD not in entry:
                self._exact.add(entry)
            elif entry.index(WILDCARD) == len(entry) - 1:
                self._prefixes.add(entry[:-1])
            else:
                self._patterns.append(_segments(entry))
        self._prefix_lengths = sorted({len(p) for p in self._prefixes})

    def accepts(self, text: str) -> bool:
        """Whether some entry matches `text` (a `*` in `text` only matched by a `*`)."""
        if self._everything or text in self._exact:
            return True
        for length in self._prefix_lengths:
            if length > len(text):
                break
            if text[:length] in self._prefixes:
                return True
        return any(_glob(segments, text) for segments in self._patterns)


@lru_cache(maxsize=4096)
def compiled(destination_topics: tuple[str, ...]) -> TopicMatcher:
    """The matcher of a stored topic set: destinations are read from a cache, so the same tuple
    comes back for every publish and is compiled once."""
    return TopicMatcher(destination_topics)


def destination_accepts(destination_topics: Sequence[str], event_topic: str) -> bool:
    """Whether a destination subscribed to `destination_topics` gets an event of `event_topic`."""
    # Events published without a topic (or as "*") are broadcast to every destination.
    if event_topic in ("", WILDCARD):
        return True
    return compiled(tuple(destination_topics)).accepts(event_topic)


def filter_destinations_by_topics(dest_topics: Sequence[str], wanted: Sequence[str]) -> bool:
    """The destinations list endpoint's `topics` query filter (AND over `wanted`)."""
    if list(wanted) == [WILDCARD]:
        return WILDCARD in dest_topics
    if WILDCARD in dest_topics:
        return True
    matcher = compiled(tuple(dest_topics))
    return all(matcher.accepts(topic) for topic in wanted)


def tenant_topics(all_destination_topics: Iterable[Sequence[str]]) -> list[str]:
    """Sorted union of a tenant's destination topics; `["*"]` if any destination takes all."""
    union: set[str] = set()
    for topics in all_destination_topics:
        if WILDCARD in topics:
            return [WILDCARD]
        union.update(topics)
    return sorted(union)


def validate_and_normalise(
    topics: object,
    configured: Sequence[str],
    allow_wildcards: bool,
    limits: TopicLimits = DEFAULT_TOPIC_LIMITS,
) -> tuple[str, ...]:
    """Check a destination's `topics` field and return its normalised form.

    Raises InputError (422) with Outpost's two messages: one for a value of the wrong JSON shape,
    one for a well-formed but unacceptable set; and ValidationError (422) over `limits`.
    """
    if topics == WILDCARD:
        return (WILDCARD,)
    if not isinstance(topics, list | tuple) or not all(isinstance(t, str) for t in topics):
        raise InputError(_INVALID_FORMAT, status=422)
    entries: list[str] = list(dict.fromkeys(topics))  # exact duplicates out, first-seen order kept
    if entries == [WILDCARD]:
        return (WILDCARD,)
    limits.check_set(entries)
    if not entries or not _all_allowed(entries, configured, allow_wildcards):
        raise InputError(_INVALID_SET, status=422)
    return normalise(entries)


def _all_allowed(entries: Sequence[str], configured: Sequence[str], allow_wildcards: bool) -> bool:
    known = frozenset(configured)
    for entry in entries:
        # A bare "*" is only meaningful on its own, which the caller has already handled.
        if entry in ("", WILDCARD):
            return False
        if WILDCARD not in entry:
            if known and entry not in known:
                return False
            continue
        # A pattern that can never fire is almost certainly a typo, so refuse it.
        never_fires = known and not any(matches(entry, topic) for topic in configured)
        if not allow_wildcards or never_fires:
            return False
    return True


def normalise(entries: Sequence[str]) -> tuple[str, ...]:
    """Drop duplicates and entries made redundant by a more general sibling; keep first-seen order.

    Two different spellings of the same set (e.g. `a*` and `a**`) cover each other; the first one
    is kept so that the accepted set of topics never changes.
    """
    unique = list(dict.fromkeys(entries))
    patterns = [entry for entry in unique if WILDCARD in entry]
    if not patterns:
        return tuple(unique)  # exact topics never cover one another
    order = {entry: position for position, entry in enumerate(unique)}
    index = _Coverers(patterns)
    kept = []
    for entry in unique:
        # Only patterns can cover anything; an exact topic covers no pattern.
        coverers = [p for p in index.of(entry) if p != entry]
        if not any(order[p] < order[entry] or not covers(entry, p) for p in coverers):
            kept.append(entry)
    return tuple(kept)


class _Coverers:
    """The patterns of one set, indexed to list those matching an entry without trying each:
    `prefix*` patterns by prefix (one set lookup per distinct prefix length), others one by one."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self._by_prefix: dict[str, str] = {}
        self._general: list[tuple[str, list[str]]] = []
        for pattern in patterns:
            if pattern.index(WILDCARD) == len(pattern) - 1:
                self._by_prefix[pattern[:-1]] = pattern
            else:
                self._general.append((pattern, _segments(pattern)))
        self._lengths = sorted({len(prefix) for prefix in self._by_prefix})

    def of(self, entry: str) -> list[str]:
        found = []
        for length in self._lengths:
            if length > len(entry):
                break
            pattern = self._by_prefix.get(entry[:length])
            if pattern is not None:
                found.append(pattern)
        found.extend(pattern for pattern, segments in self._general if _glob(segments, entry))
        return found
