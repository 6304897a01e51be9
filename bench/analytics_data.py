"""Synthetic request log for the analytics bench: N logged requests written in bulk.

Issue 15's performance bar is measured on 1,000,000 logged requests in the embedded engine.
Sending a million requests through a gateway would take most of an hour here, so this module
writes the rows straight into the request log's table (``request_response_rmt``, created with
the gateway's own migrations), with ``INSERT … SELECT … FROM numbers()``: the engine computes
every row itself, a few hundred thousand rows per statement, so a million rows take seconds.

Every value is a function of the row number and ``seed`` (``cityHash64(seed, n, k)`` scaled to
[0, 1) per attribute ``k``), so a run is reproducible and a test can check the distributions:

* organisations: ``main_share`` (80%) of the rows in the first organisation, the rest spread
  evenly over the others;
* time: ``days`` (30) back from ``now``, denser towards the present (offset ∝ u^1.3: a growing
  product);
* models and providers: :data:`MODELS` with their weights and per-token prices (cost in
  nano-USD, as the writer stores it; an unpriced fine-tune has cost NULL, ``cost_known``
  false);
* statuses: :data:`STATUSES` (95.5% 200; 429, 5xx, 4xx and 499 otherwise); errors have no
  tokens and cost 0; half the 429s carry ``Helicone-Rate-Limit-Status: rate_limited``;
* users: 10% of rows without one; the rest over ``users`` ids (5,000 at 1M rows), skewed
  (index ∝ u³: a few heavy users, a long tail);
* sessions: 30% of rows belong to a session (about 8 requests each): one organisation, one
  user and one name per session (:data:`SESSION_NAMES`), requests within 20 minutes of the
  session's start, ``Helicone-Session-Path`` drawn from nested paths (:data:`SESSION_PATHS`);
* custom properties: ``Environment`` (85% of rows), ``App`` (60%), ``Customer-Tier`` (40%);
* scores: 8% of successful rows carry ``accuracy`` (0 to 1, three decimals) and ``helpfulness``
  (1 to 5); 3% carry the feedback score ``helicone-score-feedback`` (1 or 0);
* tokens: prompt 20 to 4,000 and completion 5 to 1,500, log-uniform; latency grows with the
  completion; streams (40%) have a time to first token; 15% of requests enable the cache and
  a third of those are hits (cost 0, a few ms, the saved cost and latency recorded).

Run it alone with ``python -m bench.analytics_data --data-dir DIR --org-id UUID …``; the
analytics bench (:mod:`bench.analytics`) and ``tests/test_bench_analytics.py`` call
:func:`generate`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path

from logging_pipeline.clickhouse.chdb_transport import ChdbTransport
from logging_pipeline.clickhouse.migrate import migrate
from logging_pipeline.clickhouse.transport import LogTransport
from logging_pipeline.rollup import refresh
from logging_pipeline.schema import REQUEST_TABLE, ROLLUP_TABLE, USER_ROLLUP_TABLE


@dataclass(frozen=True)
class Model:
    """One model of the mix: its weight and price (nano-USD per token; ``None``: unpriced)."""

    name: str
    provider: str
    weight: float
    prompt_price: int | None
    completion_price: int | None
    target: str


MODELS: tuple[Model, ...] = (
    Model("gpt-4o-mini", "openai", 0.38, 150, 600, "https://api.openai.com"),
    Model("gpt-4o", "openai", 0.17, 2500, 10000, "https://api.openai.com"),
    Model("o3-mini", "openai", 0.05, 1100, 4400, "https://api.openai.com"),
    Model("claude-sonnet-4-5", "anthropic", 0.14, 3000, 15000, "https://api.anthropic.com"),
    Model("claude-haiku-4-5", "anthropic", 0.08, 1000, 5000, "https://api.anthropic.com"),
    Model("gemini-2.5-flash", "gemini", 0.08, 300, 2500,
          "https://generativelanguage.googleapis.com"),
    Model("llama-3.3-70b-versatile", "groq", 0.05, 590, 790, "https://api.groq.com"),
    Model("us.amazon.nova-lite-v1:0", "bedrock", 0.04, 60, 240,
          "https://bedrock-runtime.us-east-1.amazonaws.com"),
    Model("my-finetune", "openai", 0.01, None, None, "https://api.openai.com"),
)  # fmt: skip
"""The model mix (weights sum to 1)."""

STATUSES: tuple[tuple[int, float], ...] = (
    (200, 0.955), (429, 0.02), (500, 0.01), (400, 0.008), (401, 0.003), (502, 0.002),
    (499, 0.002),
)  # fmt: skip
"""HTTP statuses and their shares (sum to 1)."""

SESSION_NAMES = ("Trip planner", "Support agent", "Code review", "Research assistant")
SESSION_PATHS: tuple[tuple[str, float], ...] = (
    ("/plan", 0.2), ("/plan/search", 0.2), ("/plan/search/fetch", 0.15),
    ("/plan/summarize", 0.1), ("/answer", 0.2), ("/answer/review", 0.1),
    ("/answer/review/fix", 0.05),
)  # fmt: skip
"""Nested ``Helicone-Session-Path`` values and their shares."""

ENVIRONMENTS: tuple[tuple[str, float], ...] = (
    ("production", 0.6), ("staging", 0.17), ("development", 0.08), ("", 0.15),
)  # fmt: skip
APPS: tuple[tuple[str, float], ...] = (
    ("web", 0.3), ("mobile", 0.15), ("api", 0.1), ("batch", 0.05), ("", 0.4),
)  # fmt: skip
TIERS: tuple[tuple[str, float], ...] = (
    ("free", 0.2), ("pro", 0.15), ("enterprise", 0.05), ("", 0.6),
)  # fmt: skip
COUNTRIES: tuple[tuple[str, float], ...] = (
    ("US", 0.45), ("DE", 0.1), ("GB", 0.1), ("FR", 0.06), ("IN", 0.09), ("BR", 0.05),
    ("JP", 0.05), ("", 0.1),
)  # fmt: skip

SESSION_SHARE = 0.3
REQUESTS_PER_SESSION = 8
NO_USER_SHARE = 0.1
SCORED_SHARE = 0.08
FEEDBACK_SHARE = 0.03
STREAM_SHARE = 0.4
CACHE_SHARE = 0.15
CACHE_HIT_SHARE = 1 / 3
BATCH_ROWS = 250_000
"""Rows per ``INSERT … SELECT``: bounds the engine's memory per statement."""


@dataclass(frozen=True)
class Spec:
    """What to generate. ``org_ids[0]`` is the main organisation (``main_share`` of rows)."""

    rows: int
    org_ids: tuple[str, ...]
    now_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    days: int = 30
    seed: int = 15
    main_share: float = 0.8
    users: int = 0
    """Distinct user ids; 0: ``rows // 200`` within 20..5,000."""

    def __post_init__(self) -> None:
        if self.rows < 1 or not self.org_ids or self.days < 1:
            raise ValueError("need rows >= 1, at least one organisation id and days >= 1")
        if not 0 < self.main_share <= 1:
            raise ValueError("main_share must be in (0, 1]")
        for org in self.org_ids:
            uuid.UUID(org)  # a ValueError for anything else: the ids go into SQL text

    @property
    def user_count(self) -> int:
        return self.users or min(5000, max(20, self.rows // 200))

    @property
    def session_count(self) -> int:
        return max(1, round(self.rows * SESSION_SHARE / REQUESTS_PER_SESSION))


def _u(k: int) -> str:
    """A uniform [0, 1) draw for attribute ``k`` of row ``n``."""
    return f"(cityHash64(seed, n, {k}) / 18446744073709551616.0)"


def _us(k: int) -> str:
    """A uniform [0, 1) draw for attribute ``k`` of the row's session ``s``."""
    return f"(cityHash64(seed, 'session', s, {k}) / 18446744073709551616.0)"


def _pick(choices: Sequence[tuple[str, float]], draw: str) -> str:
    """SQL choosing a string by weight with the uniform ``draw``."""
    bounds = list(accumulate(weight for _, weight in choices))
    bounds[-1] = 1.0000001  # the last choice takes any rounding slack
    values = ", ".join(_sql_string(value) for value, _ in choices)
    return f"[{values}][arrayFirstIndex(x -> x > {draw}, [{', '.join(map(repr, bounds))}])]"


def _sql_string(text: str) -> str:
    """``text`` as a ClickHouse string literal (only this module's constants come here)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _array(values: Sequence[object]) -> str:
    return "[" + ", ".join(_sql_string(v) if isinstance(v, str) else repr(v) for v in values) + "]"


def insert_sql(spec: Spec, start: int, count: int) -> str:
    """One ``INSERT … SELECT`` writing rows ``start .. start + count - 1`` of ``spec``."""
    models = MODELS
    model_bounds = list(accumulate(m.weight for m in models))
    model_bounds[-1] = 1.0000001
    status_bounds = list(accumulate(w for _, w in STATUSES))
    status_bounds[-1] = 1.0000001
    orgs = "[" + ", ".join(f"toUUID({_sql_string(o)})" for o in spec.org_ids) + "]"
    others = len(spec.org_ids) - 1
    span_ms = spec.days * 86_400_000
    prices_in = "[" + ", ".join(str(m.prompt_price or 0) for m in models) + "]"
    prices_out = "[" + ", ".join(str(m.completion_price or 0) for m in models) + "]"
    priced = "[" + ", ".join("1" if m.prompt_price is not None else "0" for m in models) + "]"
    columns = (
        "organization_id, request_id, request_created_at, response_created_at, latency, "
        "time_to_first_token, status, model, request_model, response_model, provider, "
        "target_url, request_path, user_id, api_key_id, country_code, prompt_tokens, "
        "completion_tokens, prompt_cache_read_tokens, reasoning_tokens, tokens_estimated, "
        "cost, cost_known, properties, scores, cache_enabled, cache_reference_id, is_stream, "
        "storage_location, request_size_bytes, response_size_bytes, updated_at, wire_format, "
        "cache_saved_cost, cache_saved_latency"
    )
    org_draw = f"if(in_session, {_us(0)}, {_u(1)})"
    org_index = (
        "1" if others == 0
        else f"if(org_u < {spec.main_share!r}, 1, "
        f"2 + least({others - 1}, toUInt32(floor((org_u - {spec.main_share!r}) / "
        f"{1 - spec.main_share + 1e-12!r} * {others}))))"
    )  # fmt: skip
    return f"""
INSERT INTO {REQUEST_TABLE} ({columns})
SELECT {columns} FROM (
SELECT
    toUInt64({spec.seed}) AS seed,
    number AS n,
    {_u(0)} < {SESSION_SHARE} AS in_session,
    toUInt64(floor({_u(2)} * {spec.session_count})) AS s,
    {org_draw} AS org_u,
    {org_index} AS org_index,
    {orgs}[org_index] AS organization_id,
    generateUUIDv4(n) AS request_id,
    toInt64(if(in_session,
        greatest(0, toInt64(floor(pow({_us(1)}, 1.3) * {span_ms}))
                    - toInt64(floor({_u(3)} * 1200000))),
        floor(pow({_u(3)}, 1.3) * {span_ms}))) AS offset_ms,
    fromUnixTimestamp64Milli(toInt64({spec.now_ms}) - offset_ms, 'UTC') AS request_created_at,
    arrayFirstIndex(x -> x > {_u(4)}, {model_bounds!r}) AS model_index,
    {_array([m.name for m in models])}[model_index] AS model,
    model AS request_model,
    model AS response_model,
    {_array([m.provider for m in models])}[model_index] AS provider,
    {_array([m.target for m in models])}[model_index] AS target_base,
    {_array([s for s, _ in STATUSES])}[arrayFirstIndex(x -> x > {_u(5)}, {status_bounds!r})]
        AS status_code,
    toInt64(status_code) AS status,
    status_code = 200 AS ok,
    {_u(6)} < {STREAM_SHARE} AS is_stream,
    {_u(7)} < {CACHE_SHARE} AS cache_enabled,
    ok AND cache_enabled AND {_u(8)} < {CACHE_HIT_SHARE!r} AS cache_hit,
    toInt64(floor(20 * exp({_u(9)} * log(200)))) AS prompt_raw,
    toInt64(floor(5 * exp({_u(10)} * log(300)))) AS completion_raw,
    if(ok, prompt_raw, NULL) AS prompt_tokens,
    if(ok, completion_raw, NULL) AS completion_tokens,
    if(ok AND {_u(11)} < 0.25, toInt64(floor(prompt_raw * {_u(12)})), 0)
        AS prompt_cache_read_tokens,
    if(ok AND model = 'o3-mini', toInt64(floor(completion_raw * 0.6)), 0) AS reasoning_tokens,
    is_stream AND {_u(13)} < 0.05 AS tokens_estimated,
    toInt64(floor(150 + completion_raw * 12 * (0.6 + {_u(14)}))) AS provider_latency,
    toInt64(multiIf(cache_hit, 2 + floor({_u(15)} * 18), ok, provider_latency,
        status_code = 499, floor({_u(15)} * 5000), 40 + floor({_u(15)} * 400))) AS latency,
    if(is_stream AND ok AND NOT cache_hit, toInt64(80 + floor({_u(16)} * 700)), NULL)
        AS time_to_first_token,
    request_created_at + toIntervalMillisecond(latency) AS response_created_at,
    toUInt64(prompt_raw * {prices_in}[model_index] + completion_raw * {prices_out}[model_index])
        AS full_cost,
    {priced}[model_index] = 1 AS cost_known,
    if(cost_known, toNullable(toUInt64(if(ok AND NOT cache_hit, full_cost, 0))), NULL) AS cost,
    if(cache_hit, full_cost, 0) AS cache_saved_cost,
    if(cache_hit, provider_latency, 0) AS cache_saved_latency,
    if(cache_hit, toNullable(generateUUIDv4(n + 1)), NULL) AS cache_reference_id,
    if({_u(17)} < 0.9, '/v1/chat/completions', '/v1/responses') AS request_path,
    concat(target_base, request_path) AS target_url,
    if(in_session, {_us(2)}, {_u(18)}) AS user_u,
    if(NOT in_session AND {_u(19)} < {NO_USER_SHARE}, '',
        concat('user-', toString(toUInt32(floor(pow(user_u, 3) * {spec.user_count}))),
               '@example.com')) AS user_id,
    concat('key-', toString(org_index), '-', toString(toUInt32(floor({_u(20)} * 3))))
        AS api_key_id,
    {_pick(COUNTRIES, _u(21))} AS country_raw,
    if(country_raw = '', NULL, toNullable(country_raw)) AS country_code,
    if(in_session, toString(reinterpretAsUUID(concat(
        reinterpretAsString(cityHash64(seed, 'sid', s, organization_id)),
        reinterpretAsString(cityHash64(seed, 'sid2', s))))), '') AS session_id,
    if(in_session, {_array(SESSION_NAMES)}[1 + s % {len(SESSION_NAMES)}], '') AS session_name,
    if(in_session, {_pick(SESSION_PATHS, _u(22))}, '') AS session_path,
    if(status_code = 429 AND {_u(23)} < 0.5, 'rate_limited', '') AS rate_limit_status,
    mapFilter((k, v) -> v != '', map(
        'Environment', {_pick(ENVIRONMENTS, _u(24))},
        'App', {_pick(APPS, _u(25))},
        'Customer-Tier', {_pick(TIERS, _u(26))},
        'Helicone-Session-Id', session_id,
        'Helicone-Session-Name', session_name,
        'Helicone-Session-Path', session_path,
        'Helicone-Rate-Limit-Status', rate_limit_status)) AS properties,
    ok AND {_u(27)} < {SCORED_SHARE} AS scored,
    ok AND {_u(28)} < {FEEDBACK_SHARE} AS rated,
    mapFilter((k, v) -> v >= 0, map(
        'accuracy', if(scored, round({_u(29)}, 3), -1.),
        'helpfulness', if(scored, 1 + floor({_u(30)} * 5), -1.),
        'helicone-score-feedback', if(rated, if({_u(31)} < 0.8, 1., 0.), -1.))) AS scores,
    'local' AS storage_location,
    toUInt64(200 + prompt_raw * 4) AS request_size_bytes,
    toUInt64(if(ok, 300 + completion_raw * 4, 120)) AS response_size_bytes,
    response_created_at AS updated_at,
    if(provider IN ('openai', 'groq'), 'openai', provider) AS wire_format
FROM numbers({start}, {count})
)
"""


async def write(transport: LogTransport, spec: Spec, batch_rows: int = BATCH_ROWS) -> None:
    """Create the schema if needed and insert ``spec.rows`` rows through ``transport``."""
    await migrate(transport)
    for start in range(0, spec.rows, batch_rows):
        await transport.command(insert_sql(spec, start, min(batch_rows, spec.rows - start)))


async def _generate(path: Path, spec: Spec, optimize: bool) -> None:
    transport = ChdbTransport(path)
    try:
        await write(transport, spec)
        if optimize:
            # What a log that has been written for a month looks like: background merges have
            # folded the parts. Without it the engine merges while the bench measures.
            await transport.command(f"OPTIMIZE TABLE {REQUEST_TABLE} FINAL")
        # What the writer's periodic refresh has done by then: the hours (and the user
        # rollup's days) written are rolled up (settle 0: nothing else writes this store).
        # The current hour and day too, here.
        await refresh(transport, settle_seconds=0)
        if optimize:
            await transport.command(f"OPTIMIZE TABLE {ROLLUP_TABLE} FINAL")
            await transport.command(f"OPTIMIZE TABLE {USER_ROLLUP_TABLE} FINAL")
    finally:
        await transport.close()


def generate(data_dir: Path, spec: Spec, *, optimize: bool = True) -> float:
    """Write ``spec``'s rows into the embedded engine of a gateway data directory (its
    ``clickhouse`` directory, where ``gateway serve`` keeps the request log); returns the
    seconds it took.

    The engine is opened in this process and closed before returning, so a gateway started
    afterwards on ``data_dir`` opens it normally (chdb: one engine per process and path).
    """
    started = time.monotonic()
    asyncio.run(_generate(Path(data_dir) / "clickhouse", spec, optimize))
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.analytics_data",
        description="Write synthetic logged requests into a gateway data directory's "
        "embedded request log.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="the gateway's GATEWAY_DATA_DIR (rows go to DIR/clickhouse)",
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--org-id",
        action="append",
        default=[],
        metavar="UUID",
        help="an organisation id (repeatable; the first gets --main-share of "
        "the rows; default: one random id)",
    )
    parser.add_argument(
        "--other-orgs",
        type=int,
        default=4,
        help="random organisation ids added after the given ones (default 4)",
    )
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--main-share", type=float, default=0.8)
    parser.add_argument(
        "--no-optimize", action="store_true", help="leave the inserted parts unmerged"
    )
    args = parser.parse_args(argv)
    orgs = [*args.org_id] or [str(uuid.uuid4())]
    orgs += [str(uuid.uuid4()) for _ in range(max(0, args.other_orgs))]
    try:
        spec = Spec(
            args.rows, tuple(orgs), days=args.days, seed=args.seed, main_share=args.main_share
        )
    except ValueError as exc:
        parser.error(str(exc))
    seconds = generate(args.data_dir, spec, optimize=not args.no_optimize)
    print(
        f"wrote {spec.rows:,} rows for {len(orgs)} organisations (main {orgs[0]}) "
        f"in {seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
