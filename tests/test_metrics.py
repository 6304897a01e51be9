"""``GET /metrics`` and the request log line, end to end (gateway/metrics.py,
gateway/accesslog.py).

A real gateway on a real socket, the emulators as providers, the official SDK as client: the
counters must equal what was sent — plain, streamed, cache hits, rate-limit refusals, a
failover — and the tokens the log writer counted must equal the usage the client was given.
Then the scrape token, the request line's fields (and that it holds no key and no prompt),
and ``gateway serve --workers 2``, where either worker's ``/metrics`` counts both.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.accesslog import PIPE_BUF, AccessLog
from gateway.context import HeliconeOptions, RequestContext
from gateway.finished import FinishedRequests, RequestFacts
from gateway.metrics import Metrics
from logging_pipeline.logformat import JsonFormatter, TextFormatter
from tests.emulator import Fault, OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings
from tests.test_cli import GATEWAY, _free_port, _healthy
from tests.test_cli import create_key as cli_create_key

OPENAI_KEY, GROQ_KEY = "sk-openai-metrics", "sk-groq-metrics"
MODEL = "gpt-4o-mini"
PROMPT = "a prompt that must never reach a log line"
ROOT = Path(__file__).resolve().parent.parent

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, token: str | None = None) -> Samples:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(url + "/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


# --- one gateway, every kind of request ---------------------------------------------------


@pytest.fixture(scope="module")
def emulators() -> Iterator[tuple[OpenAIEmulator, OpenAIEmulator]]:
    with OpenAIEmulator(api_key=OPENAI_KEY) as first, OpenAIEmulator(api_key=GROQ_KEY) as second:
        yield first, second


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, emulators: tuple[OpenAIEmulator, OpenAIEmulator]
) -> Iterator[tuple[GatewayServer, str]]:
    first, second = emulators
    settings = make_settings(
        tmp_path_factory.mktemp("metrics"),
        provider_api_keys={"openai": OPENAI_KEY, "groq": GROQ_KEY},
        provider_base_urls={"openai": first.base_url, "groq": second.base_url},
        logging_enabled=True,
        log_flush_ms=20,
        provider_cooldown_seconds=0,
    )
    key = create_key(settings)
    with GatewayServer(settings) as server:
        yield server, key


def test_counters_equal_the_requests_sent(
    gateway: tuple[GatewayServer, str], emulators: tuple[OpenAIEmulator, OpenAIEmulator]
) -> None:
    server, key = gateway
    first, _second = emulators
    before = scrape(server.url)
    server.flush_request_lines()  # the earlier tests' lines
    server.request_lines.clear()
    messages = [{"role": "user", "content": PROMPT}]
    usage = {"prompt": 0, "completion": 0}

    def count(used: Any) -> None:
        usage["prompt"] += used.prompt_tokens
        usage["completion"] += used.completion_tokens

    with openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0) as client:
        for _ in range(3):  # plain
            count(client.chat.completions.create(model=MODEL, messages=messages).usage)
        for _ in range(2):  # streamed, with the usage chunk (so the client sees the usage)
            stream = client.chat.completions.create(
                model=MODEL, messages=messages, stream=True,
                stream_options={"include_usage": True},
            )  # fmt: skip
            for chunk in stream:
                if chunk.usage is not None:
                    count(chunk.usage)
        cached = {"helicone-cache-enabled": "true"}
        for _ in range(3):  # one miss, two hits
            answer = client.chat.completions.with_raw_response.create(
                model=MODEL, messages=[{"role": "user", "content": "cache me"}],
                extra_headers=cached,
            )  # fmt: skip
            count(answer.parse().usage)
        assert answer.headers["helicone-cache"] == "HIT"
        limited = {"helicone-ratelimit-policy": "1;w=3600"}
        count(client.chat.completions.create(model=MODEL, messages=messages,
                                             extra_headers=limited).usage)  # fmt: skip
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model=MODEL, messages=messages, extra_headers=limited)
        first.inject(Fault(status=503))  # openai fails, groq answers
        failed_over = client.chat.completions.with_raw_response.create(
            model=f"{MODEL}/openai,{MODEL}/groq", messages=messages
        )
        assert failed_over.headers["helicone-fallback-index"] == "1"
        count(failed_over.parse().usage)
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="", messages=messages)

    logged = 3 + 2 + 3 + 2 + 1 + 1  # every request after authentication
    deadline = time.monotonic() + 30
    while True:  # tokens are counted by the log writer, once it has written the records
        after = scrape(server.url)
        written = value(after, "gateway_log_records_total", outcome="written")
        if written - value(before, "gateway_log_records_total", outcome="written") >= logged:
            break
        assert time.monotonic() < deadline, f"{written} records written"
        time.sleep(0.05)

    def gained(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    requests = "gateway_requests_total"
    served = gained(requests, provider="openai", model=MODEL, status="200", mode="unified")
    assert served == 3 + 2 + 1 + 1
    assert gained(requests, provider="openai", model=MODEL, status="200", mode="cache") == 2
    assert gained(requests, provider="groq", model=MODEL, status="200", mode="unified") == 1
    assert gained(requests, provider="none", model="none", status="429", mode="unified") == 1
    assert gained(requests, provider="none", model="none", status="400", mode="unified") == 1
    assert gained(requests) == logged
    assert gained("gateway_cache_lookups_total", result="hit") == 2
    assert gained("gateway_cache_lookups_total", result="miss") == 1
    assert gained("gateway_rate_limited_total") == 1
    assert gained("gateway_failovers_total") == 1
    assert gained("gateway_retries_total") == 0
    assert gained("gateway_time_to_first_token_seconds_count", provider="openai") == 2
    assert gained("gateway_upstream_latency_seconds_count") == 3 + 2 + 1 + 1 + 1
    assert gained("gateway_overhead_seconds_count", mode="cache") == 2
    assert gained("gateway_overhead_seconds_count", mode="unified") == 3 + 2 + 1 + 1 + 1
    assert gained("gateway_tokens_total", kind="prompt") == usage["prompt"] > 0
    assert gained("gateway_tokens_total", kind="completion") == usage["completion"] > 0
    assert gained("gateway_cost_usd_total", provider="openai", model=MODEL) > 0
    assert gained("gateway_log_records_total", outcome="journaled") == logged
    assert value(after, "gateway_log_records_total", outcome="lost") == 0
    assert value(after, "gateway_log_queue_bytes") >= 0

    lines = [json.loads(line) for line in server.flush_request_lines()]
    assert len(lines) == logged
    assert sorted(line["status"] for line in lines) == [200] * 10 + [400, 429]
    assert [line["error"] for line in lines if line["status"] != 200] == ["rate_limited",
                                                                          "invalid_model"]
    assert sum(line["stream"] for line in lines) == 2
    assert [line["cache"] for line in lines if line["cache"]] == ["miss", "hit", "hit"]
    assert [line["attempts"] for line in lines if line["provider"] == "groq"] == [2]
    text = b"".join(server.request_lines)
    assert PROMPT.encode() not in text and key.encode() not in text
    assert OPENAI_KEY.encode() not in text


def test_unknown_models_and_providers_fold_into_other(gateway: tuple[GatewayServer, str]) -> None:
    server, key = gateway
    with openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0) as client:
        for name in ("my-own-model-1", "my-own-model-2"):
            client.chat.completions.create(
                model=f"{name}/openai", messages=[{"role": "user", "content": "hi"}]
            )
    samples = scrape(server.url)
    models = {dict(labels)["model"] for (name, labels) in samples
              if name == "gateway_requests_total"}  # fmt: skip
    assert "other" in models and not any(m.startswith("my-own-model") for m in models)


def test_one_fault_line_per_failed_request(
    gateway: tuple[GatewayServer, str], emulators: tuple[OpenAIEmulator, OpenAIEmulator],
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """A provider unreachable and an unexpected error: one ``fault`` record each (the second
    with its traceback), with the request's id, never its prompt or key."""
    server, key = gateway
    first, _ = emulators
    first.inject(Fault(close="before_answer"))
    body = {"model": f"{MODEL}/openai", "messages": [{"role": "user", "content": PROMPT}]}
    headers = {"authorization": f"Bearer {key}"}
    with caplog.at_level("INFO", logger="gateway.fault"):
        unreachable = httpx.post(server.url + "/v1/chat/completions", json=body, headers=headers)

        async def broken(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("boom")

        monkeypatch.setattr(server.runtime.router, "plan_request", broken)
        crashed = httpx.post(server.url + "/v1/chat/completions", json=body, headers=headers)
    assert (unreachable.status_code, crashed.status_code) == (502, 500)
    faults = [r for r in caplog.records if r.name == "gateway.fault"]
    assert [r.__dict__["request_id"] for r in faults] == [
        unreachable.headers["helicone-id"], crashed.headers["helicone-id"]
    ]
    assert [r.__dict__["error"] for r in faults] == ["upstream_unreachable", None]
    assert [r.__dict__["event"] for r in faults] == ["fault", "fault"]
    assert faults[0].exc_info is None and faults[1].exc_info is not None
    line = json.loads(JsonFormatter().format(faults[1]))
    assert line["status"] == 500 and "RuntimeError: boom" in line["exc"]
    assert "POST /v1/chat/completions" in line["message"]
    for record in faults:
        text = JsonFormatter().format(record)
        assert PROMPT not in text and key not in text


def test_the_scrape_token(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, metrics_token="scrape-secret", allow_anonymous=True)
    with GatewayServer(settings) as server:
        assert httpx.get(server.url + "/metrics").status_code == 401
        wrong = httpx.get(server.url + "/metrics", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "scrape-secret" not in wrong.text
        assert wrong.headers["www-authenticate"].startswith("Bearer")
        assert ("gateway_rate_limited_total", ()) in scrape(server.url, "scrape-secret")


def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, metrics_enabled=False, log_requests=False)
    with GatewayServer(settings) as server:
        assert server.runtime.metrics is None and server.app.finish is None
        assert httpx.get(server.url + "/metrics").status_code == 404


# --- the request line -------------------------------------------------------------------


def _context(**facts: Any) -> RequestContext:
    ctx = RequestContext(HeliconeOptions("0190f1c2-1234-7abc-8def-0123456789ab"), started=100.0)
    ctx.route = "unified"
    for name, fact in facts.items():
        setattr(ctx, name, fact)
    return ctx


def _facts(ctx: RequestContext) -> RequestFacts:
    ctx.status = ctx.status or 200
    return RequestFacts.of(ctx, None, now=100.3, when=1_700_000_000.25)


def test_the_request_line_in_json_and_in_text() -> None:
    lines: list[bytes] = []
    ctx = _context(provider="openai", model="gpt-4o-mini", attempts=2, upstream_seconds=0.25,
                   cache_hit=False)  # fmt: skip
    AccessLog("json", lines.append).requests([_facts(ctx)])
    line = json.loads(lines[0])
    assert lines[0].endswith(b"\n") and lines[0].count(b"\n") == 1
    assert line["event"] == "request" and line["level"] == "info"
    assert line["ts"] == "2023-11-14T22:13:20.250Z"
    assert line["request_id"] == "0190f1c2-1234-7abc-8def-0123456789ab"
    assert line["latency_ms"] == pytest.approx(300.0) and line["overhead_ms"] == pytest.approx(50)
    assert (line["status"], line["provider"], line["model"]) == (200, "openai", "gpt-4o-mini")
    assert (line["cache"], line["attempts"], line["mode"]) == ("miss", 2, "unified")
    assert line["org"] is None and "error" not in line
    AccessLog("text", lines.append).requests([_facts(ctx)])
    text = lines[1].decode()
    assert "INFO gateway.request: request request_id=0190f1c2" in text
    assert " status=200 " in text and " cache=miss " in text and text.endswith("\n")


def test_finished_requests_are_handed_over_in_batches_of_whole_lines() -> None:
    """On an event loop finished requests wait (at most 50 ms) and go to the metrics and the
    request line together; each ``write`` holds whole lines of at most PIPE_BUF bytes, so
    workers sharing a pipe never split a line."""
    writes: list[bytes] = []
    counted: list[int] = []
    access_log = AccessLog("json", writes.append)
    finished = FinishedRequests([lambda batch: counted.append(len(batch)), access_log.requests])

    async def serve() -> None:
        for number in range(40):
            ctx = _context(provider="openai", model="m" * number, upstream_seconds=0.01)
            ctx.status = 200
            finished.add(ctx, None)
        assert writes == [] and counted == []  # waiting, not yet handed over
        await asyncio.sleep(0.2)  # past the flush timer (scheduled first, so it fires first)

    asyncio.run(serve())
    assert counted == [40]
    assert 1 < len(writes) < 40
    assert all(len(chunk) <= PIPE_BUF and chunk.endswith(b"\n") for chunk in writes)
    lines = [json.loads(line) for chunk in writes for line in chunk.splitlines()]
    assert [line["model"] for line in lines] == [None] + ["m" * n for n in range(1, 40)]
    finished.add(_context(provider="openai", model="x"), None)  # outside a loop: at once
    assert json.loads(writes[-1])["model"] == "x" and counted == [40, 1]
    assert json.loads(writes[-1])["status"] == 499  # no answer and no error: the client left


def test_formatters_keep_the_structured_fields() -> None:
    import logging

    record = logging.LogRecord("gateway.fault", logging.ERROR, __file__, 1, "request failed: %s",
                               ("POST /v1/chat/completions",), None)  # fmt: skip
    record.event, record.status = "fault", 502
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "request failed: POST /v1/chat/completions"
    assert (line["event"], line["status"], line["level"]) == ("fault", 502, "error")
    assert "event=fault status=502" in TextFormatter().format(record)


# --- gateway serve --workers 2 ---------------------------------------------------------------


def test_two_workers_one_count_and_json_lines(tmp_path: Path) -> None:
    """Either worker's ``/metrics`` counts the requests both served; every request has its JSON
    line on stderr, and nothing there holds the gateway key, the provider key or the prompt."""
    with OpenAIEmulator(api_key=OPENAI_KEY) as upstream:
        dropped = ("GATEWAY_", "PROMETHEUS_", "DATABASE_URL")
        env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
        env.update(
            GATEWAY_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT),
            GATEWAY_LOGGING_ENABLED="false", GATEWAY_LOG_FORMAT="json",
            OPENAI_BASE_URL=upstream.base_url, OPENAI_API_KEY=OPENAI_KEY,
            TMPDIR=str(tmp_path), PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "ignored"),
        )  # fmt: skip
        key = cli_create_key(env)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        with (tmp_path / "stderr.log").open("w") as stderr:
            process = subprocess.Popen(
                [GATEWAY, "serve", "--port", str(port), "--workers", "2"],
                env=env, stdout=subprocess.DEVNULL, stderr=stderr,
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 90
                while not _healthy(url + "/healthz"):
                    assert process.poll() is None, (tmp_path / "stderr.log").read_text()
                    assert time.monotonic() < deadline, "gateway did not become healthy"
                    time.sleep(0.1)
                while len(_started(tmp_path / "stderr.log")) < 2:  # both workers serving
                    assert process.poll() is None and time.monotonic() < deadline, \
                        _other_lines(tmp_path / "stderr.log")  # fmt: skip
                    time.sleep(0.1)
                sent, pids = 0, set[int]()
                deadline = time.monotonic() + 120
                while len(pids) < 2:  # until both workers have served (the kernel picks)
                    assert time.monotonic() < deadline, _other_lines(tmp_path / "stderr.log")
                    sent += asyncio.run(_fire(url, key, 50))
                    pids = {line["pid"] for line in _request_lines(tmp_path / "stderr.log")}
                    time.sleep(0.2)
                directories = list(tmp_path.glob("gateway-metrics-*"))
                assert len(directories) == 1 and not (tmp_path / "ignored").exists()
                deadline = time.monotonic() + 30
                while True:  # each worker moves its counts to the shared files every second
                    seen = [total(scrape(url), "gateway_requests_total") for _ in range(6)]
                    if seen == [sent] * 6:
                        break
                    assert time.monotonic() < deadline, (seen, sent)
                    time.sleep(0.2)
            finally:
                process.terminate()
                process.wait(timeout=60)
        output = (tmp_path / "stderr.log").read_text()
        assert not list(tmp_path.glob("gateway-metrics-*")), "the metrics directory is removed"
        lines = _request_lines(tmp_path / "stderr.log")
        assert len(lines) == sent
        assert {(line["status"], line["provider"], line["model"], line["mode"]) for line in lines} \
            == {(200, "openai", MODEL, "unified")}  # fmt: skip
        for line in lines:
            assert set(line) >= {"ts", "request_id", "org", "latency_ms", "overhead_ms", "cache",
                                 "attempts", "pid"}  # fmt: skip
            assert line["org"] and line["latency_ms"] >= line["overhead_ms"] >= 0
        for secret in (key, OPENAI_KEY, PROMPT):
            assert secret not in output
        for text in output.splitlines():  # every line of every process: JSON
            assert isinstance(json.loads(text), dict), text


async def _fire(url: str, key: str, count: int) -> int:
    """``count`` requests at once, each on its own connection (so both workers accept)."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}

    async def one() -> None:
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.post(url + "/v1/chat/completions", json=body,
                                    headers={"authorization": f"Bearer {key}"}) as response:
                assert response.status == 200, await response.text()
                await response.read()

    await asyncio.gather(*(one() for _ in range(count)))
    return count


def _started(path: Path) -> set[int]:
    """The workers that said "Application startup complete." (uvicorn's line, as JSON)."""
    return {
        line["pid"]
        for line in map(json.loads, path.read_text().splitlines())
        if line.get("message") == "Application startup complete."
    }


def _other_lines(path: Path) -> str:
    """What the server said besides the request lines (to show why a worker is missing)."""
    return "\n".join(t for t in path.read_text().splitlines() if '"event":"request"' not in t)


def _request_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for text in path.read_text().splitlines():
        if '"event":"request"' in text:
            lines.append(json.loads(text))
    return lines


def test_a_dead_workers_gauge_is_dropped(tmp_path: Path) -> None:
    """Live gauges are per process: a worker that is gone (no such pid) leaves the scrape."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / f"gauge_livesum_{dead.pid}.db").write_bytes(b"")
    (tmp_path / f"gauge_livesum_{os.getpid()}.db").write_bytes(b"")
    (tmp_path / f"counter_{dead.pid}.db").write_bytes(b"")
    Metrics(str(tmp_path))._forget_dead_processes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"gauge_livesum_{os.getpid()}.db", f"counter_{dead.pid}.db"]
    )
