"""TCP connections through the SSRF guard, for the asyncio clients of the broker types.

`open_socket` resolves the host itself, checks every address with the guard, and connects only
to an address the guard allowed: the address checked is the address connected to, so a name
that resolves differently the second time (DNS rebinding) gains nothing. When the guard refuses
every address, no connection is attempted at all and `RefusedAddress` is raised, so a tenant
cannot tell an open port from a closed one. The connected socket is then handed to the loop's
`create_connection(sock=...)`, with TLS verified against the host name the tenant gave.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl as ssl_module
from collections.abc import Callable
from typing import Any

from waypost.transport.guard import AddressGuard, Refusal, RefusedAddress


async def open_socket(guard: AddressGuard, host: str, port: int) -> socket.socket:
    """A connected, non-blocking TCP socket to an address of `host` the guard allows."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    refused: Refusal | None = None
    failure: OSError | None = None
    for family, kind, protocol, _, address in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        refusal = guard.refusal(str(address[0]))
        if refusal is not None:
            refused = refused or refusal
            continue
        sock = socket.socket(family, kind, protocol)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            failure = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    if failure is not None:
        raise failure  # an allowed address answered (or not): the destination's own failure
    if refused is not None:
        refused.report(host)
        raise RefusedAddress(refused, host)
    raise OSError(f"no IP address for {host}")


async def create_connection(
    guard: AddressGuard,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: str,
    port: int,
    *,
    ssl: ssl_module.SSLContext | bool | None = None,
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    """`loop.create_connection(protocol_factory, host, port, ssl=ssl)` through the guard."""
    sock = await open_socket(guard, host, port)
    loop = asyncio.get_running_loop()
    try:
        return await loop.create_connection(
            protocol_factory, sock=sock, ssl=ssl, server_hostname=host if ssl else None
        )
    except BaseException:
        sock.close()
        raise


async def open_connection(
    guard: AddressGuard, host: str, port: int, **kwargs: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """`asyncio.open_connection(host, port, ssl=...)` through the guard."""
    ssl = kwargs.pop("ssl", None)
    sock = await open_socket(guard, host, port)
    try:
        return await asyncio.open_connection(
            sock=sock, ssl=ssl, server_hostname=host if ssl else None, **kwargs
        )
    except BaseException:
        with contextlib.suppress(OSError):
            sock.close()
        raise
