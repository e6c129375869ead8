"""The AWS destination types through the official SDK against a real `waypost serve`, with moto's
server on loopback as AWS (SQS, Kinesis, S3, EventBridge; the real AWS is not reachable here).

Per type: create / get / list / update / delete, an event that arrives at the remote and is recorded
as a successful attempt, and a remote that refuses it, recorded as failed (code ERR, AWS's error
text) and retried. Plus the contract's regression_format_error scenario (contract.md §10.3).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest
from destinations.harness import Received
from destinations.harnesses import aws_eventbridge, aws_sqs
from destinations.harnesses.aws_kinesis import StreamReader
from destinations.harnesses.aws_s3 import BucketReader
from outpost_sdk import Outpost, errors, models
from support import moto
from support.api import publish, wait_attempts
from support.moto_harness import QueueReader
from support.waiting import poll_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

# Two retries a second apart: a failing destination gets exactly 3 attempts.
SERVER_ENV = {"RETRY_SCHEDULE": "1,1", "RETRY_POLL_BACKOFF_MS": "50"}
FORMAT_ERROR = {"error": "could not format event for delivery"}


@dataclass
class Remote:
    """One destination's target on moto and how to read what reached it."""

    config: dict[str, str]
    read: Callable[[], list[Received]]


def sqs_remote(broken: bool) -> Remote:
    name = moto.unique("e2e")
    if broken:
        queue_url = f"{moto.endpoint()}/{moto.ACCOUNT}/{name}"
    else:
        queue_url = moto.client("sqs").create_queue(QueueName=name)["QueueUrl"]
    return Remote({"queue_url": queue_url}, QueueReader(queue_url, aws_sqs.parse))


def kinesis_remote(broken: bool) -> Remote:
    stream = moto.unique("e2e")
    if not broken:
        moto.client("kinesis").create_stream(StreamName=stream, ShardCount=1)
    config = {"stream_name": stream, "region": moto.REGION, "endpoint": moto.endpoint()}
    return Remote(config, StreamReader(stream))


def s3_remote(broken: bool) -> Remote:
    bucket = moto.unique("e2e")
    if not broken:
        moto.client("s3").create_bucket(Bucket=bucket)
    config = {"bucket": bucket, "region": moto.REGION, "endpoint": moto.endpoint()}
    return Remote(config, BucketReader(bucket))


def eventbridge_remote(broken: bool) -> Remote:
    bus = moto.unique("e2e")
    if broken:
        queue_url = moto.client("sqs").create_queue(QueueName=bus)["QueueUrl"]
    else:
        queue_url = aws_eventbridge.bus_to_queue(bus)
    config = {"region": moto.REGION, "event_bus_name": bus, "endpoint": moto.endpoint()}
    return Remote(config, QueueReader(queue_url, aws_eventbridge.parse))


REMOTES: dict[str, Callable[[bool], Remote]] = {
    "aws_sqs": sqs_remote,
    "aws_kinesis": kinesis_remote,
    "aws_s3": s3_remote,
    "aws_eventbridge": eventbridge_remote,
}
MODELS: dict[str, type[Any]] = {
    "aws_sqs": models.DestinationAWSSQS,
    "aws_kinesis": models.DestinationAWSKinesis,
    "aws_s3": models.DestinationAwss3,
    "aws_eventbridge": models.DestinationAWSEventBridge,
}
# What the remote's refusal says, in the failed attempt's response_data.error.
REFUSALS = {
    "aws_sqs": "NonExistentQueue",
    "aws_kinesis": "ResourceNotFoundException",
    "aws_s3": "NoSuchBucket",
    "aws_eventbridge": "ResourceNotFoundException",
}
TYPES = sorted(REMOTES)


def create(
    admin: Outpost,
    api: httpx.Client,
    tenant_id: str,
    type_: str,
    config: dict[str, str],
    **extra: Any,
) -> Any:
    body = {"type": type_, "topics": "*", "config": config, "credentials": moto.credentials()}
    body.update(extra)
    if type_ != "aws_s3":
        return admin.destinations.create(tenant_id=tenant_id, body=cast(Any, body))
    # The SDK's S3 config model has no `endpoint` (undocumented, contract.md §11.19) and drops it
    # from the request, so S3 destinations on moto are created over raw HTTP, then read with the
    # SDK.
    res = api.post(f"/tenants/{tenant_id}/destinations", json=body)
    assert res.status_code == 201, res.text
    return admin.destinations.get(tenant_id=tenant_id, destination_id=res.json()["id"])


def published_data(label: str) -> dict[str, Any]:
    return {"label": label, "amount": 12.5, "items": ["a", "b"], "note": "héllo"}


@pytest.mark.parametrize("type_", TYPES)
def test_crud(admin: Outpost, api: httpx.Client, tenant_id: str, type_: str) -> None:
    remote = REMOTES[type_](False)
    created = create(admin, api, tenant_id, type_, remote.config, metadata={"team": "data"})
    assert isinstance(created, MODELS[type_]), created
    assert created.config.model_dump(exclude_none=True).items() <= remote.config.items()
    raw = api.get(f"/tenants/{tenant_id}/destinations/{created.id}").json()
    assert raw["config"] == remote.config
    assert created.credentials.key == moto.KEY[:4] + "*" * (len(moto.KEY) - 4)
    assert created.target
    assert created.disabled_at is None

    got = admin.destinations.get(tenant_id=tenant_id, destination_id=created.id)
    assert isinstance(got, MODELS[type_]) and got.id == created.id

    listed = admin.destinations.list(tenant_id=tenant_id, type_=cast(Any, type_))
    assert [d.id for d in listed] == [created.id]

    changed = REMOTES[type_](False).config
    updated = admin.destinations.update(
        tenant_id=tenant_id,
        destination_id=created.id,
        body=cast(Any, {"type": type_, "config": changed, "topics": ["user.created"]}),
    )
    assert isinstance(updated, MODELS[type_])
    assert updated.config.model_dump(exclude_none=True).items() <= changed.items()
    raw = api.get(f"/tenants/{tenant_id}/destinations/{created.id}").json()
    assert raw["config"] == changed
    assert updated.topics == ["user.created"]

    deleted = admin.destinations.delete(tenant_id=tenant_id, destination_id=created.id)
    assert deleted.success is True
    with pytest.raises(errors.NotFoundError):
        admin.destinations.get(tenant_id=tenant_id, destination_id=created.id)


@pytest.mark.parametrize(
    ("type_", "config", "credentials", "message"),
    [
        ("aws_sqs", {"queue_url": "not a url"}, None, "config.queue_url failed pattern validation"),
        (
            "aws_sqs",
            {"queue_url": "https://sqs.us-east-1.amazonaws.com/1/q"},
            {},
            "credentials.key is required",
        ),
        (
            "aws_kinesis",
            {"stream_name": "s", "region": "nowhere"},
            None,
            "config.region failed pattern validation",
        ),
        (
            "aws_s3",
            {"bucket": "b", "region": "us-east-1", "key_template": "join('', ["},
            None,
            "config.key_template failed pattern validation",
        ),
        (
            "aws_s3",
            {"bucket": "b", "region": "us-east-1", "storage_class": "COLD"},
            None,
            "config.storage_class failed enum validation",
        ),
        (
            "aws_eventbridge",
            {"region": "us-east-1", "endpoint": "localhost:4566"},
            None,
            "config.endpoint failed pattern validation",
        ),
    ],
)
def test_validation_messages(
    api: httpx.Client,
    tenant_id: str,
    type_: str,
    config: dict[str, str],
    credentials: dict[str, str] | None,
    message: str,
) -> None:
    body = {
        "type": type_,
        "topics": "*",
        "config": config,
        "credentials": moto.credentials() if credentials is None else credentials,
    }
    res = api.post(f"/tenants/{tenant_id}/destinations", json=body)
    assert res.status_code == 422, res.text
    assert message in json.dumps(res.json()), res.text


def test_destination_types_lists_them(api: httpx.Client) -> None:
    listed = [entry["type"] for entry in api.get("/destination-types").json()]
    assert set(TYPES) <= set(listed)
    s3 = api.get("/destination-types/aws_s3").json()
    assert [f["key"] for f in s3["credential_fields"]] == ["key", "secret", "session"]


@pytest.mark.parametrize("type_", TYPES)
def test_event_arrives_and_is_recorded(
    admin: Outpost, api: httpx.Client, tenant_id: str, type_: str
) -> None:
    remote = REMOTES[type_](False)
    dest = create(
        admin, api, tenant_id, type_, remote.config, delivery_metadata={"team": "billing"}
    )
    data = published_data(type_)
    res = publish(admin, tenant_id, data, metadata={"trace": "t-7"})

    [got] = poll_until(remote.read, timeout=20, what=f"{type_} message")
    assert got.data == data
    assert got.metadata["event-id"] == res.id
    assert got.metadata["topic"] == "user.created"
    assert got.metadata["team"] == "billing"
    assert got.metadata["trace"] == "t-7"

    [attempt] = wait_attempts(
        api, 1, tenant_id=tenant_id, destination_id=dest.id, include="response_data"
    )
    assert (attempt["status"], attempt["code"]) == ("success", "OK")
    assert attempt["destination_type"] == type_
    response = attempt.get("response_data")
    if type_ == "aws_sqs":
        assert response is None  # {} is omitted
    elif type_ == "aws_kinesis":
        assert response is not None and response["partition_key"] == res.id
        assert set(response) == {"shard_id", "sequence_number", "partition_key"}
    elif type_ == "aws_s3":
        assert response is not None and set(response) == {"bucket", "key"}
        assert response["bucket"] == remote.config["bucket"]
        assert response["key"].endswith(f"_{res.id}.json")
    else:
        assert response is not None and response["event_id"]


@pytest.mark.parametrize("type_", TYPES)
def test_refused_delivery_is_failed_and_retried(
    admin: Outpost, api: httpx.Client, tenant_id: str, type_: str
) -> None:
    remote = REMOTES[type_](True)
    dest = create(admin, api, tenant_id, type_, remote.config)
    res = publish(admin, tenant_id, published_data(type_))

    attempts = wait_attempts(
        api,
        3,
        tenant_id=tenant_id,
        destination_id=dest.id,
        event_id=res.id,
        include="response_data",
        dir="asc",
        timeout=20,
    )
    assert [a["attempt_number"] for a in attempts] == [1, 2, 3]
    for attempt in attempts:
        assert (attempt["status"], attempt["code"]) == ("failed", "ERR")
        assert REFUSALS[type_] in attempt["response_data"]["error"], attempt


def test_regression_format_error(admin: Outpost, api: httpx.Client, tenant_id: str) -> None:
    """contract.md §10.3: an S3 key template needing metadata the event lacks → exactly 3 failed
    attempts (RETRY_SCHEDULE=1,1) saying the event could not be formatted; nothing written."""
    remote = s3_remote(False)
    config = {**remote.config, "key_template": "join('/', ['prefix', metadata.operationId])"}
    dest = create(admin, api, tenant_id, "aws_s3", config)
    res = publish(admin, tenant_id, {"regression": "format_error"})

    attempts = wait_attempts(
        api, 3, tenant_id=tenant_id, event_id=res.id, include="response_data", timeout=20
    )
    assert len(attempts) == 3
    for attempt in attempts:
        assert attempt["destination_id"] == dest.id
        assert attempt["status"] == "failed"
        assert attempt["response_data"] == FORMAT_ERROR
    assert remote.read() == []

    # The same template succeeds for an event that carries the metadata.
    ok = publish(admin, tenant_id, {"regression": "formatted"}, metadata={"operationId": "op-1"})
    [attempt] = wait_attempts(api, 1, tenant_id=tenant_id, event_id=ok.id, include="response_data")
    assert attempt["status"] == "success"
    assert attempt["response_data"] == {"bucket": remote.config["bucket"], "key": "prefix/op-1"}
    assert len(remote.read()) == 1
