"""Annotation endpoints: feedback, scores, evals and properties added to logged requests.

``POST /v1/request/{id}/feedback`` ``{"rating": bool}`` and the legacy ``POST /v1/feedback``
``{"helicone-id", "rating"}`` store the rating as the score ``helicone-score-feedback`` (1/0),
read back as ``feedback_rating``; ``POST /v1/request/{id}/score`` ``{"scores": {name: number |
bool}}`` (booleans become 1/0, decimals are kept: Float64); ``POST /v1/evals/{id}``
``{"score", "name"}`` is a one-score write; ``PUT /v1/request/{id}/property`` takes ``{"key",
"value"}`` or a map of string pairs; ``POST /v1/session/{id}/feedback`` ``{"rating"}`` sets the
property ``Helicone-Session-Feedback`` ("1"/"0") on the session's earliest request.

Each answers ``{"data": null, "error": null}`` once the annotation is stored durably — before
the request's record exists, if it does not yet (a pre-assigned ``Helicone-Request-Id``, or a
record still on its way to the store): it is applied when the record lands
(:mod:`logging_pipeline.annotations`). The write goes through the log writer that owns the
store (``LogSink.annotate``). Bad bodies and ids are 400s naming the problem; a store that
does not take the write is a 503.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from gateway.api.envelope import fail, ok
from gateway.api.requests import (
    QUERY_TIMEOUT_SECONDS,
    _json_body,
    _TooLarge,
    store_unavailable,
)
from gateway.errors import GatewayError
from gateway.scopes import EVALUATION_WRITE, TRACE_WRITE, allows
from gateway.store import KeyIdentity
from logging_pipeline.annotations import Annotation
from logging_pipeline.clickhouse import LogStoreError
from logging_pipeline.query import FilterError, canonical_uuid

logger = logging.getLogger(__name__)

FEEDBACK_SCORE = "helicone-score-feedback"
SESSION_FEEDBACK_PROPERTY = "Helicone-Session-Feedback"
MAX_ENTRIES = 100
"""Scores or properties in one call."""
MAX_NAME_CHARS = 256
MAX_VALUE_CHARS = 10_000
MAX_BODY_BYTES = 64 * 1024

Authenticate = Callable[[dict[str, str]], Awaitable[KeyIdentity]]
Annotate = Callable[[Annotation], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class AnnotationApiDeps:
    """``authenticate``: lower-cased headers -> the caller's identity (401 otherwise);
    ``annotate``: stores an annotation through the log writer (``LogStoreError`` when it
    cannot); ``timeout``: seconds before an unanswered write is a 503."""

    authenticate: Authenticate
    annotate: Annotate
    timeout: float = QUERY_TIMEOUT_SECONDS


class _Invalid(Exception):
    """A bad id or body: a 400 with this message."""


def annotation_router(deps: AnnotationApiDeps) -> APIRouter:
    """The annotation endpoints bound to ``deps``."""
    router = APIRouter(tags=["Annotations"])

    async def respond(
        request: Request, scope: str, build: Callable[[str, Any], Annotation]
    ) -> Response:
        try:
            headers = {k.lower(): v for k, v in request.headers.items()}
            identity = await deps.authenticate(headers)
            if not allows(identity.scopes, scope):
                return fail(403, "Forbidden")
            body = await _json_body(request, MAX_BODY_BYTES)
            annotation = build(identity.org_id, body)
            await asyncio.wait_for(deps.annotate(annotation), deps.timeout)
            return ok(None)
        except GatewayError as exc:
            return fail(exc.status, exc.message)
        except (_Invalid, FilterError) as exc:
            return fail(400, str(exc) if isinstance(exc, _Invalid) else exc.message)
        except _TooLarge:
            return fail(413, f"Request body is larger than the limit of {MAX_BODY_BYTES} bytes.")
        except ClientDisconnect:
            return fail(499, "client disconnected")
        except (LogStoreError, OSError, TimeoutError) as exc:
            logger.warning("annotation not stored (%s %s): %r", request.method,
                           request.url.path, exc)  # fmt: skip
            return store_unavailable()
        except Exception:
            logger.exception("annotation failed: %s %s", request.method, request.url.path)
            return fail(500, "Internal error while storing the annotation")

    @router.post("/v1/request/{requestId}/feedback", summary="Submit Feedback")
    async def feedback(request: Request, requestId: str) -> Response:
        """``{"rating": bool}``: true = positive; one rating per request, the last wins."""
        return await respond(request, EVALUATION_WRITE, lambda org, body: Annotation(
            org, _request_id(requestId), scores=_rating_score(body)))  # fmt: skip

    @router.post("/v1/feedback", summary="Submit Feedback (legacy)")
    async def legacy_feedback(request: Request) -> Response:
        """``{"helicone-id": <request id>, "rating": bool}``: an alias of the one above."""

        def build(org: str, body: Any) -> Annotation:
            _object(body)
            if not isinstance(body.get("helicone-id"), str):
                raise _Invalid("missing required field 'helicone-id' (the request id)")
            return Annotation(org, _request_id(body["helicone-id"]), scores=_rating_score(body))

        return await respond(request, EVALUATION_WRITE, build)

    @router.post("/v1/request/{requestId}/score", summary="Submit Score")
    async def score(request: Request, requestId: str) -> Response:
        """``{"scores": {name: number | boolean}}``, merged into the request's scores."""
        return await respond(request, EVALUATION_WRITE, lambda org, body: Annotation(
            org, _request_id(requestId), scores=_scores(body)))  # fmt: skip

    @router.post("/v1/evals/{requestId}", summary="Create a new evaluation for a request")
    async def evaluation(request: Request, requestId: str) -> Response:
        """``{"score": number, "name": string}``: a score write of one name."""

        def build(org: str, body: Any) -> Annotation:
            _object(body)
            for name in ("score", "name"):
                if name not in body:
                    raise _Invalid(f"missing required field '{name}'")
            name = _name(body["name"], "name")
            return Annotation(
                org, _request_id(requestId), scores={name: _number(body["score"], "score")}
            )

        return await respond(request, EVALUATION_WRITE, build)

    @router.put("/v1/request/{requestId}/property", summary="Upsert Request Property")
    async def put_property(request: Request, requestId: str) -> Response:
        """``{"key", "value"}``, or ``{"Name": "value", …}``: upserted into the properties."""
        return await respond(request, TRACE_WRITE, lambda org, body: Annotation(
            org, _request_id(requestId), properties=_properties(body)))  # fmt: skip

    @router.post("/v1/session/{sessionId}/feedback", summary="Add Session Feedback")
    async def session_feedback(request: Request, sessionId: str) -> Response:
        """``{"rating": bool}``: ``Helicone-Session-Feedback`` on the session's first request."""

        def build(org: str, body: Any) -> Annotation:
            session = sessionId.strip()
            if not session or len(session) > MAX_VALUE_CHARS:
                raise _Invalid("Invalid sessionId: must be a non-empty string")
            rating = _rating(body)
            return Annotation(
                org, None, session_id=session,
                properties={SESSION_FEEDBACK_PROPERTY: "1" if rating else "0"},
            )  # fmt: skip

        return await respond(request, TRACE_WRITE, build)

    return router


def include_annotation_api(app: FastAPI, deps: AnnotationApiDeps) -> None:
    """Mount the annotation endpoints on ``app`` (the one call :mod:`gateway.app` needs)."""
    app.include_router(annotation_router(deps))


# -- validation ------------------------------------------------------------------------------


def _request_id(value: str) -> str:
    canonical = canonical_uuid(value)
    if canonical is None:
        raise _Invalid("Invalid requestId: must be a valid UUID")
    return canonical


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise _Invalid("request body must be a JSON object")
    return body


def _rating(body: Any) -> bool:
    rating = _object(body).get("rating")
    if not isinstance(rating, bool):
        raise _Invalid("missing or invalid field 'rating': must be true or false")
    return rating


def _rating_score(body: Any) -> dict[str, float]:
    return {FEEDBACK_SCORE: 1.0 if _rating(body) else 0.0}


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"{what} must be a non-empty string")
    if len(value) > MAX_NAME_CHARS:
        raise _Invalid(f"{what} is longer than {MAX_NAME_CHARS} characters")
    return value


def _number(value: Any, what: str) -> float:
    """A finite number; a boolean is 1 or 0 (Helicone stores booleans that way)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise _Invalid(f"{what} must be a finite number or a boolean, got {value!r}")
    return float(value)


def _scores(body: Any) -> dict[str, float]:
    body = _object(body)
    extra = sorted(set(body) - {"scores"})
    if extra:
        raise _Invalid(f'unknown field(s) {", ".join(extra)}: the body is {{"scores": {{…}}}}')
    scores = body.get("scores")
    if not isinstance(scores, Mapping) or not scores:
        raise _Invalid("missing or invalid field 'scores': an object of name -> number|boolean")
    if len(scores) > MAX_ENTRIES:
        raise _Invalid(f"scores has {len(scores)} entries; at most {MAX_ENTRIES} per call")
    return {
        _name(name, "a score name"): _number(value, f"score {name!r}")
        for name, value in scores.items()
    }


def _properties(body: Any) -> dict[str, str]:
    """``{"key", "value"}`` is one pair; any other object is a map of string pairs."""
    body = _object(body)
    if "key" in body and "value" in body:
        extra = sorted(set(body) - {"key", "value"})
        if extra:
            raise _Invalid(f"unknown field(s) {', '.join(extra)} beside 'key' and 'value'")
        pairs: Mapping[str, Any] = {_name(body["key"], "key"): body["value"]}
    else:
        pairs = body
    if not pairs:
        raise _Invalid('the body must be {"key": …, "value": …} or an object of string pairs')
    if len(pairs) > MAX_ENTRIES:
        raise _Invalid(f"{len(pairs)} properties; at most {MAX_ENTRIES} per call")
    out: dict[str, str] = {}
    for key, value in pairs.items():
        _name(key, "a property name")
        if not isinstance(value, str):
            raise _Invalid(f"property {key!r} must be a string, got {type(value).__name__}")
        if len(value) > MAX_VALUE_CHARS:
            raise _Invalid(f"property {key!r} is longer than {MAX_VALUE_CHARS} characters")
        out[key] = value
    return out
