"""Outbound transports used by destinations (currently HTTP, for webhooks)."""

from outpost.transport.guard import AddressGuard
from outpost.transport.http import HttpClient, HttpResponse, HttpTransportError

__all__ = ["AddressGuard", "HttpClient", "HttpResponse", "HttpTransportError"]
