"""The HQL safety rules, checked on tokens, and the rewrite that scopes a query to one org.

:func:`prepare` takes the user's SQL and the caller's organization and returns the statement
the engine runs, or raises :class:`HqlError` with the documented code. The rules (reference
§3 "Safety rules", the regression cases of Helicone's lexer-based validator):

* one statement (a trailing ``;`` is fine), a ``SELECT``; no ``WITH`` (CTEs), no ``SET``,
  no ``SETTINGS``, ``FORMAT`` or ``INTO OUTFILE`` clause anywhere; no ``UNION``/``INTERSECT``/
  ``EXCEPT`` at the top level (inside a subquery they are fine), so the LIMIT is well defined;
* every ``FROM``/``JOIN`` target is exactly ``request_response_rmt`` or a parenthesised
  subquery; no database-qualified names, no ``system``/``information_schema``, no comma joins,
  no ``IN <table>``; SQL-standard ``FROM`` inside a function (``substring(x FROM 1 FOR 3)``,
  ``extract(DAY FROM t)``) is not a table reference;
* no table function in any position (``numbers(10)``, ``url(...)``, ``mergeTreeIndex(...)``)
  and none of the functions that read outside the row (settings, dictionaries, other tables,
  files, the host);
* the text never names the org setting (``/sql[_\\s]*helicone[_\\s]*organization[_\\s]*id/i``),
  comments and literals included.

Isolation does not rest on these checks alone: every table reference is rewritten into
``(SELECT <columns but organization_id> FROM request_response_rmt FINAL WHERE
organization_id = {hql_org:UUID}) AS <alias>``, with the org bound as a server-side parameter,
so whatever the query does with ``request_response_rmt`` it sees the caller's rows only; and
the rewritten query is rendered from the tokens (comments dropped), so the engine runs exactly
the structure checked here. ``FINAL`` is always applied (an annotated request is re-inserted
with a newer version: without it counts would include the older copies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from logging_pipeline.hql.errors import HqlError
from logging_pipeline.hql.lexer import Token, render, tokenize

TABLE = "request_response_rmt"
ORG_PARAM = "hql_org"
DEFAULT_LIMIT = 100
"""Rows a query without LIMIT returns (``execute``)."""
MAX_SQL_CHARS = 100_000

_ORG_SETTING = re.compile(r"sql[_\s]*helicone[_\s]*organization[_\s]*id", re.IGNORECASE)
_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

TABLE_FUNCTIONS = frozenset(
    name.lower()
    for name in (
        "SQLStandardValues arrowstream azureBlobStorage azureBlobStorageCluster bigquery cluster "
        "clusterAllReplicas cosn deltaLake deltaLakeAzure deltaLakeAzureCluster deltaLakeCluster "
        "deltaLakeLocal deltaLakeS3 deltaLakeS3Cluster dictionary eval executable file "
        "fileCluster filesystem fuzzJSON fuzzQuery gcs generateRandom generateSeries "
        "generate_series hdfs hdfsCluster hudi hudiCluster iceberg icebergAzure "
        "icebergAzureCluster icebergCluster icebergHDFS icebergHDFSCluster icebergLocal "
        "icebergLocalCluster icebergS3 icebergS3Cluster input jdbc loop merge "
        "mergeTreeAnalyzeIndexes mergeTreeAnalyzeIndexesUUID mergeTreeCodecBlockCounts "
        "mergeTreeIndex mergeTreeParts mergeTreeProjection mergeTreeTextIndex mongodb mysql null "
        "numbers numbers_mt odbc oss paimon paimonAzure paimonAzureCluster paimonCluster "
        "paimonHDFS paimonHDFSCluster paimonLocal paimonS3 paimonS3Cluster postgresql primes "
        "prometheusQuery prometheusQueryRange python redis remote remoteSecure s3 s3Cluster "
        "sqlite timeSeriesData timeSeriesMetricFamilies timeSeriesMetrics timeSeriesSamples "
        "timeSeriesSelector timeSeriesTags url urlCluster values view viewExplain "
        "viewIfPermitted ytsaurus zeros zeros_mt"
    ).split()
)
"""ClickHouse's table functions (``system.table_functions`` of the engine, 26.x), refused
wherever they appear. ``format`` is left out: it is also the ordinary string function, and
in a table position only ``request_response_rmt`` is accepted anyway."""

DENIED_FUNCTIONS = frozenset(
    name.lower()
    for name in (
        "getSetting getSettingOrDefault getServerSetting getMergeTreeSetting getMacro "
        "joinGet joinGetOrNull hasColumnInTable globalVariable filesystemAvailable "
        "filesystemCapacity filesystemUnreserved hostName hostname fqdn FQDN displayName "
        "tcpPort getServerPort serverUUID uptime currentUser user currentProfiles "
        "currentRoles enabledRoles defaultRoles enabledProfiles defaultProfiles "
        "currentSchemas currentDatabase database getClientHTTPHeader initialQueryID "
        "initial_query_id queryID query_id initialQueryStartTime sleep sleepEachRow "
        "catboostEvaluate modelEvaluate getOSKernelVersion transactionID "
        "transactionLatestSnapshot transactionOldestSnapshot shardNum shardCount "
        "buildId getSubcolumn identity notIn globalIn globalNotIn nullIn notNullIn "
        "globalNullIn globalNotNullIn"
    ).split()
)
"""Functions that read what a row-scoped user must not see (settings, other tables,
dictionaries, the host) or only waste the engine (sleep). ``dict*`` functions and internal
ones (``_...``) are refused by prefix. The function forms of IN (``in(x, t)``,
``notIn(x, t)``...) take a table as their second argument: refused (the ``IN`` operator is
checked where it stands)."""

_SET_OPERATIONS = frozenset({"UNION", "INTERSECT"})
_WITH_MODIFIERS = frozenset({"TOTALS", "ROLLUP", "CUBE", "FILL", "TIES"})
_NOT_FUNCTIONS = frozenset(
    "FROM JOIN IN AS SELECT WHERE PREWHERE AND OR NOT ON USING BY HAVING THEN ELSE WHEN CASE "
    "IS LIKE ILIKE BETWEEN DISTINCT ALL ANY UNION EXCEPT INTERSECT LIMIT OFFSET ORDER GROUP "
    "INTERVAL ARRAY GLOBAL OVER WINDOW QUALIFY END".split()
)
"""Keywords that may stand before a ``(`` that does not open a function's arguments."""
_AFTER_TABLE = frozenset(
    "WHERE PREWHERE GROUP ORDER LIMIT HAVING FINAL SAMPLE JOIN INNER LEFT RIGHT FULL CROSS "
    "ANY ALL ASOF SEMI ANTI ARRAY GLOBAL ON USING UNION EXCEPT INTERSECT WINDOW QUALIFY "
    "OFFSET PASTE OUTER".split()
)
"""Keywords that can follow a table in ``FROM``: a bare word that is not one is an alias."""
_FROM_ENDS = frozenset(
    "WHERE PREWHERE GROUP ORDER LIMIT HAVING ARRAY UNION EXCEPT INTERSECT WINDOW "
    "QUALIFY OFFSET".split()
)
"""Keywords that end a FROM clause's table list. Not ``JOIN``/``ON``/``USING``: ClickHouse
reads ``a JOIN b ON x = y, c`` as a cross join with ``c``, so a comma anywhere from FROM to
one of these is a comma join. ``ARRAY`` (``ARRAY JOIN``) starts a list of arrays, where
commas are fine, until the next ``JOIN``."""


@dataclass(frozen=True, slots=True)
class PreparedQuery:
    """What the engine runs: the rewritten SQL, its parameters, the effective row limit."""

    sql: str
    params: dict[str, str]
    limit: int


@dataclass(slots=True)
class _Frame:
    """One level of parentheses (or the top level) while scanning."""

    function: str | None
    """The function whose arguments these parentheses hold; None for a subquery or grouping."""
    select_seen: bool = False
    in_from: bool = False


@dataclass(slots=True)
class _Scan:
    tokens: list[Token]
    table_refs: list[int] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)
    """The nesting depth of each token (0: the top level)."""


def check(sql: object) -> list[Token]:
    """The tokens (comments dropped, trailing ``;`` removed) of a query that passes every rule.

    Raises :class:`HqlError` otherwise.
    """
    return _scan(sql).tokens


def prepare(
    sql: object,
    org_id: str,
    columns: list[str],
    max_rows: int,
    default_limit: int = DEFAULT_LIMIT,
) -> PreparedQuery:
    """The org-scoped statement for ``sql``: validated, tables rewritten, LIMIT set.

    ``columns``: the table's columns the query may see (never ``organization_id``).
    ``max_rows``: the cap a LIMIT is clamped to; ``default_limit`` is injected when the
    query has none.
    """
    scan = _scan(sql)
    safe = [c for c in columns if c != "organization_id" and _COLUMN_NAME.fullmatch(c)]
    if not safe:
        raise HqlError("HQL_SCHEMA_FETCH_FAILED", "no queryable columns")
    tokens, limit = _apply_limit(scan, max_rows, min(default_limit, max_rows))
    tokens = _rewrite_tables(tokens, set(scan.table_refs), safe)
    return PreparedQuery(render(tokens), {ORG_PARAM: org_id}, limit)


# -- the checks ----------------------------------------------------------------------------


def _scan(sql: object) -> _Scan:
    if not isinstance(sql, str) or not sql.strip():
        raise HqlError("HQL_MISSING_QUERY_SQL", "the body must hold a non-empty string 'sql'")
    if len(sql) > MAX_SQL_CHARS:
        raise HqlError("HQL_SYNTAX_ERROR", f"the query is longer than {MAX_SQL_CHARS} characters")
    if _ORG_SETTING.search(sql):
        raise HqlError("HQL_SQL_INJECTION_ATTEMPT", "the query names the organization setting")
    tokens = tokenize(sql)
    if tokens and tokens[-1].is_op(";"):
        tokens = tokens[:-1]
    if not tokens:
        raise HqlError("HQL_MISSING_QUERY_SQL", "the query is empty")
    if any(token.is_op(";") for token in tokens):
        raise HqlError("HQL_INVALID_STATEMENT", "only one statement is allowed")
    first = tokens[0]
    if first.is_word("WITH"):
        raise HqlError("HQL_INVALID_STATEMENT", "WITH (common table expressions) is not allowed")
    if not first.is_word("SELECT"):
        raise HqlError(
            "HQL_INVALID_STATEMENT", f"Only SELECT statements are allowed, not {first.text!r}"
        )
    scan = _Scan(tokens)
    stack = [_Frame(None)]
    for index, token in enumerate(tokens):
        frame = stack[-1]
        scan.depth.append(len(stack) - 1)
        if token.is_op("(", "["):
            stack.append(_Frame(_function_before(tokens, index) if token.text == "(" else "[]"))
        elif token.is_op(")", "]"):
            if len(stack) == 1:
                raise HqlError("HQL_SYNTAX_ERROR", f"unbalanced {token.text!r} at {token.position}")
            stack.pop()
        elif token.is_op(","):
            if frame.in_from:
                raise HqlError(
                    "HQL_INVALID_TABLE",
                    "comma joins are not allowed; use JOIN ... ON (and USING (a, b))",
                )
        elif token.kind == "ident":
            _check_word(scan, stack, index)
    if len(stack) != 1:
        raise HqlError("HQL_SYNTAX_ERROR", "unbalanced parentheses")
    return scan


def _function_before(tokens: list[Token], index: int) -> str | None:
    """The function name a ``(`` at ``index`` opens the arguments of, if it does."""
    if index == 0:
        return None
    before = tokens[index - 1]
    if before.kind == "ident" and before.upper not in _NOT_FUNCTIONS:
        return before.upper
    if before.is_op(")"):
        return "()"  # parametric aggregate: quantile(0.5)(x)
    return None


def _check_word(scan: _Scan, stack: list[_Frame], index: int) -> None:
    tokens = scan.tokens
    token = tokens[index]
    word = token.upper
    after = tokens[index + 1] if index + 1 < len(tokens) else None
    frame = stack[-1]
    top = len(stack) == 1
    if word == "SETTINGS":
        raise HqlError("HQL_SQL_INJECTION_ATTEMPT", "SETTINGS is not allowed")
    if word == "FORMAT" and not (after is not None and after.is_op("(")):
        raise HqlError("HQL_SQL_INJECTION_ATTEMPT", "a FORMAT clause is not allowed")
    if word in ("INTO", "OUTFILE"):
        raise HqlError("HQL_SQL_INJECTION_ATTEMPT", "INTO OUTFILE is not allowed")
    if word == "WITH" and not (after is not None and after.upper in _WITH_MODIFIERS):
        raise HqlError("HQL_INVALID_STATEMENT", "WITH (common table expressions) is not allowed")
    if word == "FETCH" and top:
        raise HqlError("HQL_SYNTAX_ERROR", "use LIMIT instead of OFFSET ... FETCH")
    if after is not None and after.is_op("("):
        if word == "IN" and not _is_in_operator(tokens, index):
            raise HqlError(
                "HQL_SQL_INJECTION_ATTEMPT", "the function in() is not allowed; write x IN (...)"
            )
        _check_function(token)
    if after is not None and after.is_op(".") and word in ("SYSTEM", "INFORMATION_SCHEMA"):
        raise HqlError("HQL_INVALID_TABLE", f"system tables are not allowed ({token.text}.…)")
    if word == "SELECT":
        frame.select_seen = True
        frame.in_from = False
    elif word == "FROM":
        if frame.function is None or frame.select_seen:  # else substring(x FROM 1 FOR 3)
            _check_table(scan, index + 1)
            frame.in_from = True
    elif word == "JOIN":
        previous = tokens[index - 1] if index > 0 else None
        if previous is None or not previous.is_word("ARRAY"):
            _check_table(scan, index + 1)
            frame.in_from = True
    elif word == "IN":
        if frame.function not in ("POSITION", "LOCATE"):
            _check_in_target(tokens, index + 1)
    elif word in _FROM_ENDS:
        frame.in_from = False
    if top and (word in _SET_OPERATIONS or (word == "EXCEPT" and _is_set_except(tokens, index))):
        raise HqlError(
            "HQL_INVALID_STATEMENT",
            f"{word} is only allowed inside a subquery: SELECT * FROM (... {word} ...)",
        )


def _is_in_operator(tokens: list[Token], index: int) -> bool:
    """Whether the ``IN`` at ``index`` is the operator (``x [GLOBAL] [NOT] IN ...``), that is
    follows an operand, rather than the function ``in(x, t)``."""
    before = index - 1
    while before >= 0 and tokens[before].is_word("NOT", "GLOBAL"):
        before -= 1
    if before < 0:
        return False
    operand = tokens[before]
    if operand.kind in ("number", "string") or operand.is_op(")", "]"):
        return True
    return operand.kind == "ident" and operand.upper not in _NOT_FUNCTIONS


def _check_in_target(tokens: list[Token], index: int) -> None:
    """``IN t`` and ``IN (t)`` (also ``IN (db.t)``) name a table to ClickHouse, not a value:
    refused. A subquery, a literal list, a function call or a tuple of several are fine."""
    while index < len(tokens) and tokens[index].is_op("("):
        index += 1
    if index >= len(tokens) or tokens[index].kind != "ident" or tokens[index].is_word("SELECT"):
        return
    following = tokens[index + 1] if index + 1 < len(tokens) else None
    if following is None or following.is_op(")", "."):
        raise HqlError(
            "HQL_INVALID_TABLE",
            f"IN {tokens[index].text} names a table; use IN (SELECT ...) or a list of values",
        )


def _is_set_except(tokens: list[Token], index: int) -> bool:
    """``... EXCEPT SELECT ...`` (a set operation), not ``SELECT * EXCEPT (col)`` (a column
    transformer)."""
    after = tokens[index + 1] if index + 1 < len(tokens) else None
    if after is None:
        return False
    if after.is_word("SELECT", "DISTINCT", "ALL"):
        return True
    inner = tokens[index + 2] if index + 2 < len(tokens) else None
    return after.is_op("(") and inner is not None and (inner.is_word("SELECT") or inner.is_op("("))


def _followed_by(tokens: list[Token], index: int, op: str) -> bool:
    return index + 1 < len(tokens) and tokens[index + 1].is_op(op)


def _check_function(token: Token) -> None:
    name = token.text.lower()
    if name in TABLE_FUNCTIONS:
        raise HqlError(
            "HQL_INVALID_TABLE", f"table function {token.text}() is not allowed ({TABLE} only)"
        )
    if name in DENIED_FUNCTIONS or name.startswith(("dict", "_")):
        raise HqlError("HQL_SQL_INJECTION_ATTEMPT", f"function {token.text}() is not allowed")


def _check_table(scan: _Scan, index: int) -> None:
    """The target of a FROM/JOIN at ``index``: the table, or ``(`` opening a subquery."""
    tokens = scan.tokens
    if index >= len(tokens):
        raise HqlError("HQL_SYNTAX_ERROR", "a table is missing after FROM/JOIN")
    target = tokens[index]
    if target.is_op("("):
        inner = index
        while inner < len(tokens) and tokens[inner].is_op("("):
            inner += 1
        if inner < len(tokens) and tokens[inner].is_word("SELECT"):
            return
        if inner < len(tokens) and tokens[inner].is_word("WITH"):
            raise HqlError("HQL_INVALID_STATEMENT", "WITH (CTEs) is not allowed")
        shown = tokens[inner].text if inner < len(tokens) else "?"
        raise HqlError(
            "HQL_INVALID_TABLE",
            f"Table '{shown}' is not allowed. Allowed tables: {TABLE} or a (SELECT ...) subquery",
        )
    if target.kind != "ident":
        raise HqlError("HQL_SYNTAX_ERROR", f"expected a table after FROM/JOIN, got {target.text!r}")
    following = tokens[index + 1] if index + 1 < len(tokens) else None
    if following is not None and following.is_op("."):
        name = target.text + "." + (tokens[index + 2].text if index + 2 < len(tokens) else "")
        raise HqlError(
            "HQL_INVALID_TABLE",
            f"Table '{name}' is not allowed: database-qualified names are not. "
            f"Allowed tables: {TABLE}",
        )
    if following is not None and following.is_op("("):
        raise HqlError(
            "HQL_INVALID_TABLE", f"table function {target.text}() is not allowed ({TABLE} only)"
        )
    if target.text != TABLE:
        raise HqlError(
            "HQL_INVALID_TABLE", f"Table '{target.text}' is not allowed. Allowed tables: {TABLE}"
        )
    scan.table_refs.append(index)


# -- the rewrite ---------------------------------------------------------------------------


def _synthetic(kind: str, text: str) -> Token:
    return Token(kind, text, -1)  # type: ignore[arg-type]


def _apply_limit(scan: _Scan, max_rows: int, default: int) -> tuple[list[Token], int]:
    """The tokens with the top-level LIMIT clamped to ``max_rows``, or ``default`` appended."""
    tokens = list(scan.tokens)
    main: tuple[int, int] | None = None  # (index of the count token, its value)
    for index, token in enumerate(tokens):
        if scan.depth[index] != 0:
            continue
        if token.is_word("OFFSET") and main is None and not _after_limit(tokens, index):
            raise HqlError("HQL_SYNTAX_ERROR", "OFFSET needs a LIMIT: use LIMIT offset, count")
        if not token.is_word("LIMIT"):
            continue
        numbers = _limit_numbers(tokens, index)
        end = index + 1 + (3 if len(numbers) == 2 else 1)
        following = tokens[end] if end < len(tokens) else None
        if following is not None and following.is_word("BY"):
            continue  # LIMIT n BY columns: per group, not the result's size
        if following is not None and not following.is_word("WITH"):
            raise HqlError("HQL_SYNTAX_ERROR", "LIMIT and OFFSET take integer literals")
        count_index = index + (3 if len(numbers) == 2 and tokens[index + 2].is_op(",") else 1)
        main = (count_index, int(tokens[count_index].text))
    if main is None:
        tokens += [_synthetic("ident", "LIMIT"), _synthetic("number", str(default))]
        return tokens, default
    count_index, count = main
    limit = min(count, max_rows)
    tokens[count_index] = _synthetic("number", str(limit))
    return tokens, limit


def _after_limit(tokens: list[Token], index: int) -> bool:
    """Whether the OFFSET at ``index`` is the one of ``LIMIT n OFFSET m``."""
    return index >= 2 and tokens[index - 2].is_word("LIMIT")


def _limit_numbers(tokens: list[Token], index: int) -> list[int]:
    """The literals of ``LIMIT n``, ``LIMIT m, n`` or ``LIMIT n OFFSET m`` at ``index``."""
    values: list[int] = []
    position = index + 1
    while True:
        if position >= len(tokens) or not tokens[position].text.isdigit():
            raise HqlError("HQL_SYNTAX_ERROR", "LIMIT and OFFSET take integer literals")
        values.append(int(tokens[position].text))
        following = tokens[position + 1] if position + 1 < len(tokens) else None
        if (
            len(values) == 1
            and following is not None
            and (following.is_op(",") or following.is_word("OFFSET"))
        ):
            position += 2
            continue
        return values


def _rewrite_tables(tokens: list[Token], refs: set[int], columns: list[str]) -> list[Token]:
    """Every reference to the table replaced by the org-filtered subquery (aliased)."""
    inner = _synthetic(
        "op",
        f"(SELECT {', '.join(columns)} FROM {TABLE} FINAL "
        f"WHERE organization_id = {{{ORG_PARAM}:UUID}})",
    )
    out: list[Token] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if index not in refs:
            out.append(token)
            index += 1
            continue
        out.append(inner)
        index += 1
        aliased = False
        if index < len(tokens) and tokens[index].is_word("AS"):
            out += tokens[index : index + 2]
            index += 2
            aliased = True
        elif (
            index < len(tokens)
            and tokens[index].kind == "ident"
            and tokens[index].upper not in _AFTER_TABLE
        ):
            out.append(tokens[index])
            index += 1
            aliased = True
        if not aliased:
            out += [_synthetic("ident", "AS"), _synthetic("ident", TABLE)]
        if index < len(tokens) and tokens[index].is_word("FINAL"):
            index += 1  # the subquery is FINAL already
    return out
