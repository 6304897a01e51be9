"""End to end: what ``prompt_id`` adds to a request through a real ``gateway serve`` (issue 17's
bar, measured the way a client sees it).

One gateway (logging off, its own data dir, or ``--database-url``) in front of the bench's
instant upstream (:mod:`bench.upstream`: nginx answers every chat request at once). Two
prompts are created through Helicone's REST API on that gateway: a partial and a main prompt
using it, 5 variables (one a typed array in a tool schema) — the bench's
:func:`bench.prompts.saved`. Two requests are then sent on **one keep-alive connection**:

* ``prompt``: ``prompt_id`` + ``inputs`` + a runtime message and a parameter override;
* ``plain``: the request the gateway assembles from it, sent as is (built here with the
  gateway's own :func:`~gateway.prompts.assemble.merge` over the body read back through
  ``/v2/prompt-2025/query/production-version``, so the two reach the provider identical).

They alternate request by request (``prompt plain``, then ``plain prompt``… so neither always
goes first) in rounds, after an unmeasured warm-up that also fills the gateway's resolution
cache. The machine drifts over seconds; pairs taken milliseconds apart share the drift, so the
difference of the pooled p50s (and the median of the per-pair differences, reported too) is
the prompt stage's cost end to end: parsing the larger-or-smaller body aside, resolution from
the cache, the partial, substitution, the merge and re-serialisation.

With ``--cold`` a second gateway on the same database runs with the resolution cache off
(``GATEWAY_PROMPT_CACHE_TTL_SECONDS=0``): every ``prompt`` request loads its version and the
partial's from the store, so its added p50 is the cold load end to end (the bar, 5 ms, is
PostgreSQL's: pass ``--database-url``). Each request is timed from the first byte sent to the
last byte of the answer with a raw-socket client (:class:`bench.ttfb.RawHttpClient`).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench import payloads
from bench.gateway_proc import Gateway
from bench.load import RequestSpec, percentile
from bench.phases import probe, progress
from bench.procs import BenchError
from bench.ttfb import RawHttpClient, raw_request
from bench.upstream import Upstream
from gateway.prompts.assemble import merge, partial_refs, partial_text
from gateway.store import generate_key

WARM_ADDED_BUDGET_MS = 0.2
COLD_ADDED_BUDGET_MS = 5.0
INPUTS: Mapping[str, Any] = {
    "company": "Acme Corp",
    "customer": "Ann",
    "tier": "gold",
    "age": "42",
    "plans": ["basic", "pro"],
}


@dataclass
class PairedRun:
    """Timings (ms) of the two requests of a paired run, in the order they were taken."""

    label: str
    prompt_ms: list[float] = field(default_factory=list)
    plain_ms: list[float] = field(default_factory=list)
    round_added_ms: list[float] = field(default_factory=list)
    """Per round: p50(prompt) - p50(plain) of that round alone (the spread across rounds)."""
    errors: int = 0

    def added_p50_ms(self) -> float:
        return _p50(self.prompt_ms) - _p50(self.plain_ms)

    def paired_median_ms(self) -> float:
        diffs = [a - b for a, b in zip(self.prompt_ms, self.plain_ms, strict=True)]
        return statistics.median(diffs) if diffs else float("nan")

    def to_json(self) -> dict[str, Any]:
        ordered_prompt, ordered_plain = sorted(self.prompt_ms), sorted(self.plain_ms)
        return {
            "label": self.label,
            "pairs": len(self.prompt_ms),
            "prompt_p50_ms": percentile(ordered_prompt, 50),
            "prompt_p99_ms": percentile(ordered_prompt, 99),
            "plain_p50_ms": percentile(ordered_plain, 50),
            "plain_p99_ms": percentile(ordered_plain, 99),
            "added_p50_ms": self.added_p50_ms(),
            "paired_median_added_ms": self.paired_median_ms(),
            "round_added_p50_ms": self.round_added_ms,
            "errors": self.errors,
        }


def _p50(values: list[float]) -> float:
    return percentile(sorted(values), 50) if values else float("nan")


def prompt_request(main_id: str) -> dict[str, Any]:
    """The request naming the prompt (what a client sends)."""
    return {
        "prompt_id": main_id,
        "inputs": dict(INPUTS),
        "temperature": 0.4,
        "messages": [{"role": "user", "content": "Cancel my subscription."}],
    }


def assembled_request(
    saved: Mapping[str, Any], partial: Mapping[str, Any], request: Mapping[str, Any]
) -> dict[str, Any]:
    """What the gateway forwards for ``request`` (the same code it runs)."""
    texts = {ref.tag: partial_text(partial, ref.index) for ref in partial_refs(saved)}
    return merge(saved, request, request["inputs"], partials=texts)


def create_prompts(
    gateway: Gateway, partial_body: Any, saved_of: Any
) -> tuple[str, dict[str, Any]]:
    """The partial and the main prompt, through ``/v1/prompt-2025`` on ``gateway``: (the main
    prompt's id, its stored body as read back)."""
    status, made = gateway.call(
        "POST", "/v1/prompt-2025", {"name": "part", "promptBody": partial_body}
    )
    if status != 201:
        raise BenchError(f"creating the partial answered {status}: {made}")
    part_id = made["data"]["id"]
    status, made = gateway.call(
        "POST", "/v1/prompt-2025", {"name": "main", "promptBody": saved_of(part_id)}
    )
    if status != 201:
        raise BenchError(f"creating the prompt answered {status}: {made}")
    main_id = made["data"]["id"]
    status, read = gateway.call(
        "POST", "/v2/prompt-2025/query/production-version", {"promptId": main_id}
    )
    if status != 200:
        raise BenchError(f"reading the prompt back answered {status}: {read}")
    return main_id, read["data"]["prompt_body"]


def paired(
    label: str, port: int, specs: tuple[RequestSpec, RequestSpec], rounds: int, pairs: int,
    warmup: int,
) -> PairedRun:  # fmt: skip
    """``rounds`` x ``pairs`` alternating requests (``prompt``, ``plain``) on one connection."""
    raw = (raw_request(port, specs[0]), raw_request(port, specs[1]))
    client = RawHttpClient(port)
    run = PairedRun(label)
    try:
        for index in range(warmup * 2):
            client.request(raw[index % 2])
        for number in range(rounds):
            progress(f"{label} round {number + 1}/{rounds} ...")
            start = len(run.prompt_ms)
            for index in range(pairs):
                first = (index + number) % 2  # prompt first, then plain first, …
                timed: list[float] = [0.0, 0.0]
                for which in (first, 1 - first):
                    exchange = client.request(raw[which])
                    if exchange.status != 200:
                        run.errors += 1
                    timed[which] = exchange.total_s * 1000
                run.prompt_ms.append(timed[0])
                run.plain_ms.append(timed[1])
            run.round_added_ms.append(_p50(run.prompt_ms[start:]) - _p50(run.plain_ms[start:]))
    except OSError as exc:
        raise BenchError(f"{label}: request failed: {exc}") from exc
    finally:
        client.close()
    return run


def measure(
    workdir: Path,
    *,
    rounds: int,
    pairs: int,
    warmup: int,
    database_url: str | None,
    cold: bool,
    partial_body: Any,
    saved_of: Any,
) -> dict[str, Any]:
    """Start the upstream and the gateway(s), create the prompts, run the paired rounds."""
    upstream = Upstream(workdir)
    gateways: list[Gateway] = []
    try:
        progress("starting the upstream ...")
        upstream.start()
        # A server database needs the encryption key every process of the deployment shares.
        extra = (
            {"DATABASE_URL": database_url, "GATEWAY_ENCRYPTION_KEY": generate_key()}
            if database_url
            else {}
        )
        warm = Gateway(workdir, upstream.base_url, name="gateway_prompts", logging=False,
                       extra_env=extra)  # fmt: skip
        gateways.append(warm)
        warm.create_key()
        progress("starting the gateway ...")
        warm.start()
        main_id, saved = create_prompts(warm, partial_body, saved_of)
        request = prompt_request(main_id)
        plain = assembled_request(saved, partial_body, request)
        auth = {"Authorization": f"Bearer {warm.key}"}
        specs = (
            RequestSpec(payloads.CHAT_PATH, orjson.dumps(request).decode(), auth),
            RequestSpec(payloads.CHAT_PATH, orjson.dumps(plain).decode(), auth),
        )
        for spec, what in zip(specs, ("prompt_id", "assembled"), strict=True):
            probe(warm.port, spec, b'"chat.completion"', f"the {what} request via the gateway")
        result: dict[str, Any] = {
            "store": "postgresql" if database_url and "postgres" in database_url else "sqlite",
            "upstream": upstream.kind,
            "request_bytes": {"prompt": len(specs[0].body), "plain": len(specs[1].body)},
            "warm": paired("warm", warm.port, specs, rounds, pairs, warmup).to_json(),
        }
        warm.check_alive()
        if cold:
            if not database_url:
                raise BenchError("--cold needs --database-url (both gateways share its store)")
            cache_off = Gateway(
                workdir, upstream.base_url, name="gateway_prompts_cold", logging=False,
                extra_env={**extra, "GATEWAY_PROMPT_CACHE_TTL_SECONDS": "0"},
            )  # fmt: skip
            gateways.append(cache_off)
            progress("starting the gateway without a resolution cache ...")
            cache_off.start()
            for spec, what in zip(specs, ("prompt_id", "assembled"), strict=True):
                probe(cache_off.port, spec, b'"chat.completion"', f"the {what} request (cold)")
            result["cold"] = paired(
                "cold", cache_off.port, specs, max(1, rounds // 2), pairs, warmup // 4
            ).to_json()
            cache_off.check_alive()
        return result
    finally:
        for gateway in gateways:
            gateway.stop()
        upstream.stop()


def verdict(result: Mapping[str, Any]) -> tuple[list[str], bool]:
    """The report lines and whether the bars hold (the cold bar only on PostgreSQL)."""
    lines = [
        f"prompt_id end to end (gateway serve, {result['upstream']}, 1 connection, "
        f"store {result['store']}; request bytes {result['request_bytes']})",
        f"  {'run':<6} {'pairs':>6} {'p50 prompt':>11} {'p50 plain':>10} {'added p50':>10} "
        f"{'paired med':>11} {'p99 prompt':>11} {'p99 plain':>10}",
    ]
    passed = True
    for name, budget in (("warm", WARM_ADDED_BUDGET_MS), ("cold", COLD_ADDED_BUDGET_MS)):
        run = result.get(name)
        if run is None:
            continue
        lines.append(
            f"  {name:<6} {run['pairs']:>6} {run['prompt_p50_ms']:>11.3f} "
            f"{run['plain_p50_ms']:>10.3f} {run['added_p50_ms']:>10.3f} "
            f"{run['paired_median_added_ms']:>11.3f} {run['prompt_p99_ms']:>11.3f} "
            f"{run['plain_p99_ms']:>10.3f}"
        )
        rounds = ", ".join(f"{v:.3f}" for v in run["round_added_p50_ms"])
        lines.append(f"         added p50 per round (ms): {rounds}")
        judged = name == "warm" or result["store"] == "postgresql"
        ok = run["added_p50_ms"] <= budget and run["errors"] == 0
        if judged:
            passed = passed and ok
        mark = ("PASS" if ok else "FAIL") if judged else "info"
        lines.append(
            f"  [{mark}] {name}: added p50 {run['added_p50_ms']:.3f} ms (bar <= {budget} ms), "
            f"errors {run['errors']}"
        )
    return lines, passed


def run_e2e(
    *, rounds: int, pairs: int, warmup: int, database_url: str | None, cold: bool,
    partial_body: Any, saved_of: Any,
) -> dict[str, Any]:  # fmt: skip
    """:func:`measure` in a temporary work directory (removed afterwards)."""
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-prompts-"))
    started = time.monotonic()
    try:
        result = measure(
            workdir, rounds=rounds, pairs=pairs, warmup=warmup, database_url=database_url,
            cold=cold, partial_body=partial_body, saved_of=saved_of,
        )  # fmt: skip
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result
