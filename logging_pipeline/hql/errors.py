"""The HQL error codes (Helicone's ``HqlErrorCode``) with their HTTP statuses and messages."""

from __future__ import annotations

from typing import Any

STATUS: dict[str, int] = {
    "HQL_INVALID_STATEMENT": 400,
    "HQL_INVALID_TABLE": 400,
    "HQL_SYNTAX_ERROR": 400,
    "HQL_SQL_INJECTION_ATTEMPT": 400,
    "HQL_MISSING_QUERY_ID": 400,
    "HQL_MISSING_QUERY_NAME": 400,
    "HQL_MISSING_QUERY_SQL": 400,
    "HQL_QUERY_NAME_TOO_LONG": 400,
    "HQL_INVALID_REQUEST": 400,
    "HQL_FEATURE_NOT_ENABLED": 403,
    "HQL_QUERY_ACCESS_DENIED": 403,
    "HQL_QUERY_NOT_FOUND": 404,
    "HQL_NO_DATA_RETURNED": 404,
    "HQL_QUERY_NAME_EXISTS": 409,
    "HQL_RATE_LIMITED": 429,
    "HQL_QUERY_TIMEOUT": 503,
    "HQL_MEMORY_LIMIT_EXCEEDED": 503,
    "HQL_ROW_LIMIT_EXCEEDED": 503,
    "HQL_RESULT_LIMIT_EXCEEDED": 503,
    "HQL_STORE_UNAVAILABLE": 503,
    "HQL_EXECUTION_FAILED": 500,
    "HQL_SCHEMA_FETCH_FAILED": 500,
    "HQL_CSV_UPLOAD_FAILED": 500,
    "HQL_CSV_URL_NOT_RETURNED": 500,
    "HQL_UNEXPECTED_ERROR": 500,
}
"""Every code and its status. ``HQL_INVALID_REQUEST`` (a body that is not ``{"sql": ...}``),
``HQL_RATE_LIMITED`` and ``HQL_STORE_UNAVAILABLE`` are ours: the reference has no code for
them."""

MESSAGES: dict[str, str] = {
    "HQL_INVALID_STATEMENT": "Only SELECT statements are allowed",
    "HQL_INVALID_TABLE": "Table is not allowed for querying",
    "HQL_SYNTAX_ERROR": "SQL syntax error",
    "HQL_SQL_INJECTION_ATTEMPT": "Query contains forbidden keywords",
    "HQL_MISSING_QUERY_ID": "Query id is required",
    "HQL_MISSING_QUERY_NAME": "Query name is required",
    "HQL_MISSING_QUERY_SQL": "Query SQL is required",
    "HQL_QUERY_NAME_TOO_LONG": "Query name must be less than 255 characters",
    "HQL_INVALID_REQUEST": "Invalid request body",
    "HQL_FEATURE_NOT_ENABLED": "HQL is not enabled",
    "HQL_QUERY_ACCESS_DENIED": "Access to this query is denied",
    "HQL_QUERY_NOT_FOUND": "Query not found",
    "HQL_NO_DATA_RETURNED": "The query returned no rows",
    "HQL_QUERY_NAME_EXISTS": "A saved query with this name already exists",
    "HQL_RATE_LIMITED": "Too many queries; try again shortly",
    "HQL_QUERY_TIMEOUT": "Query execution timeout (30 seconds). Please optimize your query.",
    "HQL_MEMORY_LIMIT_EXCEEDED": "Query exceeded the memory limit. Please optimize your query.",
    "HQL_ROW_LIMIT_EXCEEDED": "Query read too many rows. Please narrow its time range.",
    "HQL_RESULT_LIMIT_EXCEEDED": (
        "Query result exceeded maximum rows (10,000). Please add LIMIT clause."
    ),
    "HQL_STORE_UNAVAILABLE": "The request log store is unavailable; try again shortly.",
    "HQL_EXECUTION_FAILED": "Query execution failed",
    "HQL_SCHEMA_FETCH_FAILED": "Could not read the schema",
    "HQL_CSV_UPLOAD_FAILED": "Could not store the CSV export",
    "HQL_CSV_URL_NOT_RETURNED": "Could not create the download link",
    "HQL_UNEXPECTED_ERROR": "Unexpected error",
}


class HqlError(Exception):
    """An HQL failure answered as ``{"code", "message", "details"}`` with the code's status."""

    def __init__(self, code: str, details: str = "", message: str | None = None) -> None:
        super().__init__(f"{code}: {details or message or MESSAGES.get(code, '')}")
        self.code = code
        self.message = message or MESSAGES.get(code, code)
        self.details = details

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 500)

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}
