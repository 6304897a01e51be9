"""Server-side query parameters: every user value leaves the SQL text as ``{pN:Type}``.

ClickHouse substitutes typed parameters on the server after parsing, so a value can never
change the shape of the statement, whatever quotes or comments it contains. The placeholder
*types* come only from this package's code, never from input.
"""

from __future__ import annotations

from typing import Any

ORG_PARAM = "org"
"""The reserved parameter holding the caller's organization id (bound by the builder only)."""

ORG_PLACEHOLDER = "{org:UUID}"


class ParamBinder:
    """Collects the parameters of one statement; one instance per statement (no shared state)."""

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}
        self._count = 0

    def bind(self, value: str | int | float | bool | list[str], ch_type: str) -> str:
        """Register ``value`` and return its placeholder, e.g. ``{p3:String}``."""
        name = f"p{self._count}"
        self._count += 1
        self._params[name] = value
        return "{" + name + ":" + ch_type + "}"

    def bind_named(self, name: str, value: str | int | float | bool, ch_type: str) -> str:
        """Register a reserved, builder-chosen parameter (``org``, ``lim``, ``off``)."""
        if name in self._params or (name.startswith("p") and name[1:].isdigit()):
            raise ValueError(f"parameter name {name!r} is taken")
        self._params[name] = value
        return "{" + name + ":" + ch_type + "}"

    @property
    def params(self) -> dict[str, Any]:
        """A copy of the collected parameters (name -> Python value)."""
        return dict(self._params)
