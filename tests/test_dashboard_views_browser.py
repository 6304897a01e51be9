"""The dashboard's Settings, SQL and Prompts views in a real browser (Debian's Chromium via
Playwright, tests/browser.py), against one seeded gateway whose data plane is answered by
the OpenAI emulator.

Every test gets a fresh browser context and fails on any console error (but for statuses it
provokes on purpose) or any request for another host. What the page shows is asserted
against the APIs' own answers. Screenshots go to docs/ with UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

import httpx
import pytest

from tests.browser import CHROMIUM, Site, Tab, open_tab, seeded_site
from tests.emulator import OpenAIEmulator
from tests.harness import wait_for

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

DOCS = Path(__file__).resolve().parent.parent / "docs"
UPSTREAM = "sk-upstream-views"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"), reason="needs Debian's chromium"
)


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=UPSTREAM) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator) -> Iterator[Site]:
    with seeded_site(
        tmp_path_factory.mktemp("dashboard-views"),
        provider_api_keys={"openai": UPSTREAM},
        provider_base_urls={"openai": upstream.base_url},
        key_cache_ttl_seconds=0,
    ) as site:
        yield site


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return DOCS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path_factory.mktemp("screens")


@pytest.fixture
def tab(site: Site) -> Iterator[Tab]:
    with open_tab(site) as tab:
        yield tab


def _get(site: Site, path: str, org: str = "acme") -> httpx.Response:
    return httpx.get(site.url + path, timeout=30,
                     headers={"authorization": f"Bearer {site.keys[org]}"})  # fmt: skip


def _chat(site: Site, key: str) -> httpx.Response:
    return httpx.post(site.url + "/v1/chat/completions", json=CHAT, timeout=30,
                      headers={"authorization": f"Bearer {key}"})  # fmt: skip


def test_settings_creates_a_working_key_and_revokes_it(tab: Tab, shots: Path) -> None:
    page, site = tab.page, tab.site
    tab.sign_in()
    page.click("nav >> text=Settings")
    page.wait_for_selector("#gateway-keys table")
    listed = _get(site, "/v1/gateway-keys").json()["data"]
    shown = page.locator("#gateway-keys tbody tr code").all_inner_texts()
    assert shown == [k["prefix"] for k in listed]
    assert (
        page.inner_text("#provider-keys")
        == "No provider keys: requests use the gateway's own keys."
    )
    expect(page.locator("#credits")).to_contain_text("no credit account")  # once loaded
    health = httpx.get(site.url + "/healthz").json()
    cache = page.locator("[data-group='Response cache'] dd").all_inner_texts()
    assert cache[0] == str(health["cache"]["backend"])
    lookups = health["cache"]["hits"] + health["cache"]["misses"]
    rate = f"{health['cache']['hits'] / lookups * 100:.1f}%" if lookups else "\u2013"
    assert page.locator("[data-group='Response cache'] dt").last.inner_text() == "hit rate"
    assert cache[-1] == rate

    # A key with one scope, created by keyboard: shown once, and it works on the data plane.
    page.fill("#key-name", "from the dashboard")
    page.uncheck("#key-full")
    page.check("input[value='gateway:invoke']")
    page.focus("#key-name")
    page.keyboard.press("Enter")
    field = page.locator("#created-key")
    field.wait_for()
    key = field.input_value()
    assert key not in page.url
    assert key not in page.evaluate("JSON.stringify([localStorage, sessionStorage])")
    answer = _chat(site, key)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"]
    row = page.locator("#gateway-keys tbody tr", has_text="from the dashboard")
    expect(row).to_contain_text("gateway:invoke")
    created = [k for k in _get(site, "/v1/gateway-keys").json()["data"]
               if k["name"] == "from the dashboard"]  # fmt: skip
    assert created[0]["scopes"] == ["gateway:invoke"] and created[0]["active"]
    page.screenshot(path=str(shots / "dashboard-settings.png"), full_page=True)
    page.click("text=Done, hide it")
    assert page.locator("#created-key").count() == 0

    row.get_by_role("button", name="Revoke").click()
    row.get_by_role("button", name="Confirm: revoke").click()
    expect(row).to_contain_text("revoked")
    assert _chat(site, key).status_code == 401


def test_settings_adds_validates_and_deletes_a_provider_key(tab: Tab) -> None:
    page, site = tab.page, tab.site
    tab.expected_statuses.add(400)  # the refused key
    tab.sign_in()
    page.goto(site.url + "/dashboard/#/settings")
    page.wait_for_selector("#provider-keys .state-empty")
    page.select_option("#provider", "openai")
    page.fill("#provider-name", "wrong")
    page.fill("#provider-secret", "sk-not-the-key")
    page.click("form[aria-label='Add a provider key'] button[type=submit]")
    expect(page.locator("form[aria-label='Add a provider key'] .note.error")).to_contain_text(
        "Could not add the key"
    )

    page.fill("#provider-name", "team key")
    page.fill("#provider-secret", UPSTREAM)
    page.click("form[aria-label='Add a provider key'] button[type=submit]")
    row = page.locator("#provider-keys tbody tr", has_text="team key")
    expect(row).to_contain_text("ok")
    stored = _get(site, "/api/environments/@current/llm_analytics/provider_keys/").json()
    assert [k["name"] for k in stored["results"]] == ["team key"]
    assert row.locator("code").inner_text() == stored["results"][0]["api_key_masked"]
    assert UPSTREAM not in page.content()
    # Validate checks again and reloads the list (wait for it: the rows are rebuilt).
    with page.expect_response(lambda r: "provider_keys/?limit" in r.url):
        row.get_by_role("button", name="Validate").click()
    expect(row.get_by_role("status")).to_have_text("")
    expect(row).to_contain_text("ok")
    row.get_by_role("button", name="Delete").click()
    row.get_by_role("button", name="Confirm: delete team key").click()
    page.wait_for_selector("#provider-keys .state-empty")
    assert (
        _get(site, "/api/environments/@current/llm_analytics/provider_keys/").json()["count"] == 0
    )


def test_settings_at_390_px_and_a_scoped_key_is_told_why(site: Site) -> None:
    scoped, _ = site.server.call(
        site.server.runtime.store.create_key("acme", "reader", frozenset({"trace:read"}))
    )
    with open_tab(site) as tab:
        tab.expected_statuses.add(403)
        tab.page.set_viewport_size({"width": 390, "height": 844})
        tab.sign_in(scoped)
        tab.page.click("nav >> text=Settings")
        expect(tab.page.locator("#gateway-keys .state-error")).to_contain_text("full-access key")
        assert tab.page.locator("form[aria-label='Create a gateway key']").is_hidden()
        tab.page.wait_for_selector("#credits :not(.state-loading)")
        width = tab.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390


def test_sql_runs_saves_and_exports_a_query(tab: Tab, shots: Path) -> None:
    page, site = tab.page, tab.site
    tab.sign_in()
    page.click("nav >> text=SQL")
    page.wait_for_selector("#hql-schema details")
    schema = _get(site, "/v1/helicone-sql/schema").json()["data"]
    columns = page.locator("#hql-schema li button").all_inner_texts()
    assert columns == [c["name"] for c in schema[0]["columns"]]

    sql = (
        "SELECT model, count() AS requests FROM request_response_rmt "
        "GROUP BY model ORDER BY requests DESC, model"
    )
    page.fill("#hql", sql)
    page.focus("#hql")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#hql-results table")
    expected = site.api("/v1/helicone-sql/execute", {"sql": sql})["rows"]
    shown = [
        [cell.strip() for cell in row.split("\t")]
        for row in page.locator("#hql-results tbody tr").all_inner_texts()
    ]
    assert shown == [[r["model"], str(r["requests"])] for r in expected]
    assert page.inner_text("#hql-summary").startswith(f"{len(expected)} rows")
    assert page.url.endswith("#/sql?q=" + quote_plus(sql))  # a reload or a link runs it again

    page.fill("#hql-name", "requests by model")
    page.click("#hql-save")
    page.wait_for_selector("#hql-saved button:has-text('requests by model')")
    saved = _get(site, "/v1/helicone-sql/saved-queries").json()["data"]
    assert [(q["name"], q["sql"]) for q in saved] == [("requests by model", sql)]

    page.click("text=CSV")
    link = page.locator("#hql-csv").get_attribute("href")
    assert link is not None and link.startswith(site.url)
    csv = httpx.get(link, timeout=30)
    assert csv.status_code == 200 and csv.text.splitlines()[0].replace('"', "") == "model,requests"
    page.screenshot(path=str(shots / "dashboard-sql.png"), full_page=True)

    # A bad query is explained in words (the API's 400), and the page stays usable.
    tab.expected_statuses.add(400)
    page.fill("#hql", "DROP TABLE request_response_rmt")
    page.click("#hql-run")
    expect(page.locator("#hql-results .state-error")).to_contain_text("The query failed")


def test_prompts_versions_diff_deploy_and_playground(tab: Tab, shots: Path) -> None:
    page, site = tab.page, tab.site
    first = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You answer about {{hc:topic:string}}."},
            {"role": "user", "content": "{{hc:question:string}}"},
        ],
    }
    created = httpx.post(site.url + "/v1/prompt-2025", timeout=30,
                         json={"name": "geo helper", "promptBody": first},
                         headers={"authorization": f"Bearer {site.keys['acme']}"})  # fmt: skip
    assert created.status_code == 201, created.text
    made = created.json()["data"]
    second = {**first, "temperature": 0.2}
    site.api("/v1/prompt-2025/update", {
        "promptId": made["id"], "promptVersionId": made["versionId"], "promptBody": second,
        "commitMessage": "cooler",
    })  # fmt: skip
    site.api("/v1/prompt-2025/update/environment", {
        "promptId": made["id"], "promptVersionId": made["versionId"], "environment": "production",
    })  # fmt: skip
    versions = site.api("/v1/prompt-2025/query/versions", {"promptId": made["id"]})

    tab.sign_in()
    page.click("nav >> text=Prompts")
    page.click(f"[data-prompt-id='{made['id']}']")
    page.wait_for_selector("#prompt-editor")
    rows = page.locator("#prompt-detail tbody tr").all_inner_texts()
    assert [r.split("\t")[0].strip() for r in rows] == [
        f"v{v['major_version']}.{v['minor_version']}" for v in versions
    ]
    assert [("production" in r) for r in rows] == [
        "production" in v["environments"] for v in versions
    ]
    # One field added after the messages: their closing bracket gains a comma.
    assert page.locator(".diff .diff-del").all_inner_texts() == ["-   ]"]
    assert page.locator(".diff .diff-add").all_inner_texts() == ["+   ],", '+   "temperature": 0.2']
    assert page.inner_text("#prompt-variables") == ("Variables: topic: string, question: string")
    assert page.locator("#prompt-editor").input_value() == json_pretty(second)

    # The playground runs the newest version through the gateway (the emulator echoes).
    page.fill("[data-variable=topic]", "geography")
    page.fill("[data-variable=question]", "Where is Paris?")
    page.click("#run-prompt")
    expect(page.locator("#playground-text")).to_contain_text("Where is Paris?")
    # …as an ordinary request of the signed-in key's organisation, logged with its source.
    played = {
        "request_response_rmt": {"properties": {"source": {"equals": "dashboard-playground"}}}
    }
    wait_for("the playground's request in the log", lambda: len(
        site.api("/v1/request/query", {"filter": played, "limit": 10})) == 1)  # fmt: skip
    page.screenshot(path=str(shots / "dashboard-prompts.png"), full_page=True)

    # Deploy the newest version to production; then publish an edit with a new variable.
    page.click("#deploy")
    expect(page.locator("#prompt-detail tbody tr").first).to_contain_text("production")
    deployed = site.api("/v1/prompt-2025/query/production-version", {"promptId": made["id"]})
    assert deployed["id"] == versions[0]["id"]
    edited = (
        page.locator("#prompt-editor")
        .input_value()
        .replace("{{hc:question:string}}", "{{hc:question:string}} in {{hc:lang:string}}")
    )
    page.fill("#prompt-editor", edited)
    expect(page.locator("#prompt-variables")).to_contain_text("lang: string")
    page.fill("#commit-message", "language")
    page.click("#publish")
    expect(page.locator("#prompt-detail tbody tr")).to_have_count(3)
    newest = site.api("/v1/prompt-2025/query/versions", {"promptId": made["id"]})[0]
    assert newest["commit_message"] == "language"


def json_pretty(value: object) -> str:
    """``JSON.stringify(value, null, 2)``."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def test_sql_and_prompts_at_390_px_in_the_dark_theme(site: Site, shots: Path) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "{{hc:q:string}}"}]}
    created = httpx.post(site.url + "/v1/prompt-2025", timeout=30,
                         json={"name": "phone check", "promptBody": body},
                         headers={"authorization": f"Bearer {site.keys['acme']}"})  # fmt: skip
    prompt_id = created.json()["data"]["id"]
    with open_tab(site) as tab:
        page = tab.page
        page.set_viewport_size({"width": 390, "height": 844})
        page.emulate_media(color_scheme="dark")
        tab.sign_in()
        page.goto(f"{site.url}/dashboard/#/prompts/{prompt_id}")
        page.wait_for_selector("#prompt-editor")
        assert page.inner_text("#prompt-variables") == "Variables: q: string"
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
        assert background == "rgb(17, 19, 24)"  # the dark theme's --bg
        page.screenshot(path=str(shots / "dashboard-prompts-390-dark.png"), full_page=True)
        page.goto(f"{site.url}/dashboard/#/sql")
        page.click("#hql-run")
        page.wait_for_selector("#hql-results table")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
