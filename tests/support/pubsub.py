"""Google's Pub/Sub emulator as a process on loopback, and a way to read what it received.

The emulator ships with the Google Cloud CLI (Debian package `google-cloud-cli-pubsub-emulator`,
a Java program). Tests that need it skip when it is not installed. Each `PubSubEmulator` runs its
own instance on a free port, so parallel runs never share topics.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.api_core.exceptions import DeadlineExceeded, GoogleAPIError
from google.pubsub_v1 import PublisherClient, SubscriberClient
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

_CANDIDATES = (
    os.environ.get("PUBSUB_EMULATOR_BIN", ""),
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator",
    "/usr/share/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator",
)
START_TIMEOUT = 60.0


def emulator_binary() -> str | None:
    for candidate in _CANDIDATES:
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("cloud-pubsub-emulator")


@dataclass(frozen=True)
class PulledMessage:
    data: bytes
    attributes: dict[str, str]
    message_id: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PubSubEmulator:
    """A running emulator. `endpoint` is its host:port, for `config.endpoint`."""

    def __init__(self, binary: str, log_path: Path) -> None:
        self.port = _free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self._log = log_path.open("wb")
        self._process = subprocess.Popen(
            [binary, "--host=127.0.0.1", f"--port={self.port}"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the script starts java as a child: stop the whole group
        )
        # The emulator speaks plaintext gRPC: the clients get insecure channels of their own.
        self.publisher = PublisherClient(
            transport=PublisherGrpcTransport(channel=grpc.insecure_channel(self.endpoint))
        )
        self.subscriber = SubscriberClient(
            transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(self.endpoint))
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Pub/Sub emulator exited with {self._process.returncode}")
            if self._serving():
                return
            time.sleep(0.2)
        raise RuntimeError("Pub/Sub emulator did not start in time")

    def _serving(self) -> bool:
        try:
            list(self.publisher.list_topics(project="projects/probe", timeout=2, retry=None))
        except GoogleAPIError:  # not listening, or not serving gRPC yet
            return False
        return True

    def create_topic(self, project: str, topic: str) -> str:
        """Creates the topic and a subscription that records everything published to it."""
        topic_path = self.publisher.topic_path(project, topic)
        self.publisher.create_topic(name=topic_path)
        subscription = self.subscriber.subscription_path(project, f"{topic}-sub")
        self.subscriber.create_subscription(name=subscription, topic=topic_path)
        return subscription

    def pull(self, subscription: str, max_messages: int = 100) -> list[PulledMessage]:
        """What arrived since the last pull, acknowledged so it is returned once."""
        try:
            response = self.subscriber.pull(
                subscription=subscription, max_messages=max_messages, timeout=1, retry=None
            )
        except DeadlineExceeded:  # nothing arrived within the long-poll
            return []
        if response.received_messages:
            self.subscriber.acknowledge(
                subscription=subscription,
                ack_ids=[m.ack_id for m in response.received_messages],
            )
        return [
            PulledMessage(
                data=m.message.data,
                attributes=dict(m.message.attributes),
                message_id=m.message.message_id,
            )
            for m in response.received_messages
        ]

    def close(self) -> None:
        self.publisher.transport.close()  # type: ignore[no-untyped-call]
        self.subscriber.transport.close()  # type: ignore[no-untyped-call]
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=10)
        self._log.close()


@contextlib.contextmanager
def running_emulator(log_dir: Path) -> Iterator[PubSubEmulator]:
    binary = emulator_binary()
    if binary is None:
        raise FileNotFoundError("the Pub/Sub emulator (google-cloud-cli-pubsub-emulator)")
    emulator = PubSubEmulator(binary, log_dir / "pubsub-emulator.log")
    try:
        yield emulator
    finally:
        emulator.close()
