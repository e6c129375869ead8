"""An attempt's record of the headers it sent: credentials masked, size bounded."""

from __future__ import annotations

from waypost.core import sent_headers
from waypost.core.sent_headers import MASK, MAX_HEADERS, MAX_VALUE, recorded


def test_credentials_are_masked_whoever_set_them_and_signatures_kept() -> None:
    sent = [
        ("Content-Type", "application/json"),
        ("Authorization", "Bearer cf-token"),
        ("X-Api-Key", "k"),
        ("x-auth-token", "t"),
        ("Proxy-Authorization", "Basic dTpw"),
        ("Cookie", "sid=1"),
        ("X-Outpost-Signature", "v0=abc"),
        ("X-Outpost-Event-Id", "evt_1"),
    ]
    assert recorded(sent) == {
        "Content-Type": "application/json",
        "Authorization": MASK,
        "X-Api-Key": MASK,
        "x-auth-token": MASK,
        "Proxy-Authorization": MASK,
        "Cookie": MASK,
        "X-Outpost-Signature": "v0=abc",
        "X-Outpost-Event-Id": "evt_1",
    }


def test_a_destination_cannot_bloat_the_record() -> None:
    many = [(f"X-H{n}", "v" * 5000) for n in range(500)]
    kept = recorded([("X" * 1000, "short"), *many])
    assert len(kept) == MAX_HEADERS
    assert "X" * sent_headers.MAX_NAME in kept
    assert all(len(v) <= MAX_VALUE + 1 for v in kept.values())
    assert kept["X-H0"] == "v" * MAX_VALUE + sent_headers.CUT
