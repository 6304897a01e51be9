"""The ClickHouse schema of the request log, as versioned migrations.

Modelled on the reference ``request_response_rmt``: one row per request, ReplacingMergeTree on
``updated_at`` (an update re-inserts the row with a newer version; reads use ``FINAL``),
partitioned by month, ordered for the org + time-range scans every query starts with.
Column names are the ones the filter AST and HQL expose, so users' raw SQL keeps working.
Beside it, the dashboard's hourly rollups (``request_rollup_hourly``, kept exact by
``logging_pipeline/rollup.py``) and the dirty marks that tell which hours to recompute.

Migrations are append-only: never edit a released one, add the next.
"""

from __future__ import annotations

REQUEST_TABLE = "request_response_rmt"
ANNOTATION_TABLE = "request_annotations"
MIGRATIONS_TABLE = "gateway_schema_migrations"
ROLLUP_TABLE = "request_rollup_hourly"
ROLLUP_DIRTY_TABLE = "request_rollup_dirty"
ROLLUP_DIRTY_VIEW = "request_rollup_dirty_mv"
ROLLUP_DIMENSIONS = ("model", "provider", "status")
"""What a rollup row is per (besides organization and hour): the filters and groupings the
dashboard series can answer from the rollup (logging_pipeline/query/rollup.py)."""
USER_ROLLUP_TABLE = "user_rollup_daily"
USER_ROLLUP_DAY = "toDate(toDateTime(request_created_at, 'UTC'))"
"""A request's UTC day (the user rollup's period)."""
ROLLUP_SETTLE_SECONDS = 60
"""How long an insert may take between the dirty mark its materialized view writes and its
commit: a rollup computed at S is declared valid through S minus this, so a row marked
before then was visible to the computation (logging_pipeline/rollup.py)."""
ROLLUP_QUANTILES = "0.5, 0.9, 0.95, 0.99"
"""The dashboard's percentiles; part of the rollup's column types (a change is a migration)."""
ERROR_CONDITION = "(status < 200 OR status >= 400)"
"""A failed request: any non-2xx/3xx answer, including 0 (no answer from upstream)."""
CACHE_HIT_CONDITION = (
    "(cache_reference_id IS NOT NULL AND "
    "cache_reference_id != toUUID('00000000-0000-0000-0000-000000000000'))"
)
"""A request answered from the response cache (it names the request it replayed)."""
ROLLUP_HOUR = "toStartOfHour(toDateTime(request_created_at, 'UTC'))"
_ROLLUP_SUMS: tuple[str, ...] = (
    "count() AS requests",
    f"countIf({ERROR_CONDITION}) AS errors",
    "sum(ifNull(cost, 0)) AS cost",
    "sum(ifNull(prompt_tokens, 0)) AS prompt_tokens",
    "sum(ifNull(completion_tokens, 0)) AS completion_tokens",
    "sum(prompt_cache_read_tokens) AS prompt_cache_read_tokens",
    "sum(prompt_cache_write_tokens) AS prompt_cache_write_tokens",
    "sum(reasoning_tokens) AS reasoning_tokens",
    f"countIf({CACHE_HIT_CONDITION}) AS cache_hits",
    "countIf(ifNull(threat, false)) AS threats",
    "count(latency) AS latency_n",
    "sum(ifNull(latency, 0)) AS latency_sum",
    "count(time_to_first_token) AS ttft_n",
    "sum(ifNull(time_to_first_token, 0)) AS ttft_sum",
)
_ROLLUP_SAVINGS: tuple[str, ...] = (
    f"sumIf(cache_saved_cost, {CACHE_HIT_CONDITION}) AS cache_saved_cost",
    f"sumIf(cache_saved_latency, {CACHE_HIT_CONDITION}) AS cache_saved_latency",
)
ROLLUP_METRICS_0008: tuple[str, ...] = (
    *_ROLLUP_SUMS,
    "uniqStateIf(user_id, user_id != '') AS users",
    f"quantilesState({ROLLUP_QUANTILES})(latency) AS latency_q",
    f"quantilesState({ROLLUP_QUANTILES})(time_to_first_token) AS ttft_q",
)
"""The metrics migration ``0008_hourly_rollups`` backfilled (its table had no others)."""
ROLLUP_METRICS_0009: tuple[str, ...] = (*ROLLUP_METRICS_0008, *_ROLLUP_SAVINGS)
"""The metrics of the generation ``0009_rollup_cache_savings`` wrote (0008's + savings)."""
USER_HASH = "cityHash64(user_id)"
"""A user as the rollups keep it: the series count distinct users over these hashes (with
``uniq``), from the rollup's arrays and from the rows alike, so both give one answer."""
ROLLUP_METRICS: tuple[str, ...] = (
    *_ROLLUP_SUMS,
    *_ROLLUP_SAVINGS,
    f"groupUniqArrayIf({USER_HASH}, user_id != '') AS users_h",
    "groupArray(latency) AS latency_v",
    "groupArray(time_to_first_token) AS ttft_v",
)
"""A rollup row's metrics over request rows (``FINAL``): the rollup computes them per hour,
and a dashboard query over raw rows the same way, so the two parts of a query add up. In the
rollup table's column order (after ``valid_through``), as ``0010_rollup_value_arrays`` left
it: the sums, the cache savings (0009), then the hour's distinct user hashes and its latency
and TTFT values (NULLs left out) as plain arrays. A query reads those arrays with ``uniqArray``
and ``quantilesArray`` — the same functions, over the same values, as ``uniq`` and
``quantiles`` over the rows — about twice as fast as merging the aggregate states 0008 stored
(``uniqMerge``/``quantilesMerge`` deserialize a hash set and a reservoir per row; see README
"Analytics (issue 15)")."""


def rollup_select(where: str, valid_through: str, metrics: tuple[str, ...] = ROLLUP_METRICS) -> str:
    """``SELECT`` of rollup rows (the table's column order) from the request rows ``where``."""
    return (
        f"SELECT organization_id, {ROLLUP_HOUR} AS hour, {', '.join(ROLLUP_DIMENSIONS)}, "
        f"{valid_through} AS valid_through, {', '.join(metrics)} "
        f"FROM {REQUEST_TABLE} FINAL WHERE {where} "
        f"GROUP BY organization_id, hour, {', '.join(ROLLUP_DIMENSIONS)}"
    )


USER_ROLLUP_METRICS: tuple[str, ...] = (
    "min(request_created_at) AS first_at",
    "max(request_created_at) AS last_at",
    "groupBitOr(bitShiftLeft(toUInt32(1), toHour(toDateTime(request_created_at, 'UTC')))) "
    "AS hours",
    "count() AS requests",
    "sum(ifNull(prompt_tokens, 0)) AS prompt_tokens",
    "sum(ifNull(completion_tokens, 0)) AS completion_tokens",
    "sum(ifNull(cost, 0)) AS cost",
    "countIf(status = 429) AS rate_limited",
)
"""A user-day's metrics over request rows (``FINAL``), in the user rollup's column order
(after ``valid_through``): what ``/v1/user/metrics/query`` adds up per user
(logging_pipeline/query/user_rollup.py), and ``hours``, the 24-bit mask of the UTC hours the
user sent requests in, from which the *local* days they were active are counted for any
whole-hour time zone."""


def user_rollup_select(where: str, valid_through: str) -> str:
    """``SELECT`` of user rollup rows (the table's column order) from the request rows
    ``where``: one per organization, UTC day and user id (``''`` too, so that every day with
    rows has a generation, even one whose requests named no user)."""
    return (
        f"SELECT organization_id, {USER_ROLLUP_DAY} AS day, user_id, "
        f"{valid_through} AS valid_through, {', '.join(USER_ROLLUP_METRICS)} "
        f"FROM {REQUEST_TABLE} FINAL WHERE {where} GROUP BY organization_id, day, user_id"
    )


MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "0001_request_response_rmt",
        (
            f"""
CREATE TABLE IF NOT EXISTS {REQUEST_TABLE}
(
    organization_id            UUID,
    request_id                 UUID,
    request_created_at         DateTime64(3, 'UTC'),
    response_created_at        Nullable(DateTime64(3, 'UTC')),
    latency                    Nullable(Int64),
    time_to_first_token        Nullable(Int64),
    status                     Int64,
    model                      LowCardinality(String),
    request_model              LowCardinality(String) DEFAULT '',
    response_model             LowCardinality(String) DEFAULT '',
    model_override             LowCardinality(String) DEFAULT '',
    provider                   LowCardinality(String),
    target_url                 String DEFAULT '',
    request_path               String DEFAULT '',
    user_id                    String DEFAULT '',
    api_key_id                 String DEFAULT '',
    country_code               Nullable(String),
    threat                     Nullable(Bool),
    prompt_tokens              Nullable(Int64),
    completion_tokens          Nullable(Int64),
    total_tokens               Int64
        MATERIALIZED ifNull(prompt_tokens, 0) + ifNull(completion_tokens, 0),
    prompt_cache_write_tokens  Int64 DEFAULT 0,
    prompt_cache_read_tokens   Int64 DEFAULT 0,
    prompt_audio_tokens        Int64 DEFAULT 0,
    completion_audio_tokens    Int64 DEFAULT 0,
    reasoning_tokens           Int64 DEFAULT 0,
    tokens_estimated           Bool DEFAULT false,
    cost                       Nullable(UInt64) DEFAULT 0,
    cost_known                 Bool DEFAULT true,
    provider_total_cost        UInt64 ALIAS ifNull(cost, 0),
    properties                 Map(LowCardinality(String), String),
    scores                     Map(LowCardinality(String), Float64),
    assets                     Array(String),
    cache_enabled              Bool DEFAULT false,
    cache_reference_id         Nullable(UUID),
    prompt_id                  String DEFAULT '',
    prompt_version             String DEFAULT '',
    is_stream                  Bool DEFAULT false,
    is_passthrough_billing     Bool DEFAULT false,
    storage_location           LowCardinality(String) DEFAULT 'local',
    request_size_bytes         UInt64 DEFAULT 0,
    response_size_bytes        UInt64 DEFAULT 0,
    request_body               String DEFAULT '',
    response_body              String DEFAULT '',
    session_id                 String MATERIALIZED properties['Helicone-Session-Id'],
    session_name               String MATERIALIZED properties['Helicone-Session-Name'],
    session_path               String MATERIALIZED properties['Helicone-Session-Path'],
    updated_at                 DateTime64(3, 'UTC') DEFAULT now64(3),

    INDEX idx_request_id     request_id            TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_session_id     session_id            TYPE bloom_filter(0.01)  GRANULARITY 1,
    INDEX idx_user_id        user_id               TYPE bloom_filter(0.01)  GRANULARITY 1,
    INDEX idx_prop_keys      mapKeys(properties)   TYPE bloom_filter(0.01)  GRANULARITY 1,
    INDEX idx_prop_values    mapValues(properties) TYPE bloom_filter(0.01)  GRANULARITY 1,
    INDEX idx_score_keys     mapKeys(scores)       TYPE bloom_filter(0.01)  GRANULARITY 1
)
ENGINE = ReplacingMergeTree(updated_at)
PARTITION BY toYYYYMM(request_created_at)
ORDER BY (organization_id, request_created_at, request_id)
""",
        ),
    ),
    (
        # Which capture wrote the row, and the same token in its body document: a request id
        # reused in one organization (Helicone-Request-Id) never shows one request's row with
        # another's body (see logging_pipeline.record.body_token). 0: rows written before.
        "0002_body_token",
        (f"ALTER TABLE {REQUEST_TABLE} ADD COLUMN IF NOT EXISTS body_token UInt64 DEFAULT 0",),
    ),
    (
        # The wire format of the stored response body (the provider's own answer: "openai",
        # "anthropic"…), so that a reader knows how to read it. '': rows written before.
        "0003_wire_format",
        (
            f"ALTER TABLE {REQUEST_TABLE} "
            "ADD COLUMN IF NOT EXISTS wire_format LowCardinality(String) DEFAULT ''",
        ),
    ),
    (
        # The attempts of a routed request (failover), as a JSON array of
        # {"source", "status", "latency_ms"}; '' when the request had none.
        "0004_attempts",
        (f"ALTER TABLE {REQUEST_TABLE} ADD COLUMN IF NOT EXISTS attempts String DEFAULT ''",),
    ),
    (
        # A response-cache hit (cache_reference_id set) costs nothing (cost 0); what it saved:
        # the cost of the replayed answer at the provider's price (nano-USD, computed like
        # any cost) and the latency of the request that was answered by the provider (ms).
        "0005_cache_savings",
        (
            f"ALTER TABLE {REQUEST_TABLE} "
            "ADD COLUMN IF NOT EXISTS cache_saved_cost UInt64 DEFAULT 0",
            f"ALTER TABLE {REQUEST_TABLE} "
            "ADD COLUMN IF NOT EXISTS cache_saved_latency Int64 DEFAULT 0",
        ),
    ),
    (
        # Feedback, scores and properties added after the fact (logging_pipeline/annotations.py):
        # one row per annotation, re-inserted with a newer version at each change of state
        # (pending -> applied | expired | resolved). request_id is the nil UUID for a session
        # annotation waiting for its session's first record. Kept 30 days (the longest
        # expiry): applying overlays the annotations still here, newest last.
        "0006_request_annotations",
        (
            f"""
CREATE TABLE IF NOT EXISTS {ANNOTATION_TABLE}
(
    organization_id  UUID,
    request_id       UUID,
    annotation_id    UUID,
    session_id       String DEFAULT '',
    accepted_at      DateTime64(6, 'UTC'),
    scores           Map(LowCardinality(String), Float64),
    properties       Map(LowCardinality(String), String),
    state            LowCardinality(String),
    version          DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toDate(accepted_at)
ORDER BY (organization_id, request_id, annotation_id)
TTL toDateTime(accepted_at) + INTERVAL 30 DAY
""",
        ),
    ),
    (
        # Managed prompts (gateway/prompts): the inputs a prompt-driven request was assembled
        # from (JSON) and the environment it asked for. prompt_id / prompt_version (0001) are
        # filled from now on too.
        "0007_prompt_inputs",
        (
            f"ALTER TABLE {REQUEST_TABLE} ADD COLUMN IF NOT EXISTS prompt_inputs String DEFAULT ''",
            f"ALTER TABLE {REQUEST_TABLE} "
            "ADD COLUMN IF NOT EXISTS prompt_environment LowCardinality(String) DEFAULT ''",
        ),
    ),
    (
        # Hourly rollups for the dashboard series (logging_pipeline/rollup.py): per
        # organization, hour, model, provider and status, the sums and the mergeable states
        # (distinct users, percentiles) of the rows as FINAL reads them. A rollup is never
        # fed by inserts (an annotation or a journal replay re-inserts a row, which would
        # count twice): every insert marks its hours dirty (the materialized view), and the
        # writer recomputes dirty hours from FINAL as a new generation (valid_through); a
        # query reads the newest generation of clean hours and raw rows for the rest.
        # Existing rows are rolled up here, as of the migration.
        "0008_hourly_rollups",
        (
            f"""
CREATE TABLE IF NOT EXISTS {ROLLUP_TABLE}
(
    organization_id            UUID,
    hour                       DateTime('UTC'),
    model                      LowCardinality(String),
    provider                   LowCardinality(String),
    status                     Int64,
    valid_through              DateTime64(6, 'UTC'),
    requests                   UInt64,
    errors                     UInt64,
    cost                       UInt64,
    prompt_tokens              Int64,
    completion_tokens          Int64,
    prompt_cache_read_tokens   Int64,
    prompt_cache_write_tokens  Int64,
    reasoning_tokens           Int64,
    cache_hits                 UInt64,
    threats                    UInt64,
    latency_n                  UInt64,
    latency_sum                Int64,
    ttft_n                     UInt64,
    ttft_sum                   Int64,
    users                      AggregateFunction(uniq, String),
    latency_q                  AggregateFunction(quantiles({ROLLUP_QUANTILES}), Nullable(Int64)),
    ttft_q                     AggregateFunction(quantiles({ROLLUP_QUANTILES}), Nullable(Int64))
)
ENGINE = ReplacingMergeTree(valid_through)
PARTITION BY toYYYYMM(hour)
ORDER BY (organization_id, hour, model, provider, status)
""",
            f"""
CREATE TABLE IF NOT EXISTS {ROLLUP_DIRTY_TABLE}
(
    organization_id  UUID,
    hour             DateTime('UTC'),
    marked_at        DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(marked_at)
ORDER BY (organization_id, hour)
""",
            f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {ROLLUP_DIRTY_VIEW} TO {ROLLUP_DIRTY_TABLE}
AS SELECT organization_id, {ROLLUP_HOUR} AS hour, now64(6, 'UTC') AS marked_at
FROM {REQUEST_TABLE} GROUP BY organization_id, hour
""",
            f"INSERT INTO {ROLLUP_TABLE} "
            + rollup_select(
                "1",
                f"now64(6, 'UTC') - toIntervalSecond({ROLLUP_SETTLE_SECONDS})",
                ROLLUP_METRICS_0008,
            ),
        ),
    ),
    (
        # What cache hits saved, per rollup row, so that the dashboard's ungrouped series
        # answers its savings from the rollup too (one statement fewer over the raw rows).
        # Then a new generation of every hour: rows of the older ones read 0 savings.
        "0009_rollup_cache_savings",
        (
            f"ALTER TABLE {ROLLUP_TABLE} "
            "ADD COLUMN IF NOT EXISTS cache_saved_cost UInt64 DEFAULT 0",
            f"ALTER TABLE {ROLLUP_TABLE} "
            "ADD COLUMN IF NOT EXISTS cache_saved_latency Int64 DEFAULT 0",
            f"INSERT INTO {ROLLUP_TABLE} "
            + rollup_select(
                "1",
                f"now64(6, 'UTC') - toIntervalSecond({ROLLUP_SETTLE_SECONDS})",
                ROLLUP_METRICS_0009,
            ),
        ),
    ),
    (
        # Distinct users and percentiles from plain arrays instead of aggregate states: per
        # rollup row the distinct user hashes and the latency and TTFT values, read with
        # uniqArray / quantilesArray (the answers uniq / quantiles give over the rows), which
        # cost about half of merging the states. The states are dropped; then a new
        # generation of every hour (older generations read empty arrays, and are never read:
        # a query reads an hour's newest generation).
        "0010_rollup_value_arrays",
        (
            f"ALTER TABLE {ROLLUP_TABLE} DROP COLUMN IF EXISTS users",
            f"ALTER TABLE {ROLLUP_TABLE} DROP COLUMN IF EXISTS latency_q",
            f"ALTER TABLE {ROLLUP_TABLE} DROP COLUMN IF EXISTS ttft_q",
            f"ALTER TABLE {ROLLUP_TABLE} "
            "ADD COLUMN IF NOT EXISTS users_h Array(UInt64) DEFAULT []",
            f"ALTER TABLE {ROLLUP_TABLE} "
            "ADD COLUMN IF NOT EXISTS latency_v Array(Int64) DEFAULT []",
            f"ALTER TABLE {ROLLUP_TABLE} "
            "ADD COLUMN IF NOT EXISTS ttft_v Array(Int64) DEFAULT []",
            f"INSERT INTO {ROLLUP_TABLE} "
            + rollup_select("1", f"now64(6, 'UTC') - toIntervalSecond({ROLLUP_SETTLE_SECONDS})"),
        ),
    ),    (
        # Per-(organization, UTC day, user) rollups for the user metrics (the dashboard's
        # Users view and top users): about 6x fewer rows than the requests they sum. Kept
        # exact like the hourly rollups (logging_pipeline/rollup.py): never fed by inserts;
        # a day is stale while an hour of it (request_rollup_dirty, 0008's marks) was marked
        # after its newest generation, and the writer recomputes stale days from FINAL.
        # Existing rows are rolled up here, as of the migration.
        "0011_user_rollup_daily",
        (
            f"""
CREATE TABLE IF NOT EXISTS {USER_ROLLUP_TABLE}
(
    organization_id    UUID,
    day                Date,
    user_id            String,
    valid_through      DateTime64(6, 'UTC'),
    first_at           DateTime64(3, 'UTC'),
    last_at            DateTime64(3, 'UTC'),
    hours              UInt32,
    requests           UInt64,
    prompt_tokens      Int64,
    completion_tokens  Int64,
    cost               UInt64,
    rate_limited       UInt64
)
ENGINE = ReplacingMergeTree(valid_through)
PARTITION BY toYYYYMM(day)
ORDER BY (organization_id, day, user_id)
""",
            f"INSERT INTO {USER_ROLLUP_TABLE} "
            + user_rollup_select(
                "1", f"now64(6, 'UTC') - toIntervalSecond({ROLLUP_SETTLE_SECONDS})"
            ),
        ),
    ),
)
"""(version, statements) in order; each statement is idempotent."""

INSERT_COLUMNS: tuple[str, ...] = (
    "organization_id",
    "request_id",
    "request_created_at",
    "response_created_at",
    "latency",
    "time_to_first_token",
    "status",
    "model",
    "request_model",
    "response_model",
    "model_override",
    "provider",
    "target_url",
    "request_path",
    "user_id",
    "api_key_id",
    "country_code",
    "prompt_tokens",
    "completion_tokens",
    "prompt_cache_write_tokens",
    "prompt_cache_read_tokens",
    "prompt_audio_tokens",
    "completion_audio_tokens",
    "reasoning_tokens",
    "tokens_estimated",
    "cost",
    "cost_known",
    "properties",
    "cache_enabled",
    "cache_reference_id",
    "is_stream",
    "storage_location",
    "request_size_bytes",
    "response_size_bytes",
    "updated_at",
    "body_token",
    "wire_format",
    "attempts",
    "cache_saved_cost",
    "cache_saved_latency",
    "prompt_id",
    "prompt_version",
    "prompt_inputs",
    "prompt_environment",
)
"""The columns the writer fills, in the order of the rows it inserts."""
