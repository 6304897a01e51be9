"""HoneyHive-compatible ingestion: ``POST /events/model/batch`` and ``POST /v1/events/batch``.

A HoneyHive client posts a batch of events with ``Authorization: Bearer <key>`` (here a gateway
key with ``trace:write``, or one without scopes). The events are parsed and mapped by
:mod:`gateway.ingest.honeyhive`; each accepted model event is journaled for the log writer
(``LogSink.submit``: microseconds, no wait for storage) and the answer says which events were
taken: ``200 {"event_ids", "success": true}`` (plus ``session_id`` in single-session mode),
or, when some event failed, HoneyHive's ``500 {"event_ids", "errors", "success"}`` partial
shape (``success`` is true when at least one event was stored). A body that is not a batch is
a 400, one over the size limit a 413, both ``{"success": false, "error": "..."}`` like every
other refusal here (401, 403 without ``trace:write``, 503 with logging off).

The events go to the caller's organisation; the HoneyHive ``project`` name is kept as the
``HoneyHive-Project`` property (the gateway has no projects below an organisation).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from gateway.api.requests import _json_body, _TooLarge
from gateway.errors import GatewayError
from gateway.ingest.access import Caller, Submit, admit, too_large
from gateway.ingest.honeyhive import (
    Batch,
    BatchError,
    BatchLimits,
    Form,
    parse_batch,
)
from gateway.ingest.logged import logged_capture
from gateway.store import KeyIdentity
from logging_pipeline.capture import Capture
from logging_pipeline.query import FilterError

logger = logging.getLogger(__name__)

Authenticate = Callable[[dict[str, str]], Awaitable[KeyIdentity]]

LEGACY_PATH = "/events/model/batch"
V1_PATH = "/v1/events/batch"
THREAD_FROM_EVENTS = 200
"""A batch with more events than this is mapped in a worker thread (~50 µs an event: a
1000-event batch would otherwise hold the event loop, and every proxied request on it, for
tens of milliseconds); the captures are still journaled on the loop, the journal's only
writer."""


@dataclass(frozen=True, slots=True)
class HoneyHiveApiDeps:
    """``authenticate``: lower-cased headers -> the caller (401 otherwise); ``sink``: the log
    sink's ``submit`` now, or None while logging is off (read per request: the sink opens
    after the app is built); ``max_body_bytes``: one request's limit (413 above)."""

    authenticate: Authenticate
    sink: Callable[[], Submit | None]
    limits: BatchLimits
    max_body_bytes: int


def _answer(status: int, payload: dict[str, Any]) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _refuse(status: int, message: str) -> Response:
    return _answer(status, {"success": False, "error": message})


def _event_count(body: Any) -> int:
    if not isinstance(body, dict):
        return 0
    events = body.get("model_events", body.get("events"))
    return len(events) if isinstance(events, list) else 0


def _map(body: Any, form: Form, caller: Caller, limits: BatchLimits
         ) -> tuple[Batch, list[Capture]]:  # fmt: skip
    """The parsed batch and the capture of each accepted model event."""
    batch = parse_batch(body, form, caller, limits)
    return batch, [logged_capture(call) for call in batch.calls]


def honeyhive_router(deps: HoneyHiveApiDeps) -> APIRouter:
    """The HoneyHive batch endpoints bound to ``deps``."""
    router = APIRouter(tags=["HoneyHive"])

    async def ingest(request: Request, form: Form, path: str) -> Response:
        try:
            headers = {k.lower(): v for k, v in request.headers.items()}
            identity = await deps.authenticate(headers)
            submit = admit(identity, deps.sink())
            body = await _json_body(request, deps.max_body_bytes)
            caller = Caller(identity.org_id, identity.key_id, path)
            if _event_count(body) > THREAD_FROM_EVENTS:
                batch, captures = await asyncio.to_thread(_map, body, form, caller, deps.limits)
            else:
                batch, captures = _map(body, form, caller, deps.limits)
            for capture in captures:
                submit(capture)
        except GatewayError as exc:
            return _refuse(exc.status, exc.message)
        except BatchError as exc:
            return _refuse(exc.status, str(exc))
        except FilterError as exc:
            return _refuse(400, exc.message)
        except _TooLarge:
            return _refuse(413, too_large(deps.max_body_bytes, "GATEWAY_HONEYHIVE_MAX_BATCH_BYTES"))
        except ClientDisconnect:
            return _refuse(499, "client disconnected")
        except Exception:
            logger.exception("HoneyHive batch failed: %s", path)
            return _refuse(500, "Internal error while ingesting the events")
        payload: dict[str, Any] = {"event_ids": batch.event_ids}
        if batch.errors:
            payload["errors"] = batch.errors
            logger.info("HoneyHive batch: %d of %d events refused (%s)", len(batch.errors),
                        len(batch.errors) + len(batch.event_ids), batch.errors[0])  # fmt: skip
        payload["success"] = bool(batch.event_ids) or not batch.errors
        if batch.session_id is not None:
            payload["session_id"] = batch.session_id
        return _answer(500 if batch.errors else 200, payload)

    @router.post(LEGACY_PATH, summary="Create a batch of model events (HoneyHive)")
    async def model_batch(request: Request) -> Response:
        """``{"model_events": [CreateModelEvent], "is_single_session"?, "session_properties"?}``:
        each model event becomes a request record."""
        return await ingest(request, "legacy", LEGACY_PATH)

    @router.post(V1_PATH, summary="Create a batch of events (HoneyHive v1)")
    async def events_batch(request: Request) -> Response:
        """``{"events": [event with event_type], "single_session"?, "session_properties"?}``:
        model events become request records; session, chain and tool events name their
        session and the session paths below them."""
        return await ingest(request, "v1", V1_PATH)

    return router


def include_honeyhive_api(app: FastAPI, deps: HoneyHiveApiDeps) -> None:
    """Mount the HoneyHive ingestion endpoints on ``app`` (the one call :mod:`gateway.app`
    needs)."""
    app.include_router(honeyhive_router(deps))
