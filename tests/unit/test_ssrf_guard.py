"""The SSRF guard's policy: which addresses are refused, how the allow-list opens them, settings."""

from __future__ import annotations

import ipaddress
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost import config
from waypost.destinations import catalog
from waypost.errors import ConfigError
from waypost.transport.guard import AddressGuard, literal_address

DEFAULT = AddressGuard()

# (address, the range it is refused as; None: allowed)
REFUSED_V4 = [
    ("0.0.0.0", "an unspecified"),  # noqa: S104 (an address to judge, not one to bind)
    ("0.1.2.3", "an unspecified"),
    ("10.0.0.0", "a private"),
    ("10.255.255.255", "a private"),
    ("100.64.0.0", "a carrier-grade NAT"),
    ("100.127.255.255", "a carrier-grade NAT"),
    ("127.0.0.1", "a loopback"),
    ("127.255.255.254", "a loopback"),
    ("169.254.0.1", "a link-local"),
    ("169.254.169.254", "a link-local"),
    ("172.16.0.0", "a private"),
    ("172.31.255.255", "a private"),
    ("192.0.0.8", "a reserved"),
    ("192.0.2.1", "a documentation"),
    ("192.88.99.1", "a reserved"),
    ("192.168.0.1", "a private"),
    ("192.168.255.255", "a private"),
    ("198.18.0.1", "a benchmarking"),
    ("198.19.255.255", "a benchmarking"),
    ("198.51.100.7", "a documentation"),
    ("203.0.113.9", "a documentation"),
    ("224.0.0.1", "a multicast"),
    ("239.255.255.250", "a multicast"),
    ("240.0.0.1", "a reserved"),
    ("255.255.255.254", "a reserved"),
    ("255.255.255.255", "a broadcast"),
]
REFUSED_V6 = [
    ("::", "an unspecified"),
    ("::1", "a loopback"),
    ("fc00::1", "a unique local"),
    ("fd12:3456:789a::1", "a unique local"),
    ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "a unique local"),
    ("fe80::1", "a link-local"),
    ("fe80::1%eth0", "a link-local"),
    ("febf:ffff::1", "a link-local"),
    ("fec0::1", "a site-local"),
    ("ff02::1", "a multicast"),
    ("ff05::1:3", "a multicast"),
    ("2001:db8::1", "a documentation"),
    ("2001:2::1", "a benchmarking"),
    ("100::1", "a reserved"),  # discard-only; outside 2000::/3
    ("64:ff9b:1::a00:1", "a reserved"),  # local-use NAT64
    ("4000::1", "a reserved"),  # not yet allocated; outside 2000::/3
]
# (address, the range of the IPv4 address it carries, how it carries it)
REFUSED_ENCODED = [
    ("::ffff:127.0.0.1", "a loopback", "IPv4-mapped 127.0.0.1"),
    ("::ffff:7f00:1", "a loopback", "IPv4-mapped 127.0.0.1"),
    ("::ffff:10.1.2.3", "a private", "IPv4-mapped 10.1.2.3"),
    ("::ffff:169.254.169.254", "a link-local", "IPv4-mapped 169.254.169.254"),
    ("::ffff:100.64.0.1", "a carrier-grade NAT", "IPv4-mapped 100.64.0.1"),
    ("::ffff:0.0.0.0", "an unspecified", "IPv4-mapped 0.0.0.0"),
    ("::127.0.0.1", "a loopback", "IPv4-compatible 127.0.0.1"),
    ("::a9fe:a9fe", "a link-local", "IPv4-compatible 169.254.169.254"),
    ("::ffff:0:7f00:1", "a loopback", "IPv4-translated 127.0.0.1"),
    ("64:ff9b::127.0.0.1", "a loopback", "NAT64 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "a link-local", "NAT64 169.254.169.254"),
    ("64:ff9b::c0a8:101", "a private", "NAT64 192.168.1.1"),
    ("2002:7f00:1::", "a loopback", "6to4 127.0.0.1"),
    ("2002:a9fe:a9fe::1", "a link-local", "6to4 169.254.169.254"),
    ("2002:ac10:1:5::1", "a private", "6to4 172.16.0.1"),
    # Teredo: client 192.168.0.1, stored inverted in the last 32 bits
    ("2001:0:4136:e378:8000:63bf:3f57:fffe", "a private", "Teredo 192.168.0.1"),
]
ALLOWED = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "9.255.255.255",
    "11.0.0.0",
    "100.63.255.255",
    "100.128.0.0",
    "126.255.255.255",
    "128.0.0.0",
    "169.253.255.255",
    "169.255.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.167.255.255",
    "192.169.0.0",
    "223.255.255.255",
    "2606:4700::1",
    "2001:4860:4860::8888",
    "2a00:1450:4001::200e",
    "::ffff:93.184.216.34",
    "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34
    "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
    "::808:808",  # IPv4-compatible 8.8.8.8
]


@pytest.mark.parametrize(("address", "kind"), REFUSED_V4 + REFUSED_V6)
def test_refused_ranges(address: str, kind: str) -> None:
    refusal = DEFAULT.refusal(address)
    assert refusal is not None
    assert (refusal.address, refusal.kind, refusal.carried) == (address, kind, "")


@pytest.mark.parametrize(("address", "kind", "carried"), REFUSED_ENCODED)
def test_ipv4_inside_ipv6_is_judged_as_the_ipv4_address(
    address: str, kind: str, carried: str
) -> None:
    refusal = DEFAULT.refusal(address)
    assert refusal is not None
    assert (refusal.kind, refusal.carried) == (kind, carried)
    assert refusal.opening == carried.split()[-1] + "/32"


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert DEFAULT.refusal(address) is None


def _encodings(v4: ipaddress.IPv4Address) -> list[str]:
    n = int(v4)
    return [
        str(ipaddress.IPv6Address((0xFFFF << 32) | n)),  # IPv4-mapped
        str(ipaddress.IPv6Address((0x64FF9B << 96) | n)),  # NAT64
        str(ipaddress.IPv6Address((0x2002 << 112) | (n << 80))),  # 6to4
    ]


@given(st.integers(0, 2**32 - 1))
def test_every_encoding_of_an_ipv4_address_gets_its_verdict(n: int) -> None:
    v4 = ipaddress.IPv4Address(n)
    refused = DEFAULT.refusal(str(v4)) is not None
    assert [DEFAULT.refusal(a) is not None for a in _encodings(v4)] == [refused] * 3
    opened = AddressGuard([f"{v4}/32"])
    assert [opened.refusal(a) for a in [str(v4), *_encodings(v4)]] == [None] * 4


@given(st.integers(0, 2**32 - 1))
def test_the_verdict_matches_the_standard_library_for_ipv4(n: int) -> None:
    # Python's "not global" plus multicast, except that we refuse all of 192.0.0.0/24 (Python
    # leaves parts of it global) and the deprecated 6to4 relay anycast range 192.88.99.0/24.
    v4 = ipaddress.IPv4Address(n)
    extra = v4 in ipaddress.ip_network("192.0.0.0/24") or v4 in ipaddress.ip_network(
        "192.88.99.0/24"
    )
    expected = not v4.is_global or v4.is_multicast or extra
    assert (DEFAULT.refusal(str(v4)) is not None) == expected


def test_the_operator_detail_names_the_address_and_the_setting() -> None:
    refusal = DEFAULT.refusal("127.0.0.1")
    assert refusal is not None
    assert refusal.detail() == (
        "delivery to 127.0.0.1 refused: a loopback address; add 127.0.0.1/32 (or a network "
        "containing it) to DESTINATIONS_ALLOWED_NETWORKS to allow it"
    )
    assert refusal.detail("localhost") == (
        "delivery to localhost refused: it resolved to 127.0.0.1, a loopback address; add "
        "127.0.0.1/32 (or a network containing it) to DESTINATIONS_ALLOWED_NETWORKS to allow it"
    )
    mapped = DEFAULT.refusal("::ffff:10.0.0.1")
    assert mapped is not None
    assert mapped.detail("[::ffff:10.0.0.1]").startswith(
        "delivery to [::ffff:10.0.0.1] refused: a private address (IPv4-mapped 10.0.0.1); "
        "add 10.0.0.1/32 "
    )
    scoped = DEFAULT.refusal("fe80::1%eth0")
    assert scoped is not None and scoped.opening == "fe80::1/128"


def test_the_tenant_message_never_names_what_a_name_resolved_to() -> None:
    refusal = DEFAULT.refusal("10.1.2.3")
    assert refusal is not None
    # A name: what it resolved to (and its range) would be an internal DNS oracle.
    assert refusal.message("intranet.example") == (
        "delivery to intranet.example refused: the address it resolved to is not allowed"
    )
    # A literal the tenant typed: its range tells them nothing new.
    assert refusal.message("10.1.2.3") == (
        "delivery to 10.1.2.3 refused: a private address is not allowed"
    )
    assert refusal.message() == "delivery refused: the destination's address is not allowed"


def test_the_log_keeps_the_detail(caplog: pytest.LogCaptureFixture) -> None:
    refusal = DEFAULT.refusal("10.1.2.3")
    assert refusal is not None
    with caplog.at_level(logging.WARNING, logger="waypost.transport.guard"):
        message = refusal.report("intranet.example")
    assert "10.1.2.3" not in message
    assert "it resolved to 10.1.2.3" in caplog.text


# -- the allow-list --------------------------------------------------------------------------


def test_allow_list_opens_exactly_the_listed_networks() -> None:
    guard = AddressGuard(["10.1.2.0/24", "fd00:1::/32", "::1/128", "169.254.169.254"])
    for opened in ("10.1.2.0", "10.1.2.77", "10.1.2.255", "fd00:1::5", "::1", "169.254.169.254"):
        assert guard.refusal(opened) is None, opened
    for closed in ("10.1.1.255", "10.1.3.0", "10.0.0.1", "fd00:2::1", "127.0.0.1", "::2"):
        assert guard.refusal(closed) is not None, closed
    assert guard.refusal("169.254.169.253") is not None
    assert guard.refusal("93.184.216.34") is None  # public stays allowed


def test_loopback_allow_list_opens_ipv4_loopback_and_its_encodings_only() -> None:
    guard = AddressGuard(["127.0.0.0/8"])
    for opened in ("127.0.0.1", "127.255.255.255", "::ffff:127.0.0.1", "64:ff9b::7f00:1"):
        assert guard.refusal(opened) is None, opened
    for closed in ("::1", "10.0.0.1", "169.254.169.254", "::ffff:10.0.0.1", "fe80::1"):
        assert guard.refusal(closed) is not None, closed


def test_an_ipv6_allow_list_entry_opens_the_ipv6_range_itself() -> None:
    guard = AddressGuard(["::ffff:127.0.0.1/128", "2002:7f00:1::/48"])
    assert guard.refusal("::ffff:127.0.0.1") is None
    assert guard.refusal("2002:7f00:1::5") is None
    assert guard.refusal("127.0.0.1") is not None  # an IPv6 entry does not open plain IPv4


def test_allow_list_entries_are_read_leniently() -> None:
    guard = AddressGuard([" 10.0.0.7/8 ", "fe80::/10"])
    assert [str(n) for n in guard.allowed] == ["10.0.0.0/8", "fe80::/10"]


@pytest.mark.parametrize("entry", ["not-a-network", "10.0.0.0/33", "300.1.1.1", ""])
def test_a_malformed_allow_list_entry_is_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="CIDR"):
        AddressGuard([entry])


# -- IP literals in URLs (create time: no DNS) ----------------------------------------------------


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("::ffff:169.254.169.254", "::ffff:a9fe:a9fe"),
        ("example.com", None),
        ("localhost", None),
        ("1e100.net", None),
        ("cafe", None),
        # A resolver (a proxy's) reads a trailing dot as the root: still the address.
        ("127.0.0.1.", "127.0.0.1"),
        ("0x7f000001.", "127.0.0.1"),
        ("127.1..", "127.0.0.1"),
        ("%31%32%37.0.0.1", "127.0.0.1"),  # libcurl percent-decodes a URL's host
        ("example.com.", None),
    ],
)
def test_literal_addresses_are_read_as_libcurl_reads_them(host: str, address: str | None) -> None:
    parsed = literal_address(host)
    assert (None if parsed is None else str(parsed)) == address


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://127.0.0.1/hook", True),
        ("https://10.0.0.5:8443/hook", True),
        ("http://169.254.169.254/latest/meta-data/", True),
        ("http://[::1]:8080/", True),
        ("http://[::ffff:127.0.0.1]/", True),
        ("http://[fe80::1%25eth0]/", True),
        ("http://0x7f.1/", True),
        ("http://user:pw@192.168.0.1/", True),
        ("http://127.0.0.1@example.com/", False),  # the host is example.com
        ("https://example.com/hook", False),
        ("http://localhost:8080/", False),  # a name: judged at delivery, after resolution
        ("http://93.184.216.34/", False),
        ("http://[2606:4700::1]/", False),
        ("http://[::1/", False),  # unparseable: libcurl will not connect either
        ("http://127.0.0.1./", True),
        ("http://0x7f000001./", True),
        ("http://169.254.169.254./latest/", True),
    ],
)
def test_url_refusal_judges_ip_literal_hosts_only(url: str, refused: bool) -> None:
    assert (DEFAULT.url_refusal(url) is not None) is refused


# -- settings and wiring -------------------------------------------------------------------------


def _config(**env: str) -> config.Config:
    return config.load({"OUTPOST_DATA_DIR": "/nonexistent", **env}, config_file=None)


def test_the_guard_is_on_by_default_with_nothing_allowed() -> None:
    guard = catalog.address_guard(_config())
    assert guard is not None and guard.allowed == ()
    assert guard.refusal("127.0.0.1") is not None


def test_allowed_networks_setting_is_a_comma_separated_list() -> None:
    loaded = _config(DESTINATIONS_ALLOWED_NETWORKS="127.0.0.0/8, ::1/128,")
    assert loaded.destinations_allowed_networks == ("127.0.0.0/8", "::1/128")
    guard = catalog.address_guard(loaded)
    assert guard is not None
    assert [str(n) for n in guard.allowed] == ["127.0.0.0/8", "::1/128"]


def test_a_bad_allowed_network_stops_the_start() -> None:
    with pytest.raises(ConfigError, match=r"DESTINATIONS_ALLOWED_NETWORKS: '10\.0\.0\.0/40'"):
        catalog.address_guard(_config(DESTINATIONS_ALLOWED_NETWORKS="10.0.0.0/40"))


def test_the_guard_can_be_turned_off() -> None:
    loaded = _config(DESTINATIONS_ALLOW_PRIVATE_NETWORKS="true")
    assert loaded.destinations_allow_private_networks is True
    assert catalog.address_guard(loaded) is None
