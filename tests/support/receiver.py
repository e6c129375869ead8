"""A real HTTP webhook receiver on 127.0.0.1, run in a background thread.

It plays the part of a tenant's endpoint: it records every request (path, headers, raw body,
arrival time), checks default-mode Outpost signatures against the secret(s) registered for the
path, and answers with a per-path configurable status and body. Like Outpost's own mock it answers
400 whenever the request carries `x-outpost-should_err: true` (an event published with metadata
`should_err=true` gets that header).

Usage from synchronous tests::

    with Receiver() as rx:
        path = rx.new_path("orders")
        rx.configure(path, secret="s3cret")
        ...  # point a destination at rx.url(path), publish
        [req] = rx.wait_for(1, path=path)
        assert req.verified
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SIGNATURE_HEADER = "x-outpost-signature"
SHOULD_ERR_HEADER = "x-outpost-should_err"
EVENT_ID_HEADER = "x-outpost-event-id"


def sign(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of `body` keyed with the secret's UTF-8 bytes, used verbatim."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_candidates(header_value: str | None) -> list[str]:
    """The hex signatures of a default-mode header `v0=<hex>[,<hex>...]` ([] if malformed)."""
    if not header_value or not header_value.startswith("v0="):
        return []
    return [part.strip() for part in header_value[len("v0=") :].split(",") if part.strip()]


def verify_signature(body: bytes, header_value: str | None, secrets: Iterable[str]) -> bool:
    """True when any candidate in the header matches the HMAC of `body` under any secret.

    Every comparison is constant-time (`hmac.compare_digest`).
    """
    candidates = signature_candidates(header_value)
    ok = False
    for secret in secrets:
        expected = sign(secret, body)
        for candidate in candidates:
            # no short-circuit: each comparison is made, each in constant time
            ok = hmac.compare_digest(expected, candidate) or ok
    return ok


@dataclass
class PathConfig:
    """How the receiver answers on one path."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"
    delay: float = 0.0
    """Seconds to wait before answering (simulates a slow endpoint)."""
    fail_first: int = 0
    """Answer `fail_status` to the first N requests on this path."""
    fail_first_per_event: int = 0
    """Answer `fail_status` to the first N requests of each event id (x-outpost-event-id)."""
    fail_status: int = 500
    secret: str | None = None
    previous_secret: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    """Extra response headers (e.g. Retry-After)."""


@dataclass
class RecordedRequest:
    """One request as the receiver saw it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    """Header names lower-cased; repeated headers joined with ", "."""
    raw_headers: list[tuple[str, str]]
    body: bytes
    arrived_at: float
    """`time.monotonic()` at arrival."""
    arrived_wall: float
    """`time.time()` at arrival."""
    verified: bool | None
    """Signature check against the path's secret(s); None when the path has no secret."""
    status: int
    """Status the receiver answered (or was about to answer)."""
    response_sent: bool = False
    """The full response was written to the socket."""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event_id(self) -> str | None:
        return self.header(EVENT_ID_HEADER)

    def signature_valid_for(self, *secrets: str) -> bool:
        return verify_signature(self.body, self.header(SIGNATURE_HEADER), secrets)


@dataclass
class _State:
    lock: threading.Condition = field(default_factory=threading.Condition)
    configs: dict[str, PathConfig] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    per_path_count: dict[str, int] = field(default_factory=dict)
    per_event_count: dict[tuple[str, str], int] = field(default_factory=dict)


def _read_chunked(rfile: Any) -> bytes:
    chunks: list[bytes] = []
    while True:
        line = rfile.readline(65537)
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            # trailers end with an empty line
            while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        chunks.append(rfile.read(size))
        rfile.readline(65537)  # CRLF after the chunk


def _make_handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "e2e-receiver"
        timeout = 60

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return _read_chunked(self.rfile)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def _handle(self) -> None:
            arrived_at = time.monotonic()
            arrived_wall = time.time()
            body = self._read_body()
            path, _, query = self.path.partition("?")
            raw_headers = [(k, v) for k, v in self.headers.items()]
            headers: dict[str, str] = {}
            for name, value in raw_headers:
                key = name.lower()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value

            with state.lock:
                config = state.configs.get(path, PathConfig())
                path_n = state.per_path_count.get(path, 0) + 1
                state.per_path_count[path] = path_n
                event_id = headers.get(EVENT_ID_HEADER, "")
                event_n = state.per_event_count.get((path, event_id), 0) + 1
                state.per_event_count[(path, event_id)] = event_n

                if headers.get(SHOULD_ERR_HEADER, "").strip().lower() == "true":
                    status = 400
                elif path_n <= config.fail_first or event_n <= config.fail_first_per_event:
                    status = config.fail_status
                else:
                    status = config.status

                secrets = [s for s in (config.secret, config.previous_secret) if s]
                verified = (
                    verify_signature(body, headers.get(SIGNATURE_HEADER), secrets)
                    if secrets
                    else None
                )
                record = RecordedRequest(
                    method=self.command,
                    path=path,
                    query=query,
                    headers=headers,
                    raw_headers=raw_headers,
                    body=body,
                    arrived_at=arrived_at,
                    arrived_wall=arrived_wall,
                    verified=verified,
                    status=status,
                )
                state.requests.append(record)
                state.lock.notify_all()

            if config.delay > 0:
                time.sleep(config.delay)  # the simulated endpoint is slow, on purpose

            payload = config.body if status == config.status else b""
            try:
                self.send_response(status)
                self.send_header("Content-Type", config.content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in config.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return
            with state.lock:
                record.response_sent = True
                state.lock.notify_all()

        do_POST = _handle
        do_PUT = _handle
        do_GET = _handle
        do_PATCH = _handle
        do_DELETE = _handle

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # several delivery processes open many connections at once; the default backlog (5) would
    # drop SYNs and turn a burst into seconds of connect retries
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a sender that dies mid-connection (the e2e suite kill -9s the server) is expected
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class Receiver:
    """Background-thread HTTP receiver bound to 127.0.0.1 on an ephemeral port."""

    def __init__(self) -> None:
        self._state = _State()
        self._server = _QuietServer(("127.0.0.1", 0), _make_handler(self._state))
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="e2e-receiver",
            daemon=True,
        )
        self._thread.start()
        self._ids = itertools.count(1)

    # lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # addressing --------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def new_path(self, label: str = "hook") -> str:
        """A path no other test uses, e.g. `/hook/orders-7`."""
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in label)[:60]
        return f"/hook/{safe}-{next(self._ids)}"

    # configuration -----------------------------------------------------------------------------

    def configure(
        self,
        path: str,
        *,
        status: int = 200,
        body: bytes | str = b"",
        content_type: str = "text/plain",
        delay: float = 0.0,
        fail_first: int = 0,
        fail_first_per_event: int = 0,
        fail_status: int = 500,
        secret: str | None = None,
        previous_secret: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> str:
        """Set how `path` answers and which secrets verify it; returns the path's full URL."""
        config = PathConfig(
            status=status,
            body=body.encode("utf-8") if isinstance(body, str) else body,
            content_type=content_type,
            delay=delay,
            fail_first=fail_first,
            fail_first_per_event=fail_first_per_event,
            fail_status=fail_status,
            secret=secret,
            previous_secret=previous_secret,
            headers=headers,
        )
        with self._state.lock:
            self._state.configs[path] = config
        return self.url(path)

    def set_secret(self, path: str, secret: str | None, previous_secret: str | None = None) -> None:
        with self._state.lock:
            config = self._state.configs.setdefault(path, PathConfig())
            config.secret = secret
            config.previous_secret = previous_secret

    def set_status(self, path: str, status: int, body: bytes | str = b"") -> None:
        with self._state.lock:
            config = self._state.configs.setdefault(path, PathConfig())
            config.status = status
            config.body = body.encode("utf-8") if isinstance(body, str) else body

    # observation -------------------------------------------------------------------------------

    def requests_for(self, path: str | None = None) -> list[RecordedRequest]:
        """Requests received so far (on `path`, or on every path), in arrival order."""
        with self._state.lock:
            return [r for r in self._state.requests if path is None or r.path == path]

    def wait_for(
        self, count: int, path: str | None = None, timeout: float = 10.0
    ) -> list[RecordedRequest]:
        """Block until at least `count` requests arrived (on `path`), or fail at the deadline."""
        deadline = time.monotonic() + timeout
        with self._state.lock:
            while True:
                got = [r for r in self._state.requests if path is None or r.path == path]
                if len(got) >= count:
                    return got
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"receiver: expected >= {count} request(s) on {path or 'any path'} "
                        f"within {timeout:.1f}s, got {len(got)}"
                    )
                self._state.lock.wait(remaining)

    def assert_quiet(
        self, path: str | None = None, *, expected: int = 0, window: float = 0.75
    ) -> list[RecordedRequest]:
        """Bounded observation window: for `window` seconds no request beyond the first
        `expected` may arrive on `path`. Fails as soon as one does.

        This cannot prove that nothing will *ever* arrive; callers pick a window longer than the
        delay after which the unwanted request would have been sent.
        """
        deadline = time.monotonic() + window
        with self._state.lock:
            while True:
                got = [r for r in self._state.requests if path is None or r.path == path]
                if len(got) > expected:
                    extra = got[expected:]
                    raise AssertionError(
                        f"receiver: expected exactly {expected} request(s) on "
                        f"{path or 'any path'} during a {window:.2f}s window, got {len(got)}; "
                        f"unexpected bodies: {[r.body[:200] for r in extra]}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return got
                self._state.lock.wait(remaining)

    def wait_until(
        self,
        predicate: Callable[[list[RecordedRequest]], bool],
        *,
        path: str | None = None,
        timeout: float = 10.0,
        what: str = "receiver condition",
    ) -> list[RecordedRequest]:
        """Block until `predicate(requests_on_path)` is true, or fail at the deadline."""
        deadline = time.monotonic() + timeout
        with self._state.lock:
            while True:
                got = [r for r in self._state.requests if path is None or r.path == path]
                if predicate(got):
                    return got
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{what} not met within {timeout:.1f}s ({len(got)} request(s) seen)"
                    )
                self._state.lock.wait(min(remaining, 0.5))
