"""A broker or network failure → the attempt's code and error text (contract.md §5.7).

aio-pika surfaces AMQP close codes as typed exceptions, and socket failures as
`AMQPConnectionError(errno, message)` caused by the `OSError` itself, so both are read from the
exception chain rather than from the text.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl

from aiormq import exceptions as amqp

from waypost.destinations import sending

_ERRNO_CODES = {
    errno.ECONNREFUSED: "connection_refused",
    errno.ECONNRESET: "connection_reset",
    errno.EPIPE: "connection_reset",
    errno.ECONNABORTED: "connection_reset",
    errno.ETIMEDOUT: "timeout",
}
# AMQP reply codes (AMQP 0-9-1 §1.9) carried by a Connection.Close or Channel.Close.
_CLOSE_CODES = {320: "connection_forced", 403: "access_denied", 404: "exchange_not_found"}


def failure_code(exc: BaseException) -> str:
    """One of ssrf_blocked, access_denied, exchange_not_found, channel_error, connection_forced,
    dns_error, connection_refused, connection_reset, timeout, tls_error, auth_failed,
    rabbitmq_error."""
    return sending.failure_code(exc, _code_of, "rabbitmq_error")


def failure_text(exc: BaseException) -> str:
    """What went wrong, for `response_data.error`. Never includes the password."""
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timed out waiting for the RabbitMQ broker"
    refused = sending.refusal(exc)
    if refused is not None:
        return str(refused)  # the tenant's text: not the address the name resolved to
    if isinstance(exc, amqp.AMQPConnectionError) and not isinstance(exc, amqp.ConnectionClosed):
        cause = exc.__cause__ or exc
        return f"failed to connect to RabbitMQ: {_describe(cause)}"
    return f"failed to publish to RabbitMQ: {_describe(exc)}"


def _code_of(exc: BaseException) -> str:
    if isinstance(exc, amqp.ProbableAuthenticationError):
        return "access_denied"  # the broker's ACCESS_REFUSED on login
    if isinstance(exc, amqp.AuthenticationError):
        return "auth_failed"  # no login mechanism both sides support
    if isinstance(exc, amqp.ChannelNotFoundEntity):
        return "exchange_not_found"
    if isinstance(exc, amqp.ChannelAccessRefused):
        return "access_denied"
    if isinstance(exc, amqp.ConnectionChannelError):
        return "channel_error"
    if isinstance(exc, amqp.ConnectionClosed | amqp.ChannelClosed):
        code = _reply_code(exc)
        if code in _CLOSE_CODES:
            return _CLOSE_CODES[code]
        # A bare ChannelClosed without a code is a channel that went away under us.
        plain = type(exc) is amqp.ChannelClosed and code in (0, 504)
        return "channel_error" if plain else "rabbitmq_error"
    if isinstance(exc, amqp.ChannelInvalidStateError):
        return "channel_error"
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "tls_error"
    if isinstance(exc, socket.gaierror):
        return "dns_error"
    number = _errno(exc)
    if number is not None:
        if number in _ERRNO_CODES:
            return _ERRNO_CODES[number]
        if number < 0:  # getaddrinfo's EAI_* codes are negative
            return "dns_error"
    if "SSL" in str(exc) or "CERTIFICATE" in str(exc).upper():
        return "tls_error"
    return ""


def _errno(exc: BaseException) -> int | None:
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    if exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def _reply_code(exc: BaseException) -> int:
    code = exc.args[0] if exc.args else None
    return code if isinstance(code, int) else 0


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc) or type(exc).__name__
    return text
