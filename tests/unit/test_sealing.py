"""Sealing destination credentials: round trip, tampering, wrong keys, legacy rows, rotation."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost import bootstrap, config
from waypost.core.models import Destination
from waypost.errors import ConfigError, StoreError
from waypost.storage import rows
from waypost.storage.sealing import Sealer

CONTEXT = "destination 'd' of tenant 't'"
SECRET = "whsec_super-secret-value"


def webhook(credentials: dict[str, str]) -> Destination:
    return Destination("d", "t", "webhook", ("*",), {"url": "https://x.test/"}, credentials, 1, 2)


def test_sealed_value_round_trips_and_is_a_versioned_envelope() -> None:
    sealer = Sealer("key-one")
    sealed = sealer.seal(b'{"secret":"s"}', CONTEXT)
    assert sealed.startswith(f"v1:{sealer.key_id}:")
    assert b"secret" not in base64.urlsafe_b64decode(sealed.split(":")[2])
    assert sealer.open(sealed, CONTEXT) == b'{"secret":"s"}'


@given(st.binary(max_size=512), st.text(max_size=40))
def test_any_plaintext_round_trips(plaintext: bytes, context: str) -> None:
    sealer = Sealer("key-one")
    assert sealer.open(sealer.seal(plaintext, context), context) == plaintext


def test_each_seal_uses_a_fresh_nonce() -> None:
    sealer = Sealer("key-one")
    assert sealer.seal(b"same", CONTEXT) != sealer.seal(b"same", CONTEXT)


def test_same_secret_gives_the_same_key_in_another_process() -> None:
    sealed = Sealer("key-one").seal(b"x", CONTEXT)
    assert Sealer("key-one").open(sealed, CONTEXT) == b"x"


@pytest.mark.parametrize("position", [0, 5, 11, 12, 20, -1])  # nonce, ciphertext, tag
def test_any_flipped_byte_is_detected(position: int) -> None:
    sealer = Sealer("key-one")
    prefix, key_id, body = sealer.seal(b'{"secret":"abcdefgh"}', CONTEXT).split(":")
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[position] ^= 0x01
    tampered = f"{prefix}:{key_id}:{base64.urlsafe_b64encode(bytes(raw)).decode()}"
    with pytest.raises(StoreError, match="fail authentication under AES_ENCRYPTION_SECRET"):
        sealer.open(tampered, CONTEXT)


def test_credentials_moved_to_another_row_do_not_open() -> None:
    sealer = Sealer("key-one")
    sealed = sealer.seal(b"{}", CONTEXT)
    with pytest.raises(StoreError, match="fail authentication"):
        sealer.open(sealed, "destination 'other' of tenant 't'")


@pytest.mark.parametrize("body", ["", "!!!", "QUJD"])
def test_truncated_or_garbled_envelopes_are_errors(body: str) -> None:
    sealer = Sealer("key-one")
    with pytest.raises(StoreError, match="not a valid sealed value"):
        sealer.open(f"v1:{sealer.key_id}:{body}", CONTEXT)


def test_wrong_key_fails_loudly_naming_the_setting() -> None:
    sealed = Sealer("key-one").seal(b'{"secret":"s"}', CONTEXT)
    with pytest.raises(StoreError, match="AES_ENCRYPTION_SECRET") as caught:
        Sealer("key-two").open(sealed, CONTEXT)
    assert "AES_ENCRYPTION_SECRET_PREVIOUS" in str(caught.value)


def test_wrong_key_behind_a_forged_key_id_still_fails() -> None:
    """Even a value claiming the current key id is authenticated, not trusted."""
    other, current = Sealer("key-one"), Sealer("key-two")
    _, _, body = other.seal(b"{}", CONTEXT).split(":")
    with pytest.raises(StoreError, match="fail authentication"):
        current.open(f"v1:{current.key_id}:{body}", CONTEXT)


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="AES_ENCRYPTION_SECRET"):
        Sealer("")


# -- rows: what the SQL backends store and read ---------------------------------------------------


def test_rows_store_credentials_sealed_and_read_them_back() -> None:
    sealer = Sealer("key-one")
    values = rows.destination_values(webhook({"secret": SECRET}), sealer)
    assert all(SECRET not in str(v) for v in values)
    assert sealer.is_current(values[6])
    assert rows.destination(values, sealer).credentials == {"secret": SECRET}


def test_legacy_plaintext_rows_still_read_and_are_sealed_on_the_next_write() -> None:
    sealer = Sealer("key-one")
    legacy = rows.destination_values(webhook({"secret": SECRET}), None)
    assert legacy[6] == f'{{"secret":"{SECRET}"}}'  # what rows looked like before sealing
    read = rows.destination(legacy, sealer)
    assert read.credentials == {"secret": SECRET}
    rewritten = rows.destination_values(read, sealer)
    assert sealer.is_current(rewritten[6]) and SECRET not in rewritten[6]


def test_rotation_reads_old_rows_and_rewrites_them_under_the_new_key() -> None:
    old = Sealer("key-one")
    stored_under_old = rows.destination_values(webhook({"secret": SECRET}), old)
    rotated = Sealer("key-two", previous=("key-one",))
    read = rows.destination(stored_under_old, rotated)
    assert read.credentials == {"secret": SECRET}
    assert not rotated.is_current(stored_under_old[6])
    rewritten = rows.destination_values(read, rotated)
    assert rotated.is_current(rewritten[6])
    assert rows.destination(rewritten, Sealer("key-two")).credentials == {"secret": SECRET}
    with pytest.raises(StoreError, match="AES_ENCRYPTION_SECRET"):
        rows.destination(rewritten, old)  # the old key alone no longer opens it


def test_after_rotation_without_the_previous_key_old_rows_fail_loudly() -> None:
    stored = rows.destination_values(webhook({"secret": SECRET}), Sealer("key-one"))
    with pytest.raises(StoreError, match="sealed under another key"):
        rows.destination(stored, Sealer("key-two"))


# -- configuration ---------------------------------------------------------------------------------


def test_embedded_mode_generates_the_secret_once_into_the_data_folder(tmp_path: Path) -> None:
    env = {"OUTPOST_DATA_DIR": str(tmp_path)}
    first, notes = config.with_generated_secrets(config.load(env))
    second, _ = config.with_generated_secrets(config.load(env))
    assert len(first.aes_encryption_secret) >= 32
    assert first.aes_encryption_secret == second.aes_encryption_secret
    assert first.aes_encryption_secret not in (first.api_key, first.api_jwt_secret)
    assert any(n.endswith("aes_encryption_secret") for n in notes)


def test_postgres_mode_requires_the_secret_in_every_process() -> None:
    url = "postgresql://127.0.0.1/outpost"
    keys = {"API_KEY": "k", "API_JWT_SECRET": "s"}
    for service in ("all", "api", "delivery"):
        with pytest.raises(ConfigError, match="set AES_ENCRYPTION_SECRET"):
            config.load({"POSTGRES_URL": url, "SERVICE": service, **keys})
    loaded = config.load({"POSTGRES_URL": url, "AES_ENCRYPTION_SECRET": "a", **keys})
    assert config.with_generated_secrets(loaded)[0].aes_encryption_secret == "a"


def test_bootstrap_builds_a_sealer_that_reads_the_previous_key() -> None:
    env = {"AES_ENCRYPTION_SECRET": "new", "AES_ENCRYPTION_SECRET_PREVIOUS": "old"}
    sealer = bootstrap.sealer(config.load(env))
    assert sealer.open(Sealer("old").seal(b"x", CONTEXT), CONTEXT) == b"x"
    with pytest.raises(ConfigError, match="AES_ENCRYPTION_SECRET"):
        bootstrap.sealer(config.load({}))
