"""The SSRF guard: which addresses a webhook delivery may connect to.

Refused unless opened by `DESTINATIONS_ALLOWED_NETWORKS`: IPv4 unspecified (0.0.0.0/8), private
(RFC 1918), loopback, link-local (169.254.0.0/16, the cloud metadata address included),
carrier-grade NAT (100.64.0.0/10), multicast, reserved (240.0.0.0/4, 192.0.0.0/24,
192.88.99.0/24), broadcast, documentation and benchmarking ranges; IPv6 unspecified, loopback,
unique local (fc00::/7), link-local (fe80::/10), site-local (fec0::/10), multicast, documentation,
and anything else outside global unicast (2000::/3). An IPv6 address that carries an IPv4 one
(IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96, IPv4-translated ::ffff:0:0:0/96, NAT64
64:ff9b::/96, 6to4 2002::/16, Teredo 2001::/32) is judged by that IPv4 address.

An allow-listed network opens exactly the addresses inside it; an IPv4 network also opens the IPv6
encodings of its addresses (`127.0.0.0/8` opens `::ffff:127.0.0.1`), since they reach the same
place.

Where the check runs: `HttpClient` hands libcurl an open-socket callback, so the address checked
is the very address libcurl is about to connect to, after its own resolution (no second lookup,
no rebinding window), and only when a new connection opens: a kept-alive connection was checked
when it opened. A verdict depends only on the address and the fixed allow-list, so it is cached.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

REFUSED_CODE = "ssrf_blocked"
ALLOWED_NETWORKS_SETTING = "DESTINATIONS_ALLOWED_NETWORKS"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
# First match names the range, so the broadcast address comes before 240.0.0.0/4.
_REFUSED_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "an unspecified"),
    (_V4("10.0.0.0/8"), "a private"),
    (_V4("100.64.0.0/10"), "a carrier-grade NAT"),
    (_V4("127.0.0.0/8"), "a loopback"),
    (_V4("169.254.0.0/16"), "a link-local"),
    (_V4("172.16.0.0/12"), "a private"),
    (_V4("192.0.0.0/24"), "a reserved"),
    (_V4("192.0.2.0/24"), "a documentation"),
    (_V4("192.88.99.0/24"), "a reserved"),
    (_V4("192.168.0.0/16"), "a private"),
    (_V4("198.18.0.0/15"), "a benchmarking"),
    (_V4("198.51.100.0/24"), "a documentation"),
    (_V4("203.0.113.0/24"), "a documentation"),
    (_V4("224.0.0.0/4"), "a multicast"),
    (_V4("255.255.255.255/32"), "a broadcast"),
    (_V4("240.0.0.0/4"), "a reserved"),
)
_REFUSED_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "an unspecified"),
    (_V6("::1/128"), "a loopback"),
    (_V6("fc00::/7"), "a unique local"),
    (_V6("fe80::/10"), "a link-local"),
    (_V6("fec0::/10"), "a site-local"),
    (_V6("ff00::/8"), "a multicast"),
    (_V6("2001:2::/48"), "a benchmarking"),
    (_V6("2001:db8::/32"), "a documentation"),
    (_V6("3fff::/20"), "a documentation"),
)
_COMPATIBLE = _V6("::/96")
_TRANSLATED = _V6("::ffff:0:0:0/96")
_NAT64 = _V6("64:ff9b::/96")
_GLOBAL_UNICAST = _V6("2000::/3")
log = logging.getLogger(__name__)
_NUMERIC_HOST = re.compile(r"[0-9][0-9a-fx.]*")  # what libcurl may read as a numeric IPv4 address


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why `address` may not be connected to, and what to allow-list to open it.

    `kind` names the refused range with its article ("a loopback"); `carried` is set when the
    address was judged by the IPv4 address it encodes ("IPv4-mapped 127.0.0.1").
    """

    address: str
    kind: str
    opening: str
    carried: str = ""

    def message(self, host: str | None = None) -> str:
        """The attempt's error text, which the tenant reads: that the address is not allowed,
        never which address a name resolved to (that would make the guard a DNS oracle for the
        internal network). `host` is the host the tenant gave, when known."""
        given = host.strip("[]") if host else None
        if given is None:
            return "delivery refused: the destination's address is not allowed"
        if given != self.address and literal_address(given) is None:
            return f"delivery to {host} refused: the address it resolved to is not allowed"
        what = f"{self.kind} address" + (f" ({self.carried})" if self.carried else "")
        return f"delivery to {host} refused: {what} is not allowed"

    def detail(self, host: str | None = None) -> str:
        """The operator's version, for the log: the address connected to and how to open it."""
        what = f"{self.kind} address" + (f" ({self.carried})" if self.carried else "")
        if host and host.strip("[]") != self.address:
            what = f"it resolved to {self.address}, {what}"
        return (
            f"delivery to {host or self.address} refused: {what}; add {self.opening} (or a "
            f"network containing it) to {ALLOWED_NETWORKS_SETTING} to allow it"
        )

    def report(self, host: str | None = None, *, type_: str = "") -> str:
        """Log the detail for the operator; return the tenant's message."""
        log.warning("SSRF guard: %s%s", f"{type_}: " if type_ else "", self.detail(host))
        return self.message(host)


class RefusedAddress(OSError):
    """What the guard raises instead of opening a refused connection (`host`: the name or
    literal the connection was asked for, when the caller knows it)."""

    def __init__(self, refusal: Refusal, host: str | None = None) -> None:
        super().__init__(refusal.message(host))
        self.refusal = refusal
        self.host = host


class AddressGuard:
    """The deployment's policy. Immutable once built; `refusal` is cheap after the first call."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        """`allowed`: CIDRs (or single addresses). Raises ValueError naming a malformed one."""
        networks: list[Network] = []
        for text in allowed:
            try:
                networks.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"{text!r} is not a network in CIDR notation ({exc})") from None
        self.allowed: tuple[Network, ...] = tuple(networks)
        self._v4 = tuple(n for n in networks if isinstance(n, ipaddress.IPv4Network))
        self._v6 = tuple(n for n in networks if isinstance(n, ipaddress.IPv6Network))
        # Per instance: the verdict is a function of the address and this allow-list only.
        self.refusal = functools.lru_cache(maxsize=4096)(self._refusal)

    def open_socket(self, addr_info: tuple[Any, ...]) -> socket.socket:
        """aiohttp's `socket_factory` (clients other than libcurl, e.g. aiobotocore's): called
        with each resolved address just before connecting to it, like libcurl's callback."""
        family, type_, proto, _, sockaddr = addr_info
        refusal = self.refusal(str(sockaddr[0]))
        if refusal is not None:
            refusal.report()
            raise RefusedAddress(refusal)
        return socket.socket(family, type_, proto)

    def url_refusal(self, url: str) -> Refusal | None:
        """The refusal of a URL whose host is an IP literal; None for a name (never resolved)."""
        try:
            host = urlsplit(url).hostname
        except ValueError:
            return None  # libcurl will not make sense of it either: no connection, no risk
        address = literal_address(host) if host else None
        return None if address is None else self.refusal(str(address))

    def _refusal(self, address: str) -> Refusal | None:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return Refusal(address, "an unrecognised", address)
        if self._opens(ip):
            return None
        if isinstance(ip, ipaddress.IPv4Address):
            kind = _v4_kind(ip)
            return None if kind is None else Refusal(address, kind, _single(ip))
        for network, kind in _REFUSED_V6:
            if ip in network:
                return Refusal(address, kind, _single(ip))
        embedded = _embedded_v4(ip)
        if embedded is not None:
            carried, encoding = embedded
            kind = None if self._opens(carried) else _v4_kind(carried)
            if kind is None:
                return None
            return Refusal(address, kind, _single(carried), f"{encoding} {carried}")
        if ip not in _GLOBAL_UNICAST:
            return Refusal(address, "a reserved", _single(ip))
        return None

    def _opens(self, ip: Address) -> bool:
        networks: tuple[Network, ...] = self._v4 if ip.version == 4 else self._v6
        return any(ip in network for network in networks)


def literal_address(host: str) -> Address | None:
    """`host` as an IP address when it is one, as a client or a proxy may read it: `127.1`,
    `0x7f000001`, percent-encoded (libcurl decodes a URL's host), with trailing dots (a resolver
    reads `127.0.0.1.` as the address, the way `example.com.` is the name)."""
    host = unquote(host).rstrip(".")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _v4_kind(ip: ipaddress.IPv4Address) -> str | None:
    for network, kind in _REFUSED_V4:
        if ip in network:
            return kind
    return None


def _embedded_v4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    mapped = ip.ipv4_mapped
    if mapped is not None:
        return mapped, "IPv4-mapped"
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    if ip in _COMPATIBLE:  # :: and ::1 are named before this is reached
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "IPv4-compatible"
    if ip in _TRANSLATED:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "IPv4-translated"
    sixtofour = ip.sixtofour
    if sixtofour is not None:
        return sixtofour, "6to4"
    teredo = ip.teredo
    if teredo is not None:
        return teredo[1], "Teredo"
    return None


def _single(ip: Address) -> str:
    """The one-address network, without an IPv6 zone (`fe80::1%eth0` → `fe80::1/128`)."""
    return f"{type(ip)(int(ip))}/{ip.max_prefixlen}"
