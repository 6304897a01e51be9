"""The control-plane store: organisations and gateway keys (SQLite or PostgreSQL).

One implementation over async SQLAlchemy serves both backends; the schema is managed by the
Alembic migrations shipped in ``migrations/`` and applied by :meth:`ControlStore.migrate`.
"""

from gateway.store._control import ControlStore
from gateway.store._records import (
    DEFAULT_ORG,
    AmbiguousKey,
    KeyIdentity,
    KeyNotFound,
    KeyRecord,
)

__all__ = [
    "DEFAULT_ORG",
    "AmbiguousKey",
    "ControlStore",
    "KeyIdentity",
    "KeyNotFound",
    "KeyRecord",
]
