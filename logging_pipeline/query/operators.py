"""Operator families of the filter AST and how each compiles to a parameterised predicate.

The families and operator names are the reference's (``Partial_TextOperators_`` etc., §2.1).
Values are type-checked here, in Python, so a wrong type is a 400 that names the operator
rather than a ClickHouse parse failure; then they are bound as typed server-side parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from types import MappingProxyType
from typing import Any

from logging_pipeline.query.binder import ParamBinder
from logging_pipeline.query.errors import FilterError, describe


class Family(Enum):
    """The value type of a filter field, which decides its operators."""

    TEXT = "text"
    NUMBER = "number"
    TIMESTAMP = "timestamp"
    BOOLEAN = "boolean"


TEXT_OPERATORS = ("equals", "not-equals", "like", "ilike", "contains", "not-contains")
NUMBER_OPERATORS = ("equals", "not-equals", "gte", "lte", "lt", "gt")
TIMESTAMP_OPERATORS = ("equals", "gte", "lte", "lt", "gt")
BOOLEAN_OPERATORS = ("equals",)

OPERATORS: Mapping[Family, tuple[str, ...]] = MappingProxyType({
    Family.TEXT: TEXT_OPERATORS,
    Family.NUMBER: NUMBER_OPERATORS,
    Family.TIMESTAMP: TIMESTAMP_OPERATORS,
    Family.BOOLEAN: BOOLEAN_OPERATORS,
})

_COMPARISON: Mapping[str, str] = MappingProxyType(
    {"equals": "=", "not-equals": "!=", "gte": ">=", "lte": "<=", "lt": "<", "gt": ">"}
)
_TIMESTAMP_TYPE = "DateTime64(3, 'UTC')"
NULL_LITERAL = "null"
"""The reference's special value: ``{equals: "null"}`` is IS NULL, ``not-equals`` IS NOT NULL."""


def text_value(value: Any, path: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise FilterError(f"{describe(path)} expects a string, got {_kind(value)}")
    return value


def finite_number(value: Any) -> float | None:
    """``value`` as a finite float, or None; numeric strings count (JS clients send them)."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    return number if number is not None and math.isfinite(number) else None


def number_value(value: Any, path: tuple[str, ...]) -> float:
    """A finite number; numeric strings are accepted because JS clients send them."""
    number = finite_number(value)
    if number is None:
        raise FilterError(f"{describe(path)} expects a number, got {_kind(value)}")
    return number


def timestamp_value(value: Any, path: tuple[str, ...]) -> str:
    """An ISO-8601 timestamp, normalised to the ``YYYY-MM-DD hh:mm:ss.fff`` UTC form.

    ClickHouse's parameter parser is stricter than ISO (no ``T``/``Z``), so parsing here both
    accepts what the docs send (``2024-01-01T00:00:00Z``) and reports bad input as a 400.
    A timestamp without an offset is taken as UTC.
    """
    if not isinstance(value, str):
        raise FilterError(f"{describe(path)} expects an ISO-8601 timestamp string, "
                          f"got {_kind(value)}")
    try:
        parsed = utc_instant(value)
    except ValueError:
        raise FilterError(
            f"{describe(path)} expects an ISO-8601 timestamp, got {value!r}"
        ) from None
    except OverflowError:  # an offset that moves year 1 or 9999 out of range
        raise FilterError(f"{describe(path)} timestamp {value!r} is out of range") from None
    if not 1900 <= parsed.year <= 2299:  # DateTime64's range
        raise FilterError(f"{describe(path)} timestamp {value!r} is out of range")
    return parsed.strftime("%Y-%m-%d %H:%M:%S.") + f"{parsed.microsecond // 1000:03d}"


def utc_instant(value: str) -> datetime:
    """ISO-8601 text (``Z`` or an offset; none means UTC) as an aware UTC datetime.

    Raises ValueError for text that is not ISO-8601 and OverflowError when the offset moves
    the instant out of ``datetime``'s range; callers turn both into their own 400.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def boolean_value(value: Any, path: tuple[str, ...]) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise FilterError(f"{describe(path)} expects a boolean, got {_kind(value)}")


def check_operator(family: Family, operator: str, path: tuple[str, ...]) -> None:
    allowed = OPERATORS[family]
    if operator not in allowed:
        raise FilterError(
            f"unknown operator {operator!r} for {describe(path[:-1])} "
            f"({family.value} field; allowed: {', '.join(allowed)})"
        )


def compare(
    expr: str,
    family: Family,
    operator: str,
    value: Any,
    binder: ParamBinder,
    path: tuple[str, ...],
    *,
    nullable: bool = False,
) -> str:
    """``expr <operator> value`` for a whitelisted column expression ``expr``.

    ``"null"`` with equals/not-equals tests for absence: IS [NOT] NULL on a Nullable column,
    the empty string on a text column that stores "absent" as ``''`` (e.g. ``user_id``).
    """
    check_operator(family, operator, path)
    if operator in ("equals", "not-equals") and value == NULL_LITERAL:
        return _null_test(expr, family, operator == "equals", nullable)
    if family is Family.TEXT:
        return text_compare(expr, operator, text_value(value, path), binder)
    if family is Family.NUMBER:
        placeholder = binder.bind(number_value(value, path), "Float64")
    elif family is Family.TIMESTAMP:
        placeholder = binder.bind(timestamp_value(value, path), _TIMESTAMP_TYPE)
    else:
        placeholder = binder.bind(boolean_value(value, path), "Bool")
    return f"{expr} {_COMPARISON[operator]} {placeholder}"


def text_compare(expr: str, operator: str, value: str, binder: ParamBinder) -> str:
    """Text operators. ``contains`` is a literal, case-insensitive substring test.

    The reference compiles it to ``ILIKE '%'||v||'%'``; ``positionCaseInsensitiveUTF8`` has the
    same case-insensitivity without turning ``%``/``_`` in the user's value into wildcards.
    """
    if operator in ("like", "ilike"):
        value = like_pattern(value)
    placeholder = binder.bind(value, "String")
    if operator == "contains":
        return f"positionCaseInsensitiveUTF8({expr}, {placeholder}) > 0"
    if operator == "not-contains":
        return f"positionCaseInsensitiveUTF8({expr}, {placeholder}) = 0"
    if operator == "like":
        return f"{expr} LIKE {placeholder}"
    if operator == "ilike":
        return f"{expr} ILIKE {placeholder}"
    return f"{expr} {_COMPARISON[operator]} {placeholder}"


def like_pattern(value: str) -> str:
    """A ``like``/``ilike`` value as a pattern ClickHouse accepts, meaning what it says.

    The value is a LIKE pattern: ``%`` and ``_`` are wildcards, and a backslash escapes
    ``%``, ``_`` or a backslash; before any other character ClickHouse takes the backslash
    literally. The one pattern it refuses is one that ends in an unpaired backslash
    (nothing left to escape; it was a 500): that backslash is taken literally too, by
    escaping it.
    """
    trailing = len(value) - len(value.rstrip("\\"))
    return value + "\\" if trailing % 2 else value


def _null_test(expr: str, family: Family, is_null: bool, nullable: bool) -> str:
    if nullable:
        return f"{expr} IS NULL" if is_null else f"{expr} IS NOT NULL"
    if family is Family.TEXT:
        return f"{expr} = ''" if is_null else f"{expr} != ''"
    return "0" if is_null else "1"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "array"
    return "object"
