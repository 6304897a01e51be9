"""The gateway's one handle on the request log: the record journal and its writer.

:class:`LogSink` is what the request path and the query API talk to, whether the writer runs
in a child process (:class:`~logging_pipeline.remote.WriterProcess`, the default) or as a task
in this one (:class:`~logging_pipeline.writer.LogWriter`): ``submit`` appends to the journal
(durable once it returns, see :mod:`logging_pipeline.journal`), ``counters`` says where every
record went, ``transport``/``bodies`` read the log, ``annotate`` stores feedback, scores and
properties through the writer that owns the store (:mod:`logging_pipeline.annotations`),
``close`` drains and stops.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from logging_pipeline.annotations import Annotation
from logging_pipeline.capture import Capture
from logging_pipeline.journal import JournalAppender
from logging_pipeline.remote import WriterProcess
from logging_pipeline.writer import LogWriter, WriterCounters

if TYPE_CHECKING:
    from logging_pipeline.bodies import BodyStore
    from logging_pipeline.clickhouse import LogTransport
    from logging_pipeline.remote import _QueryProxy


class LogSink:
    """The journal this process appends to, and the writer that consumes it."""

    def __init__(self, journal: JournalAppender, writer: LogWriter | WriterProcess) -> None:
        self.journal = journal
        self.writer = writer

    def submit(self, capture: Capture) -> None:
        """Journal one finished request (a few microseconds, on the event loop)."""
        self.journal.append(capture)

    async def annotate(self, annotation: Annotation) -> str:
        """Store ``annotation`` durably and apply it when its record exists (``"applied"`` or
        ``"pending"``); raises ``LogStoreError`` when the store cannot take it."""
        return await self.writer.annotate(annotation)

    @property
    def transport(self) -> LogTransport | _QueryProxy:
        return self.writer.transport

    @property
    def bodies(self) -> BodyStore:
        return self.writer.bodies

    @property
    def counters(self) -> WriterCounters:
        counters = self.writer.counters
        return dataclasses.replace(
            counters, enqueued=self.journal.appended, lost=counters.lost + self.journal.lost
        )

    async def close(self) -> None:
        """Let the writer write what is journaled (bounded), then stop appending."""
        writer = self.writer
        if isinstance(writer, WriterProcess):
            await writer.close()  # the child drains and stops; the rest stays journaled
        else:
            await writer.close()
            await writer.transport.close()
            await writer.bodies.close()
        self.journal.close()
