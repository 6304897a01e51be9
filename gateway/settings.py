"""Gateway settings, read once at startup from the environment (and an optional TOML file).

Every field is documented in the README's configuration table. Gateway-specific settings use
the ``GATEWAY_`` prefix; storage URLs and provider credentials use the conventional names
(``DATABASE_URL``, ``OPENAI_API_KEY``, ``GROQ_BASE_URL``…) so existing deployments carry over.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from yarl import URL

from gateway.targets import parse_pattern
from providers.bedrock.models import DEFAULT_REGION, is_region
from providers.spec import PROVIDERS, ProviderTable
from providers.vertex import DEFAULT_LOCATION, is_location, is_project


class _ProviderEnvSource(PydanticBaseSettingsSource):
    """Collects ``<PROVIDER>_API_KEY`` / ``<PROVIDER>_BASE_URL`` for every routed provider of
    the table (:mod:`providers.spec`).

    These are the operator's managed credentials; they keep the providers' own variable names
    instead of living under the ``GATEWAY_`` prefix. A SigV4 provider (Bedrock) reads AWS's
    standard variables, ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (and
    ``AWS_SESSION_TOKEN``), as its key (``ACCESS:SECRET[:TOKEN]``,
    :class:`providers.bedrock.AwsCredentials`), unless ``<PREFIX>_API_KEY`` is set (a Bedrock
    API key, or credentials in that form). An OAuth provider (Vertex) reads the
    service-account key file that Google's standard ``GOOGLE_APPLICATION_CREDENTIALS`` names,
    unless ``<PREFIX>_API_KEY`` holds the key's JSON itself (or an access token).
    """

    def __init__(
        self, settings_cls: type[BaseSettings], table: ProviderTable = PROVIDERS
    ) -> None:
        super().__init__(settings_cls)
        self.table = table

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        keys: dict[str, str] = {}
        urls: dict[str, str] = {}
        for spec in self.table.routed().values():
            key = os.environ.get(spec.key_env)
            if not key and spec.auth == "sigv4":
                key = _aws_environment_key()
            if not key and spec.auth == "oauth":
                key = _google_credentials_file()
            url = os.environ.get(spec.base_url_env)
            if key:
                keys[spec.name] = key
            if url:
                urls[spec.name] = url
        found: dict[str, Any] = {}
        if keys:
            found["provider_api_keys"] = keys
        if urls:
            found["provider_base_urls"] = urls
        return found


def _aws_environment_key() -> str | None:
    """AWS's standard credential variables as one ``ACCESS:SECRET[:TOKEN]`` key, if set."""
    access = os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret:
        return None
    token = os.environ.get("AWS_SESSION_TOKEN")
    return f"{access}:{secret}:{token}" if token else f"{access}:{secret}"


def _google_credentials_file() -> str | None:
    """The content of the key file ``GOOGLE_APPLICATION_CREDENTIALS`` names, if set (read
    once at startup; an unreadable file is a startup error naming the variable)."""
    path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ValueError(
            f"GOOGLE_APPLICATION_CREDENTIALS: cannot read {path!r}: {reason}"
        ) from None


def _check_vertex_location(value: str) -> str:
    if not is_location(value):
        raise ValueError(
            "the Vertex location must be 'global', a multi-region ('us', 'eu') or a region "
            "such as us-central1"
        )
    return value


def _check_vertex_project(value: str | None) -> str | None:
    if value is not None and not is_project(value):
        raise ValueError("the Vertex project must be a Google Cloud project id")
    return value


def _check_region(value: str) -> str:
    if not is_region(value):
        raise ValueError("the Bedrock region must be an AWS region name such as us-east-1")
    return value


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _check_patterns(value: list[str]) -> list[str]:
    for entry in value:
        parse_pattern(entry)  # raises ValueError naming the entry
    return value


def _check_base_urls(value: dict[str, str]) -> dict[str, str]:
    """Refuse a provider base URL that is not ``http(s)://host[:port][/path]``.

    Credentials in it (``https://user:pw@host/v1``) are refused, our choice: OpenAI-compatible
    providers take a bearer key (``<PREFIX>_API_KEY``), and aiohttp cannot send basic
    credentials from the URL together with that key, so every request would fail. The error
    names the variable, never the URL (it may hold a password).
    """
    for name, raw in value.items():
        spec = PROVIDERS.routed().get(name)
        variable = spec.base_url_env if spec else f"the base URL of {name!r}"
        try:
            url = URL(raw)
            valid = url.absolute and url.scheme in ("http", "https") and bool(url.raw_host)
        except (ValueError, TypeError):
            valid = False
        if not valid:
            raise ValueError(f"{variable} must be an absolute http(s) URL")
        if url.raw_user is not None or url.raw_password is not None:
            key = spec.key_env if spec else "the provider's API key"
            raise ValueError(
                f"{variable} must not contain credentials (user:password@); put the provider "
                f"key in {key}"
            )
    return value


class Settings(BaseSettings):
    """All configuration of one gateway process."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_",
        extra="ignore",
        populate_by_name=True,
        # Values may be secrets (keys, passwords in URLs): errors name the field, not the value.
        hide_input_in_errors=True,
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    data_dir: Path = Path("./data")
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "database_url")
    )
    allow_anonymous: bool = False
    key_cache_ttl_seconds: float = Field(default=10.0, ge=0)
    # Provider keys at rest (gateway/store/_crypto.py): AES-256-GCM key(s), URL-safe base64 of
    # 32 bytes, comma separated; the first encrypts, every one decrypts (rotation). Required
    # with DATABASE_URL; the SQLite default generates data_dir/encryption.key on first start.
    encryption_key: SecretStr | None = None
    provider_key_cache_ttl_seconds: float = Field(default=10.0, ge=0)
    # The web dashboard (gateway/dashboard): how long a sign-in lasts (its cookie session).
    dashboard_session_ttl_seconds: float = Field(default=8 * 3600.0, gt=0)
    # Metering (gateway/metering): how long an organisation's credit account and budgets are
    # cached per process; how long a reservation holds before the sweep may release it (a
    # process died between reserve and settle); how often each process sweeps.
    credits_cache_ttl_seconds: float = Field(default=10.0, ge=0)
    credit_hold_ttl_seconds: float = Field(default=3600.0, gt=0)
    credit_sweep_interval_seconds: float = Field(default=60.0, gt=0)
    # Routing health (providers/health.py): how long a (provider, key) that failed 3 times in
    # a row goes to the end of every plan. 0 turns the reordering off: every request tries
    # its attempts in their planned order (the bench measures failover that way).
    provider_cooldown_seconds: float = Field(default=30.0, ge=0)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # OpenTelemetry ingestion (gateway/api/otel.py): the largest export accepted, measured
    # after decompression (a compressed body cannot expand past it), and the largest single
    # span (encoded); a larger span is rejected alone (OTLP partial success).
    otel_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    otel_max_span_bytes: int = Field(default=1024 * 1024, ge=256)
    # The manual logger (gateway/ingest): the largest log body (request + response of one
    # logged call) accepted; 413 above.
    manual_log_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # Slow clients (gateway/protocol.py): a request's headers, then its body, must arrive
    # within these many seconds (408 after); connections per process past the limit get 503.
    client_header_timeout: float = Field(default=10.0, gt=0)
    client_body_timeout: float = Field(default=60.0, gt=0)
    max_connections: int = Field(default=2048, ge=1)
    upstream_connect_timeout: float = Field(default=10.0, gt=0)
    upstream_read_timeout: float = Field(default=600.0, gt=0)
    upstream_max_connections: int = Field(default=1000, ge=1)
    allowed_target_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # URLs a client gives for an image or file that a translation must inline
    # (gateway/fetcher.py): the largest body fetched, and the time for the whole fetch,
    # redirects included.
    fetch_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    fetch_timeout_seconds: float = Field(default=10.0, gt=0)
    azure_openai_api_version: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AZURE_OPENAI_API_VERSION", "azure_openai_api_version"),
    )
    """Azure OpenAI's ``api-version`` for the classic deployments API; unset: the v1 API
    (providers/azure.py)."""
    log_level: str = "info"
    # The gateway's own log lines (logging_pipeline/logformat.py): one JSON object per line, or
    # text for a terminal; log_requests writes one line per request (gateway/accesslog.py) at
    # level info.
    log_format: Literal["json", "text"] = "json"
    log_requests: bool = True
    # GET /metrics (gateway/metrics.py): Prometheus' text format; with a token, a scrape must
    # send it as "Authorization: Bearer <token>" (401 without).
    metrics_enabled: bool = True
    metrics_token: SecretStr | None = None
    # /readyz (gateway/readiness.py): each store's probe gets this long; the replica is not
    # ready while the record journal holds more than this many bytes not yet written.
    ready_timeout_seconds: float = Field(default=2.0, gt=0)
    ready_max_log_backlog_bytes: int = Field(default=256 * 1024 * 1024, ge=0)
    clickhouse_url: str | None = Field(
        default=None, validation_alias=AliasChoices("CLICKHOUSE_URL", "clickhouse_url")
    )
    s3_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("S3_ENDPOINT", "s3_endpoint")
    )
    s3_bucket_name: str | None = Field(
        default=None, validation_alias=AliasChoices("S3_BUCKET_NAME", "s3_bucket_name")
    )
    s3_access_key: str | None = Field(
        default=None, validation_alias=AliasChoices("S3_ACCESS_KEY", "s3_access_key")
    )
    s3_secret_key: str | None = Field(
        default=None, validation_alias=AliasChoices("S3_SECRET_KEY", "s3_secret_key")
    )
    s3_region: str = Field(
        default="us-east-1", validation_alias=AliasChoices("S3_REGION", "s3_region")
    )
    # HQL (/v1/helicone-sql/*, logging_pipeline/hql): off answers 403 HQL_FEATURE_NOT_ENABLED;
    # a ClickHouse server URL of the HQL user whose row policy filters on the org setting
    # (README "HQL"), used for HQL instead of CLICKHOUSE_URL; how long a CSV link is valid.
    hql_enabled: bool = True
    hql_clickhouse_url: str | None = None
    hql_link_ttl_seconds: int = Field(default=86_400, ge=60, le=7 * 86_400)
    # Managed prompts (gateway/prompts, README "Prompts"): how long a resolved version is
    # cached per process (every prompt write invalidates it at once, in every process with
    # REDIS_URL); lenient resolution (an unknown environment or version falls back to
    # production, as upstream does, instead of a 400); whether runtime messages get
    # {{hc:…}} substitution too (upstream does; off when users' text must stay as sent); how
    # long the signed body links of the Helicone facade (s3_url) are valid.
    prompt_cache_ttl_seconds: float = Field(default=300.0, ge=0)
    prompt_resolution_fallback: bool = False
    prompt_substitute_runtime_messages: bool = True
    prompt_body_link_ttl_seconds: int = Field(default=3600, ge=10, le=7 * 86_400)
    logging_enabled: bool = True
    log_writer_process: bool = True
    # The writer child's CPU priority (added niceness, 0-19): request serving comes first
    # when the cores are busy; the writer catches up in the gaps, the record journal
    # absorbing the lag.
    log_writer_nice: int = Field(default=10, ge=0, le=19)
    body_store: Literal["sqlite", "files"] = "sqlite"
    # ClickHouse's guidance: batches of 10,000-100,000 rows, about one insert per second. Each
    # insert has a fixed cost (in chdb, measured ~20 ms of CPU for this table), so at a few
    # thousand requests per second 1,000-row / 500 ms batches cost the log writer ~30% more
    # CPU than one batch per second. The queue holds what arrives during a batch's write.
    log_flush_rows: int = Field(default=10_000, ge=1)
    log_flush_ms: int = Field(default=1000, ge=1)
    # The record journal is written to the page cache; with this set (> 0), a thread also
    # fdatasyncs it every so many milliseconds, bounding what a power loss can take.
    log_journal_fsync_ms: int = Field(default=0, ge=0)
    # Annotations (feedback, scores, properties) may arrive before their request's record: they
    # wait in the store this long for it, then are logged, counted and dropped. At most 30
    # days, how long the store keeps annotations (logging_pipeline/schema.py).
    annotation_expiry_seconds: float = Field(default=86_400.0, gt=0, le=30 * 86_400)
    # HoneyHive batches (POST /events/model/batch, /v1/events/batch; gateway/api/honeyhive.py):
    # one request's body (413 above), the events in one batch (413 above), and one event's JSON
    # (that event alone fails, in the answer's errors).
    honeyhive_max_batch_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    honeyhive_max_batch_events: int = Field(default=1000, ge=1)
    honeyhive_max_event_bytes: int = Field(default=1024 * 1024, ge=256)
    # Redis (gateway/redisconn.py), shared by the response cache and rate limits: unset, both
    # live in the process. The prefix starts every key (several deployments on one server);
    # after a connection fault Redis is left alone for redis_retry_seconds (fail open).
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "redis_url")
    )
    redis_key_prefix: str = "gateway:"
    redis_max_connections: int = Field(default=64, ge=1)
    redis_connect_timeout: float = Field(default=1.0, gt=0)
    redis_retry_seconds: float = Field(default=1.0, ge=0)
    # The response cache (cache/): the largest answer stored (larger ones are served, not
    # stored), the in-process store's bound (without REDIS_URL: the cache; with it: the
    # near copy of Redis entries), how long a near copy is kept at most (0: no near copy),
    # and the time budgets of a read (past it: a MISS) and a write (after the client has
    # its answer).
    cache_max_entry_bytes: int = Field(default=2 * 1024 * 1024, ge=1)
    cache_memory_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    cache_near_seconds: float = Field(default=5.0, ge=0)
    cache_read_timeout_ms: float = Field(default=100.0, gt=0)
    cache_write_timeout_ms: float = Field(default=1000.0, gt=0)
    # Shutdown on SIGTERM (docs/operations.md): requests in flight (streams included) get this
    # long to finish after the gateway stops accepting; then the log writer gets
    # shutdown_log_drain_seconds to write what is journaled (the rest stays in the journal for
    # the next start). Kubernetes' terminationGracePeriodSeconds must cover both.
    shutdown_grace_seconds: int = Field(default=30, ge=0)
    shutdown_log_drain_seconds: int = Field(default=20, ge=0)
    # Traces (gateway/traces.py): one OpenTelemetry span per request, exported over OTLP/HTTP
    # when enabled; the endpoint, service name and protocol use OpenTelemetry's own variable
    # names (the SDK reads the other OTEL_* variables itself). Message content only when
    # traces_capture_content is set.
    traces_enabled: bool = False
    traces_capture_content: bool = False
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "otel_exporter_otlp_endpoint"),
    )
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "otel_exporter_otlp_traces_endpoint"
        ),
    )
    otel_exporter_otlp_protocol: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_PROTOCOL", "otel_exporter_otlp_protocol"),
    )
    otel_exporter_otlp_headers: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_HEADERS", "otel_exporter_otlp_headers"),
    )
    """``key=value,key2=value2`` sent with every export (a hosted backend's API key)."""
    otel_service_name: str = Field(
        default="llm-gateway",
        validation_alias=AliasChoices("OTEL_SERVICE_NAME", "otel_service_name"),
    )
    # Where Bedrock requests go when the deployment (BYOK key) names no region.
    bedrock_region: str = Field(
        default=DEFAULT_REGION,
        validation_alias=AliasChoices(
            "GATEWAY_BEDROCK_REGION", "AWS_REGION", "AWS_DEFAULT_REGION", "bedrock_region"
        ),
    )
    # Vertex AI: the project and location of requests whose deployment (BYOK key) names none;
    # the project defaults to the service account's own (its key's project_id).
    vertex_project: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "GATEWAY_VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT", "vertex_project"
        ),
    )
    vertex_location: str = Field(
        default=DEFAULT_LOCATION,
        validation_alias=AliasChoices(
            "GATEWAY_VERTEX_LOCATION", "GOOGLE_CLOUD_LOCATION", "vertex_location"
        ),
    )
    provider_api_keys: dict[str, str] = Field(default_factory=dict)
    provider_base_urls: dict[str, str] = Field(default_factory=dict)

    _split_hosts = field_validator("allowed_target_hosts", mode="before")(_split_csv)
    _valid_hosts = field_validator("allowed_target_hosts")(_check_patterns)
    _valid_base_urls = field_validator("provider_base_urls")(_check_base_urls)
    _valid_region = field_validator("bedrock_region")(_check_region)
    _valid_vertex_location = field_validator("vertex_location")(_check_vertex_location)
    _valid_vertex_project = field_validator("vertex_project")(_check_vertex_project)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            _ProviderEnvSource(settings_cls),
        ]
        config_file = os.environ.get("GATEWAY_CONFIG_FILE")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def resolved_database_url(self) -> str:
        """``DATABASE_URL`` with a driver suitable for async SQLAlchemy, or the SQLite default."""
        url = self.database_url
        if not url:
            return f"sqlite+aiosqlite:///{(self.data_dir / 'gateway.db').resolve()}"
        for plain, async_url in (
            ("postgres://", "postgresql+asyncpg://"),
            ("postgresql://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if url.startswith(plain):
                return async_url + url[len(plain) :]
        return url
