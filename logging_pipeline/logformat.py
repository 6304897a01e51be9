"""How the gateway's processes write their own log lines: one JSON object per line, or text.

``GATEWAY_LOG_FORMAT=json`` (the default) suits log collectors (Docker's and Kubernetes' drivers,
Loki, CloudWatch…): every line of every process — the workers, uvicorn's own lines, the log
writer child — is one JSON object with ``ts``, ``level``, ``logger`` and ``message``, plus the
structured fields a line carries (``event``, ``request_id``, ``status``…). ``text`` is for a
terminal. The level is ``GATEWAY_LOG_LEVEL``.

The per-request line (gateway/accesslog.py) is written without the :mod:`logging` machinery
(measured ~20 µs a record, a tenth of a request's cost) but in the same shape, so one parser
reads both. This module lives here, not in ``gateway``, because the log writer child imports
nothing of the gateway.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

LogFormat = Literal["json", "text"]

_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "color_message"}
)
"""Attributes every log record has: anything else on a record came from ``extra=`` (except
uvicorn's ``color_message``, its message again with terminal colours)."""


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


def timestamp(created: float) -> str:
    """UTC, ISO 8601 with milliseconds: ``2025-01-31T12:00:00.123Z``."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: ``ts``, ``level``, ``logger``, ``message``, the
    ``extra=`` fields, and ``exc`` (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        line.update(_extras(record))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """``<ts> <LEVEL> <logger>: <message> key=value…`` (the ``extra=`` fields as pairs)."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{timestamp(record.created)} {record.levelname} {record.name}: "
        text += record.getMessage()
        extras = _extras(record)
        if extras:
            text += " " + pairs(extras)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def pairs(fields: dict[str, Any]) -> str:
    """``key=value`` pairs; a value with a space or a quote is JSON-quoted."""
    out = []
    for key, value in fields.items():
        text = "-" if value is None else str(value)
        if not text or any(c in text for c in ' "=\n'):
            text = orjson.dumps(text).decode()
        out.append(f"{key}={text}")
    return " ".join(out)


def formatter_class(log_format: str) -> type[logging.Formatter]:
    return TextFormatter if log_format == "text" else JsonFormatter


def dict_config(level: str, log_format: str) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` for a gateway process: one stderr handler on the
    root logger, in ``log_format``, at ``level``; uvicorn's loggers hand their lines to it
    (``gateway serve`` gives this to uvicorn, which applies it in every worker)."""
    name = formatter_class(log_format)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"gateway": {"()": f"{name.__module__}.{name.__qualname__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "gateway",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure(level: str, log_format: str) -> None:
    """Set up this process's logging (the log writer child, which has no uvicorn)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_class(log_format)())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
