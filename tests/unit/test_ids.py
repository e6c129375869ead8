"""Generated ids: the three IDGEN_TYPE formats, prefixes, and uniqueness."""

from __future__ import annotations

import os
import re
import threading
import uuid

import pytest

from waypost import config
from waypost.core.ids import IdGenerator


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


@pytest.mark.parametrize("kind", config.choices("idgen_type"))  # each one IDGEN_TYPE declares
def test_prefixes_are_prepended_verbatim_and_ids_do_not_repeat(kind: str) -> None:
    ids = IdGenerator(kind, event_prefix="evt_", destination_prefix="des_", attempt_prefix="atm_")
    assert ids.event().startswith("evt_")
    assert ids.destination().startswith("des_")
    assert ids.attempt().startswith("atm_")
    assert len({ids.event() for _ in range(5000)}) == 5000


def test_threads_never_share_random_bytes() -> None:
    ids = IdGenerator("uuidv4")
    made: list[list[str]] = [[] for _ in range(4)]

    def generate(into: list[str]) -> None:
        into.extend(ids.event() for _ in range(3000))

    threads = [threading.Thread(target=generate, args=(bucket,)) for bucket in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for bucket in made for i in bucket]
    assert len(set(every)) == len(every) == 12000


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    """The random bytes are fetched in blocks; a child must not reuse the parent's block."""
    ids = IdGenerator("uuidv4")
    ids.event()  # the parent now holds a partly used block
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        os.close(read)
        os.write(write, "\n".join(ids.event() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    parent = {ids.event() for _ in range(10)}
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split("\n"))
    os.waitpid(pid, 0)
    assert len(child) == 10 and not parent & child
