"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against one real
gateway (embedded log store) seeded with the analytics dataset moved to the last two days
(tests/browser.py).

Every test gets a fresh browser context (no cookies) and fails on any console error or any
request for a host other than the gateway's (all such requests are intercepted and aborted).
The screenshots shown in the README are taken by these tests (written to docs/ with
UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.analytics_data import ACME, DATA
from tests.browser import (
    CHROMIUM,
    ELSEWHERE,
    PIXEL,
    RICH_ID,
    Site,
    Tab,
    open_tab,
    rich_capture,
    seeded_site,
)
from tests.harness import wait_for

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

DOCS = Path(__file__).resolve().parent.parent / "docs"
UPDATE_SCREENSHOTS = "UPDATE_SCREENSHOTS"
"""Set (``UPDATE_SCREENSHOTS=1 pytest tests/test_dashboard_browser.py``) to write the
screenshots into docs/; otherwise they go to a temporary directory (still taken, so a view
that cannot be captured fails), and a test run leaves the work tree as it was."""

# Skipped on a developer machine without Chromium; in CI (which installs it) never skipped.
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"), reason="needs Debian's chromium"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with seeded_site(tmp_path_factory.mktemp("dashboard-browser")) as site:
        yield site


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go (docs/ with ``UPDATE_SCREENSHOTS``)."""
    return DOCS if os.environ.get(UPDATE_SCREENSHOTS) else tmp_path_factory.mktemp("screens")


@pytest.fixture
def tab(site: Site) -> Iterator[Tab]:
    with open_tab(site) as tab:
        yield tab


def test_sign_in_sign_out_and_an_expired_session(tab: Tab) -> None:
    page = tab.page
    tab.expected_statuses.add(401)  # the wrong key's sign-in, the expired session's call
    page.goto(tab.site.url + "/")
    page.wait_for_url("**/dashboard/**")
    page.fill("#key", "sk-helicone-not-a-key")
    page.click("button[type=submit]")
    page.wait_for_selector(".note.error")
    assert "Invalid gateway key" in page.inner_text("#signin-message")

    tab.sign_in()
    assert page.inner_text("header .org") == "acme"
    cookies = tab.context.cookies()
    assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [
        ("gateway_dashboard", True, "Strict")]  # fmt: skip
    key = tab.site.keys["acme"]
    assert key not in page.url
    stored = page.evaluate("JSON.stringify([localStorage, sessionStorage, document.cookie])")
    assert key not in stored and "gateway_dashboard" not in stored  # HttpOnly: not readable

    page.click("text=Sign out")
    page.wait_for_selector("#key")
    assert "Signed out" in page.inner_text("#signin-message")
    page.reload()
    page.wait_for_selector("#key")  # the session is gone on the server too

    tab.sign_in()
    sessions = tab.site.server.runtime.dashboard_sessions
    clock = sessions.clock
    sessions.clock = lambda: clock() + sessions.ttl_seconds + 1
    try:
        page.click("nav >> text=Requests")  # the next API call finds the session expired
        page.wait_for_selector("#key")
        assert "expired" in page.inner_text("#signin-message")
    finally:
        sessions.clock = clock


def test_overview_shows_the_apis_numbers(tab: Tab, shots: Path) -> None:
    page = tab.page
    tab.sign_in()
    page.select_option("#range", "7d")
    page.wait_for_selector(".overview-body:not([aria-busy]) .chart .uplot")
    now = datetime.now(UTC)
    window = {"start": (now - timedelta(days=8)).isoformat(), "end": now.isoformat()}
    api = tab.site.api("/v1/dashboard/series/query",
                       {"timeFilter": window, "dbIncrement": "day", "groupBy": None})  # fmt: skip
    totals = api["series"][0]["totals"]
    assert totals["requests"] == len([r for r in DATA if r.org == ACME]) + 1 == 12

    def shown(metric: str) -> float:
        value = page.get_attribute(f"[data-metric={metric}]", "data-value")
        assert value, metric
        return float(value)

    assert shown("requests") == totals["requests"]
    assert shown("errors") == totals["errors"] == 2
    assert shown("tokens") == totals["total_tokens"]
    assert shown("cost") == pytest.approx(totals["cost"])
    assert shown("latency") == pytest.approx(totals["latency"]["avg"])
    assert shown("cache") == totals["cache_hits"] == 1
    saved = api["cache_savings"]  # n3 replays t1's answer
    assert shown("saved") == pytest.approx(saved["cost"]) and saved["cost"] > 0
    assert saved["latency_ms"] > 0
    assert page.inner_text("[data-metric=requests] .card-value") == "12"

    by_model = tab.site.api("/v1/dashboard/series/query", {
        "timeFilter": window, "dbIncrement": "day", "groupBy": "model"})  # fmt: skip
    rows = page.locator("section.panel:has(h2:text('By model')) tbody tr")
    assert rows.count() == len(by_model["series"]) == 2
    for i, series in enumerate(by_model["series"]):
        cells = rows.nth(i).locator("th, td").all_inner_texts()
        assert cells[0] == series["group"] and cells[1] == str(series["totals"]["requests"])
    top_user = page.locator("section.panel:has(h2:text('Top users')) tbody tr").first
    users = tab.site.api("/v1/user/metrics/query", {
        "filter": "all", "offset": 0, "limit": 1, "sort": {"cost": "desc"}})  # fmt: skip
    assert top_user.locator("th").inner_text() == users["users"][0]["user_id"]
    page.screenshot(path=str(shots / "dashboard-overview.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})  # a phone: one column, no sideways
    page.wait_for_timeout(200)  # the charts' resize observer redraws on the next frame
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(shots / "dashboard-overview-390.png"), full_page=False)

    # The range and the zone are in the URL: a reload shows the same overview.
    page.select_option("#zone", "utc")
    page.wait_for_selector(".overview-body:not([aria-busy]) [data-metric=requests]")
    assert page.url.endswith("#/overview?range=7d&tz=utc")
    page.reload()
    page.wait_for_selector(".overview-body:not([aria-busy]) [data-metric=requests]")
    assert (page.input_value("#range"), page.input_value("#zone")) == ("7d", "utc")
    assert shown("requests") == totals["requests"]
    page.focus(".skip")  # the skip link moves the focus to the view, not to another route
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    assert page.url.endswith("#/overview?range=7d&tz=utc")


def test_overview_is_scoped_to_the_org_and_says_when_empty_or_failing(tab: Tab) -> None:
    page = tab.page
    tab.sign_in(tab.site.keys["globex"])
    assert page.inner_text("header .org") == "globex"
    page.select_option("#range", "1h")
    page.wait_for_selector(".overview-body .state-empty")
    assert page.inner_text(".overview-body") == "No requests in the last hour."
    page.select_option("#range", "7d")
    page.wait_for_selector("[data-metric=requests]")
    assert page.get_attribute("[data-metric=requests]", "data-value") == "1"  # acme's are not

    # A custom range: a day long ago is empty, one around now holds globex's request; the
    # request log takes the same span as both bounds of its filter.
    def local(moment: datetime) -> str:  # the browser's time zone is the machine's
        return moment.astimezone().strftime("%Y-%m-%dT%H:%M")

    now = datetime.now(UTC)
    page.select_option("#range", "custom")
    page.fill("#overview-from", local(now - timedelta(days=20)))
    page.fill("#overview-to", local(now - timedelta(days=19)))
    page.wait_for_selector(".overview-body .state-empty")
    assert page.inner_text(".overview-body") == "No requests in the chosen range."
    page.fill("#overview-to", local(now - timedelta(days=21)))
    assert page.inner_text(".custom-range .note") == "The start must be before the end."
    page.fill("#overview-from", local(now - timedelta(days=7)))
    page.fill("#overview-to", local(now + timedelta(hours=1)))
    page.wait_for_selector("[data-metric=requests]")
    assert page.get_attribute("[data-metric=requests]", "data-value") == "1"
    minute = lambda moment: moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")  # noqa: E731
    assert page.url.endswith(  # the ends in UTC, whatever the browser's zone
        f"#/overview?range=custom&from={minute(now - timedelta(days=7))}"
        f"&to={minute(now + timedelta(hours=1))}".replace(":", "%3A"))
    page.click("nav >> text=Requests")
    page.select_option("#requests-range", "custom")
    page.fill("#requests-from", local(now - timedelta(days=7)))
    page.fill("#requests-to", local(now + timedelta(hours=1)))
    page.wait_for_function(
        "document.querySelector('#filter-json').textContent.includes('lte')")
    expect(page.locator("table.requests tbody tr")).to_have_count(1)
    page.fill("#requests-to", local(now - timedelta(days=6)))
    page.wait_for_selector(".results .state-empty")
    page.click("nav >> text=Overview")

    tab.expected_statuses.add(503)
    unavailable = {"data": None, "error": "The request log store is unavailable; try again."}
    page.route("**/v1/dashboard/series/query", lambda route: route.fulfill(
        status=503, content_type="application/json", body=json.dumps(unavailable)))
    page.select_option("#range", "30d")
    page.wait_for_selector(".overview-body .state-error")
    assert page.inner_text(".overview-body .state-error") == (
        "Could not load the overview: The request log store is unavailable; try again.")


def test_filter_builder_sends_the_filter_ast_and_shows_its_rows(tab: Tab, shots: Path) -> None:
    page = tab.page
    tab.sign_in()
    page.click("nav >> text=Requests")
    page.wait_for_selector("table.requests tbody tr")
    assert len(page.locator("table.requests tbody tr").all()) == 12
    assert tab.queries[-1]["sort"] == {"created_at": "desc"}
    newest = page.locator("table.requests tbody tr").first.get_attribute("data-request-id")

    # Paging: 10 a page, then the next page has the other two.
    page.select_option("#page-size", "10")
    expect(page.locator("#older:not([disabled])")).to_have_count(1)
    expect(page.locator("table.requests tbody tr")).to_have_count(10)
    assert (tab.queries[-1]["offset"], tab.queries[-1]["limit"]) == (0, 11)
    page.click("#older")
    expect(page.locator("table.requests tbody tr")).to_have_count(2)
    assert (tab.queries[-1]["offset"], tab.queries[-1]["limit"]) == (10, 11)
    assert page.locator("#older").is_disabled()
    assert page.url.endswith("#/requests?page=2&size=10")
    page.go_back()  # a page is a step in the history: back is the first page
    expect(page.locator("#newer[disabled]")).to_have_count(1)
    expect(page.locator("table.requests tbody tr")).to_have_count(10)
    assert page.locator("table.requests tbody tr").first.get_attribute("data-request-id") == newest
    assert page.url.endswith("#/requests?size=10")
    page.click("#older")
    expect(page.locator("table.requests tbody tr")).to_have_count(2)
    page.click("#newer")
    expect(page.locator("table.requests tbody tr")).to_have_count(10)

    page.click("#add-condition")
    condition = page.locator(".condition").nth(0)
    condition.locator("select.field").select_option("model")
    condition.locator("input.value").fill("gpt-4o")
    page.click("#add-condition")
    second = page.locator(".condition").nth(1)
    second.locator("select.field").select_option("properties")
    second.locator("input.key").fill("environment")
    second.locator("input.value").fill("prod")
    second.locator("input.value").press("Enter")
    expect(page.locator("table.requests tbody tr")).to_have_count(2)

    sent = tab.queries[-1]["filter"]
    since = sent["left"]["request_response_rmt"]["request_created_at"]["gte"]
    assert datetime.fromisoformat(since) < datetime.now(UTC) - timedelta(days=6.9)
    assert sent == {
        "left": {"request_response_rmt": {"request_created_at": {"gte": since}}},
        "operator": "and",
        "right": {
            "left": {"request_response_rmt": {"model": {"equals": "gpt-4o"}}},
            "operator": "and",
            "right": {"request_response_rmt": {"properties": {"environment": {"equals": "prod"}}}},
        },
    }
    assert json.loads(page.text_content("#filter-json") or "") == sent  # shown under "Query" too
    expected = tab.site.api("/v1/request/query", {"filter": sent, "limit": 100})
    shown = page.locator("table.requests tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.requestId)")
    assert sorted(shown) == sorted(r["request_id"] for r in expected)
    assert len(expected) == 2  # t2 and n1: gpt-4o in prod

    page.click("button[data-sort=latency]")
    page.wait_for_selector("th[aria-sort] button[data-sort=latency]")
    assert tab.queries[-1]["sort"] == {"latency": "desc"}
    latencies = [r["delay_ms"] for r in expected]
    first = page.locator("table.requests tbody tr").first.get_attribute("data-request-id")
    assert first == next(r["request_id"] for r in expected if r["delay_ms"] == max(latencies))
    page.screenshot(path=str(shots / "dashboard-requests.png"), full_page=True)

    # A custom range, the conditions, the sort and the page size are in the URL (the range's
    # ends in UTC): a reload shows the same filter, sends the same query and shows the same rows.
    def local(moment: datetime) -> str:
        return moment.astimezone().strftime("%Y-%m-%dT%H:%M")

    now = datetime.now(UTC)
    ends = [(moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")).replace(":", "%3A")
            for moment in (now - timedelta(days=8), now + timedelta(hours=1))]  # fmt: skip
    page.select_option("#requests-range", "custom")
    page.fill("#requests-from", local(now - timedelta(days=8)))
    page.fill("#requests-to", local(now + timedelta(hours=1)))
    page.wait_for_function(f"location.hash.includes('&to={ends[1]}&')")
    page.wait_for_selector(".results:not([aria-busy]) table.requests")
    expect(page.locator("table.requests tbody tr")).to_have_count(2)
    url, before, rows = page.url, tab.queries[-1], len(tab.queries)
    assert f"#/requests?range=custom&from={ends[0]}&to={ends[1]}&f=" in url
    page.reload()
    expect(page.locator("table.requests tbody tr")).to_have_count(2)
    assert page.url == url and len(tab.queries) == rows + 1 and tab.queries[-1] == before
    assert page.input_value("#requests-range") == "custom"
    assert page.input_value("#requests-from") == local(now - timedelta(days=8))
    assert [page.locator(".condition").nth(i).locator("input.value").input_value()
            for i in range(2)] == ["gpt-4o", "prod"]  # fmt: skip
    assert page.locator(".condition").nth(1).locator("input.key").input_value() == "environment"
    assert page.locator("th[aria-sort=descending] button").get_attribute("data-sort") == "latency"
    assert page.locator("table.requests tbody tr").first.get_attribute("data-request-id") == first
    page.select_option("#requests-range", "7d")
    expect(page.locator("table.requests tbody tr")).to_have_count(2)

    # Any condition (or), and a number: status >= 400 or environment = prod.
    before = len(tab.queries)
    page.select_option("#join", "or")
    condition.locator("select.field").select_option("status")
    condition.locator("select.op").select_option("gte")
    condition.locator("input.value").fill("400")
    condition.locator("input.value").press("Enter")
    expect(page.locator("table.requests tbody tr")).to_have_count(6)
    sent = tab.queries[-1]["filter"]
    assert len(tab.queries) > before and sent["right"] == {
        "left": {"request_response_rmt": {"status": {"gte": 400}}},
        "operator": "or",
        "right": {"request_response_rmt": {"properties": {"environment": {"equals": "prod"}}}},
    }
    expected = tab.site.api("/v1/request/query", {"filter": sent, "limit": 100})
    shown = page.locator("table.requests tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.requestId)")
    assert sorted(shown) == sorted(r["request_id"] for r in expected)  # t1 t2 t4 n1, t3 r2

    # A yes/no field: both conditions removed, then "cache hit = yes" (a boolean in the AST).
    page.click(".condition button[aria-label='Remove condition']")
    page.click(".condition button[aria-label='Remove condition']")
    expect(page.locator(".condition")).to_have_count(0)
    page.click("#add-condition")
    page.locator(".condition select.field").select_option("cached")
    expect(page.locator("table.requests tbody tr")).to_have_count(1)
    assert tab.queries[-1]["filter"]["right"] == {
        "request_response_rmt": {"cached": {"equals": True}}}
    cache_hit = next(r.id for r in tab.site.requests if r.name == "n3")
    assert page.locator("table.requests tbody tr").get_attribute("data-request-id") == cache_hit

    # A link with a malformed or stale state: the defaults, and no error (the fixture checks).
    page.goto(f"{tab.site.url}/dashboard/#/requests?range=custom&from=soon&f=%5B%5B&page=-1"
              "&sort=evil.desc&size=7")  # fmt: skip
    expect(page.locator(".condition")).to_have_count(0)
    expect(page.locator("table.requests tbody tr")).to_have_count(12)
    assert page.input_value("#requests-range") == "7d"
    assert page.url.endswith("#/requests")


def test_request_page_renders_the_chat_by_keyboard(tab: Tab, shots: Path) -> None:
    page = tab.page
    tab.sign_in()
    page.click("nav >> text=Requests")
    page.wait_for_selector("table.requests tbody tr")
    row = page.locator("table.requests tbody tr").last  # the oldest: t1, in session "Trip"
    request_id = row.get_attribute("data-request-id")
    row.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(".chat .msg-assistant")
    assert request_id is not None and request_id in page.url
    messages = page.locator(".chat .msg").evaluate_all(
        "ms => ms.map(m => [m.querySelector('.msg-role').textContent,"
        " m.querySelector('.msg-text')?.textContent])")
    assert messages == [["user", "t1"], ["assistant", "ok"]]
    facts = page.inner_text("dl.facts")
    assert request_id in facts and "gpt-4o-mini" in facts
    assert "Trip plan" in page.inner_text("section.panel:has(h2:text('Properties'))")
    raw = page.inner_text("details:has(summary:text('Request body')) pre")
    assert json.loads(raw)["messages"] == [{"role": "user", "content": "t1"}]
    page.click("#response-headers summary")  # seeded without headers: said so, in words
    assert page.inner_text("#response-headers summary") == "Response headers (not kept)"
    assert "No response headers kept" in page.inner_text("#response-headers .state-empty")
    page.screenshot(path=str(shots / "dashboard-request.png"), full_page=True)

    # A cache hit links to the request whose answer it replayed.
    hit = next(r.id for r in tab.site.requests if r.name == "n3")
    page.goto(f"{tab.site.url}/dashboard/#/requests/{hit}")
    page.click(f"dl.facts a[href='#/requests/{request_id}']")  # n3 replays t1's answer
    page.wait_for_selector(".chat .msg-text:text('t1')")  # t1's own page now
    page.focus("a.back")  # back to the list by keyboard: the filters and page are kept
    page.keyboard.press("Enter")
    page.wait_for_selector("table.requests tbody tr")


def test_request_page_renders_tools_images_and_reasoning_in_the_dark(tab: Tab, shots: Path) -> None:
    page = tab.page
    page.emulate_media(color_scheme="dark")
    tab.sign_in()
    background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    assert background == "rgb(17, 19, 24)"  # the dark palette, from the system setting
    page.goto(f"{tab.site.url}/dashboard/#/requests/{RICH_ID}")
    page.wait_for_selector(".chat .msg-assistant .reasoning")
    roles = page.locator(".chat .msg .msg-role").all_text_contents()
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    user = page.locator(".chat .msg-user")
    assert user.locator("img.chat-image").get_attribute("src") == PIXEL
    assert ELSEWHERE in user.inner_text()  # named, not loaded (the fixture checks no request)
    call = page.locator(".chat .msg-assistant").first.inner_text()
    assert "lookup_weather" in call and '"city": "Paris"' in call
    assert "18 C, sunny" in page.locator(".chat .msg-tool").inner_text()
    last = page.locator(".chat .msg-assistant").last
    assert "Paris: sunny, 18 C." in last.inner_text()
    last.locator(".reasoning summary").click()
    assert "The tool says sunny." in last.locator(".reasoning").inner_text()
    page.click("#request-headers summary")  # the kept headers, open in the docs' screenshot
    page.click("#response-headers summary")
    assert "REDACTED" in page.inner_text("#request-headers")
    page.screenshot(path=str(shots / "dashboard-request-dark.png"), full_page=True)


def test_feedback_is_saved_through_the_session(tab: Tab) -> None:
    """A state-changing call from the page: the cookie plus its CSRF token, nothing else."""
    page = tab.page
    tab.sign_in()
    request_id = next(r.id for r in tab.site.requests if r.name == "t5")
    page.goto(f"{tab.site.url}/dashboard/#/requests/{request_id}")
    page.wait_for_selector("#feedback-good[aria-pressed=false]")
    page.click("#feedback-bad")
    page.wait_for_selector("#feedback-bad[aria-pressed=true]")
    assert page.inner_text(".panel:has(h2:text('Feedback')) .note") == "Saved."

    def rated() -> bool | None:
        answer = httpx.get(f"{tab.site.url}/v1/request/{request_id}",
                           headers={"authorization": f"Bearer {tab.site.keys['acme']}"})
        return answer.json()["data"]["feedback_rating"] is False or None

    wait_for("the feedback in the log", rated)
    page.reload()
    page.wait_for_selector("#feedback-bad[aria-pressed=true]")
    assert "helicone-score-feedback" in page.inner_text(".panel:has(h2:text('Scores'))")


def test_request_page_breaks_down_the_cost_and_edits_scores_and_properties(tab: Tab) -> None:
    """The cost lines and the attempts are the API's; a score and a property added in the
    page reach the log."""
    page = tab.page
    tab.sign_in()
    url = f"{tab.site.url}/v1/request/{RICH_ID}"
    auth = {"authorization": f"Bearer {tab.site.keys['acme']}"}
    api = httpx.get(url, headers=auth).json()["data"]
    page.goto(f"{tab.site.url}/dashboard/#/requests/{RICH_ID}")
    page.wait_for_selector("#cost-breakdown")
    lines = page.locator("#cost-breakdown tbody tr").evaluate_all(
        "rs => rs.map(r => [...r.children].map(c => c.textContent))")
    cached = (api["prompt_cache_read_tokens"] or 0) + (api["prompt_cache_write_tokens"] or 0)
    assert lines[0][:2] == ["Prompt", str(api["prompt_tokens"] - cached)]
    assert lines[3][:2] == ["Completion", str(api["completion_tokens"])]
    assert lines[0][2].endswith("/ 1M")  # gpt-4o has a list price in the registry
    assert lines[-1][0] == "Recorded cost" and api["cost"] > 0
    attempts = page.locator("#attempts tbody tr").evaluate_all(
        "rs => rs.map(r => [...r.children].map(c => c.textContent))")
    assert [(a[1], a[2], a[3]) for a in attempts] == [
        (a["source"], str(a["status"]), f"{a['latency_ms']} ms") for a in api["attempts"]]
    assert [a["status"] for a in api["attempts"]] == [503, 200]

    # The headers the log kept, behind their summaries: readable, but for the credential.
    page.click("#request-headers summary")
    sent = page.locator("#request-headers table.headers tbody tr").evaluate_all(
        "rs => rs.map(r => [...r.children].map(c => c.textContent))")
    assert ["helicone-property-environment", "staging"] in sent
    assert ["authorization", "REDACTED"] in sent
    assert "sk-rich-provider-key" not in page.content()
    page.click("#response-headers summary")
    assert page.inner_text("#response-headers tr:has(th:text-is('x-request-id')) td") == "req_rich"

    page.fill("#score-form input[name=name]", "accuracy")
    page.fill("#score-form input[name=value]", "0.75")
    page.click("#score-form button[type=submit]")
    page.wait_for_selector("#score-table th:text('accuracy')")
    page.fill("#property-form input[name=name]", "reviewed")
    page.fill("#property-form input[name=value]", "yes")
    page.click("#property-form button[type=submit]")
    page.wait_for_selector("#property-table th:text('reviewed')")

    def annotated() -> bool | None:
        data = httpx.get(url, headers=auth).json()["data"]
        return (data["scores"].get("accuracy") == 0.75
                and data["request_properties"].get("reviewed") == "yes") or None

    wait_for("the score and the property in the log", annotated)


def test_the_first_load_is_small(site: Site) -> None:
    """Everything the page loads before the first view, compressed as served: ≤ 500 KB."""
    page = httpx.get(site.url + "/dashboard/", headers={"accept-encoding": "gzip"})
    total = int(page.headers.get("content-length", len(page.content)))
    for part in page.text.split('"/dashboard/assets/')[1:]:
        name = part.split('"', 1)[0]
        with httpx.stream("GET", f"{site.url}/dashboard/assets/{name}",
                          headers={"accept-encoding": "gzip"}) as asset:  # fmt: skip
            assert asset.headers["content-encoding"] == "gzip"
            total += int(asset.headers["content-length"])
    assert 0 < total <= 500_000


def test_column_chooser_and_live_tail(tab: Tab) -> None:
    """Last in the module: it logs one more request (for globex, whose count the scoping
    test reads)."""
    page = tab.page
    tab.sign_in(tab.site.keys["globex"])
    page.click("nav >> text=Requests")
    rows = page.locator("table.requests tbody tr")
    expect(rows).to_have_count(1)
    headers = page.locator("table.requests thead th")
    assert "Provider" in headers.all_text_contents()

    page.click("details.columns summary")
    page.uncheck("details.columns input[value=provider]")
    page.check("details.columns input[value=id]")
    labels = headers.all_text_contents()
    assert "Provider" not in labels and "Request id" in labels
    first_id = rows.first.get_attribute("data-request-id")
    assert first_id and first_id in rows.first.inner_text()

    page.check("#live")
    server = tab.site.server
    writer = server.runtime.writer
    assert writer is not None
    org_id = server.call(server.runtime.authenticate_org(
        {"authorization": f"Bearer {tab.site.keys['globex']}"}))

    async def log_one() -> None:
        writer.submit(rich_capture(org_id, datetime.now(UTC).timestamp(),
                                   request_id="0d5c8f5e-7b51-4d3a-9a43-5be1a7a0c002"))

    server.call(log_one())
    expect(rows).to_have_count(2, timeout=30_000)  # the next reload (every 5 s) shows it
    assert rows.first.get_attribute("data-request-id") == "0d5c8f5e-7b51-4d3a-9a43-5be1a7a0c002"
    assert "Provider" not in headers.all_text_contents()  # the chosen columns stay

    # After a reload: the columns (this browser's choice) and the live tail (in the URL).
    assert page.url.endswith("#/requests?live=1")
    page.reload()
    expect(rows).to_have_count(2)
    labels = headers.all_text_contents()
    assert "Provider" not in labels and "Request id" in labels and page.is_checked("#live")
