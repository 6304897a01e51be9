"""The guarded fetcher (gateway/fetcher.py): client-named URLs reach public addresses only.

Everything runs against a real aiohttp server on 127.0.0.1. The strict (production) policy
refuses that address, so most tests use the constructor's test seam: ``public.test`` resolves
to 127.0.0.1 from a static table, and the policy is the strict one plus that exact address.
Every other rule stays in force, which is what the redirect and resolution tests prove; the
strict policy's own refusal of 127.0.0.1 is tested separately. ``hits`` counts requests the
server saw: a refused fetch must not have reached it at all.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_address

import orjson
import pytest
from aiohttp import web
from yarl import URL

from gateway.fetcher import FetchError, GuardedFetcher
from gateway.settings import Settings
from providers.adapter import TranslationError
from providers.addresses import IPAddress, is_local_host, is_public_address

LOOPBACK = IPv4Address("127.0.0.1")
STATIC_HOSTS = {
    "public.test": ["127.0.0.1"],
    "internal.test": ["10.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "v6loop.test": ["::1"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "mixed.test": ["127.0.0.1", "10.0.0.1"],
}


def loopback_too(address: IPAddress) -> bool:
    """The strict policy, plus the one address the test server listens on."""
    return address == LOOPBACK or is_public_address(address)


# --- the address table ---------------------------------------------------------------------

REFUSED = [
    # IPv4: loopback, RFC 1918, link-local, CGNAT, unspecified, broadcast, reserved, multicast
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.0.1",
    "100.64.0.1",
    "100.127.255.255",
    "0.0.0.0",
    "0.1.2.3",
    "255.255.255.255",
    "240.0.0.1",
    "224.0.0.1",
    "239.255.255.250",
    # IETF assignments, documentation, benchmarking, deprecated 6to4 relay
    "192.0.0.8",
    "192.0.2.1",
    "198.51.100.7",
    "203.0.113.9",
    "198.18.0.1",
    "198.19.255.255",
    "192.88.99.1",
    # cloud metadata (Azure's WireServer is a public address)
    "169.254.169.254",
    "169.254.170.2",
    "100.100.100.200",
    "192.0.0.192",
    "168.63.129.16",
    "fd00:ec2::254",
    # IPv6: loopback, unspecified, link-local (also scoped), ULA, site-local, multicast
    "::1",
    "::",
    "fe80::1",
    "fe80::1%eth0",
    "fc00::1",
    "fd12:3456::1",
    "fec0::1",
    "ff02::1",
    "ff0e::1",
    # IPv4-mapped and IPv4-compatible: the embedded IPv4 decides / deprecated form
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",
    "::8.8.8.8",
    # 6to4 with an internal IPv4 inside
    "2002:7f00:1::",
    "2002:a00:1::1",
    "2002:a9fe:a9fe::",
    # NAT64: the well-known prefix embedding internal addresses; the local-use prefix
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b::a00:1",
    "64:ff9b:1::808:808",
    # Teredo and the rest of 2001::/23, documentation, discard, SRv6
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2001::1",
    "2001:db8::1",
    "3fff::1",
    "100::1",
    "5f00::1",
    # not an address at all (odd notations are not addresses here)
    "2130706433",
    "0x7f.1",
    "localhost",
    "",
]

ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.1",  # just above CGNAT
    "172.15.255.255",
    "172.32.0.1",
    "169.255.0.1",
    "2606:4700::1111",
    "2001:4860:4860::8888",
    "2a00:1450:4001:82a::200e",
    "::ffff:8.8.8.8",  # mapped: the public IPv4 inside decides
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8 (DNS64 answers on IPv6-only networks)
]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert is_public_address(address) is False
    try:
        parsed = ip_address(address)
    except ValueError:
        return
    assert is_public_address(parsed) is False


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public_address(address) is True
    assert is_public_address(ip_address(address)) is True


def test_is_local_host_follows_the_address_table() -> None:
    # Addresses Python's own is_global (3.11) calls global are local here too.
    assert is_local_host("2002:7f00:1::")
    assert is_local_host("[64:ff9b::7f00:1]")
    assert is_local_host("224.0.0.1")
    assert not is_local_host("8.8.8.8")
    assert not is_local_host("2606:4700::1111")


# --- a real server -------------------------------------------------------------------------


@dataclass
class Server:
    port: int
    hits: Counter[str] = field(default_factory=Counter)
    seen_headers: list[dict[str, str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str, host: str = "public.test") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server(port=0)

    @web.middleware
    async def count(request: web.Request, handler: web.Handler) -> web.StreamResponse:
        state.hits[request.path] += 1
        state.seen_headers.append(dict(request.headers))
        return await handler(request)

    async def ok(request: web.Request) -> web.Response:
        return web.Response(body=b"hello", content_type="text/plain", charset="utf-8")

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG\r\n\x1a\n....", content_type="image/png")

    async def pdf(request: web.Request) -> web.Response:
        return web.Response(body=b"%PDF-1.7 ...", content_type="application/pdf")

    async def html(request: web.Request) -> web.Response:
        return web.Response(body=b"<html></html>", content_type="text/html")

    async def sized(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.query["n"]), content_type="text/plain")

    async def chunked(request: web.Request) -> web.StreamResponse:
        # No Content-Length: chunked transfer; ``n`` bytes, or (n=0) until the client leaves.
        total = int(request.query["n"])
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        sent = 0
        try:
            while total == 0 or sent < total:
                piece = 50 if total else 64 * 1024
                await response.write(b"y" * piece)
                sent += piece
                if total == 0 and sent > 200 * 1024 * 1024:
                    break
        except (ConnectionError, RuntimeError):
            return response
        await response.write_eof()
        return response

    async def gzipped(request: web.Request) -> web.Response:
        body = gzip.compress(b"\0" * 100_000)
        return web.Response(
            body=body, headers={"Content-Type": "text/plain", "Content-Encoding": "gzip"}
        )

    async def slow_headers(request: web.Request) -> web.Response:
        await asyncio.wait_for(state.release.wait(), 30)
        return web.Response(body=b"late", content_type="text/plain")

    async def slow_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        try:
            for _ in range(300):
                await response.write(b"z")
                await asyncio.sleep(0.1)
        except (ConnectionError, RuntimeError):
            pass
        return response

    async def redirect(request: web.Request) -> web.Response:
        code = int(request.query.get("code", "302"))
        return web.Response(status=code, headers={"Location": request.query["to"]})

    async def chain(request: web.Request) -> web.Response:
        left = int(request.match_info["n"])
        if left == 0:
            return web.Response(body=b"end of chain", content_type="text/plain")
        return web.Response(status=307, headers={"Location": f"/chain/{left - 1}"})

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="no")

    async def set_cookie(request: web.Request) -> web.Response:
        response = web.Response(body=b"cookie", content_type="text/plain")
        response.set_cookie("session", "secret-session")
        return response

    async def headers(request: web.Request) -> web.Response:
        sent = {str(name).lower(): value for name, value in request.headers.items()}
        return web.Response(body=orjson.dumps(sent), content_type="text/plain")

    app = web.Application(middlewares=[count])
    app.router.add_get("/ok", ok)
    app.router.add_get("/image", image)
    app.router.add_get("/pdf", pdf)
    app.router.add_get("/html", html)
    app.router.add_get("/sized", sized)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/slow-headers", slow_headers)
    app.router.add_get("/slow-body", slow_body)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/chain/{n}", chain)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/set-cookie", set_cookie)
    app.router.add_get("/headers", headers)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


async def started(**options: object) -> GuardedFetcher:
    settings: dict[str, object] = {"max_bytes": 1000, "timeout": 5.0}
    settings.update(options)
    fetcher = GuardedFetcher(**settings)  # type: ignore[arg-type]
    await fetcher.start()
    return fetcher


@pytest.fixture
async def fetcher() -> AsyncIterator[GuardedFetcher]:
    """The test seam: static names, strict policy plus exactly 127.0.0.1."""
    guarded = await started(static_hosts=STATIC_HOSTS, address_policy=loopback_too)
    try:
        yield guarded
    finally:
        await guarded.close()


@pytest.fixture
async def strict() -> AsyncIterator[GuardedFetcher]:
    """The production policy; names still come from the static table (no real DNS)."""
    guarded = await started(static_hosts=STATIC_HOSTS)
    try:
        yield guarded
    finally:
        await guarded.close()


async def refused(fetcher: GuardedFetcher, url: str, accept: tuple[str, ...] = ("*/*",)) -> str:
    """The FetchError's message (any other exception type fails the test)."""
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch(url, accept=accept)
    return caught.value.message


# --- success -------------------------------------------------------------------------------


async def test_fetch_returns_bytes_type_and_url(fetcher: GuardedFetcher, server: Server) -> None:
    fetched = await fetcher.fetch(server.url("/ok"), accept=("text/plain",))
    assert fetched.data == b"hello"
    assert fetched.content_type == "text/plain"  # parameters (charset) dropped
    assert fetched.url == server.url("/ok")
    image = await fetcher.fetch(server.url("/image"), accept=("image/*", "application/pdf"))
    assert image.content_type == "image/png" and image.data.startswith(b"\x89PNG")
    pdf = await fetcher.fetch(server.url("/pdf"), accept=("image/*", "application/pdf"))
    assert pdf.content_type == "application/pdf"


async def test_request_carries_no_credentials_and_keeps_no_cookies(
    fetcher: GuardedFetcher, server: Server
) -> None:
    await fetcher.fetch(server.url("/set-cookie"), accept=("text/plain",))
    fetched = await fetcher.fetch(server.url("/headers"), accept=("text/plain",))
    sent = orjson.loads(fetched.data)
    assert "cookie" not in sent
    assert "authorization" not in sent
    assert sent["accept"] == "text/plain"
    assert sent["accept-encoding"] == "identity"
    assert sent["host"] == f"public.test:{server.port}"


async def test_error_is_a_translation_error_naming_the_field(
    fetcher: GuardedFetcher, server: Server
) -> None:
    with pytest.raises(TranslationError) as caught:
        await fetcher.fetch(
            server.url("/html"), accept=("image/*",), param="input[0].content[1].file_url"
        )
    assert isinstance(caught.value, FetchError)
    assert caught.value.param == "input[0].content[1].file_url"


# --- the strict policy ---------------------------------------------------------------------


async def test_strict_policy_refuses_loopback_by_literal_and_by_name(
    strict: GuardedFetcher, server: Server
) -> None:
    assert "not a public address" in await refused(strict, server.url("/ok", "127.0.0.1"))
    message = await refused(strict, server.url("/ok"))
    assert "resolves to a non-public address" in message
    assert "127.0.0.1" not in message
    assert server.hits["/ok"] == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        "http://168.63.129.16/machine",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::]/",
        "http://0.0.0.0/",
        # fullwidth digits, which IDNA folds to 127.0.0.1
        "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/",
    ],
)
async def test_strict_policy_refuses_internal_literals(strict: GuardedFetcher, url: str) -> None:
    assert "not a public address" in await refused(strict, url)


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",
        "017700000001",
        "0177.0.0.1",
        "0x7f.1",
        "0x7f000001",
        "0x7f.0.0.1",
        "127.1",
        "127.0.1",
        "127.0.0.1.",
        "0x",
        "1.2.3.04",
    ],
)
async def test_odd_ip_notations_are_refused(
    fetcher: GuardedFetcher, server: Server, host: str
) -> None:
    # Refused even though the test policy allows 127.0.0.1, which most of these mean.
    assert "non-canonical" in await refused(fetcher, server.url("/ok", host))
    assert server.hits["/ok"] == 0


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://public.test/file.pdf", "only http and https"),
        ("gopher://public.test:70/_GET", "only http and https"),
        ("data:text/plain;base64,aGk=", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("//public.test/ok", "only http and https"),
        ("http:///ok", "absolute URL with a host"),
        ("http://user@public.test/ok", "credentials"),
        ("http://user:pw@public.test/ok", "credentials"),
        ("http://:pw@public.test/ok", "credentials"),
        ("http://@public.test/ok", "credentials"),
        ("http://public.test:0/ok", "port"),
        ("http://public.test:99999/ok", "not a valid URL"),
        ("http://localhost/ok", "local or internal"),
        ("http://api.localhost/ok", "local or internal"),
        ("http://metadata.google.internal/", "local or internal"),
        ("http://intranet/", "local or internal"),
        ("http://%31%32%37.0.0.1/", "percent-encoded"),
        ("http://[fe80::1%25eth0]/", "percent-encoded or scoped"),
        ("http://exa mple.com/", "not a valid host name"),
        ("http://a..b/", "not a valid host name"),
    ],
)
async def test_bad_urls_are_refused(fetcher: GuardedFetcher, url: str, reason: str) -> None:
    assert reason in await refused(fetcher, url)


# --- resolution ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["internal.test", "metadata.test", "v6loop.test", "mapped.test", "mixed.test"]
)
async def test_names_resolving_to_internal_addresses_are_refused(
    fetcher: GuardedFetcher, server: Server, name: str
) -> None:
    message = await refused(fetcher, server.url("/ok", name))
    assert "resolves to a non-public address" in message
    for internal in ("10.0.0.1", "169.254", "::1", "ffff"):
        assert internal not in message  # no resolved address is echoed back
    assert server.hits["/ok"] == 0


async def test_unknown_name_is_a_clean_error(fetcher: GuardedFetcher) -> None:
    assert "could not be resolved" in await refused(fetcher, "http://nowhere.test/")


async def test_address_is_checked_again_when_the_socket_is_opened(server: Server) -> None:
    """A name that resolves to an allowed address, then to a refused one (DNS rebinding):
    the socket factory asks the policy again about the address actually connected to."""
    answers = iter([True])

    def once(address: IPAddress) -> bool:
        return next(answers, False) and address == LOOPBACK

    guarded = await started(static_hosts=STATIC_HOSTS, address_policy=once)
    try:
        message = await refused(guarded, server.url("/ok"))
    finally:
        await guarded.close()
    assert "resolves to a non-public address" in message
    assert server.hits["/ok"] == 0


# --- redirects -----------------------------------------------------------------------------


async def test_redirects_are_followed_up_to_the_limit(
    fetcher: GuardedFetcher, server: Server
) -> None:
    fetched = await fetcher.fetch(server.url("/chain/3"), accept=("text/plain",))
    assert fetched.data == b"end of chain"
    assert fetched.url == server.url("/chain/0")
    message = await refused(fetcher, server.url("/chain/4"))
    assert "more than 3 times" in message
    assert server.hits["/chain/0"] == 1  # only the first chain's end was requested


async def test_redirect_limit_is_configurable(server: Server) -> None:
    guarded = await started(static_hosts=STATIC_HOSTS, address_policy=loopback_too, max_redirects=0)
    try:
        assert "more than 0 times" in await refused(guarded, server.url("/chain/1"))
    finally:
        await guarded.close()


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_relative_redirect_is_followed(
    fetcher: GuardedFetcher, server: Server, code: int
) -> None:
    fetched = await fetcher.fetch(server.url(f"/redirect?code={code}&to=/ok"), accept=("*/*",))
    assert fetched.data == b"hello"


REDIRECT_TARGETS = [
    ("http://169.254.169.254/latest/meta-data/", "not a public address"),
    ("http://10.0.0.1/", "not a public address"),
    ("http://[::ffff:127.0.0.1]:{port}/ok", "not a public address"),
    ("http://[::1]:{port}/ok", "not a public address"),
    ("http://[fd00:ec2::254]/", "not a public address"),
    ("http://100.100.100.200/", "not a public address"),
    ("http://2130706433:{port}/ok", "non-canonical"),
    ("http://0177.0.0.1:{port}/ok", "non-canonical"),
    ("http://0x7f.1:{port}/ok", "non-canonical"),
    ("http://localhost:{port}/ok", "local or internal"),
    ("http://internal.test:{port}/ok", "resolves to a non-public address"),
    ("http://mapped.test:{port}/ok", "resolves to a non-public address"),
    ("file:///etc/passwd", "only http and https"),
    ("gopher://public.test:{port}/ok", "only http and https"),
    ("http://user:pw@public.test:{port}/ok", "credentials"),
]


@pytest.mark.parametrize(("target", "reason"), REDIRECT_TARGETS)
async def test_redirect_targets_are_checked_like_the_first_url(
    fetcher: GuardedFetcher, server: Server, target: str, reason: str
) -> None:
    url = URL(server.url("/redirect")).with_query(to=target.format(port=server.port))
    message = await refused(fetcher, str(url))
    assert reason in message
    assert "(after 1 redirect)" in message
    assert server.hits["/ok"] == 0  # whatever the target meant, the server never saw it


async def test_redirect_without_location_is_refused(
    fetcher: GuardedFetcher, server: Server
) -> None:
    assert "has no Location" in await refused(fetcher, server.url("/status/302"))


# --- limits --------------------------------------------------------------------------------


async def test_size_limit_with_content_length(fetcher: GuardedFetcher, server: Server) -> None:
    exact = await fetcher.fetch(server.url("/sized?n=1000"), accept=("text/plain",))
    assert len(exact.data) == 1000
    message = await refused(fetcher, server.url("/sized?n=1001"))
    assert "larger than the limit of 1000 bytes" in message


async def test_size_limit_without_content_length(fetcher: GuardedFetcher, server: Server) -> None:
    small = await fetcher.fetch(server.url("/chunked?n=1000"), accept=("text/plain",))
    assert small.data == b"y" * 1000
    assert "larger than the limit" in await refused(fetcher, server.url("/chunked?n=1050"))


async def test_endless_body_is_abandoned_at_the_limit_not_the_deadline(
    fetcher: GuardedFetcher, server: Server
) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert "larger than the limit" in await refused(fetcher, server.url("/chunked?n=0"))
    assert loop.time() - began < 2  # the deadline is 5 s


async def test_size_limit_counts_decoded_bytes(fetcher: GuardedFetcher, server: Server) -> None:
    # ~100 bytes of gzip that decode to 100,000: the limit is on what would be returned.
    assert "larger than the limit" in await refused(fetcher, server.url("/gzip"))


async def test_time_limit_before_headers(server: Server) -> None:
    guarded = await started(static_hosts=STATIC_HOSTS, address_policy=loopback_too, timeout=0.5)
    try:
        assert "did not complete within 0.5 seconds" in await refused(
            guarded, server.url("/slow-headers")
        )
    finally:
        await guarded.close()


async def test_time_limit_covers_a_trickling_body(server: Server) -> None:
    guarded = await started(static_hosts=STATIC_HOSTS, address_policy=loopback_too, timeout=0.5)
    try:
        assert "did not complete within 0.5 seconds" in await refused(
            guarded, server.url("/slow-body")
        )
    finally:
        await guarded.close()


# --- answers -------------------------------------------------------------------------------


async def test_content_type_must_be_accepted(fetcher: GuardedFetcher, server: Server) -> None:
    message = await refused(fetcher, server.url("/html"), accept=("image/*", "application/pdf"))
    assert "'text/html' is not accepted here" in message
    assert "image/*, application/pdf" in message
    assert "is not accepted" in await refused(fetcher, server.url("/ok"), accept=("image/*",))
    assert "is not accepted" in await refused(
        fetcher, server.url("/pdf"), accept=("application/json",)
    )


@pytest.mark.parametrize("code", [404, 500, 204, 304])
async def test_non_200_answers_are_refused(
    fetcher: GuardedFetcher, server: Server, code: int
) -> None:
    assert f"HTTP {code}" in await refused(fetcher, server.url(f"/status/{code}"))


async def test_unreachable_server_is_a_clean_error(fetcher: GuardedFetcher, server: Server) -> None:
    # public.test on a port nobody listens on: one the kernel just handed out and took back.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    assert "could not be reached" in await refused(fetcher, f"http://public.test:{free_port}/")


async def test_accept_must_be_media_ranges(fetcher: GuardedFetcher) -> None:
    with pytest.raises(ValueError):
        await fetcher.fetch("http://public.test/", accept=())
    with pytest.raises(ValueError):
        await fetcher.fetch("http://public.test/", accept=("images",))


def test_settings_declare_the_fetch_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert defaults.fetch_max_bytes == 20 * 1024 * 1024
    assert defaults.fetch_timeout_seconds == 10.0
    monkeypatch.setenv("GATEWAY_FETCH_MAX_BYTES", "4096")
    monkeypatch.setenv("GATEWAY_FETCH_TIMEOUT_SECONDS", "2.5")
    configured = Settings(_env_file=None)  # type: ignore[call-arg]
    assert configured.fetch_max_bytes == 4096
    assert configured.fetch_timeout_seconds == 2.5
