"""The ``gateway`` command: ``serve``, ``migrate``, ``keys create|list|revoke``,
``encryption-key``, ``provider-keys reencrypt``, ``doctor``, ``models`` and ``credits``
(gateway/cli_credits.py).

Every command applies pending migrations first (a no-op when there are none), so each works
on a fresh data directory. Failures the operator can fix (bad input, unknown key, unreachable
database) end with a one-line ``error:`` message on stderr and exit status 1, never a traceback;
usage errors exit with argparse's status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shutil
import sys
import tempfile
import tomllib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, TypeVar

import orjson
from alembic.util import CommandError
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.exc import SQLAlchemyError

from gateway.lifecycle import exit_on_signal, validation_problems
from gateway.logconfig import log_config, log_store_problem
from gateway.scopes import ALIASES, NATIVE_SCOPES, UnknownScope, expand
from gateway.settings import Settings
from gateway.store import (
    DEFAULT_ORG,
    MISSING_KEY_MESSAGE,
    AmbiguousKey,
    ControlStore,
    DecryptionError,
    EncryptionKeyError,
    KeyNotFound,
    KeyRecord,
    KeyRing,
    generate_key,
)
from gateway.store._engine import display_url
from logging_pipeline.logformat import dict_config
from logging_pipeline.private import restrict_umask
from providers.cost import ModelPrice

if TYPE_CHECKING:
    from providers.registry import Model

T = TypeVar("T")

APP_FACTORY = "gateway.app:create_app_from_env"


class CommandFailed(Exception):
    """An error already phrased for the operator; ``main`` prints it and exits 1."""


# --- running store operations -------------------------------------------------------------


def _run_with_store(
    settings: Settings,
    action: Callable[[ControlStore], Awaitable[T]],
    *,
    migrate_first: bool = True,
) -> T:
    """Migrates, runs ``action`` and closes the store, translating database failures."""
    where = display_url(settings.resolved_database_url)
    try:
        store = ControlStore.from_settings(settings)
    except EncryptionKeyError as exc:
        raise CommandFailed(str(exc)) from exc
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise CommandFailed(f"invalid database URL {where}: {_reason(exc)}") from exc
    except OSError as exc:
        raise CommandFailed(f"cannot create the data directory: {exc}") from exc

    async def run() -> T:
        try:
            if migrate_first:
                await store.migrate()
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except (KeyNotFound, AmbiguousKey) as exc:
        raise CommandFailed(str(exc.args[0]) if exc.args else str(exc)) from exc
    except (EncryptionKeyError, DecryptionError) as exc:
        raise CommandFailed(str(exc)) from exc
    except CommandError as exc:
        raise CommandFailed(f"cannot migrate the database at {where}: {exc}") from exc
    except (SQLAlchemyError, OSError) as exc:
        raise CommandFailed(f"cannot use the database at {where}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    """The first line of the underlying driver error, without SQLAlchemy's boilerplate."""
    cause: BaseException = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


# --- serve --------------------------------------------------------------------------------


def prepare_serving(settings: Settings) -> str | None:
    """Migrate, and make sure a locked-down gateway can be used at all.

    Unless anonymous access is allowed, a gateway without any active key would reject every
    request; so the first start creates a key for the default organisation and returns it (the
    caller shows it once). Returns ``None`` when nothing was created.
    """

    async def bootstrap(store: ControlStore) -> str | None:
        if settings.allow_anonymous or await store.has_active_key():
            return None
        key, _record = await store.create_key(DEFAULT_ORG, name="bootstrap")
        return key

    return _run_with_store(settings, bootstrap)


def check_encryption_key(settings: Settings) -> None:
    """Refuse a server database without ``GATEWAY_ENCRYPTION_KEY`` (and a malformed key).

    The server refuses at startup as well (:meth:`gateway.runtime.Runtime.start`); checking
    here first turns it into one clear line before anything else happens.
    """
    if settings.database_url and (
        settings.encryption_key is None or not settings.encryption_key.get_secret_value()
    ):
        raise CommandFailed(MISSING_KEY_MESSAGE)


def check_workers(settings: Settings, workers: int) -> None:
    """Refuse several workers over the embedded log store.

    chdb (embedded ClickHouse) keeps its data directory open in one process; a second worker
    could not open it. Several workers need a ClickHouse server (``CLICKHOUSE_URL``) or
    logging turned off (``GATEWAY_LOGGING_ENABLED=false``).
    """
    if workers > 1 and settings.logging_enabled and not settings.clickhouse_url:
        raise CommandFailed(
            f"--workers {workers} needs a ClickHouse server for the request log: the embedded "
            "store (chdb) is single-process. Set CLICKHOUSE_URL, or run one worker, or set "
            "GATEWAY_LOGGING_ENABLED=false."
        )


def check_log_store(settings: Settings) -> None:
    """Refuse to serve when the request log has no store at all (see
    :func:`gateway.logconfig.log_store_problem`)."""
    problem = log_store_problem(settings)
    if problem is not None:
        raise CommandFailed(problem)


def check_body_store(settings: Settings) -> None:
    """Refuse a partial S3 body-store configuration (some of the four S3 variables set)."""
    if settings.logging_enabled:
        try:
            log_config(settings)
        except ValueError as exc:
            raise CommandFailed(str(exc)) from exc


def check_encryption_key_format(settings: Settings) -> None:
    """Refuse a ``GATEWAY_ENCRYPTION_KEY`` that is not URL-safe base64 of 32 bytes."""
    if settings.encryption_key is not None and settings.encryption_key.get_secret_value():
        try:
            KeyRing.parse(settings.encryption_key.get_secret_value())
        except EncryptionKeyError as exc:
            raise CommandFailed(str(exc)) from exc


def configuration_problems(settings: Settings, workers: int) -> list[str]:
    """Every problem of this configuration that would stop the server, one line each (the
    settings model has checked each value on its own; these are the combinations)."""
    checks: list[Callable[[Settings], None]] = [
        check_encryption_key,
        check_encryption_key_format,
        lambda s: check_workers(s, workers),
        check_log_store,
        check_body_store,
    ]
    problems = []
    for check in checks:
        try:
            check(settings)
        except CommandFailed as exc:
            problems.append(str(exc))
    from gateway.traces import traces_problems  # here: the key commands start without it

    problems.extend(traces_problems(settings))
    return problems


def check_file_limit(settings: Settings) -> str | None:
    """Make room for the connection limits in the open-file limit, or say why there is none.

    Each client connection and each pooled upstream connection is a file descriptor; past
    the process's ``RLIMIT_NOFILE`` new connections fail at ``accept()`` with no answer at
    all, which would defeat ``GATEWAY_MAX_CONNECTIONS``' clear 503. The soft limit is raised
    up to the hard one when needed (no privilege required); a warning is returned if even
    that is not enough.
    """
    needed = settings.max_connections + settings.upstream_max_connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        soft = raised
    if soft != resource.RLIM_INFINITY and soft < needed:
        return (
            f"warning: the open-file limit ({soft}) is below GATEWAY_MAX_CONNECTIONS + "
            f"GATEWAY_UPSTREAM_MAX_CONNECTIONS + 256 ({needed}): connections past it will "
            "be dropped unanswered. Raise 'ulimit -n' or lower GATEWAY_MAX_CONNECTIONS."
        )
    return None


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    # Everything the server writes (databases, bodies, journal, the embedded log's parts)
    # holds request data or key hashes: owner-only, whatever the caller's umask.
    restrict_umask()
    workers = settings.workers if args.workers is None else args.workers
    problems = configuration_problems(settings, workers)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    # SIGTERM before the server starts stops here, with 0; uvicorn takes it over to drain
    # (gateway/lifecycle.py).
    exit_on_signal()
    warning = check_file_limit(settings)
    if warning is not None:
        print(warning, file=sys.stderr)
    key = prepare_serving(settings)
    if key is not None:
        print(f"Created a gateway key for org '{DEFAULT_ORG}' (shown only once):")
        print(key)
        print("Send it as 'Authorization: Bearer <key>'; manage keys with 'gateway keys'.")
    sys.stdout.flush()

    import uvicorn  # imported here so the key commands start fast

    from gateway.protocol import ClientLimits, protocol_factory

    with metrics_directory(workers > 1 and settings.metrics_enabled):
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=settings.host if args.host is None else args.host,
            port=settings.port if args.port is None else args.port,
            workers=workers,
            loop="uvloop",
            http=protocol_factory(ClientLimits.from_settings(settings)),
            log_level=settings.log_level.lower(),
            log_config=dict_config(settings.log_level, settings.log_format),
            access_log=False,
            # X-Forwarded-* are applied by the app in front of the control plane only (the data
            # plane reads neither the client address nor the scheme): gateway/dataplane.py.
            proxy_headers=False,
            lifespan="on",
            # In flight at SIGTERM (streams included): this long to finish, then cut.
            timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        )
    return 0


MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def metrics_directory(shared: bool) -> Iterator[str | None]:
    """prometheus-client's multiprocess mode for several workers (gateway/metrics.py).

    Each worker writes its metric values to files in ``PROMETHEUS_MULTIPROC_DIR`` and the one
    answering a scrape reads them all. The directory is this server's own — a fresh, private
    temporary directory (so it starts empty: files of an earlier run would be counted again),
    removed when the server stops — and the variable is set before any worker starts, since
    prometheus-client reads it when it is first imported. With one worker (``shared`` False)
    the variable is removed: values stay in the process, which is faster. An operator's own
    value is not used either way: the gateway manages the directory.
    """
    if not shared:
        os.environ.pop(MULTIPROC_VARIABLE, None)
        yield None
        return
    directory = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ[MULTIPROC_VARIABLE] = directory
    try:
        yield directory
    finally:
        os.environ.pop(MULTIPROC_VARIABLE, None)
        shutil.rmtree(directory, ignore_errors=True)


# --- migrate ------------------------------------------------------------------------------


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    async def migrate(store: ControlStore) -> tuple[str | None, str | None]:
        before = await store.schema_revision()
        await store.migrate()
        return before, await store.schema_revision()

    before, after = _run_with_store(settings, migrate, migrate_first=False)
    where = display_url(settings.resolved_database_url)
    if before == after:
        print(f"Database {where} is up to date (revision {after}).")
    else:
        print(f"Migrated database {where} from {before or '(empty)'} to {after} (head).")
    return 0


# --- keys ---------------------------------------------------------------------------------


def _keys_create(args: argparse.Namespace, settings: Settings) -> int:
    try:
        scopes = expand(args.scope) if args.scope else None
    except UnknownScope as exc:
        raise CommandFailed(str(exc)) from exc

    async def create(store: ControlStore) -> tuple[str, KeyRecord]:
        return await store.create_key(args.org, name=args.name or None, scopes=scopes)

    key, record = _run_with_store(settings, create)
    label = f" '{record.name}'" if record.name else ""
    print(f"Created key{label} {record.id} for org '{record.org_name}' (id {record.org_id}).")
    print(f"Scopes: {_scopes(record.scopes)}.")
    print("Store it now; it cannot be shown again:")
    print(key)
    return 0


def _keys_list(args: argparse.Namespace, settings: Settings) -> int:
    async def fetch(store: ControlStore) -> list[KeyRecord]:
        return await store.list_keys(args.org)

    records = _run_with_store(settings, fetch)
    if not records:
        print("No keys." if args.org is None else f"No keys for org '{args.org}'.")
        return 0
    print(_table(records))
    return 0


def _table(records: Sequence[KeyRecord]) -> str:
    header = ("ID", "PREFIX", "ORG", "NAME", "SCOPES", "CREATED", "REVOKED")
    rows = [
        (
            r.id,
            r.prefix,
            r.org_name,
            r.name or "-",
            ",".join(sorted(r.scopes)) if r.scopes is not None else "all",
            _timestamp(r.created_at),
            _timestamp(r.revoked_at) if r.revoked_at else "active",
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


def _scopes(scopes: frozenset[str] | None) -> str:
    if scopes is None:
        return "all (full access)"
    return ", ".join(sorted(scopes)) if scopes else "none"


def _timestamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


def _keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    async def revoke(store: ControlStore) -> KeyRecord:
        return await store.revoke_key(args.key)

    record = _run_with_store(settings, revoke)
    assert record.revoked_at is not None
    print(
        f"Key {record.id} ({record.prefix}, org '{record.org_name}') is revoked since "
        f"{_timestamp(record.revoked_at)}."
    )
    return 0


# --- encryption keys ----------------------------------------------------------------------


def _encryption_key(args: argparse.Namespace, settings: Settings) -> int:
    print(generate_key())
    return 0


def _provider_keys_reencrypt(args: argparse.Namespace, settings: Settings) -> int:
    async def reencrypt(store: ControlStore) -> int:
        return await store.provider_keys.reencrypt()

    changed = _run_with_store(settings, reencrypt)
    print(f"Re-encrypted {changed} provider key(s) with the first key of GATEWAY_ENCRYPTION_KEY.")
    return 0
# --- doctor -------------------------------------------------------------------------------


def _doctor(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.doctor import run

    return run(settings, sys.stdout)


# --- models -------------------------------------------------------------------------------


def _models(args: argparse.Namespace, settings: Settings) -> int:
    """List the model registry: each model's providers, prices and where each price is from.

    Needs no database (reads only the registry), so it works before ``migrate``.
    """
    from providers.registry import Registry

    registry = Registry.load()
    models = registry.models()
    if args.model:
        wanted = {registry.resolve(name) or name for name in args.model}
        models = tuple(m for m in models if m.id in wanted)
        unknown = sorted(wanted - {m.id for m in models})
        if unknown:
            raise CommandFailed(f"not in the model registry: {', '.join(unknown)}")
    if args.json:
        print(orjson.dumps([_model_json(m) for m in models], option=orjson.OPT_INDENT_2).decode())
        return 0
    header = ("MODEL", "PROVIDER", "PROVIDER MODEL ID", "INPUT", "OUTPUT", "CACHE READ",
              "CACHE WRITE", "SOURCE")  # fmt: skip
    rows = [
        (
            model.id,
            offering.provider,
            offering.provider_model_id,
            *_price_cells(offering.price),
            offering.source_label,
        )
        for model in models
        for offering in model.offerings
    ]
    print(_columns(header, rows))
    print("Prices: USD per 1M tokens (base tier; 'gateway models --json' shows tiers).")
    return 0


def _price_cells(price: ModelPrice | None) -> tuple[str, str, str, str]:
    if price is None:
        return ("-", "-", "-", "-")
    return (
        _usd(price.input),
        _usd(price.output),
        _usd(price.cache_read) if price.cache_read is not None else "-",
        _usd(price.cache_write) if price.cache_write is not None else "-",
    )


def _usd(value: Fraction) -> str:
    """Exact where it is a finite decimal (prices always are, in practice), else 6 places."""
    text = f"{Decimal(value.numerator) / Decimal(value.denominator):f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if len(text) <= 12 else f"{float(value):.6f}"


def _model_json(model: Model) -> dict[str, object]:
    return {
        "id": model.id,
        "name": model.name,
        "author": model.author,
        "kind": model.kind,
        "aliases": list(model.aliases),
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "input_modalities": list(model.input_modalities),
        "output_modalities": list(model.output_modalities),
        "capabilities": sorted(model.capabilities),
        "offerings": [
            {
                "provider": o.provider,
                "provider_model_id": o.provider_model_id,
                "routed": o.routed,
                "endpoints": sorted(o.endpoints),
                "context_window": o.context_window,
                "max_output_tokens": o.max_output_tokens,
                "price_source": o.price_source,
                "price_from": o.price_from,
                "prices": _prices_json(o.price),
            }
            for o in model.offerings
        ],
    }


def _prices_json(price: ModelPrice | None) -> dict[str, object] | None:
    """USD per 1M tokens as decimal strings (exact), with tiers."""
    if price is None:
        return None
    fields = ("input", "output", "cache_read", "cache_write", "cache_write_1h", "reasoning",
              "audio_input", "audio_output")  # fmt: skip
    prices: dict[str, object] = {
        name: _usd(value) for name in fields if (value := getattr(price, name)) is not None
    }
    prices["tiers"] = [
        {
            "above_prompt_tokens": tier.above_prompt_tokens,
            **{name: _usd(v) for name in fields if (v := getattr(tier, name)) is not None},
        }
        for tier in price.tiers
    ]
    return prices


def _columns(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


# --- argument parsing ---------------------------------------------------------------------


def _bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser. It does not read settings, so ``--help`` works even when the
    configuration is invalid; ``serve`` options left unset fall back to the settings."""
    parser = argparse.ArgumentParser(prog="gateway", description="OpenAI-compatible LLM gateway.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway HTTP server")
    serve.add_argument("--host", help="bind address (default: GATEWAY_HOST or 127.0.0.1)")
    serve.add_argument(
        "--port", type=_bounded_int(1, 65535), help="port (default: GATEWAY_PORT or 8787)"
    )
    serve.add_argument(
        "--workers",
        type=_bounded_int(1),
        help="worker processes (default: GATEWAY_WORKERS or 1)",
    )
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(handler=_migrate)

    keys = commands.add_parser("keys", help="manage gateway API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    create = key_commands.add_parser("create", help="create a key (printed as the last line)")
    create.add_argument("--org", type=_non_empty, default=DEFAULT_ORG, help="organisation name")
    create.add_argument("--name", help="a label for the key")
    create.add_argument(
        "--scope",
        action="append",
        metavar="SCOPE",
        help="limit the key to this scope (repeatable; default: full access). Native: "
        f"{', '.join(sorted(NATIVE_SCOPES))}; PostHog aliases: {', '.join(sorted(ALIASES))}",
    )
    create.set_defaults(handler=_keys_create)

    listing = key_commands.add_parser("list", help="list keys (never shows the keys)")
    listing.add_argument("--org", type=_non_empty, help="only this organisation's keys")
    listing.set_defaults(handler=_keys_list)

    revoke = key_commands.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key", metavar="KEY_ID_OR_PREFIX", help="key id or its prefix")
    revoke.set_defaults(handler=_keys_revoke)

    encryption = commands.add_parser(
        "encryption-key", help="print a new random GATEWAY_ENCRYPTION_KEY (stores nothing)"
    )
    encryption.set_defaults(handler=_encryption_key)

    provider_keys = commands.add_parser("provider-keys", help="manage stored provider keys")
    provider_commands = provider_keys.add_subparsers(
        dest="provider_keys_command", required=True, metavar="ACTION"
    )
    reencrypt = provider_commands.add_parser(
        "reencrypt",
        help="re-encrypt every provider key with the first key of GATEWAY_ENCRYPTION_KEY "
        "(after rotating it)",
    )
    reencrypt.set_defaults(handler=_provider_keys_reencrypt)
    doctor = commands.add_parser(
        "doctor",
        help="print the configuration (secrets masked) and whether each store answers "
        "(exit 1 when one does not)",
    )
    doctor.set_defaults(handler=_doctor)
    models = commands.add_parser(
        "models", help="list the model registry: providers, prices and their sources"
    )
    models.add_argument("model", nargs="*", help="only these models (any of their names)")
    models.add_argument("--json", action="store_true", help="machine-readable, with tiers")
    models.set_defaults(handler=_models)

    from gateway.cli_credits import add_credits_parser  # imports this module: here, not on top

    add_credits_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        for problem in validation_problems(exc):
            print(f"error: {problem}", file=sys.stderr)
        return 1
    except (SettingsError, tomllib.TOMLDecodeError, OSError) as exc:
        # A value the environment source cannot decode, or an unreadable GATEWAY_CONFIG_FILE.
        print(f"error: invalid configuration: {exc}", file=sys.stderr)
        return 1
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        return handler(args, settings)
    except CommandFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # ``python -m gateway.cli`` runs this file as ``__main__``; run the canonical module
    # instead, whose names (``CommandFailed``) the command modules (gateway/cli_credits.py)
    # import.
    from gateway.cli import main as canonical_main

    sys.exit(canonical_main())
