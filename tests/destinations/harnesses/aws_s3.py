"""aws_s3: the provider as the catalog builds it, a fresh bucket per destination on moto, read back
with ListObjectsV2 + GetObject (body and user metadata)."""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager

from support import moto
from support.moto_harness import AwsHarness, Reader

from destinations.harness import Received, provider_closed
from waypost.core.models import StrMap
from waypost.destinations.aws_s3.provider import AwsS3Provider


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


class S3Harness(AwsHarness):
    type = "aws_s3"
    provider_class = AwsS3Provider

    def target(self, broken: bool) -> tuple[StrMap, Reader]:
        bucket = moto.unique("suite")
        if not broken:  # a broken one names a bucket that was never created
            moto.client("s3").create_bucket(Bucket=bucket)
        config = {"bucket": bucket, "region": moto.REGION, "endpoint": moto.endpoint()}
        return config, BucketReader(bucket)


def open_harness() -> AbstractAsyncContextManager[S3Harness]:
    return provider_closed(S3Harness())
