"""The one place the gateway's settings become the log pipeline's configuration.

``logging_pipeline`` never sees :class:`~gateway.settings.Settings`: with the writer in its own
process, what it is given is pickled to that child, and the settings hold the operator's
provider keys and the control-plane ``DATABASE_URL``. :func:`log_config` copies out only what
logging needs (:mod:`logging_pipeline.config`), and checks the S3 settings as a whole.
"""

from __future__ import annotations

from gateway.settings import Settings
from logging_pipeline.clickhouse.chdb_transport import EMBEDDED_MISSING, embedded_available
from logging_pipeline.config import BodyStoreConfig, LogConfig, LogStoreConfig, S3Config


def log_store_problem(settings: Settings) -> str | None:
    """Why no request log could be written at all, or ``None``.

    The embedded engine (chdb) is an optional extra that the server image leaves out; a
    gateway there without ``CLICKHOUSE_URL`` would journal every record and never write one.
    Said once at start-up instead (``gateway serve`` refuses, naming the three ways out).
    """
    if settings.logging_enabled and not settings.clickhouse_url and not embedded_available():
        return EMBEDDED_MISSING
    return None


def log_config(settings: Settings) -> LogConfig:
    """The log writer's configuration from ``settings`` (ValueError on a partial S3 setup)."""
    data_dir = settings.data_dir
    return LogConfig(
        data_dir=data_dir,
        log_store=LogStoreConfig(
            embedded_path=data_dir / "clickhouse", clickhouse_url=settings.clickhouse_url
        ),
        body_store=BodyStoreConfig(
            directory=data_dir / "bodies", kind=settings.body_store, s3=_s3_config(settings)
        ),
        flush_rows=settings.log_flush_rows,
        flush_ms=settings.log_flush_ms,
        writer_nice=settings.log_writer_nice,
        journal_fsync_ms=settings.log_journal_fsync_ms,
        log_level=settings.log_level,
        log_format=settings.log_format,
        drain_seconds=settings.shutdown_log_drain_seconds,
        annotation_expiry_seconds=settings.annotation_expiry_seconds,
    )


def _s3_config(settings: Settings) -> S3Config | None:
    """S3 when all four S3 settings are set, None (local bodies) when none is.

    Some but not all set is a configuration mistake: refusing to start beats silently keeping
    bodies on local disk the operator believes are in S3.
    """
    endpoint, bucket = settings.s3_endpoint, settings.s3_bucket_name
    access_key, secret_key = settings.s3_access_key, settings.s3_secret_key
    if endpoint and bucket and access_key and secret_key:
        return S3Config(endpoint, bucket, access_key, secret_key, settings.s3_region)
    given = {
        "S3_ENDPOINT": endpoint,
        "S3_BUCKET_NAME": bucket,
        "S3_ACCESS_KEY": access_key,
        "S3_SECRET_KEY": secret_key,
    }
    missing = [name for name, value in given.items() if not value]
    if len(missing) < len(given):
        raise ValueError(
            "incomplete S3 body storage configuration: missing "
            + ", ".join(missing)
            + " (set all of S3_ENDPOINT, S3_BUCKET_NAME, S3_ACCESS_KEY, S3_SECRET_KEY, or none)"
        )
    return None
