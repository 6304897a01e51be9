"""The observability line of the bench (issue 14's bar): the no-logging gateway, which serves
``GET /metrics`` and writes one request line per request (both on by default), against the same
build with both off (``gateway_quiet``), in the same interleaved rounds, pooled.

Both are no-logging gateways of one build, each in its own process; the difference is the
metrics' tallies and the request line (written to the gateway's output file, as a deployment
writes it to its log collector's pipe). The bar: throughput with both on >= 95% of both off.
"""

from __future__ import annotations

from pathlib import Path

from bench.gateway_proc import Gateway

NAME = "gateway_quiet"
QUIET_ENV = {"GATEWAY_METRICS_ENABLED": "false", "GATEWAY_LOG_REQUESTS": "false"}
"""What the quiet gateway turns off: ``/metrics`` and the request line."""


def quiet_gateway(workdir: Path, upstream_base_url: str) -> Gateway:
    """A no-logging gateway with neither metrics nor request lines."""
    return Gateway(workdir, upstream_base_url, name=NAME, logging=False, extra_env=QUIET_ENV)
