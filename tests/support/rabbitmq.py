"""RabbitMQ names for one test server, and their removal afterwards (127.0.0.1:5672, guest)."""

from __future__ import annotations

import asyncio
import contextlib
import os

import aio_pika

URL = os.environ.get("OUTPOST_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/")


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
