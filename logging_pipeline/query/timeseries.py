"""Time filters, time-zone offsets and zero-filled time buckets for the aggregate queries.

The reference's bodies carry time three ways — ``{start, end}`` ISO strings (evals,
dashboard), ``{startTimeUnixMs, endTimeUnixMs}`` (sessions) and ``{startTimeUnixSeconds,
endTimeUnixSeconds}`` (users) — all parsed here into one :class:`TimeRange` (aware UTC
datetimes; ``start < end`` or a 400).

Time zones follow Helicone (and JavaScript's ``Date.getTimezoneOffset()``): the offset is in
**minutes**, positive west of UTC, so local time = UTC - offset (New York in winter: 300,
Paris in winter: -60); it is bounded to ±24 h. A bucket is a local calendar unit (a local
day, a local Monday-started week...) and is returned as the UTC instant it starts at, as an
ISO string ending in ``Z``. Buckets are zero-filled in SQL with ``ORDER BY ... WITH FILL``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from logging_pipeline.query.binder import ParamBinder
from logging_pipeline.query.errors import FilterError
from logging_pipeline.query.operators import finite_number, utc_instant

MAX_TZ_MINUTES = 24 * 60
MAX_BUCKETS = 10_000
"""More points than any chart draws (a week by the minute); more is a 400 asking for a
larger increment, instead of a response of millions of zero rows."""
DATETIME64 = "DateTime64(3, 'UTC')"
_DATETIME = "DateTime('UTC')"
_SECONDS = "%Y-%m-%d %H:%M:%S"
_EPOCH_MIN = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_MAX = datetime(2105, 12, 31, tzinfo=UTC)
"""Bucketed ranges stay inside ClickHouse's ``DateTime`` (1970-2106)."""

INCREMENTS: Mapping[str, str] = MappingProxyType(
    {
        "min": "toStartOfMinute({x})",
        "hour": "toStartOfHour({x})",
        "day": "toStartOfDay({x})",
        "week": "toDateTime(toMonday({x}), 'UTC')",
        "month": "toDateTime(toStartOfMonth({x}), 'UTC')",
        "year": "toDateTime(toStartOfYear({x}), 'UTC')",
    }
)
"""``dbIncrement`` -> the SQL truncating a local ``DateTime('UTC')`` ``{x}`` to its bucket."""
_FILL_STEP: Mapping[str, str] = MappingProxyType(
    {
        "min": "INTERVAL 1 MINUTE",
        "hour": "INTERVAL 1 HOUR",
        "day": "INTERVAL 1 DAY",
        "week": "INTERVAL 1 WEEK",
        "month": "INTERVAL 1 MONTH",
        "year": "INTERVAL 1 YEAR",
    }
)


@dataclass(frozen=True, slots=True)
class TimeRange:
    """``start``/``end`` (aware UTC) and which bounds are inclusive: ``"[]"`` both,
    ``"()"`` neither (sessions, as Helicone), ``"[)"`` the start only (evals)."""

    start: datetime
    end: datetime
    bounds: str = "[]"

    def condition(self, binder: ParamBinder, column: str = "request_created_at") -> str:
        """``column`` within the range, both bounds bound as ``DateTime64(3, 'UTC')``."""
        low = ">=" if self.bounds[0] == "[" else ">"
        high = "<=" if self.bounds[1] == "]" else "<"
        start = binder.bind(_sql_time(self.start), DATETIME64)
        end = binder.bind(_sql_time(self.end), DATETIME64)
        return f"{column} {low} {start} AND {column} {high} {end}"


def parse_iso_range(value: Any, name: str = "timeFilter", bounds: str = "[]") -> TimeRange:
    """``{"start": ISO, "end": ISO}``; a date alone is midnight UTC."""
    body = _object(value, name)
    start = parse_instant(_required(body, "start", name), f"{name}.start")
    end = parse_instant(_required(body, "end", name), f"{name}.end")
    return _ordered(start, end, name, bounds)


def parse_unix_range(value: Any, unit: str, name: str = "timeFilter", bounds: str = "[]"
                     ) -> TimeRange:  # fmt: skip
    """``{startTimeUnix<Unit>, endTimeUnix<Unit>}`` with ``unit`` ``Ms`` or ``Seconds``."""
    body = _object(value, name)
    scale = 1000.0 if unit == "Ms" else 1.0
    moments: list[datetime] = []
    for edge in ("start", "end"):
        field = f"{edge}TimeUnix{unit}"
        raw = _required(body, field, name)
        number = _number(raw, f"{name}.{field}")
        try:
            moment = datetime.fromtimestamp(number / scale, UTC)
        except (OverflowError, OSError, ValueError):
            raise FilterError(f"{name}.{field} is out of range: {raw!r}") from None
        if not _EPOCH_MIN <= moment <= _EPOCH_MAX:
            raise FilterError(f"{name}.{field} is out of range (1970-2105): {raw!r}")
        moments.append(moment)
    return _ordered(moments[0], moments[1], name, bounds)


def parse_instant(value: Any, name: str) -> datetime:
    """An ISO-8601 timestamp or date (``Z`` or an offset; none means UTC), 1970-2105."""
    if not isinstance(value, str) or not value.strip():
        raise FilterError(f"{name} must be an ISO-8601 timestamp string, got {value!r}")
    try:
        moment = utc_instant(value)
    except ValueError:
        raise FilterError(f"{name} must be an ISO-8601 timestamp, got {value!r}") from None
    except OverflowError:
        raise FilterError(f"{name} is out of range: {value!r}") from None
    if not _EPOCH_MIN <= moment <= _EPOCH_MAX:
        raise FilterError(f"{name} is out of range (1970-2105): {value!r}")
    return moment


def parse_timezone(value: Any, name: str) -> int:
    """Minutes (JavaScript's ``getTimezoneOffset``): a whole number within ±1440; absent = 0."""
    if value is None:
        return 0
    number = _number(value, name)
    if not number.is_integer() or abs(number) > MAX_TZ_MINUTES:
        raise FilterError(
            f"{name} must be a whole number of minutes between -{MAX_TZ_MINUTES} and "
            f"{MAX_TZ_MINUTES} (UTC minus local time, e.g. 300 for UTC-5), got {value!r}"
        )
    return int(number)


def parse_increment(value: Any, name: str = "dbIncrement") -> str:
    if not isinstance(value, str) or value not in INCREMENTS:
        raise FilterError(f"{name} must be one of {', '.join(INCREMENTS)}, got {value!r}")
    return value


def bucketed_time_filter(
    body: Mapping[str, Any], bounds: str = "[]", default_increment: str | None = None
) -> tuple[TimeRange, Buckets]:
    """``timeFilter`` ({start, end} ISO), ``dbIncrement`` and ``timeZoneDifference`` of a body.

    The evals and dashboard bodies carry their time the same way; ``default_increment`` is
    for the bodies where ``dbIncrement`` is optional (the caller checks required fields).
    """
    time_range = parse_iso_range(body["timeFilter"], bounds=bounds)
    increment = parse_increment(body.get("dbIncrement", default_increment))
    tz = parse_timezone(body.get("timeZoneDifference"), "timeZoneDifference")
    return time_range, buckets(time_range, increment, tz)


@dataclass(frozen=True, slots=True)
class Buckets:
    """The local buckets covering a range: ``first``..``last`` (naive local times)."""

    increment: str
    tz_minutes: int
    first: datetime
    last: datetime
    count: int

    def expr(self, binder: ParamBinder, column: str = "request_created_at") -> str:
        """SQL of a row's local bucket, a ``DateTime('UTC')`` holding local wall time."""
        tz = binder.bind(self.tz_minutes, "Int32")
        local = f"(toDateTime({column}, 'UTC') - toIntervalMinute({tz}))"
        return INCREMENTS[self.increment].format(x=local)

    def fill(self, binder: ParamBinder) -> str:
        """``WITH FILL ...`` for the bucket column: every bucket first..last, none beyond."""
        start = binder.bind(self.first.strftime(_SECONDS), _DATETIME)
        stop = binder.bind(step(self.last, self.increment).strftime(_SECONDS), _DATETIME)
        return f"WITH FILL FROM {start} TO {stop} STEP {_FILL_STEP[self.increment]}"

    def iso(self, local: Any) -> str:
        """The UTC instant (ISO, ``Z``) a local bucket value from a result row starts at."""
        moment = as_datetime(local).replace(tzinfo=None) + timedelta(minutes=self.tz_minutes)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def all_iso(self) -> list[str]:
        out: list[str] = []
        current = self.first
        while current <= self.last:
            out.append(self.iso(current))
            current = step(current, self.increment)
        return out


def buckets(time_range: TimeRange, increment: str, tz_minutes: int) -> Buckets:
    """The buckets of ``time_range`` at ``increment`` in the zone; too many is a 400."""
    shift = timedelta(minutes=tz_minutes)
    first = truncate(time_range.start.replace(tzinfo=None) - shift, increment)
    last = truncate(time_range.end.replace(tzinfo=None) - shift, increment)
    if first < _EPOCH_MIN.replace(tzinfo=None):
        raise FilterError("the time range starts before 1970-01-01 in that time zone")
    count = _count(first, last, increment)
    if count > MAX_BUCKETS:
        raise FilterError(
            f"the time range holds {count} '{increment}' buckets; at most {MAX_BUCKETS} are "
            "allowed: use a larger dbIncrement or a shorter range"
        )
    return Buckets(increment, tz_minutes, first, last, count)


def truncate(moment: datetime, increment: str) -> datetime:
    """``moment`` (naive) truncated as :data:`INCREMENTS` truncates in SQL."""
    moment = moment.replace(microsecond=0, second=0)
    if increment == "min":
        return moment
    moment = moment.replace(minute=0)
    if increment == "hour":
        return moment
    moment = moment.replace(hour=0)
    if increment == "day":
        return moment
    if increment == "week":
        return moment - timedelta(days=moment.weekday())
    moment = moment.replace(day=1)
    return moment if increment == "month" else moment.replace(month=1)


def step(moment: datetime, increment: str) -> datetime:
    """The start of the bucket after ``moment``'s (``moment`` is a bucket start)."""
    fixed = {"min": timedelta(minutes=1), "hour": timedelta(hours=1),
             "day": timedelta(days=1), "week": timedelta(weeks=1)}  # fmt: skip
    if increment in fixed:
        return moment + fixed[increment]
    if increment == "year":
        return moment.replace(year=moment.year + 1)
    month = moment.month % 12 + 1
    return moment.replace(year=moment.year + (moment.month == 12), month=month)


def as_datetime(value: Any) -> datetime:
    """A result cell (datetime, or ISO text after a JSON hop) as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc_instant(str(value).strip().replace(" ", "T"))


def _count(first: datetime, last: datetime, increment: str) -> int:
    if increment == "year":
        return last.year - first.year + 1
    if increment == "month":
        return (last.year - first.year) * 12 + last.month - first.month + 1
    size = {"min": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}[increment]
    return int((last - first).total_seconds()) // size + 1


def _ordered(start: datetime, end: datetime, name: str, bounds: str) -> TimeRange:
    if start >= end:
        raise FilterError(f"{name}: start must be before end")
    return TimeRange(start, end, bounds)


def _sql_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _object(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise FilterError(f"{name} must be an object, got {type(value).__name__}")
    return value


def _required(body: Mapping[str, Any], field: str, name: str) -> Any:
    if field not in body or body[field] is None:
        raise FilterError(f"missing required field '{name}.{field}'")
    return body[field]


def _number(value: Any, name: str) -> float:
    number = finite_number(value)
    if number is None:
        raise FilterError(f"{name} must be a number, got {value!r}")
    return number
