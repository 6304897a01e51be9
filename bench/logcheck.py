"""Did every request a gateway answered land in the request log, once? (the capacity bench)

A throughput figure with logging on is only worth something if the rows were really written:
a log store that rejects batches makes the writer retry, and the gateway looks busy for the
wrong reason. With rows going to a ClickHouse server (``--clickhouse-url``, or the stand-in),
the bench can count them while the gateway runs, and compares:

* *answered*: ``gateway_requests_total`` summed over every label and worker, from the
  gateway's own ``GET /metrics`` (multiprocess-safe, so one scrape covers all workers);
* *rows* and *request ids*: ``count()`` and ``uniqExact(request_id)`` of the gateway's
  organisation in the request table, over ClickHouse's HTTP interface (no ``FINAL``: a
  duplicate is a second row until a merge).

All logged once ⇔ rows = request ids = answered. The embedded engine cannot be read while the
gateway holds it, so embedded configurations are not counted.
"""

from __future__ import annotations

import base64
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from bench.gateway_proc import Gateway
from bench.procs import BenchError
from logging_pipeline.clickhouse.connect_transport import ServerAddress
from logging_pipeline.schema import REQUEST_TABLE

ANSWERED_METRIC = "gateway_requests_total"


@dataclass(frozen=True, slots=True)
class LogCount:
    """What a logging-on configuration answered and what its log store holds."""

    answered: int
    rows: int
    request_ids: int

    @property
    def logged_once(self) -> bool:
        return self.rows == self.request_ids == self.answered

    def to_json(self) -> dict[str, Any]:
        return {
            "answered": self.answered,
            "rows": self.rows,
            "request_ids": self.request_ids,
            "logged_once": self.logged_once,
        }

    def describe(self) -> str:
        faults = []
        if self.request_ids < self.answered:
            faults.append(f"{self.answered - self.request_ids:,} answered requests not logged")
        if self.request_ids > self.answered:
            faults.append(f"{self.request_ids - self.answered:,} more request ids than answers")
        if self.rows > self.request_ids:
            faults.append(f"{self.rows - self.request_ids:,} duplicate rows")
        return (
            f"request log: {self.answered:,} requests answered, {self.rows:,} rows, "
            f"{self.request_ids:,} request ids ({'; '.join(faults) or 'each logged once'})"
        )


def metric_total(text: str, name: str) -> float:
    """The sum of every sample of ``name`` in Prometheus' text format (all label sets)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def answered(gateway: Gateway) -> int:
    """Requests the gateway's data plane answered, over all its workers."""
    with urllib.request.urlopen(f"{gateway.base_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return int(metric_total(text, ANSWERED_METRIC))


def stored(clickhouse_url: str, org_id: str) -> tuple[int, int]:
    """(rows, distinct request ids) of organisation ``org_id`` in the request table at
    ``clickhouse_url`` (a server given with ``--clickhouse-url`` keeps every configuration's
    rows, and earlier runs'; each configuration's gateway has an organisation of its own)."""
    address = ServerAddress.parse(clickhouse_url)
    query = urllib.parse.urlencode({"database": address.database or "default", "param_org": org_id})
    credentials = base64.b64encode(f"{address.username}:{address.password}".encode()).decode()
    request = urllib.request.Request(
        f"{address.interface}://{address.host}:{address.port}/?{query}",
        data=f"SELECT count(), uniqExact(request_id) FROM {REQUEST_TABLE} "
        "WHERE organization_id = {org:UUID} FORMAT TabSeparated".encode(),
        headers={"Authorization": f"Basic {credentials}", "Content-Type": "text/plain"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            rows, ids = response.read().decode().split()
    except (OSError, ValueError) as exc:
        raise BenchError(f"counting the request log's rows failed: {exc}") from exc
    return int(rows), int(ids)


def count_logged(gateway: Gateway, clickhouse_url: str, timeout_s: float = 30.0) -> LogCount:
    """Answered vs stored, once the rows have caught up with the answers (or ``timeout_s``):
    the writer flushes about once a second per worker, so the last batch may still be on its
    way when the load stops."""
    if not gateway.org_id:
        raise BenchError("`gateway keys create` did not name the key's organisation id")
    deadline = time.monotonic() + timeout_s
    while True:
        count = LogCount(answered(gateway), *stored(clickhouse_url, gateway.org_id))
        if count.request_ids >= count.answered or time.monotonic() > deadline:
            return count
        time.sleep(0.5)
