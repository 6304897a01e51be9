"""Retries within one upstream attempt (``Helicone-Retry-*``), before the client sees a byte.

Enabled per request with ``Helicone-Retry-Enabled: true``; tuned with ``Helicone-Retry-Num``
(retries after the first try, default 5), ``-Factor`` (default 2), ``-Min-Timeout`` and
``-Max-Timeout`` (milliseconds, defaults 1,000 and 10,000) — the reference's defaults.
Triggers: a 429 or 5xx answer, and the gateway's own 502/504 (provider unreachable or timed
out; the client opted in, so a request the provider may have seen is sent again). Other 4xx are
never retried (the request itself is wrong).

The wait before retry ``i`` (0-based) is ``min(max, min · factor^i)``, with jitter: a uniform
draw between half and all of it, so clients that failed together do not retry together. A
``Retry-After`` from the provider (seconds or an HTTP date) is honoured: the wait is at least
that long, still capped at ``max`` so the client's own bound holds. Invalid header values are
lenient, as every ``Helicone-*`` header is: the default is used.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

__all__ = ["RetryPolicy", "retryable"]


def retryable(status: int) -> bool:
    """Whether an answer with ``status`` is worth sending again (429, 5xx)."""
    return status == 429 or status >= 500


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry; built from the request's ``Helicone-Retry-*``."""

    retries: int = 5
    factor: float = 2.0
    min_timeout_ms: float = 1000.0
    max_timeout_ms: float = 10000.0

    @classmethod
    def from_headers(
        cls,
        num: str | None,
        factor: str | None,
        min_timeout: str | None,
        max_timeout: str | None,
    ) -> RetryPolicy:
        default = cls()
        retries = int(_number(num, default.retries, 0, 20))
        low = _number(min_timeout, default.min_timeout_ms, 0, 600_000)
        high = _number(max_timeout, default.max_timeout_ms, 0, 600_000)
        return cls(
            retries=retries,
            factor=_number(factor, default.factor, 1, 100),
            min_timeout_ms=min(low, high),
            max_timeout_ms=max(low, high),
        )

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before retry ``attempt`` (0-based)."""
        base = min(self.max_timeout_ms, self.min_timeout_ms * self.factor**attempt)
        wait = random.uniform(base / 2, base)
        hinted = _retry_after_ms(retry_after)
        if hinted is not None:
            wait = min(self.max_timeout_ms, max(wait, hinted))
        return wait / 1000


def _number(raw: str | None, default: float, low: float, high: float) -> float:
    if raw is None:
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        return default
    if not low <= value <= high:  # NaN fails this too
        return default
    return value


def _retry_after_ms(raw: str | None) -> float | None:
    """``Retry-After`` in milliseconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not raw:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return int(raw) * 1000.0
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when.timestamp() - time.time()) * 1000)
