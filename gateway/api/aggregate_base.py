"""What every aggregate endpoint (sessions, users, properties, evals, dashboard) does around
its query: authenticate, read the JSON body, run the statement with a deadline, and answer in
Helicone's envelope with the request API's status rules (one implementation,
:func:`gateway.api.requests.respond`): 400 for anything the caller sent wrong, 401/403 from
authentication, 404 for a missing object, 503 (with ``Retry-After``) when the log store does
not answer, 500 only for a statement the engine refused (our bug), never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import Response

from gateway.api.requests import NotFound as NotFound
from gateway.api.requests import RequestApiDeps, Work, _json_body, respond, run_statement
from logging_pipeline.query import CompiledQuery

Q = TypeVar("Q")
Rows = list[dict[str, Any]]


class AggregateApi:
    """One per app: the shared handling, bound to the request API's dependencies."""

    def __init__(self, deps: RequestApiDeps) -> None:
        self.deps = deps

    async def respond(self, request: Request, work: Work) -> Response:
        """Run ``work(org_id)`` and answer its result as ``{data, error: null}``."""
        return await respond(request, self.deps, work, kind="aggregate", subject="the request log")

    async def answer(self, request: Request, parse: Callable[[Any], Q],
                     build: Callable[[str, Q], CompiledQuery],
                     shape: Callable[[Q, Rows], Any]) -> Response:  # fmt: skip
        """The common route: ``query = parse(body)``, run ``build(org_id, query)``, answer
        ``shape(query, rows)`` (the JSON body is required)."""

        async def work(org_id: str) -> Any:
            query = parse(await self.body(request))
            return shape(query, await self.run(build(org_id, query)))

        return await self.respond(request, work)

    async def run(self, compiled: CompiledQuery) -> Rows:
        """The rows of one statement, or a 503 after the deadline."""
        return await run_statement(self.deps, compiled.sql, compiled.params)

    async def body(self, request: Request) -> Any:
        """The JSON body (400 when absent or malformed; 413 over the limit)."""
        return await _json_body(request, self.deps.max_body_bytes)

    async def optional_body(self, request: Request) -> Any:
        """The JSON body, or ``{}`` when there is none (bodies Helicone does not require)."""
        return await _json_body(request, self.deps.max_body_bytes, required=False)
