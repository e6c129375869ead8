"""Cloudflare Queues: the provider as the catalog builds it, with the test receiver standing in
for Cloudflare's API on 127.0.0.1 (`DESTINATIONS_CLOUDFLARE_API_URL`).

No Cloudflare Queues emulator runs outside Cloudflare's own tooling (Miniflare simulates the
Workers binding, not the HTTP API), so the receiver answers as the API documents: a JSON
envelope with `success`. What is real: the request as sent over HTTP by the libcurl client.
"""

from __future__ import annotations

import itertools
from contextlib import AbstractAsyncContextManager

from support.receiver import Receiver

from destinations.harness import (
    Received,
    ReceiverHarness,
    loopback_client,
    make_destination,
    with_receiver,
)
from waypost.config import Config
from waypost.core.models import Destination, StrMap
from waypost.destinations.cloudflare_queues.provider import CloudflareQueuesProvider
from waypost.destinations.cloudflare_queues.provider import settings_from as cloudflare_settings
from waypost.destinations.webhook.settings import settings_from as webhook_settings

API_PATH = "/client/v4"
ACCOUNT = "0123456789abcdef0123456789abcdef"
ACCEPTED = '{"success":true,"errors":[],"messages":[],"result":null}'
REFUSED = '{"success":false,"errors":[{"code":10000,"message":"Authentication error"}]}'
_queues = itertools.count(1)


def queue_path(account: str, queue: str) -> str:
    return f"{API_PATH}/accounts/{account}/queues/{queue}/messages"


class CloudflareQueuesHarness(ReceiverHarness):
    type = "cloudflare_queues"

    def __init__(self, receiver: Receiver) -> None:
        super().__init__(receiver)
        config = Config(
            destinations_allowed_networks=("127.0.0.0/8",),
            destinations_cloudflare_api_url=receiver.base_url + API_PATH,
        )
        settings = cloudflare_settings(config, webhook_settings(config))
        self.provider = CloudflareQueuesProvider(settings, loopback_client(config))

    def destination(
        self, *, broken: bool = False, delivery_metadata: StrMap | None = None
    ) -> Destination:
        queue = f"{next(_queues):032x}"
        path = queue_path(ACCOUNT, queue)
        if broken:
            self._receiver.configure(
                path, status=403, body=REFUSED, content_type="application/json"
            )
        else:
            self._receiver.configure(path, body=ACCEPTED, content_type="application/json")
        return self._at(
            path,
            make_destination(
                "cloudflare_queues",
                {"account_id": ACCOUNT, "queue_id": queue},
                {"api_token": "suite-api-token"},
                delivery_metadata=delivery_metadata,
            ),
        )

    async def received(
        self, destination: Destination, count: int, timeout: float
    ) -> list[Received]:
        requests = await self.requests(destination, count, timeout)
        messages = [request.json()["body"] for request in requests]
        return [Received(data=m["data"], metadata=m["metadata"]) for m in messages]


def open_harness() -> AbstractAsyncContextManager[CloudflareQueuesHarness]:
    return with_receiver(CloudflareQueuesHarness)
