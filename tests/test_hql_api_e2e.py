"""End to end: ``/v1/helicone-sql/*`` over real HTTP on a real gateway with real traffic.

Requests go through the gateway with the OpenAI SDK for two organizations; once written, HQL
is used exactly as a Helicone client would: execute, schema, download (then the link is
fetched), saved queries. Two deployments: the default (embedded chdb in the log writer child,
local bodies: signed gateway links) and a server one (clickhouse-connect to
``tests/clickhouse_http.py``, bodies in S3 (moto): presigned links).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest

from tests.clickhouse_http import ChdbHttpServer
from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings
from tests.hql_cases import EXAMPLES, REJECTED
from tests.s3_server import ACCESS_KEY, SECRET_KEY, MotoS3Server, moto_s3_server

KEY = "sk-emulator"
ORGS = ("acme", "globex", "rejects", "limits", "saver")
TRAFFIC = {
    "acme": [("gpt-4o-mini", "alice"), ("gpt-4o-mini", "bob"), ("gpt-4o", "alice")],
    "globex": [("gpt-4o", "globex-secret-user")],
}


@dataclass
class Deployment:
    server: GatewayServer
    keys: dict[str, str]

    def headers(self, org: str | None) -> dict[str, str]:
        return {} if org is None else {"authorization": f"Bearer {self.keys[org]}"}

    def post(self, org: str | None, path: str, body: Any) -> httpx.Response:
        return httpx.post(self.server.url + path, json=body, headers=self.headers(org), timeout=60)

    def call(self, method: str, org: str | None, path: str, body: Any = None) -> httpx.Response:
        return httpx.request(
            method, self.server.url + path, json=body, headers=self.headers(org), timeout=60
        )

    def execute(self, org: str, sql: str) -> dict[str, Any]:
        response = self.post(org, "/v1/helicone-sql/execute", {"sql": sql})
        assert response.status_code == 200, response.text
        payload = response.json()
        assert payload["error"] is None
        return dict(payload["data"])


def _seed(deployment: Deployment, upstream: OpenAIEmulator) -> None:
    for org, calls in TRAFFIC.items():
        client = openai.OpenAI(
            base_url=deployment.server.url + "/v1", api_key=deployment.keys[org], max_retries=0
        )
        try:
            for model, user in calls:
                client.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": "hi"}],
                    extra_headers={
                        "Helicone-User-Id": user,
                        "Helicone-Property-Environment": "prod",
                        "Helicone-Session-Id": f"{org}-session",
                    },
                )
        finally:
            client.close()
    deadline = time.monotonic() + 30
    for org, calls in TRAFFIC.items():
        while True:
            data = deployment.execute(org, "SELECT count() AS n FROM request_response_rmt")
            if data["rows"] == [{"n": len(calls)}]:
                break
            assert time.monotonic() < deadline, f"{org}: rows not written: {data}"
            time.sleep(0.1)


def _start(settings_dir: Path, upstream: OpenAIEmulator, **storage: Any) -> Iterator[Deployment]:
    settings = make_settings(
        settings_dir,
        provider_api_keys={"openai": KEY},
        provider_base_urls={"openai": upstream.base_url},
        logging_enabled=True,
        log_flush_ms=20,
        **storage,
    )
    keys = {org: create_key(settings, org=org) for org in ORGS}
    with GatewayServer(settings) as server:
        deployment = Deployment(server, keys)
        _seed(deployment, upstream)
        yield deployment


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def embedded(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator
) -> Iterator[Deployment]:
    yield from _start(tmp_path_factory.mktemp("hql"), upstream)


@pytest.fixture(scope="module")
def s3_server() -> Iterator[MotoS3Server]:
    yield from moto_s3_server()


@pytest.fixture(scope="module")
def server_deployment(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator, s3_server: MotoS3Server
) -> Iterator[Deployment]:
    clickhouse = ChdbHttpServer(tmp_path_factory.mktemp("ch")).start()
    try:
        yield from _start(
            tmp_path_factory.mktemp("hql-server"),
            upstream,
            clickhouse_url=clickhouse.url,
            s3_endpoint=s3_server.endpoint,
            s3_bucket_name="hql-bodies",
            s3_access_key=ACCESS_KEY,
            s3_secret_key=SECRET_KEY,
        )
    finally:
        clickhouse.stop()


# -- execute ---------------------------------------------------------------------------------


def test_rest_example_answers_the_documented_shape(embedded: Deployment) -> None:
    data = embedded.execute("acme", EXAMPLES["rest"])
    assert set(data) == {"rows", "elapsedMilliseconds", "size", "rowCount"}
    assert data["rows"] == [
        {"request_model": "gpt-4o-mini", "count": 2},
        {"request_model": "gpt-4o", "count": 1},
    ]
    assert data["rowCount"] == 2 and data["size"] > 0 and data["elapsedMilliseconds"] >= 0


def test_every_documented_example_runs_for_each_org(embedded: Deployment) -> None:
    for org in ("acme", "globex"):
        for name, sql in EXAMPLES.items():
            data = embedded.execute(org, sql)
            text = repr(data["rows"])
            other = "globex" if org == "acme" else "acme"
            assert f"{other}-session" not in text, (org, name)
            if org == "acme":
                assert "globex-secret-user" not in text
    dau = embedded.execute("acme", EXAMPLES["dau"])["rows"]
    assert [row["dau"] for row in dau] == [2]
    sessions = embedded.execute("acme", EXAMPLES["sessions"])["rows"]
    assert [row["session_id"] for row in sessions] == ["acme-session"]


def test_body_columns_are_filled_from_the_body_store(embedded: Deployment) -> None:
    rows = embedded.execute(
        "acme",
        "SELECT request_id, request_body, response_body FROM request_response_rmt "
        "ORDER BY request_created_at LIMIT 1",
    )["rows"]
    assert rows[0]["request_body"]["messages"] == [{"role": "user", "content": "hi"}]
    assert rows[0]["response_body"]["object"] == "chat.completion"
    # Without request_id the cells stay the table's own (empty) copies.
    plain = embedded.execute("acme", "SELECT response_body FROM request_response_rmt LIMIT 1")
    assert plain["rows"] == [{"response_body": ""}]


def test_cross_org_attempts_over_http(embedded: Deployment) -> None:
    for sql in (
        "SELECT user_id FROM request_response_rmt WHERE user_id = 'globex-secret-user'",
        "SELECT * FROM request_response_rmt WHERE 1 OR 1",
        "SELECT a.user_id FROM request_response_rmt a "
        "LEFT JOIN request_response_rmt b ON a.request_id = b.request_id",
    ):
        rows = embedded.execute("acme", sql)["rows"]
        assert "globex" not in repr(rows), sql
    assert embedded.execute("globex", "SELECT DISTINCT user_id FROM request_response_rmt")[
        "rows"
    ] == [{"user_id": "globex-secret-user"}]


def test_regression_cases_are_refused_with_their_code(embedded: Deployment) -> None:
    for name, (sql, code) in REJECTED.items():
        response = embedded.post("rejects", "/v1/helicone-sql/execute", {"sql": sql})
        assert response.status_code == 400, (name, response.text)
        error = response.json()["error"]
        assert response.json()["data"] is None
        assert error["code"] == code and error["message"] and "details" in error, name


def test_bad_bodies_and_auth(embedded: Deployment) -> None:
    url = embedded.server.url + "/v1/helicone-sql/execute"
    no_key = httpx.post(url, json={"sql": "SELECT 1"})
    assert no_key.status_code == 401 and no_key.json()["data"] is None
    headers = embedded.headers("rejects")
    for content, code in (
        (b"not json", "HQL_INVALID_REQUEST"),
        (b"[1]", "HQL_INVALID_REQUEST"),
        (b"{}", "HQL_MISSING_QUERY_SQL"),
    ):
        response = httpx.post(url, content=content, headers=headers)
        assert response.status_code == 400 and response.json()["error"]["code"] == code
    unknown = embedded.post(
        "rejects", "/v1/helicone-sql/execute", {"sql": "SELECT nope FROM request_response_rmt"}
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "HQL_SYNTAX_ERROR"
    assert "nope" in unknown.json()["error"]["details"]


def test_schema(embedded: Deployment) -> None:
    response = embedded.call("GET", "acme", "/v1/helicone-sql/schema")
    assert response.status_code == 200, response.text
    (table,) = response.json()["data"]
    names = {column["name"] for column in table["columns"]}
    assert table["table_name"] == "request_response_rmt"
    assert "organization_id" not in names
    assert {"request_model", "provider_total_cost", "cost", "properties"} <= names


# -- download ---------------------------------------------------------------------------------


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_download_gives_a_signed_expiring_link(embedded: Deployment) -> None:
    response = embedded.post("acme", "/v1/helicone-sql/download", {"sql": EXAMPLES["download"]})
    assert response.status_code == 200, response.text
    link = response.json()["data"]
    assert link.startswith(embedded.server.url + "/v1/helicone-sql/exports/")
    fetched = httpx.get(link)  # no API key: the link is the credential
    assert fetched.status_code == 200
    assert fetched.headers["content-type"].startswith("text/csv")
    rows = _csv(fetched.text)
    assert len(rows) == 3 and {row["user_id"] for row in rows} == {"alice", "bob"}
    assert "organization_id" not in rows[0]
    parts = urlsplit(link)
    query = parse_qs(parts.query)
    forged = f"{parts.scheme}://{parts.netloc}{parts.path}?expires={int(query['expires'][0]) + 1}"
    assert httpx.get(forged + f"&signature={query['signature'][0]}").status_code == 403
    other = link.replace(parts.path.split("/")[4], "00000000-0000-4000-8000-000000000000")
    assert httpx.get(other).status_code == 403
    empty = embedded.post(
        "acme",
        "/v1/helicone-sql/download",
        {"sql": "SELECT * FROM request_response_rmt WHERE status = 999"},
    )
    assert empty.status_code == 404
    assert empty.json()["error"]["code"] == "HQL_NO_DATA_RETURNED"


def test_expired_local_link_is_refused(embedded: Deployment) -> None:
    exports = embedded.server.runtime.hql.local_exports
    response = embedded.post("acme", "/v1/helicone-sql/download", {"sql": EXAMPLES["rest"]})
    parts = urlsplit(response.json()["data"])
    _, _, _, _, org, name = parts.path.split("/")
    past = int(time.time()) - 1
    signature = exports.signature(org, name, past)
    expired = f"{embedded.server.url}{parts.path}?expires={past}&signature={signature}"
    refused = httpx.get(expired)
    assert refused.status_code == 403 and "expired" in refused.json()["error"]


# -- rate limits -------------------------------------------------------------------------------


def test_per_org_rate_limits(embedded: Deployment) -> None:
    for _ in range(10):
        ok = embedded.post("limits", "/v1/helicone-sql/download", {"sql": "SELECT 1"})
        assert ok.status_code == 200, ok.text
    refused = embedded.post("limits", "/v1/helicone-sql/download", {"sql": "SELECT 1"})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "HQL_RATE_LIMITED"
    assert int(refused.headers["retry-after"]) >= 1
    # GCRA: 100 at once, then the quota comes back at 100 a minute, so a 429 follows soon.
    statuses = []
    while 429 not in statuses and len(statuses) < 150:
        response = embedded.post("limits", "/v1/helicone-sql/execute", {"sql": "SELECT 1"})
        statuses.append(response.status_code)
    assert statuses[:100] == [200] * 100 and statuses[-1] == 429
    assert response.json()["error"]["code"] == "HQL_RATE_LIMITED"
    # Another organization is not affected.
    assert embedded.post("acme", "/v1/helicone-sql/execute", {"sql": "SELECT 1"}).status_code == 200


# -- saved queries -----------------------------------------------------------------------------


def test_saved_queries_crud(embedded: Deployment) -> None:
    base = "/v1/helicone-sql/saved-query"
    created = embedded.call("POST", "saver", base, {"name": "by model", "sql": EXAMPLES["rest"]})
    assert created.status_code == 200, created.text
    query = created.json()["data"]
    assert query["name"] == "by model" and query["sql"] == EXAMPLES["rest"]
    listed = embedded.call("GET", "saver", "/v1/helicone-sql/saved-queries").json()["data"]
    assert [q["id"] for q in listed] == [query["id"]]
    assert embedded.call("GET", "saver", f"{base}/{query['id']}").json()["data"] == query
    # Another organization cannot see, change or delete it.
    for method in ("GET", "PUT", "DELETE"):
        other = embedded.call(method, "acme", f"{base}/{query['id']}", {"name": "x"})
        assert other.status_code == 404
        assert other.json()["error"]["code"] == "HQL_QUERY_NOT_FOUND"
    assert embedded.call("GET", "acme", "/v1/helicone-sql/saved-queries").json()["data"] == []
    updated = embedded.call("PUT", "saver", f"{base}/{query['id']}", {"sql": "SELECT 2"})
    assert updated.status_code == 200 and updated.json()["data"]["sql"] == "SELECT 2"
    duplicate = embedded.call("POST", "saver", base, {"name": "by model", "sql": "SELECT 1"})
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "HQL_QUERY_NAME_EXISTS"
    for body, code in (
        ({"sql": "SELECT 1"}, "HQL_MISSING_QUERY_NAME"),
        ({"name": "x" * 255, "sql": "SELECT 1"}, "HQL_QUERY_NAME_TOO_LONG"),
        ({"name": "n"}, "HQL_MISSING_QUERY_SQL"),
        ({"name": "n", "sql": "SELECT * FROM system.tables"}, "HQL_INVALID_TABLE"),
    ):
        refused = embedded.call("POST", "saver", base, body)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == code
    deleted = embedded.call("DELETE", "saver", f"{base}/{query['id']}")
    assert deleted.status_code == 200 and deleted.json() == {"data": None, "error": None}
    assert embedded.call("GET", "saver", f"{base}/{query['id']}").status_code == 404
    assert embedded.call("GET", "saver", f"{base}/not-a-uuid").status_code == 404


# -- a ClickHouse server and S3 ----------------------------------------------------------------


def test_server_deployment_execute_schema_download_saved(server_deployment: Deployment) -> None:
    deployment = server_deployment
    for sql in EXAMPLES.values():
        rows = deployment.execute("acme", sql)["rows"]
        assert "globex" not in repr(rows)
    assert deployment.execute("acme", EXAMPLES["rest"])["rows"] == [
        {"request_model": "gpt-4o-mini", "count": 2},
        {"request_model": "gpt-4o", "count": 1},
    ]
    schema = deployment.call("GET", "acme", "/v1/helicone-sql/schema").json()["data"]
    assert "organization_id" not in {c["name"] for c in schema[0]["columns"]}
    link = deployment.post("acme", "/v1/helicone-sql/download", {"sql": EXAMPLES["download"]})
    assert link.status_code == 200, link.text
    url = link.json()["data"]
    assert "X-Amz-Signature=" in url and "/hql-exports/hql-export-" in url
    fetched = httpx.get(url)
    assert fetched.status_code == 200 and len(_csv(fetched.text)) == 3
    created = deployment.call(
        "POST", "acme", "/v1/helicone-sql/saved-query", {"name": "q", "sql": "SELECT 1"}
    )
    assert created.status_code == 200, created.text


def test_without_the_request_log_or_with_hql_off(tmp_path: Path) -> None:
    """No request log: queries are 503 (saved queries still work); HQL off: 403."""
    for enabled, status, code in (
        (True, 503, "HQL_STORE_UNAVAILABLE"),
        (False, 403, "HQL_FEATURE_NOT_ENABLED"),
    ):
        settings = make_settings(tmp_path / str(enabled), hql_enabled=enabled)
        key = create_key(settings, org="solo")
        with GatewayServer(settings) as server:
            headers = {"authorization": f"Bearer {key}"}
            response = httpx.post(
                server.url + "/v1/helicone-sql/execute", json={"sql": "SELECT 1"}, headers=headers
            )
            assert response.status_code == status
            assert response.json()["error"]["code"] == code
            saved = httpx.get(server.url + "/v1/helicone-sql/saved-queries", headers=headers)
            assert saved.status_code == (200 if enabled else 403)
