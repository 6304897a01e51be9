"""Request-log accounting: every request the bench sends to the logging gateway is one record.

The bench counts what it sends (:class:`RequestTally`), waits after the last load until the
gateway's log writer has accounted for everything it was handed (``GET /healthz`` counters,
:func:`wait_for_log`), and compares: ``records written == requests sent`` with nothing lost
is the logging bar.

"Sent" includes the requests still in flight when a wrk run stopped: wrk's ``requests`` counts
answered ones only, but the gateway serves those stragglers too (the client has gone, so it
logs them with status 499), and each is a record. ``load.py`` counts them exactly for gateway
runs; the answered figure is reported alongside.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.gateway_proc import Gateway
from bench.load import LoadResult
from bench.procs import BenchError
from bench.ttfb import TtfbResult

SETTLE_TIMEOUT_S = 30.0


@dataclass
class RequestTally:
    """Requests the bench sent to one gateway, by source (warm-ups included)."""

    wrk_sent: int = 0
    wrk_answered: int = 0
    ttfb_sent: int = 0
    ttfb_answered: int = 0
    probes: int = 0
    paired: int = 0
    """Requests of the paired 1-connection measurement (:mod:`bench.pairing`), all answered."""

    def add_load(self, result: LoadResult) -> None:
        self.wrk_answered += result.requests
        self.wrk_sent += result.sent if result.sent >= 0 else result.requests

    def add_ttfb(self, result: TtfbResult) -> None:
        self.ttfb_sent += result.sent
        self.ttfb_answered += result.answered

    @property
    def sent(self) -> int:
        return self.wrk_sent + self.ttfb_sent + self.probes + self.paired

    @property
    def answered(self) -> int:
        return self.wrk_answered + self.ttfb_answered + self.probes + self.paired

    def to_json(self) -> dict[str, int]:
        return {**asdict(self), "sent": self.sent, "answered": self.answered}


@dataclass
class LogAccount:
    """The writer's counters once settled, next to what the bench sent."""

    tally: RequestTally
    counters: dict[str, Any] = field(default_factory=dict)
    settled: bool = False
    settle_s: float = 0.0

    def count(self, name: str) -> int:
        value = self.counters.get(name, 0)
        return value if isinstance(value, int) else 0

    @property
    def accounted(self) -> int:
        """Records the writer is done with: first-time writes and losses."""
        c = self.count
        return c("written") - c("replayed") + c("lost")

    @property
    def matches(self) -> bool:
        return self.count("written") == self.tally.sent

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.tally.to_json(),
            "writer": self.counters,
            "settled": self.settled,
            "settle_s": round(self.settle_s, 3),
            "settle_timeout_s": SETTLE_TIMEOUT_S,
            "written_equals_sent": self.matches,
        }


def wait_for_log(gateway: Gateway, tally: RequestTally) -> LogAccount:
    """Poll ``/healthz`` until every journaled record is written (30 s at most).

    Also waits for ``enqueued`` to reach the number of requests sent: a straggler from the
    last wrk run may still be in the gateway when polling starts.
    """
    account = LogAccount(tally)
    started = time.monotonic()
    while True:
        counters = gateway.health().get("logging")
        if not isinstance(counters, dict):
            raise BenchError("the logging gateway's /healthz has no 'logging' counters")
        account.counters = counters
        account.settle_s = time.monotonic() - started
        enqueued = account.count("enqueued")
        if account.accounted >= enqueued >= tally.sent:
            account.settled = True
            return account
        if account.settle_s >= SETTLE_TIMEOUT_S:
            return account
        time.sleep(0.1)


def render(account: LogAccount | None) -> list[str]:
    """The report's "Request log" section."""
    if account is None:
        return []
    t, c = account.tally, account.count
    written, sent = c("written"), t.sent
    ratio = f"{written / sent:.4%}" if sent else "-"
    in_flight = t.wrk_sent - t.wrk_answered
    out = [
        "Request log (gateway, logging: embedded ClickHouse rows + gzip bodies in local SQLite)",
        f"  requests sent      {sent:>10,}  = wrk {t.wrk_sent:,} (warm-ups included: "
        f"{t.wrk_answered:,} answered + {in_flight:,} in flight when wrk stopped)",
        f"                                  + TTFB {t.ttfb_sent:,} + probes {t.probes:,}"
        f" + paired {t.paired:,}   (answered: {t.answered:,})",
        f"  records written    {written:>10,}  records written / requests sent = "
        f"{written:,} / {sent:,} ({ratio})",
        f"  writer counters    enqueued {c('enqueued'):,}  written {written:,}  "
        f"lost {c('lost'):,}  failed {c('failed'):,}  "
        f"replayed {c('replayed'):,}  batches {c('batches'):,}  "
        f"journal pending {c('pending_bytes'):,} B",
    ]
    if account.settled:
        out.append(
            f"  settled            {account.settle_s:.1f} s after the last load "
            "(written + lost == enqueued)"
        )
    else:
        out.append(
            f"  NOT SETTLED        after {SETTLE_TIMEOUT_S:.0f} s: enqueued {c('enqueued'):,}, "
            f"written + lost {account.accounted:,}"
        )
    if not account.matches:
        out.append(
            f"  MISMATCH           records written ({written:,}) != requests sent ({sent:,}): "
            f"difference {written - sent:+,}"
        )
    if account.counters.get("state") == "degraded":
        out.append("  writer state       degraded (a write failed; the error is in its log)")
    return out
