"""The rate-limit line of the bench: the no-logging gateway with ``REDIS_URL``, loaded once
with a global request-rate policy on every request and once without (issue 12's bar).

The same gateway process serves both, so the difference is the limiter alone: one counter step
on Redis per request (batched under load, ratelimit/_buckets.py) plus the policy parse and the
response headers. The policy's quota is far above what the bench can send, so nothing is
refused. Redis is the machine's server (``REDIS_URL``, default 127.0.0.1:6379); without one
the line is reported as not measured (and fails).
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from bench.load import RequestSpec

NAME = "gateway_ratelimit"
POLICY = "1000000000;w=60"
"""Global, per request, never reached by the bench: every request takes the full path."""
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_url() -> str | None:
    """``REDIS_URL`` (or the default) if a server answers ``PING`` there, else None."""
    url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1) as s:
            s.sendall(b"PING\r\n")
            answer = s.recv(64)
    except OSError:
        return None
    return url if answer.startswith(b"+PONG") else None


def limited(spec: RequestSpec) -> RequestSpec:
    """``spec`` carrying the policy."""
    return RequestSpec(spec.path, spec.body, {**spec.headers, "Helicone-RateLimit-Policy": POLICY})
