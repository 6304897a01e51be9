"""The annotator against a real engine (embedded chdb): ordering, idempotency, and a record
written again from the journal after it was annotated.

The end-to-end behaviour (HTTP, both transports, restarts, expiry) is in
``tests/test_annotations_e2e.py``; these are the cases an API client cannot set up: an
acceptance order that differs from the arrival order, and a batch inserted twice.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from logging_pipeline.annotations import Annotation
from logging_pipeline.clickhouse import ChdbTransport
from logging_pipeline.schema import ANNOTATION_TABLE, REQUEST_TABLE
from logging_pipeline.writer import LogWriter
from tests.test_writer import ORG, Pipeline, capture, wait_until


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    transport = ChdbTransport(tmp_path / "clickhouse")
    pipeline = Pipeline(transport, tmp_path)
    await pipeline.writer.start()
    try:
        yield pipeline
    finally:
        await pipeline.close()
        await transport.close()


async def scores_of(writer: LogWriter, request_id: str) -> dict[str, Any]:
    rows = await writer.transport.query(
        f"SELECT scores, properties FROM {REQUEST_TABLE} FINAL "
        "WHERE organization_id = {org:UUID} AND request_id = {rid:UUID}",
        {"org": ORG, "rid": request_id},
    )
    assert len(rows) == 1
    return {**rows[0]["scores"], **{f"p:{k}": v for k, v in rows[0]["properties"].items()}}


async def test_acceptance_order_wins_whatever_the_arrival_order(pipeline: Pipeline) -> None:
    writer = pipeline.writer
    record = capture(1)
    early = datetime.now(UTC) - timedelta(seconds=5)
    # The later acceptance arrives first (two gateway processes, one slower to forward).
    late = Annotation(
        ORG, record.request_id, scores={"x": 2.0}, accepted_at=early + timedelta(seconds=1)
    )
    first = Annotation(ORG, record.request_id, scores={"x": 1.0, "y": 1.0}, accepted_at=early)
    assert await writer.annotate(late) == "pending"
    assert await writer.annotate(first) == "pending"
    pipeline.submit([record])
    await wait_until(lambda: writer.counters.annotations_applied == 2)
    assert await scores_of(writer, record.request_id) == {"x": 2.0, "y": 1.0, "p:n": "1"}
    # Applied exactly once: both are marked applied; applying again changes nothing.
    await writer.annotator.reconcile()
    assert writer.counters.annotations_applied == 2
    assert await scores_of(writer, record.request_id) == {"x": 2.0, "y": 1.0, "p:n": "1"}
    states = await writer.transport.query(
        f"SELECT state FROM {ANNOTATION_TABLE} FINAL WHERE request_id = {{rid:UUID}}",
        {"rid": record.request_id},
    )
    assert [r["state"] for r in states] == ["applied", "applied"]


async def test_a_record_written_again_gets_its_annotations_back(pipeline: Pipeline) -> None:
    writer = pipeline.writer
    record = capture(2)
    pipeline.submit([record])
    await wait_until(lambda: writer.counters.written == 1)
    annotation = Annotation(ORG, record.request_id, scores={"kept": 0.125}, properties={"a": "b"})
    assert await writer.annotate(annotation) == "applied"
    expected = {"kept": 0.125, "p:a": "b", "p:n": "2"}
    assert await scores_of(writer, record.request_id) == expected
    # A writer killed between its insert and its journal commit: the next one inserts the
    # batch again, a newer version of the bare record…
    await writer._write([record])
    assert await scores_of(writer, record.request_id) == {"p:n": "2"}
    # …which the writer, knowing the batch may be a replay, annotates again.
    await writer.annotator.landed([record], replayed=True)
    assert await scores_of(writer, record.request_id) == expected
    assert writer.counters.annotations_applied == 1  # still once, as far as counting goes


async def test_session_annotation_waits_for_the_session(pipeline: Pipeline) -> None:
    writer = pipeline.writer
    session = str(uuid.uuid4())
    annotation = Annotation(ORG, None, session_id=session,
                            properties={"Helicone-Session-Feedback": "1"})  # fmt: skip
    assert await writer.annotate(annotation) == "pending"
    first, second = capture(3), capture(4)
    for record in (first, second):
        record.properties = {"Helicone-Session-Id": session}
    second.created_at = first.created_at + 1
    pipeline.submit([first, second])
    await wait_until(lambda: writer.counters.annotations_applied == 1)
    assert (await scores_of(writer, first.request_id))["p:Helicone-Session-Feedback"] == "1"
    assert "p:Helicone-Session-Feedback" not in await scores_of(writer, second.request_id)
    assert writer.counters.annotations_pending == 0
