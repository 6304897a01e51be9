"""The log pipeline's own configuration: what the writer and its stores need, nothing more.

``logging_pipeline`` does not read the gateway's settings. The gateway builds a
:class:`LogConfig` from them in one place (:func:`gateway.logconfig.log_config`) and hands it
over; with the writer in a child process (the default) this object is the child's only
configuration, pickled to it at ``spawn``. So it holds no provider keys and no control-plane
``DATABASE_URL``. It does hold the two secrets the child needs to write: the password in
``CLICKHOUSE_URL`` and the S3 secret key — those fields are left out of ``repr`` so a logged
config shows neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


@dataclass(frozen=True, slots=True)
class LogStoreConfig:
    """Where request rows go: a ClickHouse server, or the embedded engine (chdb) in a directory.

    ``clickhouse_url`` (``http://user:password@host:8123/database``) wins when set.
    """

    embedded_path: Path
    clickhouse_url: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class S3Config:
    """An S3-compatible bucket for request and response bodies (all four values required)."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str


@dataclass(frozen=True, slots=True)
class BodyStoreConfig:
    """Where bodies go: S3 when ``s3`` is set, else a local store under ``directory``."""

    directory: Path
    kind: Literal["sqlite", "files"]
    s3: S3Config | None = None


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Everything the log writer (in this process or its own) is configured with.

    No defaults: the gateway's settings are the one source of them.
    """

    data_dir: Path
    """Holds the record journals, old spill files and the token estimator's cache."""
    log_store: LogStoreConfig
    body_store: BodyStoreConfig
    flush_rows: int
    flush_ms: int
    writer_nice: int
    """Niceness added to the writer child (0-19): request serving comes first on busy cores."""
    journal_fsync_ms: int
    log_level: str
    log_format: str
    """``json`` or ``text``: the writer child's own log lines (logging_pipeline/logformat.py)."""
    drain_seconds: float
    """At shutdown, how long the writer may keep writing what is journaled; what it has not
    written by then stays in the journal, and the next writer on this data directory writes it."""
    annotation_expiry_seconds: float
    """How long an annotation (feedback, score, property) waits for its request's record
    before it is reported and dropped (logging_pipeline/annotations.py)."""

    @property
    def journal_root(self) -> Path:
        """Where the record journals of every gateway process on this data directory live."""
        return self.data_dir / "journal"

    @property
    def spill_root(self) -> Path:
        """Spill files left by versions of the gateway before the journal."""
        return self.data_dir / "spill"
