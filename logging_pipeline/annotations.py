"""Annotations: feedback, scores and properties added to a request after it was served.

An annotation may arrive before the request's record exists: the client pre-assigned the id
(``Helicone-Request-Id``), or the record is still in the journal (the writer is asynchronous).
So every annotation is first written, with its acceptance time, to the store's
``request_annotations`` table (state ``pending``) — durable before the API answers, and seen
by every writer on the store (with ``--workers N`` and a ClickHouse server each gateway
process has its own). It is then applied:

* at once, when the record is already there;
* when the record lands (the writer checks each written record's id against the set of
  pending ids it knows: a set lookup per record, nothing on the request path);
* by a periodic pass over the pending rows of the whole store (what another process
  accepted, or a record written by another process's writer);

and a pending annotation whose request has not arrived after ``expiry_seconds`` is marked
``expired``, logged and counted, and never retried.

Applying is idempotent and ordered: the request's row is re-inserted (``ReplacingMergeTree``,
newer ``updated_at``) with *every* live annotation of the request overlaid on it in acceptance
order, so the last write wins per key whatever order they were applied in, and applying one
twice (a crash between the row and the state change) changes nothing. A record written again
from the journal (a writer killed between its insert and its commit) is re-annotated the same
way. All of this runs in the writer that owns the store, one step at a time (one lock), so
concurrent annotations of one request all survive.

Session feedback targets a session, not a request: it is resolved to the session's earliest
request (stored then as that request's annotation), or waits, like a request's, for the
session's first record.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from logging_pipeline.capture import Capture
from logging_pipeline.clickhouse import LogTransport
from logging_pipeline.clickhouse.values import quote_identifier
from logging_pipeline.schema import ANNOTATION_TABLE, REQUEST_TABLE

logger = logging.getLogger("logging_pipeline.annotations")

NIL_UUID = "00000000-0000-0000-0000-000000000000"
"""The ``request_id`` of a session annotation not yet resolved to a request."""
SESSION_ID_PROPERTY = "Helicone-Session-Id"
MAX_RECONCILE_SECONDS = 5.0
"""The longest pause between two passes over the store's pending annotations."""
_CHUNK = 1000
"""Request ids per ``IN`` list (parameters travel in the URL to a ClickHouse server)."""
_SCAN_MARGIN = timedelta(hours=1)
"""A pass reads the partitions of the last ``expiry + margin`` only (the first after a start
reads them all, so what expired while no writer ran is found and reported too)."""
_LIVE = ("pending", "applied")
_COLUMNS = (
    "organization_id", "request_id", "annotation_id", "session_id", "accepted_at", "scores",
    "properties", "state", "version",
)  # fmt: skip
_ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Annotation:
    """One accepted write: scores and/or properties for a request (or a session's first).

    ``request_id`` is a canonical (lower-case) UUID string, or None for a session target
    (then ``session_id`` names it). ``accepted_at`` orders annotations: the last wins per key.
    """

    organization_id: str
    request_id: str | None
    scores: Mapping[str, float] = field(default_factory=dict)
    properties: Mapping[str, str] = field(default_factory=dict)
    session_id: str = ""
    annotation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    accepted_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class AnnotationCounters(Protocol):
    """Where the annotator counts: the writer's ``WriterCounters``."""

    annotations_accepted: int
    annotations_applied: int
    annotations_expired: int
    annotations_pending: int


class Annotator:
    """The writer's side of annotations; every store step runs under one lock."""

    def __init__(
        self, transport: LogTransport, expiry_seconds: float, counters: AnnotationCounters
    ) -> None:
        self.transport = transport
        self.expiry = timedelta(seconds=expiry_seconds)
        self.reconcile_seconds = max(0.2, min(MAX_RECONCILE_SECONDS, expiry_seconds / 4))
        self.counters = counters
        self.pending_requests: set[str] = set()
        """Request ids with a pending annotation, as last seen (checked per written record)."""
        self.pending_sessions: set[tuple[str, str]] = set()
        """(organization id, session id) of pending session annotations."""
        self._lock = asyncio.Lock()
        self._columns: list[str] | None = None
        self._scanned_all = False

    # -- entry points ---------------------------------------------------------------------

    async def accept(self, annotation: Annotation) -> str:
        """Store ``annotation`` (durable when this returns), apply it if it can be: ``"applied"``
        or ``"pending"``. Raises ``LogStoreError`` if the store does not take it."""
        async with self._lock:
            org = annotation.organization_id
            target = annotation.request_id
            if target is None:
                target = await self._earliest_request(org, annotation.session_id)
                if target is None:
                    await self._insert([_row(annotation, NIL_UUID, "pending")])
                    self.counters.annotations_accepted += 1
                    self.pending_sessions.add((org, annotation.session_id))
                    self._count_pending()
                    return "pending"
            await self._insert([_row(annotation, target, "pending")])
            self.counters.annotations_accepted += 1
            if await self._apply(org, target):
                return "applied"
            self.pending_requests.add(target)
            self._count_pending()
            return "pending"

    async def landed(self, captures: Sequence[Capture], replayed: bool) -> None:
        """Apply what waits for the records just written.

        ``replayed``: the batch may have been written before (read again from a journal after
        a crash), which would have put back the record without its annotations: the store is
        asked which of its requests have any.
        """
        targets: set[tuple[str, str]] = set()
        pending = self.pending_requests
        if pending:
            targets.update(
                (c.organization_id, c.request_id) for c in captures if c.request_id in pending
            )
        sessions = self.pending_sessions
        session_landed = bool(sessions) and any(
            (c.organization_id, c.properties.get(SESSION_ID_PROPERTY, "")) in sessions
            for c in captures
        )
        if replayed:
            targets.update(await self._annotated([c.request_id for c in captures]))
        if session_landed:
            await self.reconcile()  # resolves the session to its earliest request
        if not targets:
            return
        async with self._lock:
            for org, request_id in sorted(targets):
                if await self._apply(org, request_id):
                    self.pending_requests.discard(request_id)
            self._count_pending()

    async def reconcile(self) -> None:
        """One pass over the store's pending annotations: expire the old, apply the landed,
        resolve sessions, and refresh the pending sets the writer checks records against."""
        async with self._lock:
            await self._reconcile()

    # -- the pass -------------------------------------------------------------------------

    async def _reconcile(self) -> None:
        now = datetime.now(UTC)
        since = datetime(1970, 1, 1, tzinfo=UTC)
        if self._scanned_all:
            since = now - self.expiry - _SCAN_MARGIN
        rows = await self.transport.query(
            f"SELECT {', '.join(_COLUMNS)} FROM {ANNOTATION_TABLE} FINAL "
            "WHERE accepted_at >= {since:DateTime64(6, 'UTC')} AND state = 'pending' "
            "ORDER BY accepted_at, annotation_id",
            {"since": since},
        )
        self._scanned_all = True
        self._columns = None  # read again: another process may have migrated the table
        cutoff = now - self.expiry
        expired = [row for row in rows if row["accepted_at"] < cutoff]
        if expired:
            await self._expire(expired)
        live = [row for row in rows if row["accepted_at"] >= cutoff]
        sessions = {
            (str(r["organization_id"]), str(r["session_id"]))
            for r in live
            if str(r["request_id"]) == NIL_UUID
        }
        requests = {
            (str(r["organization_id"]), str(r["request_id"]))
            for r in live
            if str(r["request_id"]) != NIL_UUID
        }
        resolved = await self._resolve_sessions(live, sessions)
        requests.update(resolved)
        waiting: set[str] = set()
        present = await self._present(requests)
        for org, request_id in sorted(requests):
            if (org, request_id) not in present or not await self._apply(org, request_id):
                waiting.add(request_id)
        self.pending_requests = waiting
        self.pending_sessions = sessions - {(org, s) for (org, _), s in resolved.items()}
        self._count_pending()

    async def _expire(self, rows: list[dict[str, Any]]) -> None:
        """Mark annotations whose request never arrived; they are never retried."""
        for row in rows[:20]:
            target = (
                f"session {row['session_id']}"
                if str(row["request_id"]) == NIL_UUID
                else f"request {row['request_id']}"
            )
            logger.warning(
                "annotation %s for %s of organization %s expired: no record arrived within "
                "%.0f s of its acceptance (%s); it is dropped",
                row["annotation_id"], target, row["organization_id"],
                self.expiry.total_seconds(), row["accepted_at"].isoformat(),
            )  # fmt: skip
        if len(rows) > 20:
            logger.warning("%d more annotations expired", len(rows) - 20)
        await self._mark(rows, "expired")
        self.counters.annotations_expired += len(rows)

    async def _resolve_sessions(
        self, rows: list[dict[str, Any]], sessions: set[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """Session annotations whose session now has a record, moved to its earliest request.

        Returns {(org, request id): session id} for each request annotated this way.
        """
        resolved: dict[tuple[str, str], str] = {}
        for org, session in sorted(sessions):
            target = await self._earliest_request(org, session)
            if target is None:
                continue
            moved = [
                r for r in rows
                if str(r["request_id"]) == NIL_UUID
                and (str(r["organization_id"]), str(r["session_id"])) == (org, session)
            ]  # fmt: skip
            now = datetime.now(UTC)
            await self._insert([{**r, "request_id": target, "version": now} for r in moved])
            await self._mark(moved, "resolved")
            resolved[(org, target)] = session
        return resolved

    # -- store steps ----------------------------------------------------------------------

    async def _apply(self, org: str, request_id: str) -> bool:
        """Overlay every live annotation of the request on its row; False if no row yet."""
        exists = await self.transport.query(
            f"SELECT count() AS n FROM {REQUEST_TABLE} "
            "WHERE organization_id = {org:UUID} AND request_id = {rid:UUID}",
            {"org": org, "rid": request_id},
        )
        if not exists or not int(exists[0]["n"]):
            return False
        history = await self.transport.query(
            f"SELECT {', '.join(_COLUMNS)} FROM {ANNOTATION_TABLE} FINAL "
            "WHERE organization_id = {org:UUID} AND request_id = {rid:UUID} "
            "AND state IN {live:Array(String)} ORDER BY accepted_at, annotation_id",
            {"org": org, "rid": request_id, "live": list(_LIVE)},
        )
        scores: dict[str, float] = {}
        properties: dict[str, str] = {}
        for row in history:
            scores.update(row["scores"] or {})
            properties.update(row["properties"] or {})
        if scores or properties:
            await self.transport.command(
                await self._reinsert_sql(), {"org": org, "rid": request_id,
                                             "ann_scores": scores, "ann_props": properties},
            )  # fmt: skip
        newly = [row for row in history if row["state"] == "pending"]
        if newly:
            await self._mark(newly, "applied")
            self.counters.annotations_applied += len(newly)
        return True

    async def _reinsert_sql(self) -> str:
        """``INSERT … SELECT`` of the request's newest row with the overlay and a newer version.

        Done in the engine: no value makes a round trip through Python, so every type (the
        Float64 scores, DateTime64 precision, Nullable columns) is kept exactly.
        """
        if self._columns is None:
            rows = await self.transport.query(
                "SELECT name FROM system.columns WHERE database = currentDatabase() "
                "AND table = {table:String} "
                "AND default_kind NOT IN ('MATERIALIZED', 'ALIAS', 'EPHEMERAL') "
                "ORDER BY position",
                {"table": REQUEST_TABLE},
            )
            self._columns = [str(row["name"]) for row in rows]
        overrides = {
            "scores": "mapUpdate(scores, {ann_scores:Map(String, Float64)})",
            "properties": "mapUpdate(properties, {ann_props:Map(String, String)})",
            "updated_at": "greatest(now64(3), updated_at + toIntervalMillisecond(1))",
        }
        names = ", ".join(quote_identifier(c) for c in self._columns)
        values = ", ".join(overrides.get(c, quote_identifier(c)) for c in self._columns)
        return (
            f"INSERT INTO {REQUEST_TABLE} ({names}) SELECT {values} FROM {REQUEST_TABLE} FINAL "
            "WHERE organization_id = {org:UUID} AND request_id = {rid:UUID} "
            "ORDER BY request_created_at DESC LIMIT 1"
        )

    async def _earliest_request(self, org: str, session: str) -> str | None:
        rows = await self.transport.query(
            f"SELECT toString(request_id) AS request_id FROM {REQUEST_TABLE} FINAL "
            "WHERE organization_id = {org:UUID} AND session_id = {sid:String} "
            "ORDER BY request_created_at ASC, request_id ASC LIMIT 1",
            {"org": org, "sid": session},
        )
        return str(rows[0]["request_id"]) if rows else None

    async def _present(self, targets: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of (org, request id) have a record."""
        found = await self._pairs(REQUEST_TABLE, sorted({rid for _, rid in targets}))
        return found & targets

    async def _annotated(self, request_ids: Sequence[str]) -> set[tuple[str, str]]:
        """(org, request id) of the given requests that have any annotation."""
        return await self._pairs(ANNOTATION_TABLE, sorted(set(request_ids)))

    async def _pairs(self, table: str, request_ids: Sequence[str]) -> set[tuple[str, str]]:
        """(org, request id) of the rows of ``table`` with one of ``request_ids``."""
        found: set[tuple[str, str]] = set()
        for start in range(0, len(request_ids), _CHUNK):
            rows = await self.transport.query(
                "SELECT DISTINCT toString(organization_id) AS org, toString(request_id) AS rid "
                f"FROM {table} WHERE request_id IN {{ids:Array(UUID)}}",
                {"ids": list(request_ids[start : start + _CHUNK])},
            )
            found.update((str(r["org"]), str(r["rid"])) for r in rows)
        return found

    async def _insert(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.transport.insert(
                ANNOTATION_TABLE, _COLUMNS, [tuple(row[c] for c in _COLUMNS) for row in rows]
            )

    async def _mark(self, rows: list[dict[str, Any]], state: str) -> None:
        """The rows again in ``state``, with a version newer than the one they had."""
        now = datetime.now(UTC)
        await self._insert(
            [
                {**row, "state": state, "version": max(now, row["version"] + _ONE_MICROSECOND)}
                for row in rows
            ]
        )

    def _count_pending(self) -> None:
        self.counters.annotations_pending = len(self.pending_requests) + len(self.pending_sessions)


def _row(annotation: Annotation, request_id: str, state: str) -> dict[str, Any]:
    return {
        "organization_id": annotation.organization_id,
        "request_id": request_id,
        "annotation_id": annotation.annotation_id,
        "session_id": annotation.session_id,
        "accepted_at": annotation.accepted_at,
        "scores": dict(annotation.scores),
        "properties": dict(annotation.properties),
        "state": state,
        "version": annotation.accepted_at,
    }
