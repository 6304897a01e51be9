"""Values and errors the control-plane store hands out; free of any database types."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

DEFAULT_ORG = "default"
"""Organisation that keys belong to when none is named (single-tenant deployments)."""


@dataclass(frozen=True, slots=True)
class KeyIdentity:
    """Who an accepted key belongs to; what the request path needs after authentication."""

    key_id: str
    org_id: str
    org_name: str


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A stored key as operators see it; never includes the key itself."""

    id: str
    org_id: str
    org_name: str
    name: str | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class KeyNotFound(LookupError):
    """No key matches the given id or prefix."""


class AmbiguousKey(LookupError):
    """A prefix matches more than one key; the caller must be more specific."""
