"""Pagination cursors (contract.md §1.4)."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost.core import cursor
from waypost.errors import InputError

positions = st.lists(st.integers() | st.text(max_size=20), max_size=4)
kinds = st.sampled_from(["evt", "att", "tnt"])


@given(kinds, positions)
def test_round_trip(kind: str, position: list[int | str]) -> None:
    token = cursor.encode(kind, position)
    assert cursor.decode(kind, token) == tuple(position)


@given(kinds, positions)
def test_tokens_are_url_safe_and_unpadded(kind: str, position: list[int | str]) -> None:
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor.encode(kind, position))


def test_typical_position() -> None:
    token = cursor.encode("evt", (1736935200123, "evt_abc"))
    assert cursor.decode("evt", token) == (1736935200123, "evt_abc")
    assert "evt_abc" not in token  # opaque, not a readable id


def test_distinct_positions_give_distinct_tokens() -> None:
    assert cursor.encode("evt", (1, "a")) != cursor.encode("evt", (1, "b"))
    assert cursor.encode("evt", (1, "a")) != cursor.encode("att", (1, "a"))


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


VALID = cursor.encode("evt", (5, "x"))

BAD_TOKENS = [
    "",
    "!!!",
    "abc=",
    VALID + "=",
    VALID[:-1],
    VALID + "A",
    "a" * (cursor.MAX_TOKEN_LENGTH + 4),
    b64("not json"),
    b64("{}"),
    b64('["v1","evt"]'),
    b64('["v2","evt",[5,"x"]]'),
    b64('["v1","att",[5,"x"]]'),
    b64('["v1","evt",{"a":1}]'),
    b64('["v1","evt",[5.5,"x"]]'),
    b64('["v1","evt",[true,"x"]]'),
    b64('["v1","evt",[null]]'),
    b64('["v1", "evt", [5, "x"]]'),  # same content, non-canonical spelling
    base64.b64encode(b'["v1","evt",[5,"x"]]').decode(),  # padded standard alphabet
]


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_rejects_malformed(token: str) -> None:
    with pytest.raises(InputError) as caught:
        cursor.decode("evt", token)
    assert caught.value.message == "invalid cursor"
    assert caught.value.status == 400


def test_rejects_other_kind() -> None:
    with pytest.raises(InputError):
        cursor.decode("att", cursor.encode("evt", (1, "a")))


@given(st.text(max_size=60))
def test_random_text_never_crashes(token: str) -> None:
    try:
        position = cursor.decode("evt", token)
    except InputError as error:
        assert error.message == "invalid cursor"
    else:
        assert cursor.encode("evt", position) == token


@pytest.mark.parametrize("part", [1.5, True, None, b"x"])
def test_encode_rejects_non_int_str_parts(part: object) -> None:
    with pytest.raises(TypeError):
        cursor.encode("evt", (part,))  # type: ignore[arg-type]


def test_long_caller_chosen_ids_still_round_trip() -> None:
    position = (1, "e" * 5000)
    assert cursor.decode("evt", cursor.encode("evt", position)) == position
