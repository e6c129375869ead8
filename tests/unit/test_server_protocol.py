"""One write per response: what the API's transport adapter sends, and when.

The transport below records what reaches it (a stand-in: the adapter's whole job is the calls it
makes). The real protocol serves every API test over a socket (tests/api/test_limits.py) and every
end-to-end test.
"""

from __future__ import annotations

import asyncio

import pytest

from waypost.api.protocol import _OneWritePerTurn

pytestmark = pytest.mark.anyio


class Recording:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def write_eof(self) -> None:
        self.calls.append(("write_eof", b""))

    def close(self) -> None:
        self.calls.append(("close", b""))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


async def test_writes_of_one_turn_go_out_together_in_order() -> None:
    real = Recording()
    adapter = _OneWritePerTurn(real)  # type: ignore[arg-type]
    adapter.write(b"HTTP/1.1 202 Accepted\r\n\r\n")
    adapter.write(b"{}")
    assert real.calls == []
    await asyncio.sleep(0)
    assert real.calls == [("write", b"HTTP/1.1 202 Accepted\r\n\r\n{}")]
    adapter.write(b"next")
    await asyncio.sleep(0)
    assert real.calls[1:] == [("write", b"next")]


async def test_closing_sends_what_is_pending_first() -> None:
    real = Recording()
    adapter = _OneWritePerTurn(real)  # type: ignore[arg-type]
    adapter.write(b"answer")
    adapter.write_eof()
    adapter.close()
    await asyncio.sleep(0)
    assert real.calls == [("write", b"answer"), ("write_eof", b""), ("close", b"")]


async def test_nothing_is_written_to_a_closed_transport_and_the_rest_passes_through() -> None:
    real = Recording()
    adapter = _OneWritePerTurn(real)  # type: ignore[arg-type]
    adapter.write(b"late")
    real.closing = True  # the peer went away before the turn ended
    await asyncio.sleep(0)
    assert real.calls == []
    assert adapter.get_extra_info("peername") == "info:peername"
