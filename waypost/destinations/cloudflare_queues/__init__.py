"""The `cloudflare_queues` destination type: each event sent to a Cloudflare Queue."""

from waypost.destinations.cloudflare_queues.provider import CloudflareQueuesProvider

provider = CloudflareQueuesProvider.from_shared  # the catalog's factory for this type
