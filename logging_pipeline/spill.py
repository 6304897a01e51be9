"""Spill files left by versions of the gateway before the record journal: read, replay, delete.

Before :mod:`logging_pipeline.journal`, records that could not be written were appended to
``$GATEWAY_DATA_DIR/spill/<id>/records.jsonl`` (JSON lines) with a committed byte offset in
``records.offset``, each directory held by its process with an ``flock``. A data directory
written by such a version may still hold some: the writer adopts every directory nobody holds,
replays it from the committed offset (committing after each written batch, so a crash replays
at most one batch twice, which ``ReplacingMergeTree`` collapses) and deletes it. Nothing
writes spill files any more. All functions block; the writer calls them in a thread.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import orjson

from logging_pipeline.capture import Capture
from logging_pipeline.private import try_lock

logger = logging.getLogger("logging_pipeline.spill")


class SpillFile:
    """``records.jsonl`` + ``records.offset`` in ``directory``."""

    def __init__(self, directory: Path, lock_fd: int | None = None) -> None:
        self.directory = directory
        self.path = directory / "records.jsonl"
        self.offset_path = directory / "records.offset"
        self._lock_fd = lock_fd

    def release(self, remove: bool = False) -> None:
        """Give up the directory's lock (and delete the directory, once fully replayed)."""
        if remove:
            shutil.rmtree(self.directory, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

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


def adopt_spills(root: Path) -> list[SpillFile]:
    """Every spill directory under ``root`` that no live process holds, oldest name first."""
    if not root.is_dir():
        return []
    adopted: list[SpillFile] = []
    for directory in sorted(p for p in root.iterdir() if p.is_dir()):
        fd = try_lock(directory / "lock")
        if fd is not None:
            adopted.append(SpillFile(directory, fd))
    return adopted
