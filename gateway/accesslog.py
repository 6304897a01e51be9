"""The request log line, and the fault line: what an operator's log collector sees of traffic.

One line per request when it is over (``GATEWAY_LOG_REQUESTS``, on by default, at level
``info``), in the format of every other line (``GATEWAY_LOG_FORMAT``:
logging_pipeline/logformat.py)::

    {"ts": "…Z", "level": "info", "logger": "gateway.request", "message": "request",
     "event": "request", "request_id": "…", "org": "…", "mode": "unified", "provider": "openai",
     "model": "gpt-4o-mini", "status": 200, "latency_ms": 12.3, "overhead_ms": 0.21,
     "cache": null, "attempts": 1, "retries": 0, "stream": false, "pid": 7}

and one ``fault`` line (level ``error``) per request the gateway itself failed with a 5xx
(an unexpected error, with its traceback; a provider unreachable or timed out; every attempt
failed). A provider's own 5xx answer, relayed as it is, is no fault of the gateway's: the
request line shows it.

Never a key, a prompt or a body: the fields are ids, names, numbers and the gateway's own error
codes. The model is the name the provider was sent, cut to 128 characters (it comes from the
client). The request line is written straight to standard error, one ``write`` each (whole
lines, atomic on a pipe), not through :mod:`logging` — which costs ~20 µs a record.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from gateway.metrics import MODES
from logging_pipeline.logformat import pairs, timestamp

if TYPE_CHECKING:
    from gateway.context import RequestContext
    from gateway.errors import GatewayError
    from gateway.settings import Settings

fault_logger = logging.getLogger("gateway.fault")

_MAX_MODEL_CHARS = 128
_CACHE = {None: None, True: "hit", False: "miss"}


def _stderr(line: bytes) -> None:
    try:
        written = os.write(2, line)
        while written < len(line):
            line = line[written:]
            written = os.write(2, line)
    except OSError:  # stderr closed or full: a log line is not worth failing a request
        pass


class AccessLog:
    """Writes the request line (see the module docstring)."""

    def __init__(self, log_format: str = "json", write: Callable[[bytes], None] = _stderr) -> None:
        self.text = log_format == "text"
        self.write = write
        self.pid = os.getpid()  # which worker: the runtime is made in the worker process
        self._second = -1
        self._prefix = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessLog | None:
        """The request line's writer, or None when ``GATEWAY_LOG_REQUESTS`` is off or
        ``GATEWAY_LOG_LEVEL`` is above ``info``."""
        level = logging.getLevelName(settings.log_level.upper())
        if not settings.log_requests or (isinstance(level, int) and level > logging.INFO):
            return None
        return cls(settings.log_format)

    def request(
        self, ctx: RequestContext, status: int, error: GatewayError | None, now: float
    ) -> None:
        """The line of one finished request (``now``: ``time.perf_counter()`` at its end).

        Built for speed (it runs for every request): one dict, milliseconds rounded to
        microseconds by integer arithmetic, the timestamp's text reused within a second."""
        latency = now - ctx.started
        identity = ctx.identity
        hit = ctx.cache_hit
        fields: dict[str, Any] = {
            "ts": self._timestamp(),
            "level": "info",
            "logger": "gateway.request",
            "message": "request",
            "event": "request",
            "request_id": ctx.options.request_id,
            "org": identity.org_id if identity is not None else None,
            "mode": "cache" if hit else MODES[ctx.route],
            "provider": ctx.provider or None,
            "model": ctx.model[:_MAX_MODEL_CHARS] or None,
            "status": status,
            "latency_ms": int(latency * 1e6 + 0.5) / 1000,
            "overhead_ms": int((latency - ctx.upstream_seconds) * 1e6 + 0.5) / 1000,
            "cache": _CACHE[hit],
            "attempts": ctx.attempts,
            "retries": ctx.retries,
            "stream": ctx.first_byte_at is not None,
            "pid": self.pid,
        }
        if error is not None:
            fields["error"] = error.code
        if self.text:
            del fields["level"], fields["logger"], fields["message"], fields["event"]
            ts = fields.pop("ts")
            self.write(f"{ts} INFO gateway.request: request {pairs(fields)}\n".encode())
            return
        self.write(orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE))

    def _timestamp(self) -> str:
        """:func:`logging_pipeline.logformat.timestamp` of now, its first 19 characters (to
        the second) computed once a second."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = timestamp(second)[:19]
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"


def log_fault(
    ctx: RequestContext, error: GatewayError, where: str, exc_info: BaseException | None = None
) -> None:
    """The fault line of a request the gateway failed with a 5xx: ids, status, the error's
    code, ``where`` (method and path, keys redacted) and, for an unexpected error, the
    traceback. Not the error's message: a final failover error carries the providers'."""
    identity = ctx.identity
    fault_logger.error(
        "unhandled error in %s" if exc_info is not None else "request failed: %s",
        where,
        exc_info=exc_info,
        extra={
            "event": "fault",
            "request_id": ctx.options.request_id,
            "org": identity.org_id if identity is not None else None,
            "provider": ctx.provider or None,
            "status": error.status,
            "error": error.code,
            "attempts": ctx.attempts,
        },
    )

