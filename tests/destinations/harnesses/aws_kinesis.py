"""aws_kinesis: the provider as the catalog builds it (metadata in the payload, the default), a
fresh one-shard stream per destination on moto, read back with GetRecords."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from support import moto
from support.moto_harness import build_provider, destination, poll

from destinations.harness import Received
from outpost.core.models import Destination, StrMap
from outpost.destinations.aws_kinesis.provider import AwsKinesisProvider


class StreamReader:
    def __init__(self, stream: str) -> None:
        self._kinesis = moto.client("kinesis")
        self._stream = stream
        self._iterator: str | None = None
        self._seen: list[Received] = []

    def __call__(self) -> list[Received]:
        if self._iterator is None:
            self._iterator = self._kinesis.get_shard_iterator(
                StreamName=self._stream,
                ShardId="shardId-000000000000",
                ShardIteratorType="TRIM_HORIZON",
            )["ShardIterator"]
        page = self._kinesis.get_records(ShardIterator=self._iterator, Limit=1000)
        self._iterator = page["NextShardIterator"]
        for record in page["Records"]:
            envelope = json.loads(record["Data"])
            self._seen.append(Received(data=envelope["data"], metadata=envelope["metadata"]))
        return list(self._seen)


class KinesisHarness:
    type = "aws_kinesis"

    def __init__(self) -> None:
        self.provider = build_provider(AwsKinesisProvider)
        self._kinesis = moto.client("kinesis")
        self._readers: dict[str, StreamReader] = {}

    def destination(
        self, *, broken: bool = False, delivery_metadata: StrMap | None = None
    ) -> Destination:
        stream = moto.unique("suite")
        if not broken:  # a broken one names a stream that was never created
            self._kinesis.create_stream(StreamName=stream, ShardCount=1)
        config = {"stream_name": stream, "region": moto.REGION, "endpoint": moto.endpoint()}
        made = destination("aws_kinesis", config, delivery_metadata)
        self._readers[made.id] = StreamReader(stream)
        return made

    async def received(
        self, destination: Destination, count: int, timeout: float
    ) -> list[Received]:
        return await poll(self._readers[destination.id], count, timeout)


@asynccontextmanager
async def open_harness() -> AsyncIterator[KinesisHarness]:
    harness = KinesisHarness()
    try:
        yield harness
    finally:
        await harness.provider.close()
