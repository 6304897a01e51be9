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
client). Request lines are written straight to standard error in batches (see
:class:`AccessLog`), not through :mod:`logging` — which costs ~20 µs a record; each ``write``
holds whole lines and at most ``PIPE_BUF`` (4,096) bytes unless one line is longer, so that the
workers sharing one pipe never interleave inside a line.
"""

from __future__ import annotations

import asyncio
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
FLUSH_SECONDS = 0.05
"""How long a request line may wait to be written with the others."""
FLUSH_LINES = 512
"""Lines that are written at once, without waiting for :data:`FLUSH_SECONDS`."""
PIPE_BUF = 4096
"""The most bytes one ``write`` to a pipe is atomic for (POSIX: at least 512; Linux: 4,096)."""

# fmt: off
_Facts = tuple[
    float, str, "str | None", str, str, str, int, float, float, "bool | None", int, int, bool,
    "str | None",
]
# fmt: on
"""What :meth:`AccessLog.request` keeps of a request until its line is written."""


def _stderr(line: bytes) -> None:
    try:
        written = os.write(2, line)
        while written < len(line):
            line = line[written:]
            written = os.write(2, line)
    except OSError:  # stderr closed or full: a log line is not worth failing a request
        pass


class AccessLog:
    """Writes the request line (see the module docstring), in batches.

    A finished request only appends its facts to a list (a tuple, well under a microsecond);
    the lines are formatted and written together, ~11 to a ``write``, at most
    :data:`FLUSH_SECONDS` later (or at once when :data:`FLUSH_LINES` are waiting, outside an
    event loop, and at shutdown: :meth:`flush`). Measured under load in the bench's gateway,
    a line built and written per request cost ~10 µs (JSON; ~18 text) of cache-cold work and a
    system call — about 6% of a request's CPU — against ~3 µs a line in a batch. The price:
    a process killed outright loses its last 50 ms of request lines (never a record of the
    request log, which has its own journal)."""

    def __init__(self, log_format: str = "json", write: Callable[[bytes], None] = _stderr) -> None:
        self.text = log_format == "text"
        self.write = write
        self.pid = os.getpid()  # which worker: the runtime is made in the worker process
        self._second = -1
        self._prefix = ""
        self._pending: list[_Facts] = []
        self._timer: asyncio.TimerHandle | None = None

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
        """Queue the line of one finished request (``now``: ``time.perf_counter()`` at its
        end); it is written with the others of the next :data:`FLUSH_SECONDS`."""
        identity = ctx.identity
        hit = ctx.cache_hit
        latency = now - ctx.started
        pending = self._pending
        pending.append((
            time.time(),
            ctx.options.request_id,
            identity.org_id if identity is not None else None,
            "cache" if hit else MODES[ctx.route],
            ctx.provider,
            ctx.model,
            status,
            latency,
            latency - ctx.upstream_seconds,
            hit,
            ctx.attempts,
            ctx.retries,
            ctx.first_byte_at is not None,
            error.code if error is not None else None,
        ))  # fmt: skip
        if len(pending) >= FLUSH_LINES:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop to wait on (a script, a test): write it now
                self.flush()
                return
            self._timer = loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Write every queued line, in one ``write``."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        pending, self._pending = self._pending, []
        if not pending:
            return
        line = self._text_line if self.text else self._json_line
        chunk: list[bytes] = []
        size = 0
        for facts in pending:
            text = line(facts)
            if size + len(text) > PIPE_BUF and chunk:
                self.write(b"".join(chunk))
                chunk, size = [], 0
            chunk.append(text)
            size += len(text)
        self.write(b"".join(chunk))

    def _fields(self, facts: _Facts) -> dict[str, Any]:
        (when, request_id, org, mode, provider, model, status, latency, overhead, hit,
         attempts, retries, stream, error) = facts  # fmt: skip
        fields: dict[str, Any] = {
            "ts": self._timestamp(when),
            "level": "info",
            "logger": "gateway.request",
            "message": "request",
            "event": "request",
            "request_id": request_id,
            "org": org,
            "mode": mode,
            "provider": provider or None,
            "model": model[:_MAX_MODEL_CHARS] or None,
            "status": status,
            "latency_ms": int(latency * 1e6 + 0.5) / 1000,
            "overhead_ms": int(overhead * 1e6 + 0.5) / 1000,
            "cache": _CACHE[hit],
            "attempts": attempts,
            "retries": retries,
            "stream": stream,
            "pid": self.pid,
        }
        if error is not None:
            fields["error"] = error
        return fields

    def _json_line(self, facts: _Facts) -> bytes:
        return orjson.dumps(self._fields(facts), option=orjson.OPT_APPEND_NEWLINE)

    def _text_line(self, facts: _Facts) -> bytes:
        fields = self._fields(facts)
        del fields["level"], fields["logger"], fields["message"], fields["event"]
        ts = fields.pop("ts")
        return f"{ts} INFO gateway.request: request {pairs(fields)}\n".encode()

    def _timestamp(self, now: float) -> str:
        """:func:`logging_pipeline.logformat.timestamp` of ``now``, its first 19 characters
        (to the second) computed once a second."""
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
