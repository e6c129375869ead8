"""Generated ids: the three IDGEN_TYPE formats, prefixes, and uniqueness."""

from __future__ import annotations

import re
import uuid

import pytest

from outpost.core.ids import ID_TYPES, IdGenerator


def test_uuidv4_ids_are_valid_version_4_uuids() -> None:
    ids = IdGenerator("uuidv4")
    for _ in range(2000):
        parsed = uuid.UUID(ids.event())
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_uuidv7_ids_are_time_ordered_version_7_uuids() -> None:
    ids = IdGenerator("uuidv7")
    made = [ids.attempt() for _ in range(200)]
    assert all(uuid.UUID(i).version == 7 for i in made)
    assert [i[:13] for i in made] == sorted(i[:13] for i in made)  # millisecond prefix


def test_nanoid_ids_are_26_alphanumerics() -> None:
    assert re.fullmatch(r"[0-9A-Za-z]{26}", IdGenerator("nanoid").destination())


@pytest.mark.parametrize("kind", ID_TYPES)
def test_prefixes_are_prepended_verbatim_and_ids_do_not_repeat(kind: str) -> None:
    ids = IdGenerator(kind, event_prefix="evt_", destination_prefix="des_", attempt_prefix="atm_")
    assert ids.event().startswith("evt_")
    assert ids.destination().startswith("des_")
    assert ids.attempt().startswith("atm_")
    assert len({ids.event() for _ in range(5000)}) == 5000
