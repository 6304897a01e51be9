"""The record journal: the durable hand-off from the request path to the log writer.

Every finished request is appended to a local, append-only file *before* the last byte of its
response is sent, and the log writer consumes the file and commits how far it got. Any process
can then be killed at any moment — the gateway, the writer child, both — and the next writer
to open the directory replays exactly what was not yet committed: the guarantee a Kafka topic
with committed consumer offsets gives, on one machine, with no service to run.

Layout, one directory per appending (gateway) process under the journal root::

    journal/<id>/owner.lock        flock held by the appending process while it lives
    journal/<id>/reader.lock       flock held by the one writer consuming the directory
    journal/<id>/000000000001.seg  segments, each a run of frames; a new one every 64 MiB
    journal/<id>/committed         "<segment> <offset>": everything before it is written

A frame is ``<u32 length><u32 crc32>`` followed by ``Capture.to_tuple()`` serialised
(:func:`encode_record`: ``marshal`` format 2, else ``pickle``; the payload's first byte tells
which).
The appender never writes to a segment again once it has created the next one, so a reader
that finds segment N+1 knows segment N is complete. A frame that is shorter than its header
says, or whose checksum does not match, is only ever the tail of a segment whose writer died
mid-write (a power loss): it is skipped and counted as lost once the segment can no longer
grow.

Durability: an append is a ``write(2)`` into the operating system's page cache, which survives
the death of any process. Under load the server groups the appends of one event-loop turn into
one ``writev(2)`` (:class:`GroupCommit`), and the answers of that turn wait for it. A power loss
or kernel crash can still take what the kernel had not written to disk yet; with ``fsync_ms``
set, a thread ``fdatasync``\\s the current segment that often, bounding that window (at the
cost of disk flushes; the request path never waits).

A directory whose owner lock is free belongs to a process that is gone (crashed, killed, or
shut down before its writer drained everything): any writer may adopt it, replay what it holds
and delete it. Directories are created ``0700`` and files ``0600``: they hold request bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import os
import pickle
import shutil
import struct
import threading
import uuid
import zlib
from collections.abc import Callable, Sized
from pathlib import Path
from typing import Any, NamedTuple

from logging_pipeline.capture import Capture
from logging_pipeline.private import private_dir, try_lock

logger = logging.getLogger("logging_pipeline.journal")

_FRAME = struct.Struct("<II")
_SEGMENT_BYTES = 64 * 1024 * 1024
"""A new segment after this many bytes, so consumed data is deleted in bounded pieces."""
_READ_CHUNK = 1024 * 1024
_OWNER_LOCK = "owner.lock"
_READER_LOCK = "reader.lock"
_COMMITTED = "committed"
_SUFFIX = ".seg"
_MARSHAL_VERSION = 2
"""Format 2: no back-references (a record's few shared strings are not worth a memo), binary
floats, and every type a capture holds; ``marshal.loads`` of any later Python reads it."""
_MARSHAL_TUPLE = ord("(")
"""The first byte of a tuple in marshal format 2 (a pickle starts with ``0x80``)."""
_IOV_MAX = 1024
"""The most buffers one ``writev(2)`` takes (Linux's ``IOV_MAX``)."""


def encode_record(capture: Capture) -> bytes:
    """A capture's journal payload.

    ``marshal`` at format 2 rather than ``pickle``: about half the CPU for a capture (measured
    1.0 against 1.8 µs warm, and 16 against 27 µs at one connection, where the request path's
    code and data are cold between requests; this runs before the last byte of every answer),
    and reading it back is cheaper too. It takes exact built-in types only: a value of any
    other type (a ``str`` or ``int`` subclass, should one ever reach a capture) raises
    ``ValueError``, and that record is pickled instead.
    """
    values = capture.to_tuple()
    try:
        return marshal.dumps(values, _MARSHAL_VERSION)
    except ValueError:
        return pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL)


def decode_record(payload: bytes) -> Capture:
    """The capture :func:`encode_record` journaled (marshal or pickle, by the first byte:
    journals written before marshal was used hold pickles)."""
    if payload[0] == _MARSHAL_TUPLE:
        return Capture.from_tuple(marshal.loads(payload))
    return Capture.from_tuple(pickle.loads(payload))


class Position(NamedTuple):
    """A place in a journal: segment number and byte offset inside it."""

    segment: int
    offset: int


def _segment_name(number: int) -> str:
    return f"{number:012d}{_SUFFIX}"


def owner_alive(directory: Path) -> bool:
    """Whether the process appending to ``directory`` still runs (it holds the owner lock)."""
    fd = try_lock(directory / _OWNER_LOCK)
    if fd is None:
        return True
    os.close(fd)  # closing drops the lock: an owner never comes back to a directory
    return False


class JournalAppender:
    """The request path's end: appends captures to this process's own journal directory.

    :meth:`append` is one :func:`encode_record` and one ``write(2)`` (a few microseconds),
    called on the event loop for every finished request; while :attr:`group` groups, the
    ``write(2)`` is shared with the other appends of the same event-loop turn. A failed write
    (disk full) is counted in :attr:`lost` and logged — the only way a record is lost.
    """

    def __init__(self, root: Path, *, fsync_ms: int = 0, segment_bytes: int = _SEGMENT_BYTES):
        private_dir(root)
        self.directory = root / uuid.uuid4().hex
        private_dir(self.directory)
        lock = try_lock(self.directory / _OWNER_LOCK)
        assert lock is not None  # a fresh directory nobody else knows
        self._lock_fd: int | None = lock
        self._segment_bytes = segment_bytes
        self._segment = 0
        self._fd = -1
        self._size = 0
        self._open_next()
        self.appended = 0
        self.lost = 0
        self.group = GroupCommit(self)
        """Grouped appends, once the server asks for them (:meth:`GroupCommit.serve`)."""
        self._dirty = False
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        if fsync_ms > 0:
            self._syncer = threading.Thread(
                target=self._sync_every, args=(fsync_ms / 1000,), name="journal-fsync",
                daemon=True,
            )
            self._syncer.start()

    def _open_next(self) -> None:
        self._segment += 1
        path = self.directory / _segment_name(self._segment)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        old, self._fd, self._size = self._fd, fd, 0
        if old >= 0:
            # The old segment is complete from here on (the reader relies on it).
            if self._syncer is not None:
                with contextlib.suppress(OSError):
                    os.fdatasync(old)
            os.close(old)

    def append(self, capture: Capture) -> None:
        """Write one capture to the journal (or hold it for this turn's group). Never raises."""
        payload = encode_record(capture)
        frame = _FRAME.pack(len(payload), zlib.crc32(payload)) + payload
        group = self.group
        if group.wanted():
            group.hold(frame, capture.request_id)
            return
        self.write_frames((frame,), (capture.request_id,))

    def write_frames(
        self, frames: tuple[bytes, ...] | list[bytes], request_ids: tuple[str, ...] | list[str]
    ) -> None:
        """Write whole frames in one system call (a record's, or a group's: ``request_ids``,
        theirs, name them if they are lost). Never raises."""
        try:
            if self._syncer is None:
                self._write(frames)
            else:
                with self._sync_lock:  # the syncer must not sync a segment being rotated
                    self._write(frames)
        except OSError as exc:
            self.lost += len(frames)
            if len(frames) == 1:
                logger.error("could not journal request %s: it is lost (%s)", request_ids[0], exc)
            else:
                logger.error(
                    "could not journal requests %s: they are lost (%s)", ", ".join(request_ids), exc
                )
            return
        self.appended += len(frames)

    def _write(self, frames: tuple[bytes, ...] | list[bytes]) -> None:
        if self._size >= self._segment_bytes:
            self._open_next()
        size = 0
        try:
            if len(frames) == 1:
                frame = frames[0]
                size = len(frame)
                written = os.write(self._fd, frame)
            else:
                size = written = 0
                for start in range(0, len(frames), _IOV_MAX):
                    part = frames[start : start + _IOV_MAX]
                    part_size = sum(map(len, part))
                    size += part_size
                    done = os.writev(self._fd, part)
                    written += done
                    if done < part_size:  # short of a full disk, a regular file takes it whole
                        break
                if written < size:
                    frame = b"".join(frames)
                    size = len(frame)
            while written < size:
                written += os.write(self._fd, frame[written:])
        except OSError:
            # Part of the frame may be in the file: cut it off, or the frames appended after
            # it (once there is room again) would sit behind a torn one. If even that fails,
            # the next append starts a new segment and the reader skips the torn tail.
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                self._size = self._segment_bytes
            raise
        self._size += size
        self._dirty = True

    def _sync_every(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._sync()

    def _sync(self) -> None:
        with self._sync_lock:
            if not self._dirty or self._fd < 0:
                return
            self._dirty = False
            fd = self._fd
            try:
                os.fdatasync(fd)
            except OSError as exc:
                logger.error("journal fdatasync failed: %s", exc)

    def close(self) -> None:
        """Stop appending; delete the directory if its writer committed all of it.

        Whatever is still uncommitted stays: once the owner lock is released, the next
        writer adopts the directory and replays it.
        """
        self.group.commit()
        if self._syncer is not None:
            self._stop.set()
            self._syncer.join()
            self._sync()
            self._syncer = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd is None:
            return
        reader = try_lock(self.directory / _READER_LOCK)
        try:
            if reader is not None and _fully_committed(self.directory):
                shutil.rmtree(self.directory, ignore_errors=True)
        finally:
            if reader is not None:
                os.close(reader)
            os.close(self._lock_fd)
            self._lock_fd = None


class GroupCommit:
    """The appends of one event-loop turn in one ``write(2)``, and the answers behind it.

    An append costs the serving process far more inside a loaded server than alone (a
    ``write(2)`` timed at ~2 µs in a loop of its own took ~10 µs inside the loaded gateway,
    README: "The journal's group commit"), and under load several requests finish in the same
    turn of the event loop. So, while the
    server has more than one request in progress (:meth:`serve`), an append only holds its
    frame, and the first one of a turn schedules :meth:`commit` for the loop's next turn: every
    frame held by then goes out in one ``writev(2)``. The guarantee stays "answered ⇒
    journaled": while frames are held, the server's writes to its clients wait too
    (:meth:`after`, through ``gateway.protocol``'s connection transports) and go out, in their
    order, right after the frames. With one request in progress nothing can share its turn:
    its frame is written at once and its answer is not held back (the one-connection latency).
    """

    __slots__ = ("_after", "_appender", "_frames", "_ids", "_loop", "_running", "holding")

    def __init__(self, appender: JournalAppender) -> None:
        self._appender = appender
        self._frames: list[bytes] = []
        self._ids: list[str] = []
        self._after: list[tuple[Callable[..., object], tuple[Any, ...]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: Sized | None = None
        self.holding = False
        """Frames are held for this turn's commit (and so are the clients' writes)."""

    def serve(self, running: Sized) -> None:
        """Group appends from now on, made on this event loop, whenever ``running`` (the
        server's requests in progress) holds more than one. Called by the server, on its loop;
        again with the same collection is a no-op."""
        if self._running is not running:
            self._loop = asyncio.get_running_loop()
            self._running = running

    @property
    def serving(self) -> bool:
        """A server has asked for grouping (:meth:`serve`)."""
        return self._running is not None

    def wanted(self) -> bool:
        """Whether an append now should be held for the turn's commit."""
        running = self._running
        return running is not None and len(running) > 1

    def hold(self, frame: bytes, request_id: str) -> None:
        """Keep a record's frame for this turn's commit."""
        self._frames.append(frame)
        self._ids.append(request_id)
        if not self.holding:
            self.holding = True
            assert self._loop is not None  # wanted() only after serve()
            self._loop.call_soon(self.commit)

    def after(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` once the held frames are written (now if none are held)."""
        if self.holding:
            self._after.append((callback, args))
        else:
            callback(*args)

    def commit(self) -> None:
        """Write the held frames, then run what waited for them, in order."""
        if not self.holding:
            return
        frames, self._frames = self._frames, []
        request_ids, self._ids = self._ids, []
        waiting, self._after = self._after, []
        self.holding = False
        if frames:
            self._appender.write_frames(frames, request_ids)
        for callback, args in waiting:
            try:
                callback(*args)
            except Exception:  # one connection's failure must not keep the others' answers
                logger.exception("a write held for the journal's group commit failed")


def _read_committed(directory: Path) -> Position:
    try:
        segment, offset = (directory / _COMMITTED).read_text().split()
        return Position(int(segment), int(offset))
    except (FileNotFoundError, ValueError):
        return Position(1, 0)


def _segments(directory: Path) -> list[int]:
    numbers = []
    for path in directory.glob("*" + _SUFFIX):
        with contextlib.suppress(ValueError):
            numbers.append(int(path.name[: -len(_SUFFIX)]))
    return sorted(numbers)


def _uncommitted(directory: Path) -> int:
    """Bytes of ``directory``'s segments after its committed position."""
    committed = _read_committed(directory)
    total = 0
    for number in _segments(directory):
        with contextlib.suppress(FileNotFoundError):  # deleted by its reader meanwhile
            size = (directory / _segment_name(number)).stat().st_size
            if number > committed.segment:
                total += size
            elif number == committed.segment:
                total += max(0, size - committed.offset)
    return total


def _fully_committed(directory: Path) -> bool:
    return _uncommitted(directory) == 0


def pending_bytes(root: Path) -> int:
    """Journal bytes not yet committed by a writer, over every directory under ``root``."""
    if not root.exists():
        return 0
    return sum(_uncommitted(d) for d in root.iterdir() if d.is_dir())


class JournalReader:
    """A writer's end of one journal directory: read batches, commit them when written.

    Only one reader consumes a directory (the reader lock). Reads run ahead of the commit:
    :meth:`read` continues after the last batch read, while :meth:`commit` records how far
    the stores have everything. A reader that is dropped without committing leaves its
    batches to be read again by the next one.
    """

    def __init__(self, directory: Path, lock_fd: int) -> None:
        self.directory = directory
        self._lock_fd: int | None = lock_fd
        self.committed = _read_committed(directory)
        self._cursor = self.committed
        self._fd = -1
        self._fd_segment = 0
        self.lost = 0

    @classmethod
    def attach(cls, directory: Path) -> JournalReader | None:
        """Take the directory's reader lock; None if another writer holds it."""
        fd = try_lock(directory / _READER_LOCK)
        return None if fd is None else cls(directory, fd)

    def read(self, limit: int) -> tuple[list[Capture], Position]:
        """Up to ``limit`` captures after the cursor, and the position after them."""
        captures: list[Capture] = []
        while len(captures) < limit:
            if not self._read_segment(limit, captures):
                break
        return captures, self._cursor

    def _open(self, segment: int) -> bool:
        if self._fd_segment == segment:
            return True
        self._close_fd()
        try:
            self._fd = os.open(self.directory / _segment_name(segment), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        self._fd_segment = segment
        return True

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._fd_segment = -1, 0

    def _later_segment(self, after: int) -> int | None:
        later = [n for n in _segments(self.directory) if n > after]
        return later[0] if later else None

    def _read_segment(self, limit: int, out: list[Capture]) -> bool:
        """Read frames of the cursor's segment into ``out``; True if the caller should go on."""
        segment, offset = self._cursor
        if not self._open(segment):
            following = self._later_segment(segment)
            if following is None:
                return False
            self._cursor = Position(following, 0)
            return True
        buffer = os.pread(self._fd, _READ_CHUNK, offset)
        position = 0
        while len(out) < limit and position + _FRAME.size <= len(buffer):
            length, checksum = _FRAME.unpack_from(buffer, position)
            end = position + _FRAME.size + length
            if end > len(buffer):
                if position > 0:
                    break  # the rest of this frame comes with the next read
                size = os.fstat(self._fd).st_size
                if offset + _FRAME.size + length > size:
                    return self._incomplete(segment)
                buffer = os.pread(self._fd, _FRAME.size + length, offset)
                continue
            payload = buffer[position + _FRAME.size : end]
            if zlib.crc32(payload) != checksum:
                return self._incomplete(segment)
            try:
                out.append(decode_record(payload))
            except Exception as exc:  # a frame written by an incompatible version
                self.lost += 1
                logger.error("unreadable journal record skipped: %r", exc)
            position = end
        if position > 0:
            self._cursor = Position(segment, offset + position)
            return True
        if buffer:
            return self._incomplete(segment)  # a partial header
        # Nothing (more) in this segment for now: move on if a later one exists.
        following = self._later_segment(segment)
        if following is None:
            return False
        if os.fstat(self._fd).st_size > offset:
            return True  # frames that landed just before the rotation: read them first
        self._cursor = Position(following, 0)
        return True

    def _incomplete(self, segment: int) -> bool:
        """A frame that is not (yet) whole: wait for it, unless it can never be completed."""
        if self._later_segment(segment) is None and owner_alive(self.directory):
            return False  # being written right now, or will be: read it next time
        self.lost += 1
        logger.error("journal %s segment %d ends with a torn record; skipping it",
                     self.directory.name, segment)
        following = self._later_segment(segment)
        if following is None:
            size = os.fstat(self._fd).st_size
            self._cursor = Position(segment, size)
            return False
        self._cursor = Position(following, 0)
        return True

    def commit(self, position: Position) -> None:
        """Everything before ``position`` is written: record it, delete consumed segments."""
        temporary = self.directory / (_COMMITTED + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, f"{position.segment} {position.offset}".encode())
        finally:
            os.close(fd)
        os.replace(temporary, self.directory / _COMMITTED)
        self.committed = position
        for number in _segments(self.directory):
            if number < position.segment:
                if number == self._fd_segment:
                    self._close_fd()
                (self.directory / _segment_name(number)).unlink(missing_ok=True)

    def rewind(self) -> None:
        """Read again from the last commit (after a failed write)."""
        self._cursor = self.committed

    def at_end(self) -> bool:
        """Everything in the directory is committed (and nothing is being read ahead)."""
        return self._cursor == self.committed and _fully_committed(self.directory)

    def finished(self) -> bool:
        """All committed and nobody will append again: the directory can go."""
        return self.at_end() and not owner_alive(self.directory)

    def close(self, remove: bool = False) -> None:
        """Release the reader lock (and delete the directory, once it is finished)."""
        self._close_fd()
        if remove:
            shutil.rmtree(self.directory, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def adopt_orphans(root: Path, skip: Path | None = None) -> list[JournalReader]:
    """Readers for every directory under ``root`` whose owner is gone and nobody reads.

    Oldest first (by the directory's change time), so older records are replayed first.
    """
    if not root.exists():
        return []
    found: list[tuple[float, JournalReader]] = []
    for directory in root.iterdir():
        if not directory.is_dir() or directory == skip:
            continue
        if owner_alive(directory):
            continue
        reader = JournalReader.attach(directory)
        if reader is not None:
            with contextlib.suppress(FileNotFoundError):
                found.append((directory.stat().st_ctime, reader))
                continue
            reader.close()
    found.sort(key=lambda item: item[0])
    return [reader for _, reader in found]
