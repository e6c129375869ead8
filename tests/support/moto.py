"""moto in server mode on loopback: the AWS side (SQS, S3, Kinesis, EventBridge) of the tests.

No real AWS endpoint is reachable here; moto's server speaks the same HTTP wire protocols, so the
real clients (aiobotocore in the server, boto3 in the tests) exercise their real request signing,
serialisation and error parsing against it. One server is started per test process, lazily, on a
free 127.0.0.1 port, and stopped when the process exits. Tests isolate themselves by using fresh
queue/bucket/stream names rather than resetting it.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import urllib.request
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from support.ids import unique_id
from support.server import free_port

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account id
KEY = "AKIAMOTOTESTKEY00001"
SECRET = "moto-test-secret-0123456789"
START_TIMEOUT = 15.0

_lock = threading.Lock()
_endpoint: str | None = None


def endpoint() -> str:
    """The URL of this process's moto server, started on first use."""
    global _endpoint
    with _lock:
        if _endpoint is None:
            _endpoint = _start()
        return _endpoint


def _start() -> str:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    atexit.register(server.stop)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return url
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"moto did not answer on {url} within {START_TIMEOUT}s"
                ) from None
            time.sleep(0.05)


def client(service: str, region: str = REGION) -> Any:
    """A boto3 client on the moto server, for tests to set up and read back."""
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint(),
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )


unique = unique_id  # queues, buckets, streams and buses are shared by the session


def credentials() -> dict[str, str]:
    return {"key": KEY, "secret": SECRET}
