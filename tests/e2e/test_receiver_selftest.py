"""Self-test of the harness's webhook receiver (no server involved), so that a failing e2e test
can be trusted to point at the server rather than at the receiver."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from support.receiver import Receiver, sign, signature_candidates, verify_signature

# No server: once is enough.
pytestmark = [pytest.mark.e2e, pytest.mark.backends("sqlite"), pytest.mark.timeout(60)]


def test_signature_helpers() -> None:
    body = b'{"a":1}'
    good = sign("whsec_abc", body)
    assert len(good) == 64
    assert signature_candidates(f"v0={good},deadbeef") == [good, "deadbeef"]
    assert signature_candidates(f"v1={good}") == []
    assert signature_candidates(None) == []
    assert verify_signature(body, f"v0=deadbeef,{good}", ["whsec_abc"])
    assert verify_signature(body, f"v0={good}", ["other", "whsec_abc"])
    assert not verify_signature(body, f"v0={good}", ["whsec_abd"])
    assert not verify_signature(body + b" ", f"v0={good}", ["whsec_abc"])
    assert not verify_signature(body, good, ["whsec_abc"])  # the v0= prefix is required


def test_records_verifies_and_answers(receiver: Receiver) -> None:
    path = receiver.new_path("selftest")
    url = receiver.configure(
        path, status=201, body="hello", secret="new-secret", previous_secret="old-secret"
    )
    body = b'{"zebra":1,"alpha":2}'
    with httpx.Client(timeout=5) as client:
        res = client.post(
            url,
            content=body,
            headers={"x-outpost-signature": "v0=" + sign("old-secret", body), "X-Custom": "1"},
        )
        assert (res.status_code, res.text) == (201, "hello")
        bad = client.post(url, content=body, headers={"x-outpost-signature": "v0=00"})
        assert bad.status_code == 201
        err = client.post(url, content=b"{}", headers={"x-outpost-should_err": "true"})
        assert err.status_code == 400

    first, second, third = receiver.wait_for(3, path=path)
    assert first.body == body
    assert first.verified is True
    assert first.header("X-CUSTOM") == "1"
    assert first.response_sent
    assert second.verified is False
    assert third.status == 400
    assert receiver.requests_for("/hook/other") == []


def test_failure_modes_and_waiting(receiver: Receiver) -> None:
    path = receiver.new_path("selftest-fail")
    url = receiver.configure(path, fail_first=1, fail_first_per_event=0, fail_status=503)
    per_event = receiver.new_path("selftest-per-event")
    per_event_url = receiver.configure(per_event, fail_first_per_event=1)
    with httpx.Client(timeout=5) as client:
        assert client.post(url, content=b"{}").status_code == 503
        assert client.post(url, content=b"{}").status_code == 200
        for event in ("a", "b", "a", "b"):
            client.post(per_event_url, content=b"{}", headers={"x-outpost-event-id": event})
    assert [r.status for r in receiver.requests_for(per_event)] == [500, 500, 200, 200]

    with pytest.raises(AssertionError, match="expected >= 3"):
        receiver.wait_for(3, path=path, timeout=0.2)
    started = time.monotonic()
    receiver.assert_quiet(path, expected=2, window=0.2)
    assert time.monotonic() - started >= 0.2
    with pytest.raises(AssertionError, match="expected exactly 1"):
        receiver.assert_quiet(path, expected=1, window=0.2)


def test_chunked_request_body(receiver: Receiver) -> None:
    path = receiver.new_path("selftest-chunked")
    url = receiver.configure(path)

    def chunks() -> Iterator[bytes]:
        yield b'{"part":'
        yield b"1}"

    with httpx.Client(timeout=5) as client:
        res = client.post(url, content=chunks())
        assert res.status_code == 200
    [req] = receiver.wait_for(1, path=path)
    assert req.body == b'{"part":1}'
