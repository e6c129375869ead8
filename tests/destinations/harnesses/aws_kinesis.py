"""aws_kinesis: the provider as the catalog builds it (metadata in the payload, the default), a
fresh one-shard stream per destination on moto, read back with GetRecords."""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager

from support import moto
from support.moto_harness import AwsHarness, Reader

from destinations.harness import Received, provider_closed
from waypost.core.models import StrMap
from waypost.destinations.aws_kinesis.provider import AwsKinesisProvider


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


class KinesisHarness(AwsHarness):
    type = "aws_kinesis"
    provider_class = AwsKinesisProvider

    def target(self, broken: bool) -> tuple[StrMap, Reader]:
        stream = moto.unique("suite")
        if not broken:  # a broken one names a stream that was never created
            moto.client("kinesis").create_stream(StreamName=stream, ShardCount=1)
        config = {"stream_name": stream, "region": moto.REGION, "endpoint": moto.endpoint()}
        return config, StreamReader(stream)


def open_harness() -> AbstractAsyncContextManager[KinesisHarness]:
    return provider_closed(KinesisHarness())
