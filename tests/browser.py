"""The dashboard's browser-test harness: a seeded gateway, Debian's Chromium, and a tab that
fails on console errors and on requests to other hosts (tests/test_dashboard_browser.py; new
views' tests use the same).

Chromium is Debian's (``/usr/bin/chromium``; .ci/run installs it), driven by Playwright for
Python with ``executable_path``: Playwright never downloads a browser here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from logging_pipeline.capture import Capture
from tests.analytics_data import ACME, BASE, DATA, GLOBEX, Req, capture_of
from tests.harness import GatewayServer, create_key, make_settings, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
SPAN_MINUTES = max(r.minutes for r in DATA)
ACME_REQUESTS = len([r for r in DATA if r.org == ACME]) + 1
"""What acme's key sees: its part of the dataset and the rich chat."""
PIXEL = (  # a 1x1 PNG, inline: the chat shows it
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
ELSEWHERE = "https://images.example.com/cat.png"  # on another host: shown as text, never loaded
RICH_ID = "0d5c8f5e-7b51-4d3a-9a43-5be1a7a0c001"


def rich_capture(org_id: str, created_at: float, request_id: str = RICH_ID) -> Capture:
    """A request whose chat has every kind of part the request page renders: a system
    prompt, text and image parts (inline and on another host), a tool call and its result,
    and an answer with reasoning; routed, with a failed first attempt."""
    request = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are a travel agent."},
            {"role": "user", "content": [
                {"type": "text", "text": "Where is this, and what is the weather?"},
                {"type": "image_url", "image_url": {"url": PIXEL}},
                {"type": "image_url", "image_url": {"url": ELSEWHERE}},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "lookup_weather", "arguments": '{"city": "Paris"}'},
            }]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
        ],
    }  # fmt: skip
    answer = {
        "id": "rich", "object": "chat.completion", "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": "Paris: sunny, 18 C.",
            "reasoning_content": "The tool says sunny.",
        }}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 8, "total_tokens": 48},
    }  # fmt: skip
    return Capture(
        request_id=request_id, organization_id=org_id, api_key_id="key",
        path="/v1/chat/completions", created_at=created_at, started=1000.0,
        provider="openai", target_url="https://api.openai.com/v1", request_model="gpt-4o",
        request_body=json.dumps(request).encode(), status=200,
        response_body=json.dumps(answer).encode(), finished_at=1000.5,
        properties={"environment": "staging"},
        attempts=[("openai", 503, 30), ("openai", 200, 470)],  # a retry after a 503
        request_headers=[
            (b"authorization", b"Bearer sk-rich-provider-key"),
            (b"helicone-property-environment", b"staging"),
            (b"content-type", b"application/json"),
        ],
        response_headers=((b"Content-Type", b"application/json"), (b"x-request-id", b"req_rich")),
    )  # fmt: skip


@dataclass
class Site:
    """The seeded gateway and the browser."""

    server: GatewayServer
    keys: dict[str, str]
    requests: list[Req]
    browser: Any

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, path: str, body: Any, org: str = "acme") -> Any:
        """POST ``body`` to ``path`` with ``org``'s key: what the page's numbers must equal."""
        response = httpx.post(self.url + path, json=body, timeout=60,
                              headers={"authorization": f"Bearer {self.keys[org]}"})  # fmt: skip
        assert response.status_code == 200, response.text
        return response.json()["data"]


@dataclass
class Tab:
    """One browser context and page, with what went wrong in it."""

    page: Any
    context: Any
    site: Site
    console_errors: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    queries: list[dict[str, Any]] = field(default_factory=list)
    """The bodies of the page's POST /v1/request/query calls, in order."""
    expected_statuses: set[int] = field(default_factory=set)
    """Failed API calls a test provokes on purpose (Chromium logs each as a console error)."""

    def sign_in(self, key: str | None = None) -> None:
        self.page.goto(self.site.url + "/")
        self.page.wait_for_url("**/dashboard/**")
        self.page.fill("#key", key or self.site.keys["acme"])
        self.page.click("button[type=submit]")
        # Signed in: the overview, once its data is in (nothing left in flight).
        self.page.wait_for_selector(".overview-body:not([aria-busy]) > :not(.state-loading)")


@contextmanager
def seeded_site(data_dir: Path, **overrides: Any) -> Iterator[Site]:
    """A gateway with the embedded log, keys of "acme" and "globex", the analytics dataset
    moved so that its last request was an hour ago (all of it within "7 days") plus
    :func:`rich_capture` half an hour ago, and a headless Chromium (closed at the end).
    ``overrides``: more settings (an upstream for the data plane…)."""
    from playwright.sync_api import sync_playwright

    settings = make_settings(data_dir, logging_enabled=True, log_flush_ms=20, **overrides)
    keys = {org: create_key(settings, org=org) for org in ("acme", "globex")}
    now = datetime.now(UTC)
    shift = (now - BASE - timedelta(minutes=SPAN_MINUTES + 60)) / timedelta(minutes=1)
    with GatewayServer(settings) as server, sync_playwright() as pw:
        runtime = server.runtime
        orgs = {
            name: server.call(runtime.authenticate_org({"authorization": f"Bearer {keys[org]}"}))
            for name, org in ((ACME, "acme"), (GLOBEX, "globex"))
        }
        requests = [replace(r, org=orgs[r.org], minutes=r.minutes + shift) for r in DATA]
        writer = runtime.writer
        assert writer is not None

        async def submit() -> None:
            for req in requests:
                writer.submit(capture_of(req))
            writer.submit(rich_capture(orgs[ACME], (now - timedelta(minutes=30)).timestamp()))

        server.call(submit())
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        site = Site(server, keys, requests, browser)
        wait_for("the seeded records", lambda: len(
            site.api("/v1/request/query", {"filter": "all", "limit": 100})) == ACME_REQUESTS)
        try:
            yield site
        finally:
            browser.close()


@contextmanager
def open_tab(site: Site) -> Iterator[Tab]:
    """A fresh browser context (no cookies) at 1280 x 900. Every request goes through an
    interceptor: one for another host is recorded and aborted, the request query's bodies are
    recorded. At the end, the page must have logged no console error (but for the expected
    statuses) and asked for no other host."""
    context = site.browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    tab = Tab(page, context, site)
    own = urlsplit(site.url).netloc

    def route(route: Any) -> None:
        if urlsplit(route.request.url).netloc != own and not route.request.url.startswith("data:"):
            tab.external.append(route.request.url)
            route.abort()
            return
        if route.request.method == "POST" and route.request.url.endswith("/v1/request/query"):
            tab.queries.append(json.loads(route.request.post_data or "{}"))
        route.continue_()

    context.route("**/*", route)
    page.on("console", lambda m: tab.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: tab.console_errors.append(str(e)))
    try:
        yield tab
        unexpected = [
            e
            for e in tab.console_errors
            if not any(f"status of {code} " in e for code in tab.expected_statuses)
        ]
        assert unexpected == [], tab.console_errors
        assert tab.external == []
    finally:
        context.close()
