"""Outbound transports used by destinations (currently HTTP, for webhooks)."""

from outpost.transport.http import HttpClient, HttpResponse, HttpTransportError

__all__ = ["HttpClient", "HttpResponse", "HttpTransportError"]
