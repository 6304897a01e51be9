"""``gateway doctor``: what this configuration says, and whether each store it names answers.

Run where the gateway runs (``docker compose exec gateway gateway doctor``, ``kubectl exec``),
it prints every setting with the environment variable that sets it — secrets masked — then
asks each store once: the control-plane database (and whether its schema is at the
migrations' head), the log store, the body store and Redis when ``REDIS_URL`` is set. It exits
``1`` when a store does not answer, so it also serves as a deployment smoke test.

Problems in the configuration as a whole — what ``gateway serve`` would refuse to start with
(:func:`gateway.cli.configuration_problems`) — are listed too, and fail the command as well.

It changes nothing: no migration, no bucket or file created, and the embedded log engine is
not opened (a running gateway holds it; the check is that the engine is installed). Its output
is for the operator, so store errors are shown in full — but every secret value the settings
hold is masked in them too, whatever a driver puts in its message.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from pydantic import SecretStr
from yarl import URL

from gateway.logconfig import log_config, log_store_problem
from gateway.readiness import redis_ping
from gateway.settings import Settings
from gateway.store import ControlStore, EncryptionKeyError, KeyRing
from gateway.store._crypto import KEY_FILE_NAME
from gateway.store._engine import display_url
from logging_pipeline.bodies import S3BodyStore
from logging_pipeline.clickhouse.connect_transport import ClickHouseConnectTransport
from providers.spec import PROVIDERS

CHECK_SECONDS = 10.0
"""Each store gets this long to answer."""

MASK = "***"

_SECRET_SUFFIXES = ("_key", "_secret", "_password", "_token")


@dataclass(frozen=True, slots=True)
class Finding:
    """One store's answer: ``ok`` False fails the command; ``note`` is advice, not a failure."""

    name: str
    ok: bool
    detail: str
    note: str = ""


# --- which variables the gateway reads ----------------------------------------------------------


def setting_variables(settings_cls: type[Settings] = Settings) -> dict[str, str]:
    """Every environment variable the gateway reads, mapped to the setting it fills.

    ``GATEWAY_<FIELD>`` for a plain field, the alias for a field with a conventional name
    (``DATABASE_URL``, ``CLICKHOUSE_URL``…), ``<PREFIX>_API_KEY`` / ``<PREFIX>_BASE_URL`` for
    every routed provider, and ``GATEWAY_CONFIG_FILE``. The compose test checks the deployment
    files against this.
    """
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    variables: dict[str, str] = {}
    for name, info in settings_cls.model_fields.items():
        if name in ("provider_api_keys", "provider_base_urls"):
            continue
        alias = info.validation_alias
        choices = getattr(alias, "choices", None)
        if choices:
            variables[str(choices[0])] = name
        elif isinstance(alias, str):
            variables[alias] = name
        else:
            variables[(prefix + name).upper()] = name
    for spec in PROVIDERS.routed().values():
        variables[spec.key_env] = "provider_api_keys"
        variables[spec.base_url_env] = "provider_base_urls"
    for aws in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        variables[aws] = "provider_api_keys"  # Bedrock's managed credentials (settings.py)
    variables["GOOGLE_APPLICATION_CREDENTIALS"] = "provider_api_keys"  # Vertex's key file
    variables["GATEWAY_CONFIG_FILE"] = "(the TOML settings file)"
    return variables


# --- masking ------------------------------------------------------------------------------------


def _is_secret_name(name: str) -> bool:
    return name.endswith(_SECRET_SUFFIXES) or "secret" in name or "password" in name


def masked_url(value: str) -> str:
    """``value`` with the password of a URL replaced (database, ClickHouse, Redis URLs)."""
    try:
        url = URL(value)
    except (ValueError, TypeError):
        return MASK
    if url.password is None:
        return value
    return str(url.with_password(MASK))


def _secrets(settings: Settings) -> list[str]:
    """Every secret value in ``settings``: masked wherever it would appear in the output."""
    found: list[str] = list(settings.provider_api_keys.values())
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            found.extend(part.strip() for part in value.get_secret_value().split(","))
        elif isinstance(value, str) and value:
            if _is_secret_name(name):
                found.append(value)
            elif "://" in value:
                try:
                    url = URL(value)
                except (ValueError, TypeError):
                    continue
                if url.password:  # as written in the URL and decoded: either may be echoed
                    found.extend((url.password, url.raw_password or ""))
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def _shown(name: str, value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, SecretStr):
        count = len([p for p in value.get_secret_value().split(",") if p.strip()])
        return f"{MASK} ({count} key{'s' if count != 1 else ''})" if count else "(unset)"
    if isinstance(value, str) and _is_secret_name(name):
        return MASK if value else "(unset)"
    if isinstance(value, str) and "://" in value:
        return masked_url(value)
    if isinstance(value, list):
        return ",".join(str(item) for item in value) or "(empty)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def configuration(settings: Settings) -> list[tuple[str, str, bool]]:
    """``(variable, shown value, is the default)`` for every setting, secrets masked."""
    defaults = type(settings).model_fields
    rows: list[tuple[str, str, bool]] = []
    for variable, name in setting_variables(type(settings)).items():
        if name in ("provider_api_keys", "provider_base_urls"):
            continue
        if name.startswith("("):
            given = os.environ.get(variable)
            rows.append((variable, given or "(unset)", given is None))
            continue
        value = getattr(settings, name)
        default = defaults[name].get_default(call_default_factory=True)
        rows.append((variable, _shown(name, value), value == default))
    for spec in PROVIDERS.routed().values():
        key = settings.provider_api_keys.get(spec.name)
        url = settings.provider_base_urls.get(spec.name)
        if key:
            rows.append((spec.key_env, MASK, False))
        if url:
            rows.append((spec.base_url_env, url, False))
    return rows


# --- the checks ---------------------------------------------------------------------------------


async def _control_store(settings: Settings) -> Finding:
    name = "control store"
    where = display_url(settings.resolved_database_url)
    if settings.database_url:
        if settings.encryption_key is None or not settings.encryption_key.get_secret_value():
            return Finding(
                name, False, f"{where}: GATEWAY_ENCRYPTION_KEY is not set (required with "
                "DATABASE_URL; 'gateway encryption-key' prints one)",
            )  # fmt: skip
    else:
        database = settings.data_dir / "gateway.db"
        if not database.exists():
            return Finding(name, True, f"SQLite {database} does not exist yet",
                           "the first 'gateway serve' creates it")  # fmt: skip
        key_file = settings.data_dir / KEY_FILE_NAME
        if settings.encryption_key is None and not key_file.exists():
            return Finding(name, False, f"{key_file} is missing, but {database} exists: "
                           "provider keys stored in it cannot be decrypted")  # fmt: skip
    if settings.encryption_key is not None and settings.encryption_key.get_secret_value():
        try:
            KeyRing.parse(settings.encryption_key.get_secret_value())
        except EncryptionKeyError as exc:
            return Finding(name, False, str(exc))
    store = ControlStore(settings.resolved_database_url)
    try:
        revision = await store.schema_revision()
        head = await asyncio.to_thread(ControlStore.head_revision)
    finally:
        await store.close()
    if revision == head:
        return Finding(name, True, f"{where} answers; schema at head ({head})")
    return Finding(
        name, True, f"{where} answers; schema at {revision or '(empty)'}, head is {head}",
        "migrations are pending: 'gateway migrate' (or the next 'gateway serve') applies them",
    )  # fmt: skip


async def _log_store(settings: Settings) -> Finding:
    name = "log store"
    if not settings.logging_enabled:
        return Finding(name, True, "request logging is off (GATEWAY_LOGGING_ENABLED=false)")
    problem = log_store_problem(settings)
    if problem is not None:
        return Finding(name, False, problem)
    if settings.clickhouse_url:
        transport = ClickHouseConnectTransport(settings.clickhouse_url)
        try:
            rows = await transport.query("SELECT version() AS version")
        finally:
            await transport.close()
        version = rows[0]["version"] if rows else "?"
        shown = masked_url(settings.clickhouse_url)
        return Finding(name, True, f"ClickHouse server {shown} answers (version {version})")
    path = log_config(settings).log_store.embedded_path
    return Finding(
        name, True, f"embedded ClickHouse (chdb) installed; data in {path}",
        "not opened here (a running gateway holds it); single-process: one worker, one replica",
    )  # fmt: skip


async def _body_store(settings: Settings) -> Finding:
    name = "body store"
    config = log_config(settings).body_store  # ValueError on a partial S3 setup
    if config.s3 is not None:
        s3 = config.s3
        store = S3BodyStore(s3.endpoint, s3.bucket, s3.access_key, s3.secret_key, s3.region)
        try:
            await store.ping()
        finally:
            await store.close()
        return Finding(name, True, f"S3 bucket {s3.bucket} at {s3.endpoint} answers")
    directory = config.directory
    existing = next(p for p in (directory, *directory.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        detail = f"local ({config.kind}) {directory}: {existing} is not writable"
        return Finding(name, False, detail)
    state = "exists" if existing == directory else "created at first start"
    return Finding(name, True, f"local ({config.kind}) in {directory} ({state}, writable)",
                   "single-host: replicas need S3 (S3_ENDPOINT...)")  # fmt: skip


async def _redis(settings: Settings) -> Finding:
    assert settings.redis_url is not None
    await redis_ping(settings.redis_url, CHECK_SECONDS)
    return Finding("redis", True, f"{masked_url(settings.redis_url)} answers PING")


def _checks(settings: Settings) -> list[tuple[str, Callable[[Settings], Awaitable[Finding]]]]:
    checks: list[tuple[str, Callable[[Settings], Awaitable[Finding]]]] = [
        ("control store", _control_store),
        ("log store", _log_store),
        ("body store", _body_store),
    ]
    if settings.redis_url:
        checks.append(("redis", _redis))
    return checks


async def check_stores(settings: Settings) -> list[Finding]:
    """Ask every configured store once, concurrently, each within :data:`CHECK_SECONDS`."""

    async def guarded(name: str, check: Callable[[Settings], Awaitable[Finding]]) -> Finding:
        try:
            async with asyncio.timeout(CHECK_SECONDS):
                return await check(settings)
        except TimeoutError:
            return Finding(name, False, f"no answer within {CHECK_SECONDS:g} s")
        except Exception as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            return Finding(name, False, reason[0] if reason else type(exc).__name__)

    return list(await asyncio.gather(*(guarded(n, c) for n, c in _checks(settings))))


# --- the report ---------------------------------------------------------------------------------


def run(settings: Settings, out: TextIO) -> int:
    """Print the configuration and the stores' answers; 0 when every store answered."""
    secrets = _secrets(settings)

    def say(line: str = "") -> None:
        print(redact(line, secrets), file=out)

    say("Configuration (secrets masked; * = set, not the default):")
    rows = configuration(settings)
    width = max(len(variable) for variable, _, _ in rows)
    for variable, value, is_default in rows:
        say(f"  {' ' if is_default else '*'} {variable.ljust(width)}  {value}")
    say()
    from gateway.cli import configuration_problems  # the cli imports this module lazily

    problems = configuration_problems(settings, settings.workers)
    if problems:  # what `gateway serve` would refuse to start with
        say("Configuration problems ('gateway serve' refuses to start):")
        for problem in problems:
            say(f"  FAIL  {problem}")
        say()
    findings = asyncio.run(check_stores(settings))
    say("Stores:")
    for finding in findings:
        say(f"  {'ok  ' if finding.ok else 'FAIL'}  {finding.name}: {finding.detail}")
        if finding.note:
            say(f"        {finding.note}")
    failed = [f.name for f in findings if not f.ok]
    say()
    if failed:
        say(f"{len(failed)} of {len(findings)} stores did not answer: {', '.join(failed)}.")
        return 1
    say(f"All {len(findings)} stores answer.")
    if problems:
        say(f"{len(problems)} configuration problem(s): see above.")
        return 1
    return 0
