"""Which hosts and addresses are the operator's own, and which are the public internet.

:func:`is_local_host` looks at a configured *name*: a provider whose base URL is such a host
(the built-in ``ollama`` at ``localhost:11434``) is only usable when the operator configured
it, otherwise any key holder could make the gateway call services on its machine or network
(an SSRF). Nothing is resolved there: DNS answers are the resolver's to give and may change;
the allow-list in :mod:`gateway.targets` is what guards client-named hosts.

:func:`is_public_address` judges a resolved *address*: the guarded fetcher
(:mod:`gateway.fetcher`) connects only to addresses it accepts. It is an explicit table of the
IANA special-purpose registries (IPv4 and IPv6) plus cloud metadata addresses, not
``ipaddress``'s ``is_global`` alone: before Python 3.12.4 (gh-113171) ``is_global`` calls
multicast, 6to4 of a loopback address (``2002:7f00:1::``), NAT64 (``64:ff9b::7f00:1``) and
site-local ``fec0::/10`` global. ``is_global`` is still required on top, so a newer Python can
only make the check stricter.
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address

_LOCAL_SUFFIXES = (
    ".localhost",
    ".local",
    ".internal",
    ".intranet",
    ".lan",
    ".home.arpa",
    ".corp",
    ".private",
)
"""Special-use and customary internal domains (RFC 6761, RFC 6762, RFC 8375, ICANN's
``.internal``)."""

_NON_PUBLIC_V4 = tuple(
    IPv4Network(network)
    for network in (
        "0.0.0.0/8",  # "this network", unspecified (RFC 791)
        "10.0.0.0/8",  # private (RFC 1918)
        "100.64.0.0/10",  # shared address space, carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (RFC 3927): most clouds' metadata service
        "172.16.0.0/12",  # private (RFC 1918)
        "192.0.0.0/24",  # IETF protocol assignments (RFC 6890)
        "192.0.2.0/24",  # documentation TEST-NET-1 (RFC 5737)
        "192.88.99.0/24",  # deprecated 6to4 relay anycast (RFC 7526)
        "192.168.0.0/16",  # private (RFC 1918)
        "198.18.0.0/15",  # benchmarking (RFC 2544)
        "198.51.100.0/24",  # documentation TEST-NET-2
        "203.0.113.0/24",  # documentation TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the limited broadcast 255.255.255.255
    )
)

_GLOBAL_UNICAST_V6 = IPv6Network("2000::/3")
"""The only IPv6 space IANA allocates for global unicast: everything outside it (``::/8`` with
loopback, unspecified and IPv4-compatible addresses, ``100::/64`` discard, ``5f00::/16`` SRv6,
``fc00::/7`` unique-local, ``fe80::/10`` link-local, ``fec0::/10`` site-local, ``ff00::/8``
multicast…) is refused, except the two IPv4-embedding forms handled first."""

_NON_PUBLIC_V6 = tuple(
    IPv6Network(network)
    for network in (
        "2001::/23",  # IETF protocol assignments, Teredo 2001::/32 among them (RFC 2928)
        "2001:db8::/32",  # documentation (RFC 3849)
        "3fff::/20",  # documentation (RFC 9637)
    )
)

_NAT64_WELL_KNOWN = IPv6Network("64:ff9b::/96")
"""RFC 6052: a DNS64 resolver answers with these for an IPv4-only host; the last 32 bits are
the IPv4 address the translator connects to, so that address is what is judged. (The
local-use prefix ``64:ff9b:1::/48``, RFC 8215, embeds at an operator-chosen length and is
not globally reachable: it is outside ``2000::/3`` and refused.)"""

_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack… metadata
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "169.254.0.23",  # Tencent Cloud metadata
        "100.100.100.200",  # Alibaba Cloud metadata
        "192.0.0.192",  # Oracle Cloud (legacy) metadata
        "168.63.129.16",  # Azure WireServer: a public address only reachable from inside Azure
        "fd00:ec2::254",  # AWS metadata over IPv6
        "fd00:ec2::253",  # AWS DNS resolver over IPv6
        "fd00:ec2::123",  # AWS time sync over IPv6
    )
)
"""Named one by one although all but Azure's lie in refused ranges already: they are the
addresses an SSRF goes for first, and must stay refused whatever happens to the ranges."""


def is_public_address(address: IPAddress | str) -> bool:
    """True only for an address on the public internet that is safe to fetch from.

    Refused: loopback, private (RFC 1918, ``fc00::/7``), link-local, CGNAT ``100.64.0.0/10``,
    unspecified, multicast, reserved, benchmarking and documentation ranges, IPv6 outside
    ``2000::/3``, Teredo, scoped IPv6 (``fe80::1%eth0``) and cloud metadata addresses. An IPv6
    address that carries an IPv4 one the network will actually use — IPv4-mapped
    (``::ffff:a.b.c.d``), 6to4 (``2002::/16``), NAT64 (``64:ff9b::/96``) — is judged by that
    IPv4 address. A string that is not an address is refused.
    """
    if isinstance(address, str):
        try:
            address = ipaddress.ip_address(address)
        except ValueError:
            return False
    if address in _METADATA_ADDRESSES:
        return False
    if isinstance(address, IPv4Address):
        return _is_public_v4(address)
    if address.scope_id is not None:
        return False
    embedded = address.ipv4_mapped or address.sixtofour
    if embedded is None and address in _NAT64_WELL_KNOWN:
        embedded = IPv4Address(int(address) & 0xFFFFFFFF)
    if embedded is not None:
        return _is_public_v4(embedded)
    if address not in _GLOBAL_UNICAST_V6:
        return False
    if any(address in network for network in _NON_PUBLIC_V6):
        return False
    return address.is_global


def _is_public_v4(address: IPv4Address) -> bool:
    if address in _METADATA_ADDRESSES:
        return False
    if any(address in network for network in _NON_PUBLIC_V4):
        return False
    return address.is_global and not address.is_multicast


def is_local_host(host: str) -> bool:
    """True for loopback, private, link-local, CGNAT, unique-local and unspecified addresses,
    ``localhost`` and internal names (a single label, or one of the internal suffixes).

    An IP address counts as local unless :func:`is_public_address` accepts it.
    """
    name = host.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name == "localhost" or "." not in name or name.endswith(_LOCAL_SUFFIXES)
    return not is_public_address(address)
