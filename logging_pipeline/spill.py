"""The spill file: records that could not be written yet, kept on disk in arrival order.

An append-only JSON-lines file plus a committed byte offset. Records are appended when the
log store or body store fails (or the queue overflows) and replayed from the offset once the
stores are back; the offset is committed (atomically, by rename) only after a replayed batch
is written, so a crash at any point replays from the last committed batch — at worst a batch is
inserted twice, which ``ReplacingMergeTree`` collapses (reads use ``FINAL``): exactly once as
far as queries can tell. All methods are blocking; the writer calls them in a thread, and only
from its own task, so they never run concurrently.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson

from logging_pipeline.capture import Capture

logger = logging.getLogger("logging_pipeline.spill")


class SpillFile:
    """``records.jsonl`` + ``records.offset`` in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "records.jsonl"
        self.offset_path = directory / "records.offset"

    def _offset(self) -> int:
        try:
            return int(self.offset_path.read_text().strip() or 0)
        except FileNotFoundError:
            return 0

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def pending(self) -> bool:
        return self._size() > self._offset()

    def append(self, captures: list[Capture]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        data = b"".join(orjson.dumps(c.to_json()) + b"\n" for c in captures)
        with self.path.open("ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def read_batch(self, limit: int) -> tuple[list[Capture], int]:
        """Up to ``limit`` records after the committed offset, and the offset after them."""
        offset = self._offset()
        captures: list[Capture] = []
        with self.path.open("rb") as handle:
            handle.seek(offset)
            while len(captures) < limit:
                line = handle.readline()
                if not line:
                    break
                if not line.endswith(b"\n"):  # torn last line of a crash: not committed data
                    logger.error("spill file ends with a partial record; skipping it")
                    offset = handle.tell()
                    break
                offset = handle.tell()
                try:
                    captures.append(Capture.from_json(orjson.loads(line)))
                except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
                    logger.error("unreadable spilled record skipped: %r", exc)
        return captures, offset

    def commit(self, offset: int) -> None:
        """Mark everything before ``offset`` written; empty the file when all of it is."""
        if offset >= self._size():
            self.path.unlink(missing_ok=True)
            self.offset_path.unlink(missing_ok=True)
            return
        tmp = self.offset_path.with_suffix(".tmp")
        tmp.write_text(str(offset))
        os.replace(tmp, self.offset_path)
