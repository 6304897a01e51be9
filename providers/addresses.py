"""Is a host on the operator's own network (loopback, private, link-local, internal names)?

A provider whose base URL is such a host (the built-in ``ollama`` at ``localhost:11434``) is
only usable when the operator configured it: otherwise any key holder could make the gateway
call services on its machine or network (an SSRF). Only names are inspected, nothing is
resolved: DNS answers are the resolver's to give and may change; the allow-list in
:mod:`gateway.targets` is what guards client-named hosts.
"""

from __future__ import annotations

import ipaddress

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


def is_local_host(host: str) -> bool:
    """True for loopback, private, link-local, CGNAT, unique-local and unspecified addresses,
    ``localhost`` and internal names (a single label, or one of the internal suffixes).

    An IP address counts as local unless it is globally routable (``ipaddress``'s
    ``is_global``), which covers RFC 1918, 100.64/10, 169.254/16, fc00::/7, fe80::/10 and
    the other special-purpose ranges.
    """
    name = host.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name == "localhost" or "." not in name or name.endswith(_LOCAL_SUFFIXES)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global
