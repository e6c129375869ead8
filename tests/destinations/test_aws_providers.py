"""The AWS types' own delivery details (beyond the shared publisher suite), on moto's server.

moto stands in for AWS, which is not reachable from here; it is a real HTTP server on loopback
speaking the services' wire protocols, so what is read back is what the real client sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from support import moto
from support.moto_harness import build_provider
from support.moto_harness import destination as moto_destination

from destinations.harness import make_event
from waypost.config import Config
from waypost.core import timefmt
from waypost.destinations.aws.clients import AwsSettings
from waypost.destinations.aws_eventbridge.provider import AwsEventBridgeProvider
from waypost.destinations.aws_kinesis.provider import AwsKinesisProvider
from waypost.destinations.aws_s3.provider import AwsS3Provider
from waypost.destinations.aws_sqs.provider import AwsSqsProvider
from waypost.errors import DeliveryInfrastructureError
from waypost.transport.guard import AddressGuard

pytestmark = pytest.mark.anyio

RAW = b'{"b":1,"a":[1.50,"\\u00e9"],"customer":"c-42"}'  # key order and literals must survive


async def test_sqs_message_body_and_metadata_attribute() -> None:
    sqs = moto.client("sqs")
    queue_url = sqs.create_queue(QueueName=moto.unique("sqs"))["QueueUrl"]
    provider = build_provider(AwsSqsProvider)
    event = replace(make_event(metadata={"trace": "t-1"}), data=RAW)
    try:
        result = await provider.publish(
            event, moto_destination("aws_sqs", {"queue_url": queue_url}, None)
        )
    finally:
        await provider.close()

    assert (result.status, result.code, result.response_data) == ("success", "OK", {})
    [message] = sqs.receive_message(QueueUrl=queue_url, MessageAttributeNames=["All"])["Messages"]
    assert message["Body"].encode() == RAW
    assert list(message["MessageAttributes"]) == ["metadata"]
    attribute = message["MessageAttributes"]["metadata"]
    assert attribute["DataType"] == "String"
    metadata = json.loads(attribute["StringValue"])
    assert metadata["event-id"] == event.id and metadata["trace"] == "t-1"


def _records(stream: str) -> list[dict[str, object]]:
    kinesis = moto.client("kinesis")
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records: list[dict[str, object]] = kinesis.get_records(ShardIterator=iterator)["Records"]
    return records


@pytest.mark.parametrize("in_payload", [True, False])
async def test_kinesis_record_and_partition_key(in_payload: bool) -> None:
    stream = moto.unique("kinesis")
    moto.client("kinesis").create_stream(StreamName=stream, ShardCount=1)
    config = Config(destinations_aws_kinesis_metadata_in_payload=in_payload)
    provider = build_provider(AwsKinesisProvider, config)
    template = "data.customer" if in_payload else "customer"
    dest_config = {
        "stream_name": stream,
        "region": moto.REGION,
        "endpoint": moto.endpoint(),
        "partition_key_template": template,
    }
    event = replace(make_event(), data=RAW)
    try:
        result = await provider.publish(event, moto_destination("aws_kinesis", dest_config, None))
        fallback = await provider.publish(
            event,
            moto_destination(
                "aws_kinesis", {**dest_config, "partition_key_template": "data.nope"}, None
            ),
        )
    finally:
        await provider.close()

    assert result.ok and result.response_data is not None
    assert result.response_data["partition_key"] == "c-42"
    assert result.response_data["shard_id"] == "shardId-000000000000"
    assert result.response_data["sequence_number"]
    assert fallback.ok and fallback.response_data is not None
    assert fallback.response_data["partition_key"] == event.id
    first, second = _records(stream)
    assert first["PartitionKey"] == "c-42"
    assert second["PartitionKey"] == event.id
    data = first["Data"]
    assert isinstance(data, bytes)
    if in_payload:
        envelope = json.loads(data)
        assert envelope["metadata"]["event-id"] == event.id
        assert data.endswith(b',"data":' + RAW + b"}")
    else:
        assert data == RAW


async def test_s3_object_key_body_and_properties() -> None:
    s3 = moto.client("s3")
    bucket = moto.unique("s3")
    s3.create_bucket(Bucket=bucket)
    provider = build_provider(AwsS3Provider)
    event_time = timefmt.parse("2023-07-04T09:08:07.25Z")  # not now: keys use the EVENT's time
    event = replace(make_event(metadata={"tenant-tier": "gold"}), data=RAW, time=event_time)
    config = {
        "bucket": bucket,
        "region": moto.REGION,
        "endpoint": moto.endpoint(),
        "storage_class": "standard_ia",
        "key_template": "join('/', [metadata.topic, time.year, time.month, time.day, "
        "join('', [time.hour, time.minute, time.second, '-', data.customer, '.json'])])",
    }
    try:
        result = await provider.publish(event, moto_destination("aws_s3", config, None))
        default = await provider.publish(
            event, moto_destination("aws_s3", {**config, "key_template": ""}, None)
        )
    finally:
        await provider.close()

    key = "order.created/2023/07/04/090807-c-42.json"
    assert (result.status, result.code, result.response_data) == (
        "success",
        "OK",
        {"bucket": bucket, "key": key},
    )
    assert default.response_data == {
        "bucket": bucket,
        "key": f"2023-07-04T09:08:07.25Z_{event.id}.json",
    }
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got["Body"].read() == RAW
    assert got["ContentType"] == "application/json"
    assert got["StorageClass"] == "STANDARD_IA"
    assert got["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(RAW).digest()).decode()
    assert got["Metadata"]["event-id"] == event.id
    assert got["Metadata"]["tenant-tier"] == "gold"


async def test_s3_template_that_finds_nothing_writes_nothing() -> None:
    s3 = moto.client("s3")
    bucket = moto.unique("s3")
    s3.create_bucket(Bucket=bucket)
    provider = build_provider(AwsS3Provider)
    config = {
        "bucket": bucket,
        "region": moto.REGION,
        "endpoint": moto.endpoint(),
        "key_template": "join('/', ['prefix', metadata.operationId])",
    }
    try:
        result = await provider.publish(make_event(), moto_destination("aws_s3", config, None))
    finally:
        await provider.close()

    assert (result.status, result.code, result.response_data) == (
        "failed",
        "ERR",
        {"error": "could not format event for delivery"},
    )
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


async def test_eventbridge_entry_fields() -> None:
    from destinations.harnesses.aws_eventbridge import bus_to_queue

    name = moto.unique("bus")
    queue_url = bus_to_queue(name)
    arn = f"arn:aws:events:{moto.REGION}:{moto.ACCOUNT}:event-bus/{name}"
    provider = build_provider(AwsEventBridgeProvider)
    event = replace(
        make_event(topic="invoice.paid"), data=RAW, time=timefmt.parse("2023-01-02T03:04:05Z")
    )
    config = {"region": moto.REGION, "event_bus_name": arn, "endpoint": moto.endpoint()}
    try:
        result = await provider.publish(event, moto_destination("aws_eventbridge", config, None))
    finally:
        await provider.close()

    assert result.ok and result.response_data is not None and result.response_data["event_id"]
    [message] = moto.client("sqs").receive_message(QueueUrl=queue_url, WaitTimeSeconds=5)[
        "Messages"
    ]
    forwarded = json.loads(message["Body"])
    assert forwarded["source"] == "outpost"
    assert forwarded["detail-type"] == "invoice.paid"
    assert forwarded["detail"]["data"] == json.loads(RAW)
    assert forwarded["detail"]["metadata"]["event-id"] == event.id
    sent = datetime.fromisoformat(forwarded["time"].replace("Z", "+00:00"))
    assert sent == datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC)


async def test_clients_are_shared_per_account_region_and_endpoint() -> None:
    sqs = moto.client("sqs")
    queues = [sqs.create_queue(QueueName=moto.unique("share"))["QueueUrl"] for _ in range(3)]
    provider = build_provider(AwsSqsProvider)
    other_key = {"key": "AKIAOTHERKEY0000", "secret": "another-secret-value"}
    try:
        for queue_url in queues:
            made = moto_destination("aws_sqs", {"queue_url": queue_url}, None)
            assert (await provider.publish(make_event(), made)).ok
        assert len(provider._clients) == 1
        made = replace(made, credentials=other_key)
        assert (await provider.publish(make_event(), made)).ok
        assert len(provider._clients) == 2
    finally:
        await provider.close()
    assert len(provider._clients) == 0
    with pytest.raises(DeliveryInfrastructureError):
        await provider.publish(make_event(), made)


async def test_idle_clients_beyond_the_bound_are_closed() -> None:
    sqs = moto.client("sqs")
    queue_url = sqs.create_queue(QueueName=moto.unique("bound"))["QueueUrl"]
    provider = AwsSqsProvider(AwsSettings(max_clients=2))
    made = moto_destination("aws_sqs", {"queue_url": queue_url}, None)
    try:
        for n in range(5):  # five accounts, as if five tenants used the same emulator
            account = {"key": f"AKIABOUNDTEST{n:04d}", "secret": f"secret-{n}"}
            assert (
                await provider.publish(make_event({"n": n}), replace(made, credentials=account))
            ).ok
            assert len(provider._clients) <= 2
    finally:
        await provider.close()
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(json.loads(m["Body"])["n"] for m in got) == [0, 1, 2, 3, 4]


async def test_the_ssrf_guard_refuses_aws_connections_it_does_not_allow() -> None:
    """AWS clients connect through the same guard as webhooks: moto on 127.0.0.1 is refused
    under the default policy (a failed attempt saying the address is not allowed), and reached
    once allowed."""
    sqs = moto.client("sqs")
    queue_url = sqs.create_queue(QueueName=moto.unique("ssrf"))["QueueUrl"]
    destination = moto_destination("aws_sqs", {"queue_url": queue_url}, None)
    guarded = AwsSqsProvider(AwsSettings(guard=AddressGuard()))
    allowed = AwsSqsProvider(AwsSettings(guard=AddressGuard(["127.0.0.0/8"])))
    try:
        refused = await guarded.publish(make_event(), destination)
        delivered = await allowed.publish(make_event(), destination)
    finally:
        await guarded.close()
        await allowed.close()

    assert (refused.status, refused.code) == ("failed", "ssrf_blocked")
    assert refused.response_data is not None
    assert refused.response_data["error"].endswith(" is not allowed")
    assert delivered.ok
    arrived = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(arrived) == 1  # the refused one never left


def test_literal_private_aws_urls_are_refused_on_create() -> None:
    provider = AwsSqsProvider(AwsSettings(guard=AddressGuard()))
    metadata_service = "http://169.254.169.254/123456789012/queue"
    destination = moto_destination("aws_sqs", {"queue_url": metadata_service}, None)
    with_endpoint = moto_destination(
        "aws_sqs",
        {"queue_url": "https://sqs.eu-west-1.amazonaws.com/1/q", "endpoint": "http://10.0.0.1"},
        None,
    )

    assert provider.validate(destination) == ["config.queue_url failed ssrf validation"]
    assert provider.validate(with_endpoint) == ["config.endpoint failed ssrf validation"]
