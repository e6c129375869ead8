"""A cluster or network failure → the attempt's code (contract.md §5.8): auth_failed,
connection_refused, dns_error, topic_not_found, message_too_large, timeout, tls_error, kafka_error;
ssrf_blocked when the guard refused the broker's address (no connection made)."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl

from aiokafka import errors as kafka

from waypost.destinations import sending

_AUTH = (
    kafka.SaslAuthenticationFailed,
    kafka.AuthenticationFailedError,
    kafka.AuthenticationMethodNotSupported,
    kafka.UnsupportedSaslMechanismError,
    kafka.IllegalSaslStateError,
)
_TOO_LARGE = (kafka.MessageSizeTooLargeError, kafka.RecordListTooLargeError)
_TIMEOUT = (kafka.KafkaTimeoutError, kafka.RequestTimedOutError, asyncio.TimeoutError, TimeoutError)


class AuthenticationFailed(Exception):
    """The SASL exchange did not complete (aiokafka's SCRAM client reports a refusal as a
    missing field of the server's last message, so the connection step is what tells)."""


class TlsHandshakeFailed(Exception):
    """The broker dropped the connection during the TLS handshake: most often TLS spoken to a
    plaintext listener, which reads the ClientHello as an oversized request and hangs up."""


def failure_code(exc: BaseException) -> str:
    return sending.failure_code(exc, _code_of, "kafka_error")


def failure_text(exc: BaseException) -> str:
    """What went wrong, for `response_data.error`; never includes the password, nor the address a
    refused name resolved to."""
    refused = sending.refusal(exc)
    if refused is not None:
        return str(refused)
    text = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    name = type(exc).__name__
    return f"{name}: {text}" if text and text != name else name


def _code_of(exc: BaseException) -> str:
    if isinstance(exc, (AuthenticationFailed, *_AUTH)):
        return "auth_failed"
    if isinstance(exc, kafka.UnknownTopicOrPartitionError):
        return "topic_not_found"
    if isinstance(exc, _TOO_LARGE):
        return "message_too_large"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError | TlsHandshakeFailed):
        return "tls_error"
    if isinstance(exc, socket.gaierror):
        return "dns_error"
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
        return "connection_refused"
    if isinstance(exc, _TIMEOUT):
        return "timeout"
    return ""
