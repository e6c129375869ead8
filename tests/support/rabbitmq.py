"""RabbitMQ names for one test server, and their removal afterwards (127.0.0.1:5672, guest).

Fault tests can also stop and start the broker application of the local node (`rabbitmqctl`);
that affects everything on this machine, so a test that calls `stop_app()` calls
`ensure_running()` in a `finally`. Tests of what reaches the broker read it through `Exchanges`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

URL = os.environ.get("OUTPOST_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/")


async def take(queue: AbstractQueue, count: int, timeout: float) -> list[AbstractIncomingMessage]:
    """Get (and ack) messages from `queue` until `count` came or `timeout` passed; fewer is for
    the caller to judge."""
    got: list[AbstractIncomingMessage] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(got) < count and asyncio.get_running_loop().time() < deadline:
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.02)
        else:
            got.append(message)
    return got


class Exchanges:
    """Fresh topic exchanges, each with one bound queue, on the real broker; deleted when the
    block of `open()` ends."""

    def __init__(self, channel: AbstractChannel) -> None:
        self._channel = channel
        self._queues: dict[str, AbstractQueue] = {}

    @classmethod
    @asynccontextmanager
    async def open(cls) -> AsyncIterator[Exchanges]:
        connection = await aio_pika.connect(URL, timeout=10)
        async with connection:
            exchanges = cls(await connection.channel())
            try:
                yield exchanges
            finally:
                await exchanges._delete_all()

    async def create(self, binding_key: str = "#") -> str:
        name = f"outpost-test-{uuid.uuid4().hex[:12]}"
        exchange = await self._channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC)
        queue = await self._channel.declare_queue(f"{name}-q")
        await queue.bind(exchange, binding_key)
        self._queues[name] = queue
        return name

    async def messages(
        self, exchange: str, count: int, timeout: float
    ) -> list[AbstractIncomingMessage]:
        """Messages routed to `exchange`: see `take`."""
        return await take(self._queues[exchange], count, timeout)

    async def _delete_all(self) -> None:
        for name, queue in self._queues.items():
            await queue.delete(if_unused=False, if_empty=False)
            await self._channel.exchange_delete(name)


def header_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def settings_for(name: str) -> dict[str, str]:
    return {
        "RABBITMQ_SERVER_URL": URL,
        "RABBITMQ_EXCHANGE": f"{name}-x",
        "RABBITMQ_DELIVERY_QUEUE": f"{name}-q",
    }


async def _delete(name: str) -> None:
    connection = await aio_pika.connect(URL, timeout=10)
    async with connection:
        channel = await connection.channel()
        for queue in (f"{name}-q", f"{name}-q.dlq"):
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.queue_delete(queue)
        for exchange in (f"{name}-x", f"{name}-x.dlx"):
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.exchange_delete(exchange)


def delete(name: str) -> None:
    asyncio.run(_delete(name))


async def _stats(name: str) -> dict[str, tuple[int, int]]:
    connection = await aio_pika.connect(URL, timeout=10)
    async with connection:
        found: dict[str, tuple[int, int]] = {}
        for queue in (f"{name}-q", f"{name}-q.dlq"):
            channel = await connection.channel()  # a failed passive declare closes the channel
            try:
                declared = await channel.declare_queue(queue, passive=True)
            except aio_pika.exceptions.AMQPError:
                continue
            result = declared.declaration_result
            found[queue] = (result.message_count or 0, result.consumer_count or 0)
        return found


def queue_stats(name: str) -> dict[str, tuple[int, int]]:
    """(messages ready, consumers) of the delivery queue and the dead-letter queue of `name`,
    by queue name; a queue that does not exist is left out."""
    return asyncio.run(_stats(name))


# The local broker itself ----------------------------------------------------------------------


def _address() -> tuple[str, int]:
    parts = urlsplit(URL)
    return parts.hostname or "127.0.0.1", parts.port or 5672


def _ctl(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _checked(*args: str, timeout: float = 60.0) -> None:
    done = _ctl(*args, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(
            f"rabbitmqctl {' '.join(args)} exited {done.returncode}: "
            f"{(done.stderr or done.stdout).strip()[-500:]}"
        )


def accepts_connections() -> bool:
    """The AMQP port accepts a TCP connection."""
    try:
        with socket.create_connection(_address(), timeout=2):
            return True
    except OSError:
        return False


def node_running() -> bool:
    """The Erlang node answers `rabbitmqctl status` (the broker application may be stopped)."""
    try:
        return _ctl("status", timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def is_ready() -> bool:
    """The port accepts connections and `rabbitmqctl await_startup` succeeds."""
    if not accepts_connections():
        return False
    try:
        return _ctl("await_startup", "--timeout", "5", timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def wait_ready(timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not is_ready():
        if time.monotonic() >= deadline:
            raise RuntimeError(f"RabbitMQ not ready within {timeout:.0f}s")
        time.sleep(0.2)


def stop_app() -> None:
    """Stop the broker application of the local node (the node stays up): every client
    connection is closed and the AMQP port stops accepting connections."""
    _checked("stop_app")


def start_app() -> None:
    _checked("start_app")


def ensure_running(timeout: float = 60.0) -> None:
    """Bring the local broker back if it is not ready (start the application, or the whole node
    when it is down), and wait until it is."""
    if not is_ready():
        if node_running():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                start_app()  # may fail if it is already starting; wait_ready decides
        else:
            subprocess.run(
                ["rabbitmq-server", "-detached"], capture_output=True, timeout=60, check=False
            )
    wait_ready(timeout)
