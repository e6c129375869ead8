"""Outbound transports used by destinations: HTTP (libcurl), the SSRF guard, and guarded asyncio
TCP connections for the broker clients."""

from waypost.transport.guard import AddressGuard
from waypost.transport.http import HttpClient, HttpResponse, HttpTransportError

__all__ = ["AddressGuard", "HttpClient", "HttpResponse", "HttpTransportError"]
