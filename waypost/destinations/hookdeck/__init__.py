"""The `hookdeck` destination type (contract.md §5.1): events forwarded to a Hookdeck source."""

from waypost.destinations.hookdeck.provider import HookdeckProvider

provider = HookdeckProvider.from_shared  # the catalog's factory for this type
