"""The spill file: records that could not be written yet, kept on disk in arrival order.

An append-only JSON-lines file plus a committed byte offset. Records are appended when the
log store or body store fails (or the queue overflows) and replayed from the offset once the
stores are back; the offset is committed (atomically, by rename) only after a replayed batch
is written, so a crash at any point replays from the last committed batch — at worst a batch is
inserted twice, which ``ReplacingMergeTree`` collapses (reads use ``FINAL``): exactly once as
far as queries can tell. All methods are blocking; the writer calls them in a thread, and only
from its own task, so they never run concurrently.

With several worker processes (server mode), each process owns one spill directory under the
spill root, held by an exclusive ``flock`` for the life of the process. At start a writer
claims every directory nobody holds — left by a process that crashed or was killed — keeps
one as its own and replays the others, so a spill is never orphaned and never shared.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import uuid
from pathlib import Path

import orjson

from logging_pipeline.capture import Capture

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


def _try_lock(directory: Path) -> int | None:
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def claim_spill(root: Path) -> tuple[SpillFile, list[SpillFile]]:
    """This process's spill file, and the orphaned ones it must replay (see module docs)."""
    root.mkdir(parents=True, exist_ok=True)
    claimed: list[SpillFile] = []
    for directory in sorted(p for p in root.iterdir() if p.is_dir()):
        fd = _try_lock(directory)
        if fd is not None:
            claimed.append(SpillFile(directory, fd))
    if claimed:
        return claimed[0], claimed[1:]
    directory = root / uuid.uuid4().hex
    directory.mkdir()
    fd = _try_lock(directory)
    assert fd is not None  # a fresh directory nobody else knows
    return SpillFile(directory, fd), []


def spill_pending(root: Path) -> int:
    """Bytes not yet replayed across every spill directory under ``root`` (for tests, ops)."""
    if not root.exists():
        return 0
    total = 0
    for directory in root.iterdir():
        if directory.is_dir():
            spill = SpillFile(directory)
            total += max(0, spill._size() - spill._offset())
    return total
