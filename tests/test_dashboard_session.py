"""The dashboard's page and sign-in session over real HTTP (gateway/dashboard/).

One gateway (logging off: the request API then answers 503 ``logging_disabled`` to a caller
it has authenticated, which is what these tests need to tell "let in" from "refused") and
real keys from the control store. The browser tests (tests/test_dashboard_browser.py) drive
the same session from the page.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.dashboard.routes import CONTENT_SECURITY_POLICY
from gateway.dashboard.sessions import (
    COOKIE_NAME,
    DashboardSessions,
    RedisTable,
    cookie_value,
)
from gateway.errors import GatewayError
from gateway.redisconn import SharedRedis
from gateway.store import ControlStore
from tests.harness import GatewayServer, make_settings

QUERY = "/v1/request/query"
REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Served:
    server: GatewayServer
    key: str
    other_org_key: str
    no_log_scope_key: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=30)


def _keys(settings_dir: Path) -> dict[str, str]:
    """Keys of two orgs, and one that may call models but not read the log."""
    settings = make_settings(settings_dir)

    async def run() -> dict[str, str]:
        store = ControlStore.from_settings(settings)
        try:
            await store.migrate()
            key, _ = await store.create_key("acme", "dashboard")
            other, _ = await store.create_key("globex", "other")
            invoke_only, _ = await store.create_key(
                "acme", "invoke", scopes=frozenset({"gateway:invoke"})
            )
            return {"key": key, "other": other, "invoke": invoke_only}
        finally:
            await store.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("dashboard-session")
    keys = _keys(data_dir)
    settings = make_settings(data_dir, key_cache_ttl_seconds=0)
    with GatewayServer(settings) as server:
        yield Served(server, keys["key"], keys["other"], keys["invoke"])


def _signed_in(client: httpx.Client) -> dict[str, str] | None:
    """Who ``GET /dashboard/api/session`` says is signed in (None: nobody, a 200 all the same)."""
    response = client.get("/dashboard/api/session")
    assert response.status_code == 200, response.text
    data: dict[str, str] | None = response.json()["data"]
    return data


def _sign_in(client: httpx.Client, key: str) -> dict[str, str]:
    response = client.post("/dashboard/api/session", json={"key": key})
    assert response.status_code == 200, response.text
    data: dict[str, str] = response.json()["data"]
    return data


def test_root_redirects_and_the_page_is_served_with_a_strict_policy(served: Served) -> None:
    with served.client() as client:
        root = client.get("/", follow_redirects=False)
        assert root.status_code == 307 and root.headers["location"] == "/dashboard/"
        page = client.get("/dashboard/", headers={"accept-encoding": "gzip"})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "default-src 'none'" in CONTENT_SECURITY_POLICY
        assert "http" not in CONTENT_SECURITY_POLICY  # no host but this origin, anywhere
        assert page.headers["content-encoding"] == "gzip"
        assert '<div id="app"' in page.text
        script = page.text.split('src="', 1)[1].split('"', 1)[0]
        asset = client.get(script)
        assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]
        assert asset.headers["content-type"].startswith("text/javascript")
        assert client.get("/dashboard/assets/nothing.js").status_code == 404
        assert client.get("/dashboard/assets/../../app.py").status_code == 404


def test_sign_in_sets_an_http_only_strict_cookie_that_the_apis_accept_with_csrf(
    served: Served,
) -> None:
    with served.client() as client:
        response = client.post("/dashboard/api/session", json={"key": served.key})
        assert response.status_code == 200, response.text
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE_NAME}=")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        session_id = cookie_value(cookie.split(";")[0], COOKIE_NAME)
        assert session_id is not None and served.key not in cookie
        info = response.json()["data"]
        assert info["org_name"] == "acme" and info["csrf_token"]
        assert served.key not in response.text

        csrf = {"x-gateway-csrf": info["csrf_token"]}
        # Authenticated by the cookie: past auth, the log store answers (here: logging off).
        let_in = client.post(QUERY, json={"filter": "all"}, headers=csrf)
        assert let_in.status_code == 503 and "GATEWAY_LOGGING_ENABLED" in let_in.text
        no_csrf = client.post(QUERY, json={"filter": "all"})
        assert no_csrf.status_code == 403 and "X-Gateway-CSRF" in no_csrf.text
        wrong = client.post(QUERY, json={"filter": "all"}, headers={"x-gateway-csrf": "x"})
        assert wrong.status_code == 403
        # A key in the header wins over the cookie: that key's org and rules, not the session's.
        other = client.post(QUERY, json={"filter": "all"},
                            headers={"authorization": "Bearer sk-helicone-wrong"})  # fmt: skip
        assert other.status_code == 401

        assert client.get("/dashboard/api/session").json()["data"]["org_name"] == "acme"


def test_sign_out_ends_the_session(served: Served) -> None:
    with served.client() as client:
        info = _sign_in(client, served.key)
        csrf = {"x-gateway-csrf": info["csrf_token"]}
        refused = client.delete("/dashboard/api/session")  # sign-out needs the token too
        assert refused.status_code == 403
        out = client.delete("/dashboard/api/session", headers=csrf)
        assert out.status_code == 200 and f"{COOKIE_NAME}=" in out.headers["set-cookie"]
        assert 'Max-Age=0' in out.headers["set-cookie"] or "expires=" in out.headers["set-cookie"]
        cookies = {COOKIE_NAME: client.cookies.get(COOKIE_NAME) or "gone"}
    with served.client() as client:  # the old cookie, replayed, no longer signs anyone in
        client.cookies.update(cookies)
        assert _signed_in(client) is None
        after = client.post(QUERY, json={"filter": "all"}, headers=csrf)
        assert after.status_code in (401, 403)


def test_expired_session_is_refused(served: Served) -> None:
    sessions = served.server.runtime.dashboard_sessions
    with served.client() as client:
        info = _sign_in(client, served.key)
        clock = sessions.clock
        sessions.clock = lambda: clock() + sessions.ttl_seconds + 1
        try:
            expired = client.post(QUERY, json={"filter": "all"},
                                  headers={"x-gateway-csrf": info["csrf_token"]})  # fmt: skip
            assert expired.status_code == 401
            assert "expired" in expired.json()["error"]
            assert _signed_in(client) is None
        finally:
            sessions.clock = clock


def test_sign_in_refusals_are_clear(served: Served) -> None:
    with served.client() as client:
        bad = client.post("/dashboard/api/session", json={"key": "sk-helicone-nope"})
        assert bad.status_code == 401 and "Invalid gateway key" in bad.json()["error"]
        assert "set-cookie" not in bad.headers
        empty = client.post("/dashboard/api/session", json={})
        assert empty.status_code == 400 and "key" in empty.json()["error"]
        garbage = client.post("/dashboard/api/session", content=b"{nope",
                              headers={"content-type": "application/json"})  # fmt: skip
        assert garbage.status_code == 400
        scope = client.post("/dashboard/api/session", json={"key": served.no_log_scope_key})
        assert scope.status_code == 403 and "trace:read" in scope.json()["error"]
        cross = client.post("/dashboard/api/session", json={"key": served.key},
                            headers={"origin": "https://evil.example"})  # fmt: skip
        assert cross.status_code == 403 and "set-cookie" not in cross.headers
        huge = client.post("/dashboard/api/session", json={"key": "k" * 10_000})
        assert huge.status_code == 413


def test_the_cookie_is_secure_behind_a_tls_proxy(served: Served) -> None:
    with served.client() as client:
        plain = client.post("/dashboard/api/session", json={"key": served.key})
        assert "Secure" not in plain.headers["set-cookie"]  # http://127.0.0.1: no TLS here
        proxied = client.post("/dashboard/api/session", json={"key": served.key},
                              headers={"x-forwarded-proto": "https"})  # fmt: skip
        assert "Secure" in proxied.headers["set-cookie"]


def test_form_sign_in_redirects_to_the_page(served: Served) -> None:
    with served.client() as client:
        origin = served.server.url
        response = client.post("/dashboard/api/session", data={"key": served.key},
                               headers={"origin": origin}, follow_redirects=False)  # fmt: skip
        assert response.status_code == 303 and response.headers["location"] == "/dashboard/"
        assert _signed_in(client) is not None


def test_signing_in_again_ends_the_previous_session(served: Served) -> None:
    with served.client() as client:
        first = _sign_in(client, served.key)
        old_cookie = client.cookies.get(COOKIE_NAME)
        second = _sign_in(client, served.other_org_key)  # the browser still sent the old cookie
        assert second["org_name"] == "globex" and second["csrf_token"] != first["csrf_token"]
    with served.client() as client:
        client.cookies.set(COOKIE_NAME, old_cookie or "")
        assert _signed_in(client) is None


def test_sessions_are_scoped_to_the_keys_org_and_end_with_a_revoked_key(served: Served) -> None:
    with served.client() as client:
        info = _sign_in(client, served.other_org_key)
        assert info["org_name"] == "globex"
    with served.client() as client:
        info = _sign_in(client, served.key)
        csrf = {"x-gateway-csrf": info["csrf_token"]}
        async def revoke() -> None:
            await served.server.runtime.store.revoke_key(info["key_id"])

        served.server.call(revoke())
        gone = client.post(QUERY, json={"filter": "all"}, headers=csrf)
        assert gone.status_code == 401
        assert _signed_in(client) is None


async def test_session_table_units() -> None:
    now = [1000.0]
    sessions = DashboardSessions(60, clock=lambda: now[0])
    session_id, session = await sessions.create("digest", "key", "org", "Org")
    assert await sessions.get(session_id) == session
    assert await sessions.get(session_id + "x") is None
    headers = {"cookie": f"other=1; {COOKIE_NAME}={session_id}", "x-gateway-csrf": session.csrf}
    assert await sessions.from_headers(headers) == session
    assert await sessions.from_headers({"cookie": "other=1"}) is None
    now[0] += 61
    assert await sessions.get(session_id) is None


async def test_redis_sessions_are_shared_and_expire() -> None:
    """Two processes' tables over one Redis (as two workers): one signs in, the other sees
    the session; sign-out and expiry hold for both; Redis down is a 503, never a sign-in."""
    redis = SharedRedis(REDIS_URL, prefix=f"test-dashboard-{uuid.uuid4().hex}:")
    other = SharedRedis(REDIS_URL, prefix=redis.prefix)
    await redis.start()
    await other.start()
    try:
        now = [time.time()]
        first = DashboardSessions(60, RedisTable(redis), clock=lambda: now[0])
        second = DashboardSessions(60, RedisTable(other), clock=lambda: now[0])
        session_id, session = await first.create("digest", "key", "org", "Org")
        assert await second.get(session_id) == session
        digest = hashlib.sha256(session_id.encode()).hexdigest()  # kept under the id's digest
        ttl = await redis.client.ttl(f"{redis.prefix}dashboard:{digest}")
        assert 0 < ttl <= 60  # Redis forgets it by itself too
        await second.delete(session_id)
        assert await first.get(session_id) is None

        session_id, _ = await first.create("digest", "key", "org", "Org")
        now[0] += 61
        assert await second.get(session_id) is None
    finally:
        await redis.close()
        await other.close()

    down = SharedRedis(f"redis://127.0.0.1:{_free_port()}/0", retry_after=5)
    await down.start()
    try:
        sessions = DashboardSessions(60, RedisTable(down))
        with pytest.raises(GatewayError) as refused:
            await sessions.from_headers({"cookie": f"{COOKIE_NAME}=anything"})
        assert refused.value.status == 503
    finally:
        await down.close()


def test_a_sign_in_holds_on_every_worker_with_redis(tmp_path: Path) -> None:
    """Two gateways (as two workers or replicas) on one control store and one Redis."""
    keys = _keys(tmp_path)
    settings = make_settings(tmp_path, redis_url=REDIS_URL,
                             redis_key_prefix=f"test-dashboard-{uuid.uuid4().hex}:")  # fmt: skip
    with GatewayServer(settings) as one, GatewayServer(settings) as two:
        signed = httpx.post(one.url + "/dashboard/api/session", json={"key": keys["key"]})
        assert signed.status_code == 200, signed.text
        cookie = signed.headers["set-cookie"].split(";")[0]
        csrf = signed.json()["data"]["csrf_token"]
        headers = {"cookie": cookie, "x-gateway-csrf": csrf}
        assert httpx.get(two.url + "/dashboard/api/session", headers=headers).json()["data"]
        let_in = httpx.post(two.url + QUERY, json={"filter": "all"}, headers=headers)
        assert let_in.status_code == 503 and "GATEWAY_LOGGING_ENABLED" in let_in.text
        out = httpx.delete(two.url + "/dashboard/api/session", headers=headers)
        assert out.status_code == 200
        gone = httpx.get(one.url + "/dashboard/api/session", headers=headers)
        assert gone.status_code == 200 and gone.json() == {"data": None, "error": None}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
