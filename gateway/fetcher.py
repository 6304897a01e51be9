"""The one way the gateway fetches a URL a client gave it (an image, a PDF, a text file).

A translation sometimes needs the bytes behind a client's URL: a Responses ``input_file``
with a ``file_url`` becomes a chat ``file_data`` part, and a provider without URL support
needs images inlined. Fetching a client-named URL from inside the operator's network is the
classic SSRF (a peer gateway shipped exactly this hole), so every fetch goes through
:class:`GuardedFetcher`, whose rules are:

* **Only ``http``/``https``**, no credentials in the URL (``user@``), port 1-65535.
* **A host is a DNS name or a canonical IP address.** Numeric hosts in the legacy forms the
  C resolver still accepts (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``,
  ``127.0.0.1.``) are refused before anything is resolved, as are percent-encoded or scoped
  hosts, and names that are local by shape (``localhost``, a single label, ``.internal``…).
* **Public addresses only** (:func:`providers.addresses.is_public_address`), judged after
  resolution and on every redirect hop.
* **What is checked is what is connected to.** Two hooks of aiohttp's own connector, so the
  URL, the ``Host`` header and TLS certificate checking stay aiohttp's, untouched (we chose
  this over connecting to a vetted IP with ``Host``/SNI set by hand, which re-implements
  those). The connector's resolver (:class:`_VettingResolver`) resolves a name and refuses
  the whole answer if any address is not allowed; aiohttp connects only to the addresses it
  returned, so there is no second lookup a rebinding DNS server could answer differently.
  Its ``socket_factory`` is then handed the exact address of every TCP connection before it
  is opened, IP-literal hosts (which aiohttp does not resolve) included, and refuses any
  address the policy does not allow: nothing is ever sent to an unchecked address, whatever
  path aiohttp took to it. Pooled keep-alive connections were checked when they were opened.
* **Redirects are followed by hand** (at most ``max_redirects``), each target re-checked
  from the top: scheme, credentials, host form, addresses.
* **Limits:** a ``Content-Length`` over ``max_bytes`` is refused before the body is read, and
  the body is streamed and abandoned as soon as it passes ``max_bytes`` (chunked answers, or a
  lying length); ``timeout`` bounds the whole fetch, redirects included; ``connect_timeout``
  bounds each connection attempt. The answer must be a 200 with a ``Content-Type`` the caller
  accepts; ``Accept-Encoding: identity`` is asked for and a compressed answer is decoded
  before it is counted.
* **Its own session**, never the upstream pool's: no provider credential or client header can
  ride along, cookies are never kept (a cookie set for one client's fetch must not reach the
  next), environment proxies are ignored.

Every refusal raises :class:`FetchError`, a :class:`~providers.adapter.TranslationError`, so
the translation layer answers it as a 400 naming the field. Messages never contain a
resolved address: "resolves to a non-public address" is all a client learns of the network.

Tests need a server on 127.0.0.1, which the production policy refuses. The seam is explicit
and constructor-level: ``static_hosts`` (names resolved from a table instead of DNS) and
``address_policy`` (which addresses are allowed). Their defaults are DNS and
:func:`~providers.addresses.is_public_address`; the gateway never passes either.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp
from aiohappyeyeballs import AddrInfoType
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from providers.adapter import TranslationError
from providers.addresses import IPAddress, is_local_host, is_public_address

__all__ = ["AddressPolicy", "FetchError", "Fetched", "GuardedFetcher", "is_public_address"]

logger = logging.getLogger("gateway.fetcher")

AddressPolicy = Callable[[IPAddress], bool]
"""Decides whether the fetcher may connect to an address."""

_SCHEMES = ("http", "https")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_SHOWN = 200  # characters of a client's URL quoted back in an error
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_DNS_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_AUTHORITY = re.compile(r"(?:[a-z][a-z0-9+.-]*:)?[/\\]{2}([^/?#\\]*)", re.IGNORECASE)
# WHATWG URL: a host whose last label is a number is an IPv4 address, in whatever notation
# (decimal, octal, hex, fewer than four parts); the C resolver agrees.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_MEDIA_RANGE = re.compile(r"(?:\*/\*|[a-z0-9!#$&^_.+-]+/(?:\*|[a-z0-9!#$&^_.+-]+))")


class FetchError(TranslationError):
    """A URL the gateway will not or could not fetch; a 400 for the client.

    ``param`` is the request field that held the URL (``input[0].content[1].file_url``).
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message, param=param)


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a fetch returned: the final URL (after redirects), its media type, its bytes."""

    url: str
    content_type: str
    data: bytes


class _Refused(Exception):
    """Why a fetch is refused; :meth:`GuardedFetcher.fetch` adds the URL and the hop."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.redirects = 0


class _NonPublicAddress(OSError):
    """Raised by the resolver and the socket factory; aiohttp wraps it in a connector error."""


class _VettingResolver(AbstractResolver):
    """Resolves a name, then refuses the whole answer unless every address is allowed.

    Refusing (rather than dropping the bad addresses) is deliberate: a name that answers with
    an internal address next to a public one is an attack or a misconfiguration, and either
    way not something to fetch from.
    """

    def __init__(
        self, policy: AddressPolicy, static_hosts: Mapping[str, Sequence[str]] | None
    ) -> None:
        self._policy = policy
        self._static: dict[str, tuple[IPAddress, ...]] | None = None
        self._system: AbstractResolver | None = None
        if static_hosts is not None:
            self._static = {
                name.lower().rstrip("."): tuple(ipaddress.ip_address(a) for a in addresses)
                for name, addresses in static_hosts.items()
            }
        else:
            # getaddrinfo: the system's own view (/etc/hosts, nsswitch), vetted below.
            self._system = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._system is not None:
            results = await self._system.resolve(host, port, family)
        else:
            results = self._lookup(host, port, family)
        if not results:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        for result in results:
            if not _allowed(self._policy, result["host"]):
                logger.info("fetch refused: %s resolves to %s", host, result["host"])
                raise _NonPublicAddress("resolves to a non-public address")
        return results

    def _lookup(self, host: str, port: int, family: socket.AddressFamily) -> list[ResolveResult]:
        assert self._static is not None
        results: list[ResolveResult] = []
        for address in self._static.get(host.lower().rstrip("."), ()):
            found = socket.AF_INET if address.version == 4 else socket.AF_INET6
            if family in (socket.AF_UNSPEC, found):
                results.append(
                    {
                        "hostname": host,
                        "host": str(address),
                        "port": port,
                        "family": found,
                        "proto": 0,
                        "flags": socket.AI_NUMERICHOST,
                    }
                )
        return results

    async def close(self) -> None:
        if self._system is not None:
            await self._system.close()


def _allowed(policy: AddressPolicy, host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return policy(address)


class GuardedFetcher:
    """Fetches client-named URLs under the rules in the module docstring.

    One per process, like the upstream client: :meth:`start` at startup, :meth:`close` at
    shutdown; :meth:`fetch` may run concurrently.

    ``static_hosts`` and ``address_policy`` exist for tests only (see the module docstring);
    ``None`` and the default keep DNS and the strict public-address policy.
    """

    def __init__(
        self,
        *,
        max_bytes: int,
        timeout: float,
        max_redirects: int = 3,
        connect_timeout: float = 5.0,
        user_agent: str = "llm-gateway-fetcher",
        static_hosts: Mapping[str, Sequence[str]] | None = None,
        address_policy: AddressPolicy = is_public_address,
    ) -> None:
        if max_bytes < 1 or timeout <= 0 or connect_timeout <= 0 or max_redirects < 0:
            raise ValueError(
                "max_bytes, timeout and connect_timeout must be positive, max_redirects >= 0"
            )
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._max_redirects = max_redirects
        self._connect_timeout = min(connect_timeout, timeout)
        self._user_agent = user_agent
        self._static_hosts = static_hosts
        self._policy = address_policy
        self._resolver: _VettingResolver | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._resolver = _VettingResolver(self._policy, self._static_hosts)
        connector = aiohttp.TCPConnector(
            resolver=self._resolver,
            socket_factory=self._open_socket,
            # Every fetch resolves (and vets) afresh: a fetcher is not on the hot path, and
            # the socket factory would refuse a stale cached address anyway.
            use_dns_cache=False,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            auto_decompress=True,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None

    def _open_socket(self, addr_info: AddrInfoType) -> socket.socket:
        """The connector's socket factory: the last check, on the address about to be used."""
        family, type_, proto, _, sockaddr = addr_info
        scoped = family == socket.AF_INET6 and len(sockaddr) > 3 and bool(sockaddr[3])
        if scoped or not _allowed(self._policy, str(sockaddr[0])):
            logger.warning("fetch refused a connection to %s", sockaddr[0])
            raise _NonPublicAddress("resolves to a non-public address")
        return socket.socket(family=family, type=type_, proto=proto)

    async def fetch(
        self, url: str, *, accept: tuple[str, ...], param: str | None = None
    ) -> Fetched:
        """The bytes at ``url``, whose media type must match one of ``accept``.

        ``accept`` holds media ranges (``image/*``, ``application/pdf``, ``text/plain``);
        ``param`` names the request field the URL came from, for the error. Raises
        :class:`FetchError` for every refusal or failure.
        """
        patterns = tuple(pattern.strip().lower() for pattern in accept)
        if not patterns or not all(_MEDIA_RANGE.fullmatch(p) for p in patterns):
            raise ValueError(f"accept must hold media ranges like 'image/*', got {accept!r}")
        session = self._session
        if session is None:
            raise RuntimeError("GuardedFetcher.start() was not called")
        shown = url[:_SHOWN]
        try:
            async with asyncio.timeout(self._timeout):
                return await self._fetch(session, url, patterns)
        except _Refused as exc:
            hops = exc.redirects
            after = f" (after {hops} redirect{'s' if hops > 1 else ''})" if hops else ""
            raise FetchError(f"Could not fetch {shown!r}{after}: {exc}.", param) from None
        except aiohttp.ConnectionTimeoutError:
            raise FetchError(
                f"Could not fetch {shown!r}: could not connect within "
                f"{self._connect_timeout:g} seconds.",
                param,
            ) from None
        except TimeoutError:
            raise FetchError(
                f"Could not fetch {shown!r}: it did not complete within {self._timeout:g} seconds.",
                param,
            ) from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            logger.info("fetch of %s failed: %r", shown.partition("?")[0], exc)
            raise FetchError(
                f"Could not fetch {shown!r}: the server could not be reached or its answer "
                f"was malformed ({exc.__class__.__name__}).",
                param,
            ) from None

    async def _fetch(
        self, session: aiohttp.ClientSession, raw: str, accept: tuple[str, ...]
    ) -> Fetched:
        redirects = 0
        try:
            url = _check_url(_parse(raw))
            headers = {
                "Accept": ", ".join(accept),
                "Accept-Encoding": "identity",
                "User-Agent": self._user_agent,
            }
            while True:
                literal = _literal(url.raw_host or "")
                if literal is not None and not self._policy(literal):
                    raise _Refused("the host is not a public address")
                response = await self._get(session, url, headers)
                try:
                    if response.status not in _REDIRECTS:
                        return await self._read(response, accept)
                    redirects += 1
                    if redirects > self._max_redirects:
                        raise _Refused(f"it redirects more than {self._max_redirects} times")
                    url = _redirect_target(response)
                finally:
                    response.close()
        except _Refused as exc:
            exc.redirects = redirects
            raise

    async def _get(
        self, session: aiohttp.ClientSession, url: URL, headers: dict[str, str]
    ) -> aiohttp.ClientResponse:
        try:
            return await session.get(url, headers=headers, allow_redirects=False)
        except aiohttp.ClientConnectorError as exc:
            # The resolver's or the socket factory's refusal, wrapped by the connector.
            if isinstance(exc.__cause__, _NonPublicAddress):
                raise _Refused("the host resolves to a non-public address") from None
            if isinstance(exc, aiohttp.ClientConnectorDNSError):
                raise _Refused("the host name could not be resolved") from None
            raise _Refused(f"the server could not be reached ({exc.__class__.__name__})") from None

    async def _read(self, response: aiohttp.ClientResponse, accept: tuple[str, ...]) -> Fetched:
        if response.status != 200:
            raise _Refused(f"the server answered HTTP {response.status}")
        media_type = response.headers.get("Content-Type", "").partition(";")[0].strip().lower()
        if not media_type:
            raise _Refused(f"the answer has no Content-Type (accepted: {', '.join(accept)})")
        if not any(_media_matches(pattern, media_type) for pattern in accept):
            raise _Refused(
                f"its content type {media_type[:100]!r} is not accepted here "
                f"(accepted: {', '.join(accept)})"
            )
        too_large = f"it is larger than the limit of {self._max_bytes} bytes"
        length = response.content_length
        if length is not None and length > self._max_bytes:
            raise _Refused(too_large)
        body = bytearray()
        async for chunk in response.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > self._max_bytes:
                raise _Refused(too_large)
        return Fetched(url=str(response.url), content_type=media_type, data=bytes(body))


def _redirect_target(response: aiohttp.ClientResponse) -> URL:
    location = response.headers.get("Location")
    if not location:
        raise _Refused(f"an HTTP {response.status} redirect has no Location")
    try:
        target = response.url.join(_parse(location))
    except (ValueError, TypeError):
        raise _Refused("a redirect's Location is not a valid URL") from None
    return _check_url(target)


def _parse(raw: str) -> URL:
    """A URL as the client or a ``Location`` wrote it (maybe relative), not yet checked."""
    raw = raw.strip()
    # yarl forgets an empty userinfo (``http://@host/``): the text itself must have none.
    authority = _AUTHORITY.match(raw)
    if authority is not None and "@" in authority.group(1):
        raise _Refused("credentials in the URL are not accepted")
    try:
        return URL(raw)
    except (ValueError, TypeError):
        raise _Refused("it is not a valid URL") from None


def _check_url(url: URL) -> URL:
    """The URL's own rules (scheme, credentials, port, host form), checked on every hop."""
    if url.scheme not in _SCHEMES:
        raise _Refused("only http and https URLs can be fetched")
    if not url.absolute or not url.raw_host:
        raise _Refused("it is not an absolute URL with a host")
    if url.raw_user is not None or url.raw_password is not None:
        raise _Refused("credentials in the URL are not accepted")
    try:
        port = url.port
    except ValueError:
        port = None
    if port is None or not 0 < port < 65536:
        raise _Refused("the port is out of range")
    host = url.raw_host
    if _literal(host) is None and is_local_host(host):
        raise _Refused("the host is local or internal")
    return url.with_fragment(None)


def _literal(host: str) -> IPAddress | None:
    """The address of an IP-literal host, None for a DNS name; refuses every other form.

    yarl hands IPv6 literals over without brackets and normalised; IPv4 is where the odd
    notations live: a host whose last label is numeric must be a canonical dotted quad
    (``ipaddress`` accepts nothing else: no octal, hex, short or integer forms).
    """
    if "%" in host:
        raise _Refused("the host is percent-encoded or scoped")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise _Refused("the host is not a valid IPv6 address") from None
    if not _DNS_NAME.fullmatch(host) or len(host.rstrip(".")) > 253:
        raise _Refused("the host is not a valid host name")
    if _NUMERIC_LABEL.fullmatch(host.rstrip(".").rpartition(".")[2]):
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            raise _Refused("the host is an IP address in a non-canonical notation") from None
        return address
    return None


def _media_matches(pattern: str, media_type: str) -> bool:
    if pattern == "*/*":
        return True
    if pattern.endswith("/*"):
        return media_type.startswith(pattern[:-1])
    return media_type == pattern
