"""Keeping the hourly rollups (``request_rollup_hourly``) exact: recomputing dirty hours.

A rollup fed by inserts would drift from what queries read: the request table is a
``ReplacingMergeTree`` read with ``FINAL``, and rows are re-inserted on purpose — an
annotation rewrites its request's row, a journal replay writes a batch again, a reused
``Helicone-Request-Id`` replaces a row — so counting inserts counts some requests twice.
Instead (migration ``0008_hourly_rollups``):

* a materialized view on the request table marks the (organization, hour) of every inserted
  row dirty, with the time of the insert (``marked_at``);
* :func:`refresh` recomputes the dirty hours from the request table *with* ``FINAL`` (so a
  rollup holds exactly what a raw query reads) and inserts them as a new generation, stamped
  ``valid_through`` = the time the computation started minus
  :data:`~logging_pipeline.schema.ROLLUP_SETTLE_SECONDS` (an insert is marked before it
  commits: a mark older than that was committed, hence read);
* an hour is *clean* when its newest generation's ``valid_through`` is at or after its
  newest mark; the dashboard reads the newest generation of clean hours and the raw rows of
  every other hour (:mod:`logging_pipeline.query.rollup`).

An hour is recomputed once its last mark is older than the settle time, so the current hour
(still written) stays raw and a quiet hour becomes a rollup within a minute or two. The
writer that owns the store runs :func:`refresh` between its annotation passes
(:class:`RollupRefresher`); several writers on one server may each recompute an hour: a
generation is a complete recomputation, so the newest one wins, as any would.

The user rollup (``user_rollup_daily``, migration ``0011``: per organization, UTC day and
user) is kept the same way from the same marks: a day is stale while one of its hours was
marked after the day's newest generation, and :func:`refresh` recomputes it whole
(:mod:`logging_pipeline.query.user_rollup` reads it).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from logging_pipeline.clickhouse import LogTransport
from logging_pipeline.schema import (
    ROLLUP_DIRTY_TABLE,
    ROLLUP_HOUR,
    ROLLUP_SETTLE_SECONDS,
    ROLLUP_TABLE,
    USER_ROLLUP_DAY,
    USER_ROLLUP_TABLE,
    rollup_select,
    user_rollup_select,
)

logger = logging.getLogger("logging_pipeline.rollup")

REFRESH_SECONDS = 30.0
"""The shortest pause between two refreshes of one writer."""
MAX_HOURS_PER_INSERT = 168
"""Hours recomputed by one ``INSERT``: a week of one organization, a few thousand rollup rows,
so that one hour's generation is written in one block (all of it visible at once)."""
MAX_RANGES = 8
"""Key ranges per recomputing ``INSERT`` (the hours in between are skipped by a filter)."""
_HOUR = timedelta(hours=1)
_NOW = "now64(6, 'UTC')"

_RECENT = f"{ROLLUP_DIRTY_TABLE} WHERE marked_at > {{since:DateTime64(6, 'UTC')}}"
STALE_HOURS_SQL = f"""
SELECT toString(d.organization_id) AS org, d.hour AS hour
FROM (SELECT organization_id, hour, max(marked_at) AS marked FROM {_RECENT}
      GROUP BY organization_id, hour) AS d
LEFT JOIN (SELECT organization_id, hour, max(valid_through) AS vt FROM {ROLLUP_TABLE}
           WHERE (organization_id, hour) IN (SELECT organization_id, hour FROM {_RECENT})
           GROUP BY organization_id, hour) AS r
ON d.organization_id = r.organization_id AND d.hour = r.hour
WHERE d.marked > r.vt AND d.marked <= {{due:DateTime64(6, 'UTC')}}
ORDER BY org, hour
"""
"""Every (organization, hour) marked after its newest generation and after ``since``, the
mark settled by ``due``. The left join's default ``vt`` (1970) makes an hour without a
rollup stale."""
STALE_DAYS_SQL = f"""
SELECT toString(d.organization_id) AS org, d.day AS day
FROM (SELECT organization_id, toDate(hour) AS day, max(marked_at) AS marked FROM {_RECENT}
      GROUP BY organization_id, day) AS d
LEFT JOIN (SELECT organization_id, day, max(valid_through) AS vt FROM {USER_ROLLUP_TABLE}
           WHERE (organization_id, day) IN (SELECT organization_id, toDate(hour) FROM {_RECENT})
           GROUP BY organization_id, day) AS r
ON d.organization_id = r.organization_id AND d.day = r.day
WHERE d.marked > r.vt AND d.marked <= {{due:DateTime64(6, 'UTC')}}
ORDER BY org, day
"""
"""The same for the user rollup's UTC days (``user_rollup_daily``, migration 0011): a day is
stale when one of its hours was marked after the day's newest generation. A day still being
written keeps fresh marks, so it is recomputed once it has been quiet for the settle time."""
MAX_DAYS_PER_INSERT = 7
"""Days recomputed by one ``INSERT``: a row per user and day, one block per statement."""
_DAY = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def refresh(transport: LogTransport, settle_seconds: float = ROLLUP_SETTLE_SECONDS,
                  since: datetime = _EPOCH) -> tuple[int, datetime]:  # fmt: skip
    """Recompute every stale hour, and every stale day of the user rollup, whose last mark
    is ``settle_seconds`` old.

    Returns the number of hours and days recomputed and the time every mark up to which is now
    reflected (the ``since`` of the next call: older marks need no look; the first call
    looks at them all). ``settle_seconds`` 0 is for a store nobody else writes (the bench's
    generator, tests): every mark is then settled. Failures raise ``LogStoreError`` (the
    caller retries later with the same ``since``).
    """
    now = (await transport.query(f"SELECT {_NOW} AS now"))[0]["now"]
    due = _aware(now) - timedelta(seconds=settle_seconds)
    rows = await transport.query(
        STALE_HOURS_SQL, {"due": _sql_time(due), "since": _sql_time(since)}
    )
    by_org: dict[str, list[datetime]] = defaultdict(list)
    for row in rows:
        by_org[str(row["org"])].append(_aware(row["hour"]))
    valid_through = _sql_time(due)
    for org, hours in by_org.items():
        for i in range(0, len(hours), MAX_HOURS_PER_INSERT):
            await _recompute(transport, org, hours[i : i + MAX_HOURS_PER_INSERT], valid_through)
    days = await transport.query(
        STALE_DAYS_SQL, {"due": _sql_time(due), "since": _sql_time(since)}
    )
    by_org_days: dict[str, list[datetime]] = defaultdict(list)
    for row in days:
        by_org_days[str(row["org"])].append(day_start(row["day"]))
    for org, starts in by_org_days.items():
        for i in range(0, len(starts), MAX_DAYS_PER_INSERT):
            await _recompute_days(
                transport, org, starts[i : i + MAX_DAYS_PER_INSERT], valid_through
            )
    return len(rows) + len(days), due


async def _recompute(transport: LogTransport, org: str, hours: list[datetime],
                     valid_through: str) -> None:  # fmt: skip
    """One generation of ``hours`` (one organization's): the key ranges that hold them (a
    few: the scattered hours of a bulk annotation would make a statement too long for a
    server's URL), and exactly those hours within."""
    params: dict[str, Any] = {
        "org": org,
        "vt": valid_through,
        "hours": [int(hour.timestamp()) for hour in hours],
    }
    ranges: list[str] = []
    for n, (low, high) in enumerate(_few(hour_runs(hours), MAX_RANGES)):
        params[f"lo{n}"], params[f"hi{n}"] = _sql_time(low), _sql_time(high)
        ranges.append(
            f"(request_created_at >= {{lo{n}:DateTime64(3, 'UTC')}} AND "
            f"request_created_at < {{hi{n}:DateTime64(3, 'UTC')}})"
        )
    where = (
        f"organization_id = {{org:UUID}} AND ({' OR '.join(ranges)}) "
        f"AND toUInt32({ROLLUP_HOUR}) IN {{hours:Array(UInt32)}}"
    )
    await transport.command(
        f"INSERT INTO {ROLLUP_TABLE} "
        + rollup_select(where, "{vt:DateTime64(6, 'UTC')}"),
        params,
    )


async def _recompute_days(transport: LogTransport, org: str, days: list[datetime],
                          valid_through: str) -> None:  # fmt: skip
    """One generation of the user rollup's ``days`` (UTC midnights of one organization)."""
    params: dict[str, Any] = {
        "org": org,
        "vt": valid_through,
        "days": [day.strftime("%Y-%m-%d") for day in days],
    }
    ranges: list[str] = []
    for n, (low, high) in enumerate(_few(period_runs(days, _DAY), MAX_RANGES)):
        params[f"lo{n}"], params[f"hi{n}"] = _sql_time(low), _sql_time(high)
        ranges.append(
            f"(request_created_at >= {{lo{n}:DateTime64(3, 'UTC')}} AND "
            f"request_created_at < {{hi{n}:DateTime64(3, 'UTC')}})"
        )
    where = (
        f"organization_id = {{org:UUID}} AND ({' OR '.join(ranges)}) "
        f"AND {USER_ROLLUP_DAY} IN {{days:Array(Date)}}"
    )
    await transport.command(
        f"INSERT INTO {USER_ROLLUP_TABLE} "
        + user_rollup_select(where, "{vt:DateTime64(6, 'UTC')}"),
        params,
    )


def _few(runs: list[tuple[datetime, datetime]], limit: int) -> list[tuple[datetime, datetime]]:
    """At most ``limit`` ranges covering ``runs`` (consecutive runs joined evenly)."""
    if len(runs) <= limit:
        return runs
    size = -(-len(runs) // limit)
    return [(runs[i][0], runs[min(i + size, len(runs)) - 1][1]) for i in range(0, len(runs), size)]


def hour_runs(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Sorted distinct hour starts as ``[start, end)`` runs of consecutive hours."""
    return period_runs(hours, _HOUR)


def period_runs(starts: list[datetime], length: timedelta) -> list[tuple[datetime, datetime]]:
    """Sorted distinct period starts as ``[start, end)`` runs of consecutive periods."""
    runs: list[tuple[datetime, datetime]] = []
    for start in sorted(set(starts)):
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], start + length)
        else:
            runs.append((start, start + length))
    return runs


class RollupRefresher:
    """The writer's periodic :func:`refresh` (at most every :data:`REFRESH_SECONDS`)."""

    def __init__(self, transport: LogTransport, interval: float = REFRESH_SECONDS,
                 settle_seconds: float = ROLLUP_SETTLE_SECONDS) -> None:  # fmt: skip
        self.transport = transport
        self.interval = interval
        self.settle_seconds = settle_seconds
        self._next = 0.0
        self._since = _EPOCH

    async def maybe_refresh(self) -> None:
        """Refresh when due; a failure is logged and retried at the next interval."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval
        try:
            count, self._since = await refresh(
                self.transport, self.settle_seconds, since=self._since
            )
        except Exception as exc:
            logger.warning("rollup refresh failed (retried): %s", exc)
            return
        if count:
            logger.debug("recomputed %d hourly and daily rollups", count)


def _aware(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.fromisoformat(str(value).replace(" ", "T")).replace(tzinfo=UTC)


def day_start(value: Any) -> datetime:
    """A ``Date`` (or its text) as its UTC midnight."""
    if isinstance(value, datetime):
        return _aware(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return datetime.fromisoformat(str(value)[:10]).replace(tzinfo=UTC)


def _sql_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
