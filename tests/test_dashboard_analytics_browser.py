"""The dashboard's Sessions, Users and Properties views in a real browser (Debian's Chromium,
tests/browser.py): one gateway for the module, seeded with the analytics dataset plus a
three-level session ("Agent run"), every number on the page asserted against the API's answer.

Each test gets a fresh browser context and fails on any console error or any request for
another host. Screenshots go to docs/ with UPDATE_SCREENSHOTS=1 (as in
tests/test_dashboard_browser.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.analytics_data import BASE, TRIP, Req, capture_of
from tests.browser import CHROMIUM, Site, Tab, open_tab, seeded_site
from tests.harness import wait_for

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

DOCS = Path(__file__).resolve().parent.parent / "docs"
AGENT = "sess-agent"
AGENT_PATHS = (  # (name, seconds into the session, path, status, latency ms)
    ("a1", 0, "/agent", 200, 400),
    ("a2", 1, "/agent/research", 200, 900),
    ("a3", 2, "/agent/research/search", 500, 300),
    ("a4", 3, "/agent/research/search", 200, 600),
    ("a5", 5, "/agent/write", 200, 1200),
)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"), reason="needs Debian's chromium"
)


def agent_requests(org_id: str) -> list[Req]:
    """A session three paths deep, 20 minutes ago, with one failed request."""
    start = (datetime.now(UTC) - timedelta(minutes=20) - BASE) / timedelta(minutes=1)
    return [
        Req(f"agent-{name}", org_id, start + seconds / 60, user="frank", status=status,
            latency=latency, session=AGENT, path=path, session_name="Agent run",
            props={"environment": "prod", "team": "search"}, prompt=30, completion=20)
        for name, seconds, path, status, latency in AGENT_PATHS
    ]  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with seeded_site(tmp_path_factory.mktemp("dashboard-analytics")) as site:
        server = site.server
        org_id = server.call(server.runtime.authenticate_org(
            {"authorization": f"Bearer {site.keys['acme']}"}))  # fmt: skip
        writer = server.runtime.writer
        assert writer is not None

        async def submit() -> None:
            for req in agent_requests(org_id):
                writer.submit(capture_of(req))

        server.call(submit())
        wait_for("the agent session", lambda: _trace(site, AGENT, allow_missing=True))
        yield site


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return DOCS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path_factory.mktemp("screens")


@pytest.fixture
def tab(site: Site) -> Iterator[Tab]:
    with open_tab(site) as tab:
        yield tab


def _trace(site: Site, session_id: str, allow_missing: bool = False) -> Any:
    answer = httpx.get(f"{site.url}/v1/session/{session_id}/trace", timeout=60,
                       headers={"authorization": f"Bearer {site.keys['acme']}"})  # fmt: skip
    if allow_missing and answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    return data if data["totals"]["requests"] == len(AGENT_PATHS) or not allow_missing else None


def _week(unit: str) -> dict[str, Any]:
    end = datetime.now(UTC)
    start = end - timedelta(days=7)
    if unit == "ms":
        return {"startTimeUnixMs": int(start.timestamp() * 1000),
                "endTimeUnixMs": int(end.timestamp() * 1000)}  # fmt: skip
    if unit == "s":
        return {"startTimeUnixSeconds": int(start.timestamp()),
                "endTimeUnixSeconds": int(end.timestamp())}  # fmt: skip
    return {"start": start.isoformat(), "end": end.isoformat()}


def test_sessions_list_shows_the_apis_sessions(tab: Tab, shots: Path) -> None:
    page = tab.page
    tab.sign_in()
    page.click("nav >> text=Sessions")
    rows = page.locator("table.sessions tbody tr")
    expected = tab.site.api("/v1/session/query", {"timeFilter": _week("ms"), "filter": "all"})
    assert [s["session_name"] for s in expected] == ["Agent run", "Research", "Trip plan"]
    expect(rows).to_have_count(3)
    for i, session in enumerate(expected):
        row = rows.nth(i)
        assert row.get_attribute("data-session-id") == session["session_id"]
        cells = row.locator("th, td").all_inner_texts()
        assert cells[0].startswith(session["session_name"]) and session["session_id"] in cells[0]
        assert cells[3] == str(session["total_requests"])
        assert cells[5] == str(session["total_tokens"])
        assert cells[7] == ", ".join(session["user_ids"])
    metrics = tab.site.api("/v1/session/metrics/query",
                           {"timeFilter": _week("ms"), "filter": "all"})  # fmt: skip
    average = metrics["average"]["session_count"][0]["average"]
    assert float(page.get_attribute("[data-metric=avg-requests]", "data-value") or "") == (
        pytest.approx(average))
    assert average == pytest.approx((5 + 2 + 5) / 3)
    page.screenshot(path=str(shots / "dashboard-sessions.png"), full_page=True)

    page.fill("#session-search", "trip")  # the search narrows to one session
    expect(rows).to_have_count(1)
    assert rows.first.get_attribute("data-session-id") == TRIP
    page.fill("#session-search", "research")
    expect(rows.first).to_have_attribute("data-session-id", "sess-research")
    # "Research": one request at /search, one without a path (the root: an item of its own).
    rows.first.locator("a").click()
    page.wait_for_selector("[role=tree] [role=treeitem]")
    items = page.locator("[role=tree] [role=treeitem]").evaluate_all(
        "items => items.map(i => [i.dataset.path, i.getAttribute('aria-level'), "
        "Number(i.dataset.requests)])")
    assert items == [["/", "1", 1], ["/search", "1", 1]]
    page.go_back()
    page.wait_for_selector("table.sessions")
    assert page.input_value("#session-search") == "research"  # from the URL
    rows.first.locator("a").click()
    page.wait_for_selector("[role=tree] [role=treeitem]")
    page.click("a.back")  # a bare #/sessions: the list as it was left
    expect(rows).to_have_count(1)
    assert page.input_value("#session-search") == "research"
    page.fill("#session-search", "no such session")
    page.wait_for_selector(".sessions-body .state-empty")
    assert "no such session" in page.inner_text(".sessions-body")


def test_a_three_level_session_is_a_three_level_tree_and_a_timeline(tab: Tab, shots: Path) -> None:
    page = tab.page
    tab.sign_in()
    page.click("nav >> text=Sessions")
    page.locator(f"table.sessions tr[data-session-id={AGENT}] a").focus()
    page.keyboard.press("Enter")  # opened by keyboard
    page.wait_for_selector("[role=tree] [role=treeitem]")
    assert page.url.endswith(f"#/sessions/{AGENT}")
    trace = _trace(tab.site, AGENT)

    items = page.locator("[role=tree] [role=treeitem]").evaluate_all(
        "items => items.map(i => [i.dataset.path, i.getAttribute('aria-level'), "
        "Number(i.dataset.requests)])")
    assert items == [
        ["/agent", "1", 5],
        ["/agent/research", "2", 3],
        ["/agent/research/search", "3", 2],
        ["/agent/write", "2", 1],
    ]
    agent = trace["tree"]["children"][0]
    assert agent["totals"]["requests"] == 5 and agent["children"][0]["totals"]["requests"] == 3
    search = page.locator("[role=treeitem][data-path='/agent/research/search'] > .node")
    assert "1 failed" in search.inner_text()  # a3 answered 500
    assert "Agent run" in page.inner_text("h1")
    facts = page.inner_text("dl.facts")
    assert "5 (1 failed)" in facts and f"{trace['totals']['total_tokens']} total" in facts

    # The timeline: one bar per request, in the API's order (by path, then time), each a link.
    bars = page.locator(".waterfall li")
    assert bars.evaluate_all("ls => ls.map(l => l.dataset.requestId)") == [
        r["request_id"] for r in trace["requests"]]  # fmt: skip
    lefts = page.locator(".waterfall .wf-bar").evaluate_all(
        "bs => bs.map(b => parseFloat(b.style.left))")
    assert lefts[0] == 0 and lefts[-1] > 50  # /agent/write started 5 s into a ~6 s session
    page.screenshot(path=str(shots / "dashboard-session.png"), full_page=True)

    # The tree by keyboard: down to /agent/research, Left closes it, Right opens it, Enter
    # narrows the timeline to its three requests.
    page.locator("[role=treeitem][data-path='/agent']").focus()
    page.keyboard.press("ArrowDown")
    focused = "document.activeElement.dataset.path"
    assert page.evaluate(focused) == "/agent/research"
    page.keyboard.press("ArrowLeft")
    assert page.get_attribute("[data-path='/agent/research']", "aria-expanded") == "false"
    page.keyboard.press("ArrowDown")  # the closed item's child is skipped
    assert page.evaluate(focused) == "/agent/write"
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowRight")
    assert page.get_attribute("[data-path='/agent/research']", "aria-expanded") == "true"
    page.keyboard.press("Enter")
    expect(bars).to_have_count(3)
    assert page.url.endswith(f"#/sessions/{AGENT}?path=%2Fagent%2Fresearch")
    page.reload()  # the chosen path is in the URL: the same narrowed timeline
    expect(bars).to_have_count(3)
    assert page.get_attribute("[data-path='/agent/research']", "aria-selected") == "true"
    page.click("#trace-show-all")
    expect(bars).to_have_count(5)

    first = trace["requests"][0]["request_id"]
    page.click(f".waterfall li[data-request-id='{first}'] a")
    page.wait_for_selector("dl.facts")
    assert page.url.endswith(f"#/requests/{first}")

    page.set_viewport_size({"width": 390, "height": 844})
    page.go_back()
    page.wait_for_selector(".waterfall li")
    wide = page.evaluate(  # whatever sticks out names itself
        "[...document.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > 391)"
        ".map(e => e.tagName + '.' + e.className)")
    assert wide == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(shots / "dashboard-session-390.png"), full_page=True)


def test_users_show_cost_requests_errors_and_last_seen(tab: Tab, shots: Path) -> None:
    page = tab.page
    tab.sign_in()
    page.click("nav >> text=Users")
    rows = page.locator("table.users tbody tr")
    expected = tab.site.api("/v1/user/metrics/query", {
        "filter": "all", "offset": 0, "limit": 25, "sort": {"cost": "desc"},
        "timeFilter": _week("s")})  # fmt: skip
    expect(rows).to_have_count(len(expected["users"]))
    assert len(expected["users"]) == 6  # alice bob carol dave erin frank
    shown = rows.evaluate_all(
        "rs => rs.map(r => [r.dataset.userId, Number(r.dataset.requests), Number(r.dataset.cost),"
        " r.dataset.errors])")
    assert [s[0] for s in shown] == [u["user_id"] for u in expected["users"]]
    for row, user in zip(shown, expected["users"], strict=True):
        assert row[1] == user["total_requests"] and row[2] == pytest.approx(user["cost"])
    errors = {s[0]: int(s[3]) for s in shown}
    assert errors == {"alice": 0, "bob": 1, "carol": 1, "dave": 0, "erin": 0, "frank": 1}
    last_seen = page.locator("table.users tr[data-user-id=frank] td").last.inner_text()
    assert str(datetime.now().year) in last_seen  # a date, not the "no value" dash
    page.screenshot(path=str(shots / "dashboard-users.png"), full_page=True)

    page.click("button[data-sort=total_requests]")  # sorted by requests, busiest first
    page.wait_for_selector("th[aria-sort=descending] button[data-sort=total_requests]")
    busiest = tab.site.api("/v1/user/metrics/query", {
        "filter": "all", "offset": 0, "limit": 25, "sort": {"total_requests": "desc"},
        "timeFilter": _week("s")})  # fmt: skip
    expect(rows.first).to_have_attribute("data-user-id", busiest["users"][0]["user_id"])
    page.fill("#user-search", "car")
    expect(rows).to_have_count(1)
    assert rows.first.get_attribute("data-user-id") == "carol"
    assert page.url.endswith("#/users?q=car&sort=total_requests.desc")  # a link to this view

    # The user's link opens the request log filtered to them, over the same range.
    rows.first.locator("a.to-requests").focus()
    page.keyboard.press("Enter")
    expect(page.locator("table.requests tbody tr")).to_have_count(2)  # r1, r2
    assert tab.queries[-1]["filter"]["right"] == {
        "request_response_rmt": {"user_id": {"equals": "carol"}}}  # fmt: skip
    assert page.input_value("#requests-range") == "7d"


def test_properties_show_each_values_metrics_in_the_dark(tab: Tab, shots: Path) -> None:
    page = tab.page
    page.emulate_media(color_scheme="dark")
    tab.sign_in()
    page.click("nav >> text=Properties")
    page.wait_for_selector(".property-keys a")
    keys = tab.site.api("/v1/property/query", {})
    assert page.locator(".property-keys a").all_inner_texts() == [k["property"] for k in keys]
    assert "environment" in [k["property"] for k in keys]
    assert page.locator(".property-values .state-empty").inner_text() == (
        "Choose a property name to see its values.")
    page.locator(".property-keys a[data-property=environment]").focus()
    page.keyboard.press("Enter")
    rows = page.locator("table.property-values tbody tr")
    values = tab.site.api("/v1/property/values/query", {"property": "environment",
                                                         "timeFilter": _week("iso")})  # fmt: skip
    expect(rows).to_have_count(len(values))
    assert [v["value"] for v in values] == ["prod", "staging"]
    for i, value in enumerate(values):
        cells = rows.nth(i).locator("th, td").all_inner_texts()
        assert rows.nth(i).get_attribute("data-value") == value["value"]
        assert cells[1] == str(value["requests"]) and cells[2] == str(value["errors"])
        assert float(rows.nth(i).get_attribute("data-cost") or "") == pytest.approx(value["cost"])
        assert cells[8] == str(value["users"])
        assert value["p95_latency"] is not None and cells[7].endswith(" ms")
    chosen = page.locator(".property-keys a[aria-current=page]")
    assert chosen.get_attribute("data-property") == "environment"
    page.screenshot(path=str(shots / "dashboard-properties-dark.png"), full_page=True)

    page.click("table.property-values a.to-requests:text-is('staging')")
    expect(page.locator("table.requests tbody tr")).to_have_count(values[1]["requests"])
    assert tab.queries[-1]["filter"]["right"] == {
        "request_response_rmt": {"properties": {"environment": {"equals": "staging"}}}}  # fmt: skip


def test_the_views_say_when_empty_or_failing(tab: Tab) -> None:
    page = tab.page
    tab.sign_in(tab.site.keys["globex"])  # globex: one request, two days ago
    page.goto(f"{tab.site.url}/dashboard/#/properties/secret_key")
    page.wait_for_selector(".property-values table")
    page.select_option("#property-range", "1h")
    page.wait_for_selector(".property-values .state-empty")
    assert page.inner_text(".property-values") == (
        "No request in the last hour has the property secret_key.")
    page.goto(f"{tab.site.url}/dashboard/#/users")
    page.select_option("#user-range", "1h")
    page.wait_for_selector(".users-body .state-empty")
    assert page.inner_text(".users-body") == "No requests named a user in the last hour."

    tab.expected_statuses.update({404, 503})
    page.goto(f"{tab.site.url}/dashboard/#/sessions/{AGENT}")  # acme's: not globex's
    page.wait_for_selector(".state-error")
    assert page.inner_text(".state-error") == (
        f"Could not load session {AGENT}: Session {AGENT} not found")
    page.route("**/v1/session/query", lambda route: route.fulfill(
        status=503, content_type="application/json",
        body='{"data": null, "error": "The request log store is unavailable; try again."}'))
    page.goto(f"{tab.site.url}/dashboard/#/sessions")
    page.wait_for_selector(".sessions-body .state-error")
    assert page.inner_text(".sessions-body") == (
        "Could not load sessions: The request log store is unavailable; try again.")
