"""Outbound transports used by destinations: HTTP (libcurl), the SSRF guard, and guarded asyncio
TCP connections for the broker clients."""

from outpost.transport.guard import AddressGuard
from outpost.transport.http import HttpClient, HttpResponse, HttpTransportError

__all__ = ["AddressGuard", "HttpClient", "HttpResponse", "HttpTransportError"]
