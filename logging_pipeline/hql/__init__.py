"""HQL: organisation-scoped, read-only SQL over the request log (``/v1/helicone-sql/*``).

* :mod:`.lexer` tokenises like ClickHouse (literals, comments, quoted identifiers);
* :mod:`.validate` checks one SELECT against the safety rules and rewrites every table
  reference into an org-filtered subquery, with the LIMIT injected or clamped;
* :mod:`.execute` runs it with read-only settings and maps engine errors to HQL codes;
* :mod:`.errors` is the error type with the documented codes and statuses.
"""

from logging_pipeline.hql.errors import HqlError
from logging_pipeline.hql.execute import (
    DOWNLOAD_MAX_ROWS,
    EXECUTE_MAX_ROWS,
    HqlEngine,
    HqlResult,
    hql_settings,
    map_engine_error,
    rows_to_csv,
)
from logging_pipeline.hql.lexer import Token, tokenize
from logging_pipeline.hql.validate import DEFAULT_LIMIT, PreparedQuery, prepare

__all__ = [
    "DEFAULT_LIMIT",
    "DOWNLOAD_MAX_ROWS",
    "EXECUTE_MAX_ROWS",
    "HqlEngine",
    "HqlError",
    "HqlResult",
    "PreparedQuery",
    "Token",
    "hql_settings",
    "map_engine_error",
    "prepare",
    "rows_to_csv",
    "tokenize",
]
