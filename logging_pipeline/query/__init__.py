"""Helicone filter AST -> parameterised ClickHouse SQL, and rows -> ``HeliconeRequest``.

Public surface:

* :class:`RequestQuery` — a validated ``RequestQueryParams`` body;
* :func:`build_request_query`, :func:`build_ids_query`, :func:`build_get_query` — statements
  (:class:`CompiledQuery`: SQL with ``{name:Type}`` placeholders plus the params dict), always
  scoped with ``organization_id = {org:UUID}``;
* :func:`compile_filter` / :func:`compile_sort` — the pieces, for other endpoints;
* :func:`helicone_request` — one result row as the API object;
* :class:`FilterError` — any invalid input (the API answers 400 with its message).
"""

from logging_pipeline.query.binder import ParamBinder
from logging_pipeline.query.builder import (
    DEFAULT_LIMIT,
    MAX_IDS,
    MAX_LIMIT,
    CompiledQuery,
    RequestQuery,
    build_get_query,
    build_ids_query,
    build_request_query,
    canonical_uuid,
    parse_request_ids,
)
from logging_pipeline.query.compiler import compile_filter
from logging_pipeline.query.errors import FilterError
from logging_pipeline.query.rows import (
    BODY_PLACEHOLDER,
    BODY_REPLACED,
    bodies_of,
    helicone_request,
    iso_timestamp,
)
from logging_pipeline.query.sort import compile_sort

__all__ = [
    "BODY_PLACEHOLDER",
    "BODY_REPLACED",
    "DEFAULT_LIMIT",
    "MAX_IDS",
    "MAX_LIMIT",
    "CompiledQuery",
    "FilterError",
    "ParamBinder",
    "RequestQuery",
    "bodies_of",
    "build_get_query",
    "build_ids_query",
    "build_request_query",
    "canonical_uuid",
    "compile_filter",
    "compile_sort",
    "helicone_request",
    "iso_timestamp",
    "parse_request_ids",
]
