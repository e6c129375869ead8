"""Signature templates, signers, generated secrets, and the startup checks on webhook settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import string

import pytest

from waypost.destinations.webhook import signing
from waypost.destinations.webhook.settings import WebhookSettings
from waypost.errors import ConfigError

NOW_NS = 1_717_230_216_500_000_000  # 2024-06-01T08:23:36.5Z
V0_HEADER = 'v0={{.Signatures | join ","}}'
DATA = signing.SigningInput("evt_1", "user.created", NOW_NS, b'{"zebra":1,"alpha":2}')


def hex_hmac(secret: str, content: bytes) -> str:
    return hmac.new(secret.encode(), content, hashlib.sha256).hexdigest()


# -- templates ---------------------------------------------------------------------------------


def test_default_content_template_is_the_exact_body() -> None:
    assert signing.ContentTemplate("{{.Body}}").render(DATA) is DATA.body


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{.Timestamp.Unix}}.{{.Body}}", b'1717230216.{"zebra":1,"alpha":2}'),
        ("{{ .EventID }}:{{.Topic}}", b"evt_1:user.created"),
        ("{{.Timestamp}}", b"2024-06-01 08:23:36.5 +0000 UTC"),
        ("a {{- .EventID -}} b", b"aevt_1b"),
        ("plain", b"plain"),
    ],
)
def test_content_template_subset(source: str, expected: bytes) -> None:
    assert signing.ContentTemplate(source).render(DATA) == expected


@pytest.mark.parametrize(
    "source",
    [
        'v0={{.Signatures | join ","}}',
        'v0={{ join "," .Signatures }}',
        "v0={{.Signatures | join `,`}}",
    ],
)
def test_header_template_joins_signatures(source: str) -> None:
    assert signing.HeaderTemplate(source).render(DATA, ["aa", "bb"]) == "v0=aa,bb"


def test_documented_timestamped_header_template() -> None:
    template = signing.HeaderTemplate('t={{.Timestamp.Unix}},v0={{.Signatures | join ","}}')
    assert template.render(DATA, ["aa"]) == "t=1717230216,v0=aa"


@pytest.mark.parametrize(
    ("source", "fields"),
    [
        ("{{.Signatures}}", signing.CONTENT_FIELDS),  # not part of the signed content
        ('{{.Signatures | join ","}}', signing.CONTENT_FIELDS),
        ("{{.Body}}", signing.HEADER_FIELDS),  # the header payload has no body
        ("{{.Unknown}}", signing.CONTENT_FIELDS),
        ("{{.EventID.Unix}}", signing.CONTENT_FIELDS),
        ('{{printf "%s" .Body}}', signing.CONTENT_FIELDS),
        ("{{.Body", signing.CONTENT_FIELDS),
        ("{{.RandomHex}}", signing.CONTENT_FIELDS),
    ],
)
def test_unsupported_templates_are_rejected(source: str, fields: frozenset[str]) -> None:
    with pytest.raises(signing.TemplateError):
        signing.compile_template(source, fields)


def test_go_time_trims_the_fraction_like_go() -> None:
    assert signing.go_time(1_717_230_216_000_000_000) == "2024-06-01 08:23:36 +0000 UTC"
    assert signing.go_time(1_717_230_216_123_456_789) == "2024-06-01 08:23:36.123456789 +0000 UTC"


# -- signers -----------------------------------------------------------------------------------


def test_default_signer_is_hex_hmac_sha256_keyed_by_the_secret_verbatim() -> None:
    signer = signing.DefaultSigner(
        "hmac-sha256", "hex", "{{.Body}}", 'v0={{.Signatures | join ","}}'
    )
    header = signer.header_value(["whsec_abc", "old-secret"], DATA)
    expected = [hex_hmac("whsec_abc", DATA.body), hex_hmac("old-secret", DATA.body)]
    assert header == "v0=" + ",".join(expected)


def test_default_signer_sha1_base64() -> None:
    signer = signing.DefaultSigner("hmac-sha1", "base64", "{{.Body}}", '{{.Signatures | join ","}}')
    digest = hmac.new(b"s3cret", DATA.body, hashlib.sha1).digest()
    assert signer.header_value(["s3cret"], DATA) == base64.b64encode(digest).decode()


def test_no_secret_means_no_signature_header() -> None:
    signer = signing.DefaultSigner(
        "hmac-sha256", "hex", "{{.Body}}", 'v0={{.Signatures | join ","}}'
    )
    assert signer.header_value([], DATA) is None
    assert signing.StandardSigner().header_value([], DATA) is None


def test_standard_signer_matches_the_specification_vector() -> None:
    data = signing.SigningInput(
        "msg_p5jXN8AQM9LWM0D4loKWxJek", "t", 1614265330 * 10**9, b'{"test": 2432232314}'
    )
    header = signing.StandardSigner().header_value(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], data)
    assert header == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_standard_signer_lists_every_secret_space_separated() -> None:
    first, second = signing.generate_standard_secret(), signing.generate_standard_secret()
    header = signing.StandardSigner().header_value([first, second], DATA)
    assert header is not None
    assert [part[:3] for part in header.split(" ")] == ["v1,", "v1,"]


def test_standard_signer_refuses_a_secret_it_cannot_decode() -> None:
    with pytest.raises(signing.SigningError):
        signing.StandardSigner().header_value(["not-a-standard-secret"], DATA)


@pytest.mark.parametrize(
    ("secret", "valid"),
    [
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", True),
        ("whsec_" + base64.b64encode(b"x" * 32).decode(), True),
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", False),  # no prefix
        ("whsec_abc", False),  # base64 with missing padding
        ("whsec_not base64!", False),
    ],
)
def test_standard_secret_shape(secret: str, valid: bool) -> None:
    assert signing.standard_secret_valid(secret) is valid


# -- generated secrets -------------------------------------------------------------------------


def test_default_generated_secret_is_whsec_and_64_hex_chars() -> None:
    secret = signing.SecretTemplate("whsec_{{.RandomHex}}").generate()
    assert re.fullmatch(r"whsec_[0-9a-f]{64}", secret)
    assert secret != signing.SecretTemplate("whsec_{{.RandomHex}}").generate()


def test_other_secret_templates() -> None:
    b64 = signing.SecretTemplate("{{.RandomBase64}}").generate()
    assert len(base64.b64decode(b64, validate=True)) == 32
    alnum = signing.SecretTemplate("key-{{.RandomAlphanumeric}}").generate()
    assert alnum.startswith("key-") and len(alnum) == 36
    assert set(alnum[4:]) <= set(string.ascii_letters + string.digits)


def test_generated_standard_secret_decodes_to_32_bytes() -> None:
    assert len(signing.standard_key(signing.generate_standard_secret())) == 32


# -- startup checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        WebhookSettings(),
        WebhookSettings(mode="standard"),
        WebhookSettings(header_prefix="x-acme", event_id_header="X-Id", topic_header=""),
        WebhookSettings(
            signature_content_template="{{.Timestamp.Unix}}.{{.Body}}",
            signature_header_template='t={{.Timestamp.Unix}},v0={{.Signatures | join ","}}',
        ),
        WebhookSettings(mode="standard", signature_header_template="ignored {{.Nope}}"),
    ],
)
def test_accepted_settings(settings: WebhookSettings) -> None:
    settings.check()


@pytest.mark.parametrize(
    "settings",
    [
        WebhookSettings(mode="svix"),
        WebhookSettings(event_id_header="X Event"),  # not a header name
        WebhookSettings(signature_header="Content-Type"),  # reserved
        WebhookSettings(topic_header="User-Agent"),
        WebhookSettings(event_id_header="x-outpost-topic"),  # collides with the topic header
        WebhookSettings(timestamp_header="X-Outpost-Signature"),  # case-insensitive collision
        WebhookSettings(header_prefix="x outpost "),
        WebhookSettings(signature_algorithm="hmac-md5"),
        WebhookSettings(signature_encoding="base32"),
        WebhookSettings(signature_content_template="{{.Signatures}}"),
        WebhookSettings(signature_header_template="{{.Body}}"),
        WebhookSettings(signing_secret_template="{{.RandomUUID}}"),
        WebhookSettings(max_response_body_bytes=-1),
        WebhookSettings(delivery_timeout_seconds=0),
    ],
)
def test_rejected_settings(settings: WebhookSettings) -> None:
    with pytest.raises(ConfigError):
        settings.check()


def test_header_names_follow_prefix_and_directives() -> None:
    default = WebhookSettings()
    assert [default.header_name(k) for k in ("event-id", "timestamp", "topic", "signature")] == [
        "x-outpost-event-id",
        "x-outpost-timestamp",
        "x-outpost-topic",
        "x-outpost-signature",
    ]
    custom = WebhookSettings(header_prefix="x-acme", event_id_header="X-Id", topic_header="")
    assert custom.header_name("event-id") == "X-Id"
    assert custom.header_name("topic") == ""
    assert custom.header_name("timestamp") == "x-acmetimestamp"  # no separator is added
    assert WebhookSettings(header_prefix="  ").header_name("topic") == "topic"
    standard = WebhookSettings(mode="standard", event_id_header="ignored")
    assert standard.header_name("event-id") == "webhook-id"
