"""Which upstream URLs passthrough mode may forward to.

``Helicone-Target-Url`` and ``Helicone-OpenAI-Api-Base`` let the client name the upstream; an
unrestricted version of that is an open relay (and an SSRF hole into the operator's network).
Targets must be on the provider allow-list (the ``hosts`` of every provider in
:mod:`providers.spec`), be the origin of a configured provider base URL, or be added by the
operator with ``GATEWAY_ALLOWED_TARGET_HOSTS``.

The rules, each closing a way around the list:

* An entry is ``[scheme://]host[:port]``. Without a scheme it allows https only; plain http
  must be written out (``http://host:8000``), and the built-in provider hosts are https only.
  Without a port it allows the scheme's default port only (443 or 80).
* ``*`` matches letters, digits and ``-`` inside one DNS label, never a dot, so
  ``*.corp.example`` does not match ``a.b.corp.example``; ``{region}`` matches an AWS region
  name, so Bedrock's pattern cannot match an S3 bucket host (``bedrock-runtime.s3…``).
* URLs are parsed with yarl, aiohttp's own URL type, and the checked :class:`yarl.URL` is the
  object that is sent: what is checked is what is connected to. A URL with credentials
  (``user@``), a query or a fragment is refused; a malformed one is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from yarl import URL

from gateway.errors import GatewayError
from providers.spec import PROVIDERS, ProviderTable

_DEFAULT_PORTS = {"https": 443, "http": 80}
_WILDCARD = "[a-z0-9-]+"
_AWS_REGION = "[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}"
_HOST_CHARS = re.compile(r"[a-z0-9.*{}-]+|\[[0-9a-f:.]+\]")
_SETTING = "GATEWAY_ALLOWED_TARGET_HOSTS"


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One allowed ``scheme://host:port``; ``host`` may hold ``*`` or ``{region}``."""

    scheme: str
    host: re.Pattern[str]
    port: int

    def matches(self, url: URL) -> bool:
        return (
            url.scheme == self.scheme
            and url.port == self.port
            and self.host.fullmatch(url.raw_host or "") is not None
        )


def parse_pattern(entry: str, default_scheme: str = "https") -> HostPattern:
    """Parse an allow-list entry ``[scheme://]host[:port]``; raises ``ValueError``."""
    text = entry.strip().lower()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = default_scheme, text
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"{_SETTING} entry {entry!r}: the scheme must be http or https")
    rest = rest.rstrip("/")
    host, port_text = rest, ""
    if rest.startswith("["):
        host, _, tail = rest.partition("]")
        host += "]"
        if tail:
            if not tail.startswith(":"):
                raise ValueError(f"{_SETTING} entry {entry!r} is not [scheme://]host[:port]")
            port_text = tail[1:]
    elif ":" in rest:
        host, _, port_text = rest.rpartition(":")
    if not _HOST_CHARS.fullmatch(host) or (port_text and not port_text.isdigit()):
        raise ValueError(f"{_SETTING} entry {entry!r} is not [scheme://]host[:port]")
    port = int(port_text) if port_text else _DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise ValueError(f"{_SETTING} entry {entry!r}: port out of range")
    if host.startswith("["):
        host = host[1:-1]
    expression = (
        re.escape(host).replace(r"\*", _WILDCARD).replace(r"\{region\}", _AWS_REGION)
    )
    return HostPattern(scheme, re.compile(expression), port)


def parse_target(raw: str, header: str) -> URL:
    """Parse a client-named upstream, or raise a 400 naming ``header``."""
    try:
        url = URL(raw.strip())
        valid = url.absolute and url.scheme in _DEFAULT_PORTS and bool(url.raw_host)
        port = url.port
    except (ValueError, TypeError):
        valid, port = False, None
    if not valid or port is None or not 0 < port < 65536:
        raise _refused(header, raw, "it is not an absolute http(s) URL")
    if url.raw_user is not None or url.raw_password is not None:
        raise _refused(header, raw, "credentials in the URL are not accepted")
    if url.raw_query_string or url.raw_fragment:
        raise _refused(header, raw, "it must be an origin (and path), without query or fragment")
    return url


def _refused(header: str, raw: str, why: str) -> GatewayError:
    return GatewayError(
        400,
        f"{header} {raw[:200]!r} is not an allowed upstream: {why}. Allowed: provider API "
        f"hosts over https, the configured provider base URLs, and {_SETTING}.",
        code="target_not_allowed",
    )


class TargetPolicy:
    """Decides whether an absolute URL may be a passthrough upstream.

    The built-in entries are the provider table's hosts (Helicone's approved domains plus the
    providers this gateway knows), reachable over https on port 443.
    """

    def __init__(
        self,
        extra_hosts: Iterable[str],
        configured_urls: Iterable[str],
        table: ProviderTable = PROVIDERS,
    ) -> None:
        patterns = [parse_pattern(entry) for entry in table.allowed_hosts()]
        patterns.extend(parse_pattern(entry) for entry in extra_hosts if entry.strip())
        for raw in configured_urls:
            url = URL(raw)
            if url.scheme in _DEFAULT_PORTS and url.raw_host and url.port:
                patterns.append(
                    HostPattern(url.scheme, re.compile(re.escape(url.raw_host)), url.port)
                )
        self._patterns = tuple(patterns)

    def permits(self, url: URL) -> bool:
        """The rule itself, on an already parsed URL (the one that will be sent)."""
        if url.raw_user is not None or url.raw_password is not None:
            return False
        return any(pattern.matches(url) for pattern in self._patterns)

    def allows(self, url: str) -> bool:
        try:
            return self.permits(parse_target(url, "url"))
        except GatewayError:
            return False

    def check(self, raw: str, header: str) -> URL:
        """The parsed target (trailing ``/`` dropped), or a 400 naming the header."""
        url = parse_target(raw, header)
        if not self.permits(url):
            raise _refused(header, raw, "its scheme, host and port are not on the allow-list")
        if url.raw_path.endswith("/"):
            url = url.with_path(url.raw_path.rstrip("/"), encoded=True)
        return url

    def require(self, url: URL, header: str) -> URL:
        """Re-check the final URL (target plus the request's path) just before sending."""
        if not self.permits(url):
            raise _refused(header, str(url), "its scheme, host and port are not on the allow-list")
        return url
