"""Compile the Helicone filter AST into a parameterised ClickHouse boolean expression.

Grammar (reference §2.1): ``FilterNode = Leaf | Branch | "all"`` where a branch is
``{"left": node, "operator": "and"|"or", "right": node}`` and a leaf is
``{table: {field: {operator: value}}}``. Decisions where the reference leaves a choice:

* several tables / fields / operators inside one leaf are ANDed (a superset of the docs'
  "one condition per leaf"; Helicone itself silently keeps only the first);
* an empty leaf ``{}`` (the OpenAPI example body) or empty object matches everything;
* top-level ``properties`` is honoured on both endpoints (same as the rmt ``properties``);
* property *keys* match case-insensitively, values case-sensitively (reference §1.1).

Every value and every property/score key becomes a bound parameter; table, field and
operator names are looked up in :mod:`~logging_pipeline.query.fields` and never copied into
the SQL. The compiler is one object per statement so no state outlives a query.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from logging_pipeline.query.binder import ORG_PLACEHOLDER, ParamBinder
from logging_pipeline.query.errors import FilterError, describe
from logging_pipeline.query.fields import (
    FIELD_TABLES,
    PROPERTIES_TABLE,
    UNSUPPORTED_TABLES,
    VALUES_TABLE,
    Column,
    FieldSpec,
    SessionAggregate,
    Special,
    Unsupported,
)
from logging_pipeline.query.operators import (
    NULL_LITERAL,
    NUMBER_OPERATORS,
    Family,
    boolean_value,
    check_operator,
    compare,
    number_value,
    text_compare,
    text_value,
)
from logging_pipeline.schema import CACHE_HIT_CONDITION, REQUEST_TABLE

MAX_DEPTH = 64
"""Deeper trees are refused (400) instead of exhausting the Python stack (500)."""
MAX_CONDITIONS = 500
"""Bounds the statement size a single request can make the server parse."""
MAX_NODES = 1000
"""Bounds the tree's width as :data:`MAX_DEPTH` bounds its depth: every branch, leaf and
``"all"`` counts. A balanced tree of 65,536 ``"all"`` leaves holds no condition yet compiled
to ~1 MB of SQL, past ClickHouse's ``max_query_size`` (a 500). 1,000 admits every tree of up
to :data:`MAX_CONDITIONS` single-condition leaves (999 nodes)."""
MAX_KEY_LENGTH = 1024

_FEEDBACK_KEY = "'helicone-score-feedback'"


def property_value(key_placeholder: str) -> str:
    """The value of a property matched case-insensitively by key; ``''`` when absent."""
    return (
        "arrayElement(mapValues(mapFilter((k, v) -> "
        f"lowerUTF8(k) = lowerUTF8({key_placeholder}), properties)), 1)"
    )


def property_present(key_placeholder: str) -> str:
    return f"arrayExists(k -> lowerUTF8(k) = lowerUTF8({key_placeholder}), mapKeys(properties))"


def input_value(name_placeholder: str) -> str:
    """A prompt input of the request by name: a string as its text, anything else as its JSON
    (``42``, ``true``, ``["a"]``); ``''`` when absent."""
    return (
        f"if(JSONType(prompt_inputs, {name_placeholder}) = 'String', "
        f"JSONExtractString(prompt_inputs, {name_placeholder}), "
        f"JSONExtractRaw(prompt_inputs, {name_placeholder}))"
    )


def input_present(name_placeholder: str) -> str:
    return f"JSONHas(prompt_inputs, {name_placeholder})"


class FilterCompiler:
    """Turns one filter AST into SQL, binding values into ``binder``."""

    def __init__(
        self, binder: ParamBinder, tables: Mapping[str, Mapping[str, FieldSpec]] | None = None
    ) -> None:
        self._binder = binder
        # ``tables``: another endpoint's leaf tables (e.g. with the aggregate ``users_view``)
        # in place of the request tables; the legacy top-level ``properties`` goes with all.
        self._tables = FIELD_TABLES if tables is None else tables
        self._conditions = 0
        self._nodes = 0

    def compile(self, node: Any) -> str:
        """The boolean SQL expression for ``node`` (``1`` for "all")."""
        return self._node(node, 0, ("filter",))

    # --- tree -------------------------------------------------------------------------------

    def _node(self, node: Any, depth: int, path: tuple[str, ...]) -> str:
        if depth > MAX_DEPTH:
            raise FilterError(f"filter is nested deeper than {MAX_DEPTH} levels")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise FilterError(f"filter has more than {MAX_NODES} nodes (branches, leaves and "
                              f"\"all\" each count; at {describe(path)})")
        if node == "all":
            return "1"
        if not isinstance(node, dict):
            raise FilterError(
                f"{describe(path)} must be \"all\", a leaf "
                "{table: {field: {operator: value}}} or a branch {left, operator, right}"
            )
        if {"left", "operator", "right"} & node.keys():
            return self._branch(node, depth, path)
        return self._leaf(node, path)

    def _branch(self, node: dict[str, Any], depth: int, path: tuple[str, ...]) -> str:
        missing = [k for k in ("left", "operator", "right") if k not in node]
        if missing:
            raise FilterError(f"filter branch at {describe(path)} is missing {', '.join(missing)}")
        extra = sorted(set(node) - {"left", "operator", "right"})
        if extra:
            raise FilterError(
                f"filter branch at {describe(path)} has unexpected keys: "
                + ", ".join(repr(k) for k in extra)
            )
        operator = node["operator"]
        if not isinstance(operator, str) or operator.lower() not in ("and", "or"):
            raise FilterError(
                f"unknown branch operator {operator!r} at {describe(path)} (allowed: and, or)"
            )
        left = self._node(node["left"], depth + 1, (*path, "left"))
        right = self._node(node["right"], depth + 1, (*path, "right"))
        return f"({left} {operator.upper()} {right})"

    def _leaf(self, node: dict[str, Any], path: tuple[str, ...]) -> str:
        clauses: list[str] = []
        for table, fields in node.items():
            if table in UNSUPPORTED_TABLES:
                raise FilterError(f"filter table {table!r}: {UNSUPPORTED_TABLES[table]}")
            # ``values`` (prompt inputs) is a per-request table: not on aggregate rows.
            rows = "request_response_rmt" in self._tables
            if table != PROPERTIES_TABLE and table not in self._tables and not (
                table == VALUES_TABLE and rows
            ):
                extra = [PROPERTIES_TABLE, *((VALUES_TABLE,) if rows else ())]
                allowed = ", ".join([*self._tables, *extra])
                raise FilterError(f"unknown filter table {table!r} (allowed: {allowed})")
            fields_obj = _object(fields, (table,))
            if table == PROPERTIES_TABLE:
                clauses.extend(self._properties(fields_obj, (table,)))
                continue
            if table == VALUES_TABLE:
                clauses.extend(self._values(fields_obj, (table,)))
                continue
            specs = self._tables[table]
            for field, operators in fields_obj.items():
                spec = specs.get(field)
                if spec is None:
                    raise FilterError(
                        f"unknown filter field {describe((table, field))} "
                        f"(table {table!r} has no field {field!r})"
                    )
                clauses.extend(self._field(spec, operators, (table, field)))
        return _and(clauses)

    # --- fields -----------------------------------------------------------------------------

    def _field(self, spec: FieldSpec, operators: Any, path: tuple[str, ...]) -> list[str]:
        if isinstance(spec, Unsupported):
            raise FilterError(f"filter field {describe(path)} is not supported: {spec.reason}")
        ops = _object(operators, path)
        if isinstance(spec, Special):
            return self._special(spec, ops, path)
        out: list[str] = []
        for operator, value in ops.items():
            op_path = (*path, operator)
            self._count(op_path)
            if isinstance(spec, SessionAggregate):
                out.append(self._session_aggregate(spec, operator, value, op_path))
            else:
                out.append(self._column(spec, operator, value, op_path))
        return out

    def _column(self, spec: Column, operator: str, value: Any, path: tuple[str, ...]) -> str:
        if spec.uuid and operator in ("equals", "not-equals") and value != NULL_LITERAL:
            check_operator(spec.family, operator, path)
            placeholder = self._binder.bind(text_value(value, path), "String")
            sign = "=" if operator == "equals" else "!="
            return f"{spec.expr} {sign} toUUIDOrZero({placeholder})"
        expr = f"toString({spec.expr})" if spec.uuid else spec.expr
        return compare(expr, spec.family, operator, value, self._binder, path,
                       nullable=spec.nullable)

    def _session_aggregate(
        self, spec: SessionAggregate, operator: str, value: Any, path: tuple[str, ...]
    ) -> str:
        """Rows of the sessions whose aggregate satisfies the test (reference §2.1.1)."""
        having = compare(spec.expr, spec.family, operator, value, self._binder, path)
        return (
            f"session_id IN (SELECT session_id FROM {REQUEST_TABLE} FINAL "
            f"WHERE organization_id = {ORG_PLACEHOLDER} AND session_id != '' "
            f"GROUP BY session_id HAVING {having})"
        )

    def _special(self, spec: Special, ops: dict[str, Any], path: tuple[str, ...]) -> list[str]:
        if spec is Special.PROPERTIES:
            return self._properties(ops, path)
        if spec is Special.SCORES:
            return self._scores(ops, path)
        if spec is Special.SEARCH_PROPERTIES:
            # Reference §2.1.1 proposal: the operator tests property *keys*; the object's own
            # key only labels the search (Helicone's UI sends an arbitrary one).
            out: list[str] = []
            for key, key_ops in ops.items():
                for operator, value in _object(key_ops, (*path, key)).items():
                    op_path = (*path, key, operator)
                    self._count(op_path)
                    out.append(self._array_text("k", "mapKeys(properties)", operator, value,
                                                op_path))
            return out
        out = []
        for operator, value in ops.items():
            op_path = (*path, operator)
            self._count(op_path)
            if spec is Special.ASSETS:
                out.append(self._array_text("a", "assets", operator, value, op_path))
            elif spec is Special.PROPERTY_KEY:
                if operator != "equals":
                    raise FilterError(f"unknown operator {operator!r} for {describe(path)} "
                                      "(allowed: equals)")
                key = self._key(text_value(value, op_path), op_path)
                out.append(property_present(key))
            elif spec is Special.CACHED:
                check_operator(Family.BOOLEAN, operator, op_path)
                flag = self._binder.bind(boolean_value(value, op_path), "Bool")
                out.append(f"{CACHE_HIT_CONDITION} = {flag}")
            else:  # FEEDBACK_SCORE
                check_operator(Family.BOOLEAN, operator, op_path)
                rating = self._binder.bind(1.0 if boolean_value(value, op_path) else 0.0,
                                           "Float64")
                out.append(f"(mapContains(scores, {_FEEDBACK_KEY}) "
                           f"AND scores[{_FEEDBACK_KEY}] = {rating})")
        return out

    def _properties(self, keys: dict[str, Any], path: tuple[str, ...]) -> list[str]:
        """Properties by key (text operators); ``equals "null"``: the property is absent."""
        return self._named_text(keys, path, property_present, property_value)

    def _values(self, names: dict[str, Any], path: tuple[str, ...]) -> list[str]:
        """Prompt inputs by name (text operators); ``equals "null"``: the input is absent."""
        return self._named_text(names, path, input_present, input_value)

    def _named_text(
        self,
        names: dict[str, Any],
        path: tuple[str, ...],
        present: Callable[[str], str],
        value_of: Callable[[str], str],
    ) -> list[str]:
        """Text conditions on the entries of a map column, by name (properties, prompt
        inputs): ``present(placeholder)`` tests that the entry exists, ``value_of`` reads it."""
        out: list[str] = []
        for name, name_ops in names.items():
            name_path = (*path, name)
            for operator, value in _object(name_ops, name_path).items():
                op_path = (*name_path, operator)
                self._count(op_path)
                check_operator(Family.TEXT, operator, op_path)
                placeholder = self._key(name, name_path)
                if operator in ("equals", "not-equals") and value == NULL_LITERAL:
                    exists = present(placeholder)
                    out.append(f"NOT {exists}" if operator == "equals" else exists)
                    continue
                out.append(text_compare(value_of(placeholder), operator,
                                        text_value(value, op_path), self._binder))
        return out

    def _scores(self, names: dict[str, Any], path: tuple[str, ...]) -> list[str]:
        """Scores are numeric: the numeric comparisons apply (the docs type them as text)."""
        out: list[str] = []
        for name, name_ops in names.items():
            name_path = (*path, name)
            for operator, value in _object(name_ops, name_path).items():
                op_path = (*name_path, operator)
                self._count(op_path)
                if operator not in NUMBER_OPERATORS:
                    raise FilterError(
                        f"unknown operator {operator!r} for score {describe(name_path)} "
                        f"(scores are numeric; allowed: {', '.join(NUMBER_OPERATORS)})"
                    )
                key = self._key(name, name_path)
                if operator in ("equals", "not-equals") and value == NULL_LITERAL:
                    present = f"mapContains(scores, {key})"
                    out.append(f"NOT {present}" if operator == "equals" else present)
                    continue
                number = (float(value) if isinstance(value, bool)
                          else number_value(value, op_path))
                clause = compare(f"scores[{key}]", Family.NUMBER, operator, number,
                                 self._binder, op_path)
                out.append(f"(mapContains(scores, {key}) AND {clause})")
        return out

    def _array_text(
        self, var: str, array: str, operator: str, value: Any, path: tuple[str, ...]
    ) -> str:
        """Text test over array elements; negative operators mean "no element matches"."""
        check_operator(Family.TEXT, operator, path)
        text = text_value(value, path)
        positive = {"not-equals": "equals", "not-contains": "contains"}.get(operator, operator)
        test = text_compare(var, positive, text, self._binder)
        exists = f"arrayExists({var} -> {test}, {array})"
        return exists if positive == operator else f"NOT {exists}"

    def _key(self, key: str, path: tuple[str, ...]) -> str:
        if not key or len(key) > MAX_KEY_LENGTH:
            raise FilterError(f"invalid key at {describe(path)}: must be 1-{MAX_KEY_LENGTH} "
                              "characters")
        return self._binder.bind(key, "String")

    def _count(self, path: tuple[str, ...]) -> None:
        self._conditions += 1
        if self._conditions > MAX_CONDITIONS:
            raise FilterError(f"filter has more than {MAX_CONDITIONS} conditions "
                              f"(at {describe(path)})")


def compile_filter(
    node: Any, binder: ParamBinder, tables: Mapping[str, Mapping[str, FieldSpec]] | None = None
) -> str:
    """Compile ``node`` with a fresh :class:`FilterCompiler` bound to ``binder``."""
    return FilterCompiler(binder, tables).compile(node)


def _object(value: Any, path: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise FilterError(f"{describe(path)} must be an object, got {type(value).__name__}")
    return dict(value)


def _and(clauses: list[str]) -> str:
    if not clauses:
        return "1"
    if len(clauses) == 1:
        return clauses[0]
    return "(" + " AND ".join(f"({c})" for c in clauses) + ")"
