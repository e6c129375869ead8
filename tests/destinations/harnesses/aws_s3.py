"""aws_s3: the provider as the catalog builds it, a fresh bucket per destination on moto, read back
with ListObjectsV2 + GetObject (body and user metadata)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from support import moto
from support.moto_harness import build_provider, destination, poll

from destinations.harness import Received
from outpost.core.models import Destination, StrMap
from outpost.destinations.aws_s3.provider import AwsS3Provider


class BucketReader:
    def __init__(self, bucket: str) -> None:
        self._s3 = moto.client("s3")
        self._bucket = bucket
        self._seen: dict[str, Received] = {}

    def __call__(self) -> list[Received]:
        listing = self._s3.list_objects_v2(Bucket=self._bucket, MaxKeys=1000)
        for item in listing.get("Contents", []):
            if item["Key"] not in self._seen:
                got = self._s3.get_object(Bucket=self._bucket, Key=item["Key"])
                self._seen[item["Key"]] = Received(
                    data=json.loads(got["Body"].read()), metadata=got["Metadata"]
                )
        return list(self._seen.values())


class S3Harness:
    type = "aws_s3"

    def __init__(self) -> None:
        self.provider = build_provider(AwsS3Provider)
        self._s3 = moto.client("s3")
        self._readers: dict[str, BucketReader] = {}

    def destination(
        self, *, broken: bool = False, delivery_metadata: StrMap | None = None
    ) -> Destination:
        bucket = moto.unique("suite")
        if not broken:  # a broken one names a bucket that was never created
            self._s3.create_bucket(Bucket=bucket)
        config = {"bucket": bucket, "region": moto.REGION, "endpoint": moto.endpoint()}
        made = destination("aws_s3", config, delivery_metadata)
        self._readers[made.id] = BucketReader(bucket)
        return made

    async def received(
        self, destination: Destination, count: int, timeout: float
    ) -> list[Received]:
        return await poll(self._readers[destination.id], count, timeout)


@asynccontextmanager
async def open_harness() -> AsyncIterator[S3Harness]:
    harness = S3Harness()
    try:
        yield harness
    finally:
        await harness.provider.close()
