"""Topic patterns (contract.md §7.1, §1.5 Tenant, §1.6.8, §1.6.9 step 4)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost.core import topics
from waypost.errors import InputError

# Small alphabets make collisions between patterns and topics likely, so properties bite.
TOPIC_CHARS = st.sampled_from("ab.")
topic_text = st.text(TOPIC_CHARS, max_size=8)
pattern_text = st.text(st.sampled_from("ab.*"), max_size=8)


def reference_glob(pattern: str, topic: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, topic, flags=re.DOTALL) is not None


# --- matches ------------------------------------------------------------------------------------

MATCH_CASES = [
    ("user.created", "user.created", True),
    ("user.created", "user.updated", False),
    ("user.created", "user.created.extra", False),
    ("user.*", "user.created", True),
    ("user.*", "user.profile.updated", True),
    ("user.*", "user.", True),
    ("user.*", "user", False),
    ("user.*", "users.created", False),
    ("*.created", "order.created", True),
    ("*.created", "a.b.created", True),
    ("*.created", "order.updated", False),
    ("order.*.completed", "order.payment.completed", True),
    ("order.*.completed", "order.a.b.completed", True),
    ("order.*.completed", "order.completed", False),
    ("*", "", True),
    ("*", "anything.at.all", True),
    ("**", "x", True),
    ("a*b*c", "abc", True),
    ("a*b*c", "aXbYc", True),
    ("a*b*c", "acb", False),
    ("", "", True),
    ("", "a", False),
    ("a?c", "abc", False),  # `?` is literal
    ("a?c", "a?c", True),
    ("a[bc]", "ab", False),  # brackets are literal
    ("user.*", "USER.created", False),  # case-sensitive
]


@pytest.mark.parametrize(("pattern", "topic", "expected"), MATCH_CASES)
def test_matches(pattern: str, topic: str, expected: bool) -> None:
    assert topics.matches(pattern, topic) is expected


@given(st.text(max_size=12).filter(lambda s: "*" not in s), st.text(max_size=12))
def test_pattern_without_star_is_equality(pattern: str, topic: str) -> None:
    assert topics.matches(pattern, topic) is (pattern == topic)
    assert topics.matches(pattern, pattern)


@given(pattern_text, topic_text)
def test_matches_agrees_with_regex_translation(pattern: str, topic: str) -> None:
    assert topics.matches(pattern, topic) is reference_glob(pattern, topic)


def test_pathological_pattern_terminates() -> None:
    # A backtracking glob would take exponential time here; the suite's timeout catches a hang.
    pattern = "*a" * 30 + "*b"
    assert not topics.matches(pattern, "a" * 5000)
    assert topics.matches(pattern, "a" * 5000 + "b")


# --- covers -------------------------------------------------------------------------------------

COVER_CASES = [
    ("user.*", "user.created", True),
    ("user.created", "user.*", False),
    ("*", "user.*", True),
    ("*", "anything", True),
    ("user.*", "user.*.updated", True),
    ("user.*.updated", "user.*", False),
    ("*.created", "user.*", False),
    ("user.*", "*.created", False),
    ("a*", "a**", True),
    ("a**", "a*", True),
    ("*a*", "*a*a*", True),
    ("*a*a*", "*a*", False),
    ("a*c", "ab*c", True),
    ("ab*c", "a*c", False),
    ("x", "x", True),
    ("x", "y", False),
]


@pytest.mark.parametrize(("general", "specific", "expected"), COVER_CASES)
def test_covers(general: str, specific: str, expected: bool) -> None:
    assert topics.covers(general, specific) is expected


@given(pattern_text, pattern_text, topic_text)
def test_covers_is_sound(general: str, specific: str, topic: str) -> None:
    if topics.covers(general, specific) and topics.matches(specific, topic):
        assert topics.matches(general, topic)


@given(pattern_text, pattern_text)
def test_covers_is_complete(general: str, specific: str) -> None:
    # Replacing each `*` with a character the general pattern lacks gives a witness topic.
    witness = specific.replace("*", "#")
    if not topics.covers(general, specific):
        assert not topics.matches(general, witness)


# --- destination_accepts ------------------------------------------------------------------------

ACCEPT_CASES = [
    (["*"], "user.created", True),
    (["user.created"], "user.created", True),
    (["user.created"], "user.deleted", False),
    (["user.*", "order.created"], "order.created", True),
    (["user.*", "order.created"], "user.x.y", True),
    (["user.*", "order.created"], "order.updated", False),
    (["user.created"], "", True),  # topic-less events go everywhere
    (["user.created"], "*", True),
    ([], "user.created", False),
]


@pytest.mark.parametrize(("dest", "topic", "expected"), ACCEPT_CASES)
def test_destination_accepts(dest: list[str], topic: str, expected: bool) -> None:
    assert topics.destination_accepts(dest, topic) is expected


# --- filter_destinations_by_topics --------------------------------------------------------------

LIST_FILTER_CASES = [
    (["*"], ["user.created"], True),
    (["*"], ["*"], True),
    (["user.*"], ["*"], False),
    (["user.created"], ["*"], False),
    (["user.*"], ["user.created"], True),
    (["user.*"], ["user.created", "user.deleted"], True),
    (["user.*"], ["user.created", "order.created"], False),
    (["user.created", "order.created"], ["user.created", "order.created"], True),
    (["user.created"], ["user.created", "order.created"], False),
    (["user.created"], [], True),
]


@pytest.mark.parametrize(("dest", "wanted", "expected"), LIST_FILTER_CASES)
def test_filter_destinations_by_topics(dest: list[str], wanted: list[str], expected: bool) -> None:
    assert topics.filter_destinations_by_topics(dest, wanted) is expected


# --- tenant_topics ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dest_topics", "expected"),
    [
        ([], []),
        ([["b"], ["a", "b"]], ["a", "b"]),
        ([["user.*"], ["order.created"]], ["order.created", "user.*"]),
        ([["a"], ["*"], ["b"]], ["*"]),
        ([("z",), ("y",)], ["y", "z"]),
    ],
)
def test_tenant_topics(dest_topics: list[list[str]], expected: list[str]) -> None:
    assert topics.tenant_topics(dest_topics) == expected


# --- validate_and_normalise ---------------------------------------------------------------------

CONFIGURED = ["user.created", "user.updated", "user.deleted", "order.created", "order.paid"]

VALID_CASES: list[tuple[object, list[str], bool, tuple[str, ...]]] = [
    ("*", CONFIGURED, False, ("*",)),
    (["*"], CONFIGURED, False, ("*",)),
    (["*", "*"], CONFIGURED, False, ("*",)),
    ("*", [], False, ("*",)),
    (["user.created"], CONFIGURED, False, ("user.created",)),
    (["user.created", "user.created"], CONFIGURED, False, ("user.created",)),
    (["order.paid", "user.created"], CONFIGURED, False, ("order.paid", "user.created")),
    (["user.*"], CONFIGURED, True, ("user.*",)),
    (["user.*", "user.created"], CONFIGURED, True, ("user.*",)),
    (["user.created", "user.*"], CONFIGURED, True, ("user.*",)),
    (["order.paid", "user.created", "user.*"], CONFIGURED, True, ("order.paid", "user.*")),
    (["*.created", "user.created", "order.paid"], CONFIGURED, True, ("*.created", "order.paid")),
    (["us*", "user.*"], CONFIGURED, True, ("us*",)),
    (["user.*", "user**"], CONFIGURED, True, ("user**",)),
    (["u*", "u**"], CONFIGURED, True, ("u*",)),  # same set, first spelling kept
    (["anything", "goes"], [], False, ("anything", "goes")),
    (["a.*", "a.b"], [], True, ("a.*",)),
]


@pytest.mark.parametrize(("given_topics", "configured", "wildcards", "expected"), VALID_CASES)
def test_validate_and_normalise_accepts(
    given_topics: object, configured: list[str], wildcards: bool, expected: tuple[str, ...]
) -> None:
    assert topics.validate_and_normalise(given_topics, configured, wildcards) == expected


FORMAT_ERRORS: list[object] = ["user.created", "", None, 5, {"a": 1}, ["a", 1], [None], [["a"]]]


@pytest.mark.parametrize("given_topics", FORMAT_ERRORS)
def test_validate_rejects_bad_format(given_topics: object) -> None:
    with pytest.raises(InputError) as caught:
        topics.validate_and_normalise(given_topics, CONFIGURED, True)
    assert caught.value.message == "validation failed: invalid topics format"
    assert caught.value.status == 422


INVALID_SETS: list[tuple[object, list[str], bool]] = [
    ([], CONFIGURED, True),
    ([], [], True),
    (["*", "user.created"], CONFIGURED, True),
    (["user.created", "*"], [], True),
    (["user.unknown"], CONFIGURED, True),
    (["user.created", "nope"], CONFIGURED, False),
    (["user.*"], CONFIGURED, False),  # wildcards not allowed
    (["user.*"], [], False),
    (["invoice.*"], CONFIGURED, True),  # matches no configured topic
    ([""], CONFIGURED, True),
    ([""], [], False),
    (["user.created", ""], [], False),
]


@pytest.mark.parametrize(("given_topics", "configured", "wildcards"), INVALID_SETS)
def test_validate_rejects_invalid_sets(
    given_topics: object, configured: list[str], wildcards: bool
) -> None:
    with pytest.raises(InputError) as caught:
        topics.validate_and_normalise(given_topics, configured, wildcards)
    assert caught.value.message == "validation failed: invalid topics"
    assert caught.value.status == 422


def test_wildcard_allowed_without_configured_topics() -> None:
    assert topics.validate_and_normalise(["*.created"], [], True) == ("*.created",)


@given(st.lists(st.text(st.sampled_from("ab.*"), min_size=1, max_size=5), max_size=6), topic_text)
def test_normalise_accepts_the_same_topics(entries: list[str], topic: str) -> None:
    entries = [e for e in entries if e != "*"]
    normalised = topics.normalise(entries)
    before = any(topics.matches(p, topic) for p in entries)
    after = any(topics.matches(p, topic) for p in normalised)
    assert before is after
    assert set(normalised) <= set(entries)
    assert len(normalised) == len(set(normalised))
    # First-seen order survives.
    assert list(normalised) == [e for e in dict.fromkeys(entries) if e in normalised]
    assert topics.normalise(normalised) == normalised
