"""The AWS destination types without a network: schema, validation, display, templates."""

from __future__ import annotations

import json

import botocore.session
import pytest

from waypost.core import timefmt
from waypost.core.models import Destination, Event, StrMap
from waypost.destinations.aws.clients import AwsSettings
from waypost.destinations.aws.provider import AwsProvider
from waypost.destinations.aws.templates import TemplateError, as_text, time_fields
from waypost.destinations.aws_eventbridge.provider import AwsEventBridgeProvider
from waypost.destinations.aws_kinesis.provider import (
    AwsKinesisProvider,
    envelope,
    partition_key,
)
from waypost.destinations.aws_s3.provider import STORAGE_CLASSES, AwsS3Provider, object_key
from waypost.destinations.aws_sqs.provider import AwsSqsProvider, queue_region
from waypost.destinations.gofmt import go_g

CREDENTIALS = {"key": "AKIAIOSFODNN7EXAMPLE", "secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
QUEUE_URL = "https://sqs.eu-west-2.amazonaws.com/123456789012/orders"
SETTINGS = AwsSettings()


def make_destination(type_: str, config: StrMap, credentials: StrMap) -> Destination:
    return Destination(
        id="des_1",
        tenant_id="t",
        type=type_,
        topics=("*",),
        config=config,
        credentials=credentials,
        created_at=0,
        updated_at=0,
    )


def make_event(data: dict[str, object], *, metadata: StrMap, time: int = 0) -> Event:
    return Event(
        id="evt_1",
        tenant_id="t",
        topic="order.created",
        time=time,
        data=json.dumps(data).encode(),
        metadata=metadata,
    )


def errors(provider: AwsProvider, config: StrMap, credentials: StrMap | None = None) -> list[str]:
    creds = CREDENTIALS if credentials is None else credentials
    return provider.validate(make_destination(provider.type, config, creds))


# -- schema ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider_class", "config_keys", "credential_keys"),
    [
        (AwsSqsProvider, ["queue_url", "endpoint"], ["key", "secret"]),
        (
            AwsKinesisProvider,
            ["stream_name", "region", "endpoint", "partition_key_template"],
            ["key", "secret", "session"],
        ),
        (
            AwsS3Provider,
            ["bucket", "region", "key_template", "storage_class"],
            ["key", "secret", "session"],
        ),
        (
            AwsEventBridgeProvider,
            ["region", "event_bus_name", "endpoint"],
            ["key", "secret", "session"],
        ),
    ],
)
def test_describe_lists_the_fields(
    provider_class: type[AwsProvider], config_keys: list[str], credential_keys: list[str]
) -> None:
    entry = provider_class(SETTINGS).describe()
    assert entry["type"] == provider_class.type
    assert entry["icon"].startswith("<svg")
    assert entry["instructions"].startswith("# ")
    assert [f["key"] for f in entry["config_fields"]] == config_keys
    assert [f["key"] for f in entry["credential_fields"]] == credential_keys
    assert all(f["sensitive"] for f in entry["credential_fields"])


# -- validation ------------------------------------------------------------------------------


def test_sqs_validation() -> None:
    sqs = AwsSqsProvider(SETTINGS)
    assert errors(sqs, {"queue_url": QUEUE_URL}) == []
    assert errors(sqs, {}) == ["config.queue_url is required"]
    assert errors(sqs, {"queue_url": "sqs://orders"}) == [
        "config.queue_url failed pattern validation"
    ]
    assert errors(sqs, {"queue_url": QUEUE_URL}, {"key": "k"}) == ["credentials.secret is required"]
    assert errors(sqs, {"queue_url": QUEUE_URL}, {}) == [
        "credentials.key is required",
        "credentials.secret is required",
    ]
    for endpoint in ("localhost:4566", "http://", "https:///path"):
        assert errors(sqs, {"queue_url": QUEUE_URL, "endpoint": endpoint}) == [
            "config.endpoint failed pattern validation"
        ], endpoint
    assert errors(sqs, {"queue_url": QUEUE_URL, "endpoint": "http://127.0.0.1:4566"}) == []


def test_kinesis_validation() -> None:
    kinesis = AwsKinesisProvider(SETTINGS)
    good = {"stream_name": "orders.v1_x-y", "region": "us-east-1"}
    assert errors(kinesis, good) == []
    assert errors(kinesis, {**good, "stream_name": "my stream"}) == [
        "config.stream_name failed pattern validation"
    ]
    assert errors(kinesis, {**good, "region": "US-EAST-1"}) == [
        "config.region failed pattern validation"
    ]
    assert errors(kinesis, {"region": "us-east-1"}) == ["config.stream_name is required"]
    # A partition key template is evaluated leniently at delivery (falls back to the event id).
    assert errors(kinesis, {**good, "partition_key_template": "data.["}) == []


def test_s3_validation() -> None:
    s3 = AwsS3Provider(SETTINGS)
    good = {"bucket": "archive", "region": "eu-central-1"}
    assert errors(s3, good) == []
    assert errors(s3, {"region": "eu-central-1"}) == ["config.bucket is required"]
    assert errors(s3, {**good, "key_template": "join('/', [metadata.topic"}) == [
        "config.key_template failed pattern validation"
    ]
    assert errors(s3, {**good, "key_template": "join('/', [metadata.topic, 'x'])"}) == []
    assert errors(s3, {**good, "storage_class": "glacier_ir"}) == []  # case-insensitive
    assert errors(s3, {**good, "storage_class": "FROZEN"}) == [
        "config.storage_class failed enum validation"
    ]
    assert errors(s3, {**good, "endpoint": "http://127.0.0.1:4566"}) == []
    assert errors(s3, {**good, "endpoint": "127.0.0.1:4566"}) == [
        "config.endpoint failed pattern validation"
    ]


def test_eventbridge_validation() -> None:
    eventbridge = AwsEventBridgeProvider(SETTINGS)
    assert errors(eventbridge, {"region": "us-west-2"}) == []
    assert errors(eventbridge, {}) == ["config.region is required"]
    arn = "arn:aws:events:us-west-2:123456789012:event-bus/orders"
    assert errors(eventbridge, {"region": "us-west-2", "event_bus_name": arn}) == []
    assert errors(eventbridge, {"region": "us-west-2", "event_bus_name": "my bus"}) == [
        "config.event_bus_name failed pattern validation"
    ]


def test_config_is_stored_as_given() -> None:
    s3 = AwsS3Provider(SETTINGS)
    config = {"bucket": "b", "region": "us-east-1", "storage_class": "glacier"}
    destination = make_destination("aws_s3", config, CREDENTIALS)
    stored = s3.preprocess(destination, None, admin=True, now=0)
    assert stored.config == config


# -- display ---------------------------------------------------------------------------------


def test_sqs_display() -> None:
    sqs = AwsSqsProvider(SETTINGS)
    credentials = {**CREDENTIALS, "session": "FwoGZXIvYXdzEJr-temporary"}
    shown = sqs.display(make_destination("aws_sqs", {"queue_url": QUEUE_URL}, credentials), 0)
    assert shown.target == QUEUE_URL
    assert shown.target_url == (
        "https://eu-west-2.console.aws.amazon.com/sqs/v2/home?region=eu-west-2#/queues/"
        "https%3A%2F%2Fsqs.eu-west-2.amazonaws.com%2F123456789012%2Forders"
    )
    assert shown.credentials == {
        "key": "AKIA****************",
        "secret": "wJal************************************",
        # not in SQS's schema, so shown as is (contract.md §11.16)
        "session": credentials["session"],
    }
    local = "http://127.0.0.1:4566/000000000000/orders"
    shown = sqs.display(make_destination("aws_sqs", {"queue_url": local}, CREDENTIALS), 0)
    assert (shown.target, shown.target_url) == (local, "")


def test_targets_of_the_other_types() -> None:
    creds = {**CREDENTIALS, "session": "short"}
    kinesis = AwsKinesisProvider(SETTINGS).display(
        make_destination("aws_kinesis", {"stream_name": "s", "region": "us-east-1"}, creds), 0
    )
    assert (kinesis.target, kinesis.target_url) == ("s in us-east-1", "")
    assert kinesis.credentials["session"] == "*****"
    s3 = AwsS3Provider(SETTINGS).display(
        make_destination("aws_s3", {"bucket": "b", "region": "eu-west-1"}, creds), 0
    )
    assert s3.target == "b in eu-west-1"
    assert s3.target_url == "https://s3.console.aws.amazon.com/s3/buckets/b?region=eu-west-1"
    eventbridge = AwsEventBridgeProvider(SETTINGS)
    default = eventbridge.display(
        make_destination("aws_eventbridge", {"region": "eu-west-1"}, creds), 0
    )
    assert default.target == "default in eu-west-1"
    assert default.target_url.startswith("https://eu-west-1.console.aws.amazon.com/events/")
    arn = "arn:aws:events:eu-west-1:123456789012:event-bus/orders"
    config = {"region": "eu-west-1", "event_bus_name": arn}
    by_arn = eventbridge.display(make_destination("aws_eventbridge", config, creds), 0)
    assert (by_arn.target, by_arn.target_url) == (arn, "")


@pytest.mark.parametrize(
    ("queue_url", "region"),
    [
        (QUEUE_URL, "eu-west-2"),
        ("https://sqs.ap-southeast-2.amazonaws.com/1/q", "ap-southeast-2"),
        ("http://sqs.us-west-1.localhost.localstack.cloud:4566/000000000000/q", "us-west-1"),
        ("https://eu-north-1.queue.amazonaws.com/1/q", "eu-north-1"),
        ("http://127.0.0.1:4566/000000000000/q", "us-east-1"),
    ],
)
def test_queue_region(queue_url: str, region: str) -> None:
    assert queue_region(queue_url) == region


# -- templates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (0, "0"),
        (42, "42"),
        (1.5, "1.5"),
        (123456, "123456"),
        (1234567, "1.234567e+06"),
        (12345678, "1.2345678e+07"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.5, "-2.5"),
        (1e21, "1e+21"),
        (100.0, "100"),
    ],
)
def test_numbers_print_as_gos_percent_g(number: float, text: str) -> None:
    assert go_g(float(number)) == text
    assert as_text(number) == text


def test_other_results_as_text() -> None:
    assert as_text("abc") == "abc"
    assert as_text(True) == "true"
    assert as_text({"a": [1]}) == '{"a":[1]}'


def test_partition_key_falls_back_to_the_event_id() -> None:
    record = {"metadata": {"event-id": "evt_1"}, "data": {"user": "u-9", "n": 7, "empty": ""}}
    assert partition_key("data.user", record, "evt_1") == "u-9"
    assert partition_key("data.n", record, "evt_1") == "7"
    assert partition_key('metadata."event-id"', record, "x") == "evt_1"
    for template in ("", "data.missing", "data.empty", "data.[", "to_number(data.user) + `1`"):
        assert partition_key(template, record, "evt_1") == "evt_1", template


def test_envelope_keeps_the_data_bytes() -> None:
    data = b'{"b":1,"a":[1.50,"\\u00e9"]}'
    record = envelope({"event-id": "e", "topic": "t"}, data)
    assert json.loads(record) == {
        "metadata": {"event-id": "e", "topic": "t"},
        "data": json.loads(data),
    }
    assert record.endswith(b',"data":' + data + b"}")


def test_time_fields_come_from_the_event_time() -> None:
    ms = timefmt.parse("2024-02-29T23:05:09.120Z")
    assert time_fields(ms) == {
        "year": "2024",
        "month": "02",
        "day": "29",
        "hour": "23",
        "minute": "05",
        "second": "09",
        "date": "2024-02-29",
        "datetime": "2024-02-29T23:05:09",
        "unix": str(ms // 1000),
        "rfc3339": "2024-02-29T23:05:09Z",
        "rfc3339_nano": "2024-02-29T23:05:09.12Z",
    }
    assert time_fields(ms - 120)["rfc3339_nano"] == "2024-02-29T23:05:09Z"


def test_object_keys() -> None:
    event = make_event(
        {"customer": {"id": "c-1"}},
        metadata={"operationId": "op-7"},
        time=timefmt.parse("2024-05-01T12:30:00.5Z"),
    )
    metadata = {"event-id": event.id, "topic": event.topic, "operationId": "op-7"}
    assert object_key("", event, metadata) == f"2024-05-01T12:30:00.5Z_{event.id}.json"
    template = "join('/', [metadata.topic, time.date, data.customer.id, metadata.operationId])"
    assert object_key(template, event, metadata) == "order.created/2024-05-01/c-1/op-7"
    assert object_key("time.unix", event, metadata) == str(event.time // 1000)
    # The contract's regression_format_error template, without the metadata it needs:
    missing = {"event-id": event.id, "topic": event.topic}
    for template in ("join('/', ['prefix', metadata.operationId])", "data.nothing", "data", "''"):
        with pytest.raises(TemplateError):
            object_key(template, event, missing)


def test_storage_classes_match_botocores_model_of_s3() -> None:
    model = botocore.session.get_session().get_service_model("s3")
    assert set(model.shape_for("StorageClass").enum) == STORAGE_CLASSES
