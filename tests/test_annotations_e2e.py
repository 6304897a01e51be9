"""End to end: feedback, scores, evals and properties on logged requests (issue 15, item 1).

A real gateway (logging on) serves chat completions from the OpenAI emulator through the
OpenAI SDK; annotations are sent over HTTP exactly as a Helicone client sends them, and read
back through ``/v1/request/query``. Each test runs on both transports: the embedded engine
(chdb, in the writer child process) and a ClickHouse server over HTTP through
clickhouse-connect (``tests/clickhouse_http.py``; there the writer runs in the gateway's own
process, so both ends of ``LogSink.annotate`` are covered).

The hard cases are the timing ones: an annotation sent before its request's record exists
(a pre-assigned ``Helicone-Request-Id``) is accepted at once and applied when the record
lands; many annotations of one request at once all survive; one whose request never comes
expires (logged, counted) after the configured bound; a killed writer child loses nothing.
Every wait is a bounded poll; nothing is asserted about speed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from logging_pipeline.remote import WriterProcess
from tests.clickhouse_http import ChdbHttpServer
from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings, wait_for

KEY = "sk-emulator"
WAIT = 30.0
OK = {"data": None, "error": None}
@dataclass
class Gateway:
    """A running gateway, an org key and an SDK client for it."""

    server: GatewayServer
    key: str
    client: openai.OpenAI
    transport: str

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}

    def call(self, method: str, path: str, body: Any, **headers: str) -> httpx.Response:
        return httpx.request(
            method, self.server.url + path, json=body, headers=self.headers | headers,
            timeout=30,
        )  # fmt: skip

    def annotate(self, method: str, path: str, body: Any) -> None:
        response = self.call(method, path, body)
        assert response.status_code == 200, response.text
        assert response.json() == OK

    def send(self, request_id: str | None = None, **headers: str) -> str:
        """One chat completion (with ``Helicone-Request-Id`` if given); its request id."""
        extra = dict(headers)
        if request_id is not None:
            extra["Helicone-Request-Id"] = request_id
        raw = self.client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
            extra_headers=extra,
        )  # fmt: skip
        return str(raw.headers["helicone-id"])

    def row(self, request_id: str) -> dict[str, Any] | None:
        response = self.call("POST", "/v1/request/query-ids", {"requestIds": [request_id]})
        assert response.status_code == 200, response.text
        rows = response.json()["data"]
        return rows[0] if rows else None

    def landed(self, request_id: str) -> dict[str, Any]:
        return wait_for(f"record {request_id}", lambda: self.row(request_id))

    def row_where(self, request_id: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            row = self.row(request_id)
            return row if row is not None and check(row) else None

        return wait_for(f"annotations of {request_id}", found)

    def query(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        response = self.call("POST", "/v1/request/query", body)
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    def counters(self) -> dict[str, Any]:
        response = httpx.get(self.server.url + "/healthz", timeout=10)
        return dict(response.json()["logging"])


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbHttpServer]:
    """One ClickHouse HTTP endpoint for the module (chdb allows one data path per process);
    each gateway on it is a separate deployment's writer, as with ``--workers N``."""
    server = ChdbHttpServer(tmp_path_factory.mktemp("clickhouse-server")).start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def running(
    directory: Path, upstream: OpenAIEmulator, clickhouse: ChdbHttpServer | None, **overrides: Any
) -> Iterator[Gateway]:
    """A gateway on the embedded engine (writer child), or on ``clickhouse`` over HTTP (writer
    in the gateway's process)."""
    if clickhouse is not None:
        overrides |= {"clickhouse_url": clickhouse.url, "log_writer_process": False}
    settings = make_settings(
        directory, provider_api_keys={"openai": KEY},
        provider_base_urls={"openai": upstream.base_url}, logging_enabled=True,
        log_flush_ms=20, **overrides,
    )  # fmt: skip
    key = create_key(settings, org="acme")
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(GatewayServer(settings))
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
        stack.callback(client.close)
        yield Gateway(server, key, client, "clickhouse" if clickhouse else "chdb")


@pytest.fixture(scope="module", params=["chdb", "clickhouse"])
def gateway(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    upstream: OpenAIEmulator,
) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp(f"annotations-{request.param}")
    server = request.getfixturevalue("clickhouse") if request.param == "clickhouse" else None
    with running(directory, upstream, server) as gateway:
        yield gateway


# --- the acceptance examples (reference §8, 6-8) -----------------------------------------------


def test_feedback_then_read_shows_feedback_rating(gateway: Gateway) -> None:
    """§8 example 6: ``{"rating": true}`` answers ``{data: null, error: null}``; a later read
    shows ``feedback_rating = true`` (and the mirrored score)."""
    request_id = gateway.send()
    gateway.landed(request_id)
    gateway.annotate("POST", f"/v1/request/{request_id}/feedback", {"rating": True})
    row = gateway.row_where(request_id, lambda r: r["feedback_rating"] is not None)
    assert row["feedback_rating"] is True
    assert row["scores"]["helicone-score-feedback"] == 1
    # One rating per request: the last one wins.
    gateway.annotate("POST", f"/v1/request/{request_id}/feedback", {"rating": False})
    row = gateway.row_where(request_id, lambda r: r["feedback_rating"] is False)
    assert row["scores"]["helicone-score-feedback"] == 0
    rated = gateway.query({"filter": {"feedback": {"rating": {"equals": False}}}, "limit": 1000})
    assert request_id in {r["request_id"] for r in rated}


def test_scores_keep_their_decimals(gateway: Gateway) -> None:
    """§8 example 7, with the scores read back through ``/v1/request/query``."""
    request_id = gateway.send()
    gateway.landed(request_id)
    scores = {"answer_correctness": 1.0, "semantic_similarity": 0.9999989484399617}
    gateway.annotate("POST", f"/v1/request/{request_id}/score", {"scores": scores})
    row = gateway.row_where(request_id, lambda r: "semantic_similarity" in r["scores"])
    assert row["scores"] == scores
    # Booleans are stored as 1/0, merged with what is there.
    gateway.annotate("POST", f"/v1/request/{request_id}/score",
                     {"scores": {"grounded": True, "toxic": False}})  # fmt: skip
    row = gateway.row_where(request_id, lambda r: "toxic" in r["scores"])
    assert row["scores"] == scores | {"grounded": 1, "toxic": 0}
    by_score = gateway.query({
        "filter": {"request_response_rmt": {"scores": {"semantic_similarity": {"gte": 0.99}}}},
        "limit": 1000,
    })  # fmt: skip
    assert [r["request_id"] for r in by_score] == [request_id]


def test_property_both_body_forms_then_filter(gateway: Gateway) -> None:
    """§8 example 8: ``{"key", "value"}`` and the map form; then filter by the property."""
    first, second = gateway.send(), gateway.send()
    gateway.landed(first)
    gateway.landed(second)
    gateway.annotate("PUT", f"/v1/request/{first}/property",
                     {"key": "Environment", "value": "production"})  # fmt: skip
    gateway.annotate("PUT", f"/v1/request/{second}/property",
                     {"Environment": "production", "PostProcessed": "true"})  # fmt: skip
    gateway.row_where(first, lambda r: r["properties"].get("Environment") == "production")
    row = gateway.row_where(second, lambda r: r["properties"].get("PostProcessed") == "true")
    assert row["request_properties"]["Environment"] == "production"
    found = gateway.query({
        "filter": {"properties": {"Environment": {"equals": "production"}}}, "limit": 1000
    })  # fmt: skip
    assert {r["request_id"] for r in found} == {first, second}
    # The same key again overwrites it; the others stay.
    gateway.annotate("PUT", f"/v1/request/{second}/property",
                     {"key": "Environment", "value": "staging"})  # fmt: skip
    row = gateway.row_where(second, lambda r: r["properties"]["Environment"] == "staging")
    assert row["properties"]["PostProcessed"] == "true"


# --- before the record, concurrency, the other endpoints ---------------------------------------


def test_annotations_sent_before_the_record_are_applied_when_it_lands(gateway: Gateway) -> None:
    request_id = str(uuid.uuid4())
    gateway.annotate("POST", f"/v1/request/{request_id}/feedback", {"rating": True})
    gateway.annotate("POST", f"/v1/request/{request_id}/score", {"scores": {"quality": 0.25}})
    gateway.annotate("PUT", f"/v1/request/{request_id}/property", {"Reviewed": "yes"})
    gateway.annotate("POST", f"/v1/request/{request_id}/score", {"scores": {"quality": 0.75}})
    assert gateway.row(request_id) is None
    assert gateway.send(request_id, **{"Helicone-Property-App": "web"}) == request_id
    row = gateway.row_where(request_id, lambda r: r["properties"].get("Reviewed") == "yes")
    assert row["feedback_rating"] is True
    # Applied in the order they were accepted: the later score of a name wins.
    assert row["scores"] == {"helicone-score-feedback": 1, "quality": 0.75}
    assert row["properties"] == {"app": "web", "Reviewed": "yes"}  # header names: lower case
    counters = wait_for("the counters", lambda: (c := gateway.counters())["annotations_applied"]
                        >= 4 and c)  # fmt: skip
    assert counters["annotations_expired"] == 0


def test_concurrent_annotations_of_one_request_all_survive(gateway: Gateway) -> None:
    request_id = gateway.send()
    gateway.landed(request_id)
    names = [f"judge_{n}" for n in range(24)]

    def post(name: str) -> int:
        if name.endswith(("0", "5")):
            response = gateway.call("PUT", f"/v1/request/{request_id}/property", {name: "x"})
        else:
            response = gateway.call(
                "POST", f"/v1/request/{request_id}/score", {"scores": {name: 0.5}}
            )
        return response.status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        assert set(pool.map(post, names)) == {200}
    properties = {n for n in names if n.endswith(("0", "5"))}
    row = gateway.row_where(request_id, lambda r: set(r["scores"]) | set(r["properties"])
                            >= set(names))  # fmt: skip
    assert set(row["scores"]) == set(names) - properties
    assert properties <= set(row["properties"])


def test_concurrent_annotations_before_the_record(gateway: Gateway) -> None:
    request_id = str(uuid.uuid4())
    names = [f"early_{n}" for n in range(12)]

    def post(name: str) -> int:
        return gateway.call(
            "POST", f"/v1/request/{request_id}/score", {"scores": {name: 1}}
        ).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        assert set(pool.map(post, names)) == {200}
    gateway.send(request_id)
    row = gateway.row_where(request_id, lambda r: set(r["scores"]) >= set(names))
    assert row["scores"] == dict.fromkeys(names, 1)


def test_evals_write_one_score_and_legacy_feedback(gateway: Gateway) -> None:
    request_id = gateway.send()
    gateway.landed(request_id)
    gateway.annotate("POST", f"/v1/evals/{request_id}", {"score": 0.42, "name": "relevance"})
    gateway.annotate("POST", "/v1/feedback", {"helicone-id": request_id, "rating": True})
    row = gateway.row_where(request_id, lambda r: "relevance" in r["scores"]
                            and r["feedback_rating"] is not None)  # fmt: skip
    assert row["scores"] == {"relevance": 0.42, "helicone-score-feedback": 1}
    assert row["feedback_rating"] is True


def test_session_feedback_lands_on_the_earliest_request(gateway: Gateway) -> None:
    session = f"session-{uuid.uuid4()}"
    headers = {"Helicone-Session-Id": session, "Helicone-Session-Path": "/a"}
    # Sent before any request of the session exists: it waits for the session's first.
    gateway.annotate("POST", f"/v1/session/{session}/feedback", {"rating": False})
    first = gateway.send(**headers)
    second = gateway.send(**headers)
    row = gateway.row_where(
        first, lambda r: r["properties"].get("Helicone-Session-Feedback") == "0"
    )
    assert row["properties"]["Helicone-Session-Id"] == session
    gateway.landed(second)
    # Now the session exists: a new rating is applied at once, still to the first request.
    gateway.annotate("POST", f"/v1/session/{session}/feedback", {"rating": True})
    gateway.row_where(first, lambda r: r["properties"]["Helicone-Session-Feedback"] == "1")
    assert "Helicone-Session-Feedback" not in gateway.landed(second)["properties"]


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        (
            "POST",
            "/v1/request/not-a-uuid/feedback",
            {"rating": True},
            "Invalid requestId: must be a valid UUID",
        ),
        ("POST", "/v1/request/{id}/feedback", {"rating": "yes"}, "rating"),
        ("POST", "/v1/request/{id}/feedback", [True], "JSON object"),
        ("POST", "/v1/feedback", {"rating": True}, "helicone-id"),
        ("POST", "/v1/feedback", {"helicone-id": "12", "rating": True}, "valid UUID"),
        ("POST", "/v1/request/{id}/score", {"scores": {"a": "high"}}, "score 'a'"),
        ("POST", "/v1/request/{id}/score", {"scores": {}}, "scores"),
        ("POST", "/v1/request/{id}/score", {"scores": {"a": 1}, "extra": 1}, "extra"),
        ("POST", "/v1/request/{id}/score", {"score": 1}, "score"),
        ("PUT", "/v1/request/{id}/property", {"key": "a", "value": 3}, "property 'a'"),
        ("PUT", "/v1/request/{id}/property", {"Environment": ["x"]}, "Environment"),
        ("PUT", "/v1/request/{id}/property", {}, "key"),
        ("PUT", "/v1/request/{id}/property", {"key": "a", "value": "b", "c": "d"}, "c"),
        ("POST", "/v1/evals/{id}", {"score": 1}, "name"),
        ("POST", "/v1/evals/{id}", {"name": "a", "score": "x"}, "score"),
        ("POST", "/v1/session/s1/feedback", {}, "rating"),
    ],
)
def test_bad_input_is_400_naming_the_problem(
    gateway: Gateway, method: str, path: str, body: Any, message: str
) -> None:
    response = gateway.call(method, path.replace("{id}", str(uuid.uuid4())), body)
    assert response.status_code == 400, response.text
    payload = response.json()
    assert payload["data"] is None and message in payload["error"]


def test_non_finite_scores_and_raw_bodies_are_400(gateway: Gateway) -> None:
    url = gateway.server.url + f"/v1/request/{uuid.uuid4()}/score"
    headers = gateway.headers | {"content-type": "application/json"}
    for content in (b"", b"{not json", b'{"scores": {"a": NaN}}', b'{"scores": {"a": 1e999}}'):
        response = httpx.post(url, content=content, headers=headers)
        assert response.status_code == 400, (content, response.text)
        assert response.json()["data"] is None


def test_annotations_need_a_key_and_stay_in_the_org(gateway: Gateway, tmp_path: Path) -> None:
    request_id = gateway.send()
    response = httpx.post(
        gateway.server.url + f"/v1/request/{request_id}/feedback", json={"rating": True}
    )
    assert response.status_code == 401
    other = create_key(gateway.server.settings, org="globex")
    response = httpx.post(
        gateway.server.url + f"/v1/request/{request_id}/score", json={"scores": {"x": 1}},
        headers={"authorization": f"Bearer {other}"},
    )  # fmt: skip
    # Accepted (the id may be globex's own future request) but never applied to acme's.
    assert response.status_code == 200
    gateway.annotate("POST", f"/v1/request/{request_id}/score", {"scores": {"mine": 1}})
    row = gateway.row_where(request_id, lambda r: "mine" in r["scores"])
    assert row["scores"] == {"mine": 1}


# --- durability and expiry (own gateways) ------------------------------------------------------


def test_pending_annotation_survives_a_writer_child_restart(
    tmp_path: Path, upstream: OpenAIEmulator
) -> None:
    with running(tmp_path, upstream, None) as gateway:
        writer = gateway.server.runtime.writer
        assert writer is not None and isinstance(writer.writer, WriterProcess)
        child = writer.writer
        request_id = str(uuid.uuid4())
        gateway.annotate("POST", f"/v1/request/{request_id}/score", {"scores": {"kept": 0.5}})
        old = child._process
        assert old is not None
        os.kill(old.pid, signal.SIGKILL)
        wait_for("a new writer child",
                 lambda: child._process is not None and child._process is not old)  # fmt: skip
        # The new child knows the pending annotation from the store, not from memory.
        wait_for("the new child to answer", lambda: gateway.call(
            "GET", f"/v1/request/{uuid.uuid4()}", None).status_code == 404)  # fmt: skip
        gateway.send(request_id)
        row = gateway.row_where(request_id, lambda r: "kept" in r["scores"])
        assert row["scores"] == {"kept": 0.5}
        # Another annotation right after a second restart is applied at once, merged.
        os.kill(child._process.pid, signal.SIGKILL)
        deadline = time.monotonic() + WAIT
        while True:  # 503 while the child is being started again, then 200
            response = gateway.call(
                "POST", f"/v1/request/{request_id}/score", {"scores": {"later": 1}}
            )
            if response.status_code == 200:
                break
            assert response.status_code == 503, response.text
            assert time.monotonic() < deadline
            time.sleep(0.2)
        row = gateway.row_where(request_id, lambda r: "later" in r["scores"])
        assert row["scores"] == {"kept": 0.5, "later": 1}


@pytest.mark.parametrize("transport", ["chdb", "clickhouse"])
def test_annotation_of_a_request_that_never_comes_expires(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    upstream: OpenAIEmulator,
    transport: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = request.getfixturevalue("clickhouse") if transport == "clickhouse" else None
    with running(tmp_path, upstream, server, annotation_expiry_seconds=1.0) as gateway:
        request_id = str(uuid.uuid4())
        gateway.annotate("POST", f"/v1/request/{request_id}/score", {"scores": {"late": 1}})
        wait_for("the expiry", lambda: (c := gateway.counters())["annotations_expired"] >= 1
                 and c["annotations_pending"] == 0)  # fmt: skip
        # (On the shared server, annotations earlier tests left pending expire here too.)
        metrics = httpx.get(gateway.server.url + "/metrics", timeout=10).text
        expired_total = [
            line for line in metrics.splitlines()
            if line.startswith('gateway_annotations_total{outcome="expired"}')
        ]  # fmt: skip
        assert expired_total and float(expired_total[0].split()[-1]) >= 1, metrics[-2000:]
        if transport == "clickhouse":  # the writer runs in this process: its log is here
            expired = [r.getMessage() for r in caplog.records if "expired" in r.getMessage()]
            assert any(request_id in line for line in expired), expired
        # Dropped, not retried: the request arriving now is not annotated.
        gateway.send(request_id)
        row = gateway.landed(request_id)
        time.sleep(1.5)  # several passes of the reconciler
        assert row["scores"] == {}
        later = gateway.row(request_id)
        assert later is not None and later["scores"] == {}


def test_two_gateway_processes_on_one_server_share_pending_annotations(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: OpenAIEmulator
) -> None:
    """``--workers N`` (or replicas) on one ClickHouse server: each process has its own writer.
    An annotation accepted by one is applied to a record the other one writes."""
    server = request.getfixturevalue("clickhouse")
    with running(tmp_path, upstream, server) as first:
        settings = first.server.settings
        with contextlib.ExitStack() as stack:
            second_server = stack.enter_context(GatewayServer(settings))  # same data directory
            client = openai.OpenAI(
                base_url=second_server.url + "/v1", api_key=first.key, max_retries=0
            )
            stack.callback(client.close)
            second = Gateway(second_server, first.key, client, "clickhouse")
            request_id = str(uuid.uuid4())
            first.annotate("POST", f"/v1/request/{request_id}/score", {"scores": {"shared": 1}})
            second.send(request_id)  # written by the second process's writer
            row = second.row_where(request_id, lambda r: "shared" in r["scores"])
            assert row["scores"] == {"shared": 1}
            # And the other way round, the record first.
            other = first.send()
            first.landed(other)
            second.annotate("PUT", f"/v1/request/{other}/property", {"From": "second"})
            first.row_where(other, lambda r: r["properties"].get("From") == "second")


def test_pending_annotation_survives_a_gateway_restart(
    tmp_path: Path, upstream: OpenAIEmulator
) -> None:
    request_id = str(uuid.uuid4())
    with running(tmp_path, upstream, None) as gateway:
        gateway.annotate("POST", f"/v1/request/{request_id}/feedback", {"rating": True})
    with running(tmp_path, upstream, None) as gateway:  # same data directory, a new process
        gateway.send(request_id)
        row = gateway.row_where(request_id, lambda r: r["feedback_rating"] is not None)
        assert row["feedback_rating"] is True


def test_annotations_with_logging_disabled_are_503(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, logging_enabled=False)
    key = create_key(settings, org="acme")
    with GatewayServer(settings) as server:
        response = httpx.post(
            server.url + f"/v1/request/{uuid.uuid4()}/feedback", json={"rating": True},
            headers={"authorization": f"Bearer {key}"},
        )  # fmt: skip
        assert response.status_code == 503, response.text
        assert "logging is disabled" in response.json()["error"].lower()
