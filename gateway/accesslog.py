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
:mod:`gateway.finished`), not through :mod:`logging` — which costs ~20 µs a record; each ``write``
holds whole lines and at most ``PIPE_BUF`` (4,096) bytes unless one line is longer, so that the
workers sharing one pipe never interleave inside a line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from gateway.metrics import MODES
from logging_pipeline.logformat import pairs, timestamp

if TYPE_CHECKING:
    from gateway.context import RequestContext
    from gateway.errors import GatewayError
    from gateway.finished import RequestFacts
    from gateway.settings import Settings

fault_logger = logging.getLogger("gateway.fault")

_MAX_MODEL_CHARS = 128
_FIXED = b'"level":"info","logger":"gateway.request","message":"request","event":"request",'
"""The request line's fields that never change, as ``_fields`` has them, in JSON."""
_CACHE = {None: None, True: "hit", False: "miss"}
PIPE_BUF = 4096
"""The most bytes one ``write`` to a pipe is atomic for (POSIX: at least 512; Linux: 4,096)."""


def _stderr(line: bytes) -> None:
    try:
        written = os.write(2, line)
        while written < len(line):
            line = line[written:]
            written = os.write(2, line)
    except OSError:  # stderr closed or full: a log line is not worth failing a request
        pass


class AccessLog:
    """Writes the request lines (see the module docstring) of a batch of finished requests
    (gateway/finished.py hands them over, at most 50 ms after their end)."""

    def __init__(self, log_format: str = "json", write: Callable[[bytes], None] = _stderr) -> None:
        self.text = log_format == "text"
        self.write = write
        self.pid = os.getpid()  # which worker: the runtime is made in the worker process
        self._second = -1
        self._prefix = ""
        self._pid_tail = b',"pid":%d' % self.pid
        """The JSON line's fixed last field (``error``, when there is one, comes after it)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessLog | None:
        """The request line's writer, or None when ``GATEWAY_LOG_REQUESTS`` is off or
        ``GATEWAY_LOG_LEVEL`` is above ``info``."""
        level = logging.getLevelName(settings.log_level.upper())
        if not settings.log_requests or (isinstance(level, int) and level > logging.INFO):
            return None
        return cls(settings.log_format)

    def requests(self, batch: Sequence[RequestFacts]) -> None:
        """Write the lines of ``batch``: whole lines, at most :data:`PIPE_BUF` bytes a
        ``write`` (unless one line is longer)."""
        line = self._text_line if self.text else self._json_line
        chunk: list[bytes] = []
        size = 0
        for facts in batch:
            text = line(facts)
            if size + len(text) > PIPE_BUF and chunk:
                self.write(b"".join(chunk))
                chunk, size = [], 0
            chunk.append(text)
            size += len(text)
        if chunk:
            self.write(b"".join(chunk))

    def _fields(self, facts: RequestFacts) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "ts": self._timestamp(facts.when),
            "level": "info",
            "logger": "gateway.request",
            "message": "request",
            "event": "request",
            **_varying(facts),
            "pid": self.pid,
        }
        if facts.error is not None:
            fields["error"] = facts.error
        return fields

    def _json_line(self, facts: RequestFacts) -> bytes:
        """``_fields`` as one JSON line, byte for byte, with its fixed fields (``level`` to
        ``event``, ``pid``) written once rather than serialised per line: orjson writes the
        fields that vary, in ``_fields``' order, and the braces of that object are dropped
        (2.10 → 1.76 µs a line, ``timeit``; ``tests/test_metrics_count.py`` compares both)."""
        varying = orjson.dumps(_varying(facts))
        # the timestamp is digits and punctuation: nothing in it to escape
        head = b'{"ts":"%s",%s' % (self._timestamp(facts.when).encode(), _FIXED)
        if facts.error is None:
            return b"%s%s%s}\n" % (head, varying[1:-1], self._pid_tail)
        error = orjson.dumps(facts.error)
        return b'%s%s%s,"error":%s}\n' % (head, varying[1:-1], self._pid_tail, error)

    def _text_line(self, facts: RequestFacts) -> bytes:
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


def _varying(facts: RequestFacts) -> dict[str, Any]:
    """The request line's fields that vary from request to request, in the line's order."""
    hit = facts.cache_hit
    latency = facts.latency
    return {
        "request_id": facts.request_id,
        "org": facts.org,
        "mode": "cache" if hit else MODES[facts.route],
        "provider": facts.provider or None,
        "model": facts.model[:_MAX_MODEL_CHARS] or None,
        "status": facts.status,
        "latency_ms": int(latency * 1e6 + 0.5) / 1000,
        "overhead_ms": int((latency - facts.upstream) * 1e6 + 0.5) / 1000,
        "cache": _CACHE[hit],
        "attempts": facts.attempts,
        "retries": facts.retries,
        "stream": facts.first_byte is not None,
    }


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
