"""The one error a malformed query raises.

Everything a caller controls (filter tables, fields, operators, values, sort keys, paging) is
validated while compiling; a problem becomes a :class:`FilterError` whose message names the
offending part, so the API can answer 400 with something a user can act on instead of a
ClickHouse parse error (or, worse, a query that silently matches nothing).
"""

from __future__ import annotations


class FilterError(ValueError):
    """A filter, sort or paging value the query compiler refuses (API: 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def describe(path: tuple[str, ...]) -> str:
    """``("request_response_rmt", "model", "equals")`` -> ``request_response_rmt.model.equals``.

    Keys are shown with ``repr`` when they are not plain identifiers, so a hostile key is
    visible as data in the message rather than blending into it.
    """
    parts = [p if p.replace("_", "").replace("-", "").isalnum() else repr(p) for p in path]
    return ".".join(parts)
