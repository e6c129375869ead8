"""Webhook signatures (contract.md §4.2, §4.4) and generated signing secrets (§4.6).

Outpost configures signatures with Go `text/template` strings. This module understands a small
subset of that language, compiled once at startup into a list of pieces so that a delivery only
concatenates (no parsing per delivery):

    {{.Body}}                          the exact request body (content template only)
    {{.EventID}}  {{.Topic}}           the event's id and topic
    {{.Timestamp.Unix}}                the delivery time, epoch seconds
    {{.Timestamp}}                     the delivery time as Go prints a UTC time value,
                                       e.g. "2024-06-01 08:23:36.5 +0000 UTC"
    {{.Signatures | join "<sep>"}}     the signatures joined by <sep> (header template only);
                                       `join "<sep>" .Signatures` is accepted too
    {{.RandomHex}} {{.RandomBase64}} {{.RandomAlphanumeric}}
                                       32 random bytes as hex / std base64, or 32 letters and
                                       digits (signing-secret template only)

Text outside `{{ }}` is copied as is; Go's `{{-` / `-}}` trim markers are honoured. Anything else
raises `TemplateError`, which settings turn into a startup error rather than a broken delivery.

Default mode signs `content` with HMAC (sha256 or sha1) keyed by the secret's UTF-8 bytes, the
`whsec_` prefix included, unless a secret encoding says to decode it (`hex` or `base64`, after
stripping a configured prefix). Standard Webhooks mode signs `<id>.<unix>.<body>` with HMAC-SHA256
keyed by the base64-decoded part after `whsec_`, as that specification requires.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import json
import re
import secrets
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass

CONTENT_FIELDS = frozenset({"Body", "EventID", "Topic", "Timestamp"})
HEADER_FIELDS = frozenset({"EventID", "Topic", "Timestamp", "Signatures"})
SECRET_FIELDS = frozenset({"RandomHex", "RandomBase64", "RandomAlphanumeric"})
STANDARD_PREFIX = "whsec_"
ALGORITHMS = {"hmac-sha256": "sha256", "hmac-sha1": "sha1"}
ENCODINGS = frozenset({"hex", "base64"})
SECRET_ENCODINGS = frozenset({"raw", "hex", "base64"})
HEADERS_FIELDS = frozenset({"EventID", "Topic", "Timestamp"})  # compat headers' templates

_ACTION = re.compile(r"\{\{(-\s)?\s*(.*?)\s*(\s-)?\}\}", re.DOTALL)
_FIELD = re.compile(r"\.([A-Za-z][A-Za-z0-9]*)(?:\.(Unix))?")
_STRING = r"(\"(?:[^\"\\]|\\.)*\"|`[^`]*`)"
_JOIN_PIPE = re.compile(r"\.Signatures\s*\|\s*join\s+" + _STRING)
_JOIN_CALL = re.compile(r"join\s+" + _STRING + r"\s+\.Signatures")
_ALPHANUMERIC = string.ascii_letters + string.digits

Piece = tuple[str, str]  # (kind, literal text or join separator)


class TemplateError(ValueError):
    pass


class SigningError(ValueError):
    """A stored secret cannot be used for signing (e.g. not `whsec_<base64>` in standard mode)."""


@dataclass(frozen=True, slots=True)
class SigningInput:
    """What a template can read about one delivery."""

    event_id: str
    topic: str
    now_ns: int
    body: bytes


def compile_template(source: str, fields: frozenset[str]) -> tuple[Piece, ...]:
    pieces: list[Piece] = []
    position, trim_next = 0, False
    for match in _ACTION.finditer(source):
        text = source[position : match.start()]
        pieces.append(("text", _trim(text, trim_next, match.group(1) is not None)))
        pieces.append(_action(match.group(2), fields))
        position, trim_next = match.end(), match.group(3) is not None
    pieces.append(("text", _trim(source[position:], trim_next, False)))
    if "{{" in "".join(text for kind, text in pieces if kind == "text"):
        raise TemplateError(f"unclosed action in template {source!r}")
    return tuple(piece for piece in pieces if piece != ("text", ""))


def _trim(text: str, left: bool, right: bool) -> str:
    text = text.lstrip() if left else text
    return text.rstrip() if right else text


def _action(expression: str, fields: frozenset[str]) -> Piece:
    join = _JOIN_PIPE.fullmatch(expression) or _JOIN_CALL.fullmatch(expression)
    if join and "Signatures" in fields:
        return "join", _go_string(join.group(1))
    field = _FIELD.fullmatch(expression)
    if field is None or field.group(1) not in fields or field.group(1) == "Signatures":
        raise TemplateError(f"unsupported template action {{{{{expression}}}}}")
    if field.group(2) and field.group(1) != "Timestamp":
        raise TemplateError(f"unsupported template action {{{{{expression}}}}}")
    return ("unix" if field.group(2) else field.group(1)), ""


def _go_string(literal: str) -> str:
    if literal.startswith("`"):
        return literal[1:-1]
    try:
        value = json.loads(literal)
    except ValueError:
        raise TemplateError(f"unsupported string literal {literal}") from None
    assert isinstance(value, str)
    return value


def go_time(now_ns: int) -> str:
    """A UTC time the way Go's `time.Time.String` prints it (without the monotonic reading)."""
    seconds, nanos = divmod(now_ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    return f"{text}{fraction} +0000 UTC"


def _value(kind: str, data: SigningInput) -> str:
    if kind == "EventID":
        return data.event_id
    if kind == "Topic":
        return data.topic
    if kind == "unix":
        return str(data.now_ns // 1_000_000_000)
    return go_time(data.now_ns)  # "Timestamp"


class ContentTemplate:
    """Renders the bytes that get signed."""

    def __init__(self, source: str) -> None:
        self._pieces = compile_template(source, CONTENT_FIELDS)
        self._body_only = self._pieces == (("Body", ""),)

    def render(self, data: SigningInput) -> bytes:
        if self._body_only:
            return data.body
        parts: list[bytes] = []
        for kind, text in self._pieces:
            if kind == "text":
                parts.append(text.encode())
            elif kind == "Body":
                parts.append(data.body)
            else:
                parts.append(_value(kind, data).encode())
        return b"".join(parts)


class HeaderTemplate:
    """Renders the signature header's value from the list of signatures."""

    def __init__(self, source: str) -> None:
        self._pieces = compile_template(source, HEADER_FIELDS)

    def render(self, data: SigningInput, signatures: Sequence[str]) -> str:
        parts: list[str] = []
        for kind, text in self._pieces:
            if kind == "text":
                parts.append(text)
            elif kind == "join":
                parts.append(text.join(signatures))
            else:
                parts.append(_value(kind, data))
        return "".join(parts)


class SecretTemplate:
    """Generates signing secrets, e.g. `whsec_{{.RandomHex}}`."""

    def __init__(self, source: str) -> None:
        self._pieces = compile_template(source, SECRET_FIELDS)

    def generate(self) -> str:
        return "".join(text if kind == "text" else _random(kind) for kind, text in self._pieces)


def _random(kind: str) -> str:
    if kind == "RandomHex":
        return secrets.token_hex(32)
    if kind == "RandomBase64":
        return base64.b64encode(secrets.token_bytes(32)).decode()
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(32))


@functools.lru_cache(maxsize=4096)
def hmac_key(secret: str, encoding: str = "raw", prefix: str = "") -> bytes:
    """The HMAC key a secret stands for: its UTF-8 bytes (`raw`, the prefix kept), or the
    `hex` / `base64` decoding of what follows `prefix` (stripped when present). Raises
    SigningError when it does not decode (memoised: derived on every delivery otherwise)."""
    if encoding == "raw":
        return secret.encode()
    text = secret.removeprefix(prefix) if prefix else secret
    try:
        if encoding == "hex":
            return bytes.fromhex(text)
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SigningError(f"the signing secret is not valid {encoding}") from None


class DefaultSigner:
    """Outpost's configurable scheme; the header is omitted (None) when there is no secret.

    `strict`: a secret that does not decode under `secret_encoding` is an error (the attempt
    fails, saying so); otherwise (the compat signature) that secret is left out."""

    def __init__(
        self,
        algorithm: str,
        encoding: str,
        content: str,
        header: str,
        secret_encoding: str = "raw",  # noqa: S107 (an encoding name)
        secret_prefix: str = "",
        *,
        strict: bool = True,
    ) -> None:
        self._digest = ALGORITHMS[algorithm]
        self._base64 = encoding == "base64"
        self._content = ContentTemplate(content)
        self._header = HeaderTemplate(header)
        self._secret_encoding = secret_encoding
        self._secret_prefix = secret_prefix
        self._strict = strict

    def sign(self, secret: str, content: bytes) -> str:
        key = hmac_key(secret, self._secret_encoding, self._secret_prefix)
        digest = hmac.digest(key, content, self._digest)
        return base64.b64encode(digest).decode() if self._base64 else digest.hex()

    def header_value(self, keys: Sequence[str], data: SigningInput) -> str | None:
        if not self._strict:
            keys = [key for key in keys if self.usable(key)]
        if not keys:
            return None
        content = self._content.render(data)
        return self._header.render(data, [self.sign(key, content) for key in keys])

    def usable(self, secret: str) -> bool:
        try:
            hmac_key(secret, self._secret_encoding, self._secret_prefix)
        except SigningError:
            return False
        return True


class ValueTemplate:
    """A header value from `{{.EventID}}`, `{{.Topic}}`, `{{.Timestamp}}` (compat headers)."""

    def __init__(self, source: str) -> None:
        self._pieces = compile_template(source, HEADERS_FIELDS)

    def render(self, data: SigningInput) -> str:
        return "".join(
            text if kind == "text" else _value(kind, data) for kind, text in self._pieces
        )


def header_templates(text: str) -> list[tuple[str, str]]:
    """`name=template,name=template` (a literal comma written `\\,`) as (name, template) pairs.
    Raises TemplateError for a pair without `=` or a name."""
    pairs: list[tuple[str, str]] = []
    for item in re.split(r"(?<!\\),", text):
        item = item.replace("\\,", ",").strip()
        if not item:
            continue
        name, equals, template = item.partition("=")
        if not equals or not name.strip():
            raise TemplateError(f"expected name=template, got {item!r}")
        pairs.append((name.strip(), template))
    return pairs


class StandardSigner:
    """Standard Webhooks: `v1,<base64 HMAC-SHA256>` per secret, separated by spaces."""

    def header_value(self, keys: Sequence[str], data: SigningInput) -> str | None:
        if not keys:
            return None
        unix = data.now_ns // 1_000_000_000
        content = f"{data.event_id}.{unix}.".encode() + data.body
        signatures = (hmac.digest(standard_key(key), content, "sha256") for key in keys)
        return " ".join("v1," + base64.b64encode(sig).decode() for sig in signatures)


def standard_secret_valid(secret: str) -> bool:
    try:
        standard_key(secret)
    except SigningError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def standard_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (memoised: decoded on every delivery otherwise)."""
    if not secret.startswith(STANDARD_PREFIX):
        raise SigningError("secret must start with whsec_")
    try:
        return base64.b64decode(secret[len(STANDARD_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise SigningError("secret is not valid base64 after whsec_") from None


def generate_standard_secret() -> str:
    return STANDARD_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
