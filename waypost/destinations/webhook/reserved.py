"""Which metadata keys may travel as webhook headers: the headers the server computes are its own.

Outpost turns every metadata key into a header, after the server's own, so a key can replace a
header a receiver relies on: `signature` or `id` in Standard Webhooks mode replaces
`webhook-signature` / `webhook-id` (and no verifier accepts the delivery), `event-id` or `topic`
in default mode replaces the identifying `x-outpost-` headers (contract.md §11 quirk 23). Here those
headers always carry the server's values. A key that would be sent under one of them is refused
on a destination's `delivery_metadata` and left out of the request when it comes with an event.

The protected names follow the settings: in default mode the enabled event-id, timestamp, topic
and signature headers (wherever their directives put them) and `<prefix>timestamp-ms` when the
millisecond timestamp is on, and the compat signature's headers when
`DESTINATIONS_WEBHOOK_COMPAT_*` is set; in Standard Webhooks mode `<prefix>id`, `<prefix>timestamp`,
`<prefix>signature`, `<prefix>topic` (and `<prefix>timestamp-ms`). In both, the request's own
framing headers (`Content-Type`, `Host`, ...): with a blank prefix a key `content-type` would
otherwise replace it.
"""

from __future__ import annotations

from waypost.destinations.webhook.settings import RESERVED_HEADERS, SYSTEM_KEYS, WebhookSettings

_STANDARD_UNSENT = frozenset({"event-id", "timestamp"})  # carried as <prefix>id / <prefix>timestamp


class ReservedHeaders:
    """Answers, for a metadata key, which server header it would replace (if any)."""

    def __init__(self, settings: WebhookSettings) -> None:
        self._standard = settings.standard
        self._prefix = settings.prefix
        names = [settings.header_name(key) for key in SYSTEM_KEYS]
        if settings.include_millisecond_timestamp:
            names.append(self._prefix + "timestamp-ms")
        if settings.compat is not None:  # the compat signature and the headers that go with it
            names.append(settings.compat.header_name.strip())
            names.extend(name for name, _ in settings.compat.extra_headers())
        self._names = frozenset(name.lower() for name in names if name) | RESERVED_HEADERS
        # In default mode these keys follow their directive instead of taking the prefix.
        self._directed = (
            {}
            if self._standard
            else {key: settings.header_name(key) for key in ("event-id", "timestamp", "topic")}
        )

    def collision(self, key: str, *, event: bool) -> str | None:
        """The protected header `key` would be sent as, or None when it may be sent.

        `event` says the key comes with an event: Standard Webhooks mode repeats those keys
        without the prefix as well.
        """
        for name in self._header_names(key, event=event):
            if name.lower() in self._names:
                return name
        return None

    def _header_names(self, key: str, *, event: bool) -> list[str]:
        if key in self._directed:
            directed = self._directed[key]
            return [directed] if directed else []
        names = [] if self._standard and key in _STANDARD_UNSENT else [self._prefix + key]
        if self._standard and event:
            names.append(key)
        return names
