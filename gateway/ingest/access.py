"""Who may log, where the records go, and the words every ingestion route refuses with.

The manual logger, the OpenTelemetry routes and the HoneyHive batches admit a caller the same
way — a gateway key allowed ``trace:write`` (a key without scopes may), with request logging
on — and say so in the same words, each in its own route's envelope (Helicone's
``{"data": null, "error"}``, OTLP's ``google.rpc.Status``, HoneyHive's ``{"success": false,
"error"}``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.errors import GatewayError
from gateway.scopes import TRACE_WRITE, allows
from gateway.store import KeyIdentity
from logging_pipeline.capture import Capture

Submit = Callable[[Capture], None]
"""The log sink's ``submit``: journals one capture for the writer (microseconds)."""

MISSING_SCOPE = f"This gateway key lacks the '{TRACE_WRITE}' scope needed to log requests."
LOGGING_DISABLED = (
    "Request logging is disabled (GATEWAY_LOGGING_ENABLED=false); nothing was logged."
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the log and where: the records' organisation, key and ``request_path``."""

    organization_id: str
    api_key_id: str
    path: str


def admit(identity: KeyIdentity, submit: Submit | None) -> Submit:
    """``submit`` when ``identity`` may log; else a :class:`GatewayError`: 403 without
    ``trace:write``, 503 while logging is off (``submit`` None)."""
    if not allows(identity.scopes, TRACE_WRITE):
        raise GatewayError(403, MISSING_SCOPE, code="missing_scope")
    if submit is None:
        raise GatewayError(503, LOGGING_DISABLED, code="logging_disabled")
    return submit


def too_large(limit: int, setting: str) -> str:
    """The 413 text of every ingestion route: the limit, and the setting that raises it."""
    return (
        f"The request body is larger than the limit of {limit} bytes ({setting}); "
        "nothing was logged."
    )
