"""The pure parts of the aggregate queries: splitting a filter between the per-request and the
aggregate level, time filters, time zones and buckets (no engine needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from logging_pipeline.query import FilterError
from logging_pipeline.query.aggregates import split_filter
from logging_pipeline.query.sessions import is_session_aggregate
from logging_pipeline.query.timeseries import (
    MAX_BUCKETS,
    buckets,
    parse_iso_range,
    parse_timezone,
    parse_unix_range,
    step,
    truncate,
)
from logging_pipeline.query.trace import path_segments, session_trace
from logging_pipeline.query.users import is_user_aggregate

ROW = {"request_response_rmt": {"model": {"equals": "gpt-4o"}}}
COST = {"sessions_request_response_rmt": {"session_total_cost": {"gt": 1}}}
NAME = {"sessions_request_response_rmt": {"session_session_name": {"equals": "x"}}}


def branch(left: Any, operator: str, right: Any) -> dict[str, Any]:
    return {"left": left, "operator": operator, "right": right}


@pytest.mark.parametrize(
    ("node", "row", "aggregate"),
    [
        ("all", "all", "all"),
        ({}, {}, "all"),
        (ROW, ROW, "all"),
        (COST, "all", COST),
        (NAME, NAME, "all"),  # a session column, not an aggregate: per request
        (branch(ROW, "and", COST), ROW, COST),
        (branch(ROW, "or", NAME), branch(ROW, "or", NAME), "all"),
        (branch(COST, "or", COST), "all", branch(COST, "or", COST)),
        (branch(branch(ROW, "and", COST), "and", NAME), branch(ROW, "and", NAME), COST),
        (
            {**ROW, **COST},
            ROW,
            COST,
        ),  # one leaf, two tables: split
        (
            {
                "sessions_request_response_rmt": {
                    "session_total_cost": {"gt": 1},
                    "session_session_id": {"equals": "s"},
                }
            },
            {"sessions_request_response_rmt": {"session_session_id": {"equals": "s"}}},
            COST,
        ),
    ],
)
def test_split_filter(node: Any, row: Any, aggregate: Any) -> None:
    assert split_filter(node, is_session_aggregate) == (row, aggregate)


def test_split_filter_refuses_or_across_levels() -> None:
    with pytest.raises(FilterError, match="'or'"):
        split_filter(branch(ROW, "or", COST), is_session_aggregate)
    users = {"users_view": {"user_total_requests": {"gte": 2}}}
    with pytest.raises(FilterError, match=r"filter\.right"):
        split_filter(branch(ROW, "and", branch(ROW, "or", users)), is_user_aggregate)
    deep: Any = "all"
    for _ in range(100):
        deep = branch(deep, "and", "all")
    with pytest.raises(FilterError, match="deeper"):
        split_filter(deep, is_user_aggregate)


def test_users_view_user_id_is_per_request() -> None:
    node = {"users_view": {"user_user_id": {"equals": "a"}, "user_cost": {"gt": 1}}}
    row, aggregate = split_filter(node, is_user_aggregate)
    assert row == {"users_view": {"user_user_id": {"equals": "a"}}}
    assert aggregate == {"users_view": {"user_cost": {"gt": 1}}}


def test_time_filters() -> None:
    iso = parse_iso_range({"start": "2024-01-01", "end": "2024-01-02T00:00:00+01:00"})
    assert iso.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert iso.end == datetime(2024, 1, 1, 23, tzinfo=UTC)
    unix = parse_unix_range({"startTimeUnixMs": 0, "endTimeUnixMs": 1000}, "Ms", bounds="()")
    assert unix.end == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC) and unix.bounds == "()"
    seconds = parse_unix_range({"startTimeUnixSeconds": "10", "endTimeUnixSeconds": 20},
                               "Seconds")  # fmt: skip
    assert (seconds.end - seconds.start).total_seconds() == 10
    for bad, message in (
        ({"start": "2024-01-02", "end": "2024-01-01"}, "before"),
        ({"start": "2024-01-01", "end": "2024-01-01"}, "before"),
        ({"start": "2024-13-01", "end": "2025-01-01"}, "timeFilter.start"),
        ({"start": "1900-01-01", "end": "2025-01-01"}, "range"),
        ({"start": 5, "end": "2025-01-01"}, "timeFilter.start"),
        ({"end": "2025-01-01"}, "timeFilter.start"),
        ("2024", "object"),
    ):
        with pytest.raises(FilterError, match=message):
            parse_iso_range(bad)
    with pytest.raises(FilterError, match="startTimeUnixMs"):
        parse_unix_range({"startTimeUnixMs": float("nan"), "endTimeUnixMs": 1}, "Ms")
    with pytest.raises(FilterError, match="out of range"):
        parse_unix_range({"startTimeUnixMs": 0, "endTimeUnixMs": 1e20}, "Ms")


@pytest.mark.parametrize(("value", "minutes"), [(None, 0), (0, 0), (300, 300), (-60, -60),
                                                 ("-330", -330), (1440, 1440)])  # fmt: skip
def test_timezone(value: Any, minutes: int) -> None:
    assert parse_timezone(value, "tz") == minutes


@pytest.mark.parametrize("value", [1441, -2000, 1.5, "east", True, [], float("inf")])
def test_timezone_refused(value: Any) -> None:
    with pytest.raises(FilterError, match="tz"):
        parse_timezone(value, "tz")


def test_buckets() -> None:
    moment = datetime(2024, 2, 29, 13, 45, 30)  # a Thursday
    assert truncate(moment, "min") == datetime(2024, 2, 29, 13, 45)
    assert truncate(moment, "hour") == datetime(2024, 2, 29, 13)
    assert truncate(moment, "day") == datetime(2024, 2, 29)
    assert truncate(moment, "week") == datetime(2024, 2, 26)
    assert truncate(moment, "month") == datetime(2024, 2, 1)
    assert truncate(moment, "year") == datetime(2024, 1, 1)
    assert step(datetime(2024, 12, 1), "month") == datetime(2025, 1, 1)
    assert step(datetime(2024, 1, 1), "year") == datetime(2025, 1, 1)
    january = parse_iso_range({"start": "2024-01-01", "end": "2024-01-31"})
    days = buckets(january, "day", 0)
    assert days.count == 31 == len(days.all_iso())
    assert days.all_iso()[0] == "2024-01-01T00:00:00.000Z"
    # UTC-5: local Dec 31 19:00 .. Jan 30 19:00, i.e. 31 local days from Dec 31.
    shifted = buckets(january, "day", 300)
    assert shifted.all_iso()[0] == "2023-12-31T05:00:00.000Z" and shifted.count == 31
    # UTC+5:30 (-330): local midnight is 18:30 UTC the day before.
    india = buckets(january, "day", -330)
    assert india.all_iso()[0] == "2023-12-31T18:30:00.000Z"
    assert buckets(january, "month", 0).all_iso() == ["2024-01-01T00:00:00.000Z"]
    assert buckets(january, "week", 0).count == 5  # Mondays Jan 1 .. Jan 29
    with pytest.raises(FilterError, match=str(MAX_BUCKETS)):
        buckets(january, "min", 0)
    epoch = parse_iso_range({"start": "1970-01-01", "end": "1970-01-02"})
    assert buckets(epoch, "day", -60).count == 2
    with pytest.raises(FilterError, match="before 1970"):
        buckets(epoch, "day", 60)  # local 1969-12-31 23:00


def test_trace_paths_and_empty_session() -> None:
    assert path_segments("/a//b/") == ["a", "b"]
    assert path_segments("") == []
    assert session_trace("s", []) is None
