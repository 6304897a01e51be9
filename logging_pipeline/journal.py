"""The record journal: the durable hand-off from the request path to the log writer.

Every finished request is appended to a local, append-only file *before* the last byte of its
response is sent, and the log writer consumes the file and commits how far it got. Any process
can then be killed at any moment — the gateway, the writer child, both — and the next writer
to open the directory replays exactly what was not yet committed: the guarantee a Kafka topic
with committed consumer offsets gives, on one machine, with no service to run.

Layout, one directory per appending (gateway) process under the journal root::

    journal/<id>/owner.lock        flock held by the appending process while it lives
    journal/<id>/reader.lock       flock held by the one writer consuming the directory
    journal/<id>/000000000001.seg  segments, each a run of frames; a new one every 16 MiB
    journal/<id>/committed         "<segment> <offset>": everything before it is written

A frame is ``<u32 length><u32 crc32>`` followed by ``Capture.to_tuple()`` serialised
(:func:`encode_record`: ``marshal`` format 2, else ``pickle``; the payload's first byte tells
which). Frames end at the segment's size or at the first header whose length is zero, which
is where a *mapped* segment's unwritten space begins (below).
The appender never writes to a segment again once it has created the next one, so a reader
that finds segment N+1 knows segment N is complete. A frame that is shorter than its header
says, or whose checksum does not match, is only ever the tail of a segment whose writer died
mid-write (a power loss): it is skipped and counted as lost once the segment can no longer
grow.

Segments are *mapped*: created at their full size (``posix_fallocate``, so the disk space is
reserved and writing into them cannot fail for want of it), mapped ``MAP_SHARED``, and an
append is a copy into the mapping, payload first and the header's length last, so a reader
never takes a frame before it is whole. No system call: at one connection, the ``write(2)`` it
replaces cost 15-22 µs of the gateway's added latency on ext4 (README: "The journal's mapped
segments"). The next segment is prepared on a thread while the current one fills, under a name
readers do not look at, and renamed into place once the current one is cut to the length of
its frames. Where a segment cannot be allocated or mapped (a full disk, a file system without
shared mappings), that segment is a plain file written with ``write(2)``, and under load the
server groups the appends of one event-loop turn into one ``writev(2)`` (:class:`GroupCommit`),
the answers of that turn waiting for it.

Durability: either way the record is in the operating system's page cache before the answer
leaves, and that survives the death of any process. A power loss or kernel crash can still
take what the kernel had not written to disk yet; with ``fsync_ms`` set, a thread
``fdatasync``\\s the current segment that often, bounding that window (at the cost of disk
flushes; the request path never waits).

A directory whose owner lock is free belongs to a process that is gone (crashed, killed, or
shut down before its writer drained everything): any writer may adopt it, replay what it holds
and delete it. Directories are created ``0700`` and files ``0600``: they hold request bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import marshal
import mmap
import os
import pickle
import re
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
_U32 = struct.Struct("<I")
"""Half a frame header: a mapped segment's appends write the checksum, then the length."""
_SEGMENT_BYTES = 16 * 1024 * 1024
"""A new segment after this many bytes, so consumed data is deleted in bounded pieces. A mapped
segment is faulted in whole, and the next one is ready: twice this in the appending process's
resident set (page cache). At 64 MiB that was +128 MiB of RSS for a gateway of 131."""
_READ_CHUNK = 1024 * 1024
_OWNER_LOCK = "owner.lock"
_READER_LOCK = "reader.lock"
_COMMITTED = "committed"
_SUFFIX = ".seg"
_PREPARED = ".next"
"""A mapped segment being prepared: readers only look at ``*.seg``."""
_MADV_POPULATE_WRITE = 23
"""Linux 5.14+: fault a range in for writing now, rather than a page at a time on the
request path (and without writing to it)."""
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


class _Mapped(NamedTuple):
    """A segment file allocated at full size and mapped for writing."""

    path: Path
    fd: int
    mapping: mmap.mmap


_MAPPABLE = frozenset({"ext4", "xfs", "tmpfs"})
"""File systems that write an allocated range in place: a write into a mapping of it never
needs new space. On a copy-on-write one (btrfs, zfs) it may, and a full disk would then be a
``SIGBUS`` in the middle of a request, where ``write(2)`` returns an error."""


def file_system(path: Path) -> str:
    """The type of the file system ``path`` is on, from Linux's mount table ('' if unknown)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return ""
    target = str(path.resolve())
    longest, kind = -1, ""
    for line in lines:
        mount, separator, source = line.partition(" - ")
        fields = mount.split()
        if not separator or len(fields) < 5 or not source.split():
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= longest:  # the last of equal ones is the one on top
            longest, kind = len(point), source.split()[0]
    return kind


def mappable(directory: Path) -> bool:
    """Whether journal segments in ``directory`` are mapped (rather than written)."""
    return file_system(directory) in _MAPPABLE


def _populate(mapping: mmap.mmap) -> bool:
    """Fault the whole mapping in for writing (``MADV_POPULATE_WRITE``), where the kernel can;
    False if it could not (the file system refused the space: do not use the mapping).

    Through ctypes, which lets go of the GIL for the call: it runs on the preparing thread
    and takes a while for a large segment. Without it, the first append to each page faults.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        view = (ctypes.c_char * len(mapping)).from_buffer(mapping)
    except (OSError, TypeError, AttributeError):
        return True
    try:
        failed = libc.madvise(
            ctypes.c_void_p(ctypes.addressof(view)), ctypes.c_size_t(len(mapping)),
            _MADV_POPULATE_WRITE,
        )
    finally:
        del view  # the mapping cannot close while a view of it exists
    # EINVAL: a kernel before 5.14, which only costs the faults later.
    return not failed or ctypes.get_errno() == errno.EINVAL


def _prepare(path: Path, size: int) -> _Mapped | None:
    """A new segment file of ``size`` bytes, allocated and mapped; None where that fails."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        logger.warning("journal segment %s not prepared (%s): writing it instead", path, exc)
        return None
    try:
        os.posix_fallocate(fd, 0, size)
        mapping = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except (OSError, ValueError) as exc:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        logger.warning("journal segment %s not mapped (%s): writing it instead", path, exc)
        return None
    prepared = _Mapped(path, fd, mapping)
    if not _populate(mapping):
        _discard(prepared)
        logger.warning("journal segment %s could not be faulted in: writing it instead", path)
        return None
    return prepared


def _discard(prepared: _Mapped) -> None:
    """Unmap, close and delete a prepared segment that will not be used."""
    prepared.mapping.close()
    os.close(prepared.fd)
    with contextlib.suppress(OSError):
        prepared.path.unlink()


class _Unwritten(OSError):
    """A write of several frames that failed after the first ``done`` of them were whole in
    the journal (and so may have been read already): those count as appended."""

    def __init__(self, done: int, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.done = done


class JournalAppender:
    """The request path's end: appends captures to this process's own journal directory.

    :meth:`append` is one :func:`encode_record` and a copy into the current segment's mapping
    (a few microseconds), called on the event loop for every finished request. In a plain
    segment (one that could not be mapped) it is a ``write(2)`` instead, shared with the
    other appends of the same event-loop turn while :attr:`group` groups. A failed write
    (disk full, plain segments only) is counted in :attr:`lost` and logged — the only way a
    record is lost.

    ``mapped=False`` writes every segment as a plain file, as does a journal on a file system
    not known to write allocated space in place (:func:`mappable`).
    """

    def __init__(
        self, root: Path, *, fsync_ms: int = 0, segment_bytes: int = _SEGMENT_BYTES,
        mapped: bool = True,
    ):
        private_dir(root)
        self.directory = root / uuid.uuid4().hex
        private_dir(self.directory)
        lock = try_lock(self.directory / _OWNER_LOCK)
        assert lock is not None  # a fresh directory nobody else knows
        self._lock_fd: int | None = lock
        self._segment_bytes = segment_bytes
        self._mapped = mapped and mappable(self.directory)
        self._segment = 0
        self._fd = -1
        self._map: mmap.mmap | None = None
        """The current segment's mapping (None: a plain segment)."""
        self._size = 0
        """Bytes of frames in the current segment."""
        self._capacity = 0
        """The current mapping's size."""
        self._next: _Mapped | None = None
        self._preparing: threading.Thread | None = None
        self._dirty = False
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        self.appended = 0
        self.lost = 0
        self.group = GroupCommit(self)
        """Grouped appends into plain segments, once the server asks for them
        (:meth:`GroupCommit.serve`)."""
        if self._mapped:
            self._next = _prepare(self._prepared_path(1), segment_bytes)
        self._open_next(0)
        if fsync_ms > 0:
            self._syncer = threading.Thread(
                target=self._sync_every, args=(fsync_ms / 1000,), name="journal-fsync",
                daemon=True,
            )
            self._syncer.start()

    @property
    def mapped(self) -> bool:
        """Whether appends go into a mapping now (rather than through ``write(2)``)."""
        return self._map is not None

    def _prepared_path(self, number: int) -> Path:
        return self.directory / f"{number:012d}{_PREPARED}"

    def _prepare_next(self, number: int) -> None:
        self._next = _prepare(self._prepared_path(number), self._segment_bytes)

    def _open_next(self, need: int) -> None:
        """Seal the current segment and start the next: the prepared mapping when it holds
        ``need`` bytes, else a plain file."""
        if self._preparing is not None:
            self._preparing.join()
            self._preparing = None
        self._seal()
        self._segment += 1
        path = self.directory / _segment_name(self._segment)
        prepared, self._next = self._next, None
        if prepared is not None and need <= len(prepared.mapping):
            try:
                os.rename(prepared.path, path)
            except OSError:
                _discard(prepared)  # the append that needed it counts as lost; the next retries
                raise
            self._fd, self._map = prepared.fd, prepared.mapping
            self._capacity = len(prepared.mapping)
        else:
            if prepared is not None:
                _discard(prepared)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._size = 0
        if self._mapped:
            self._preparing = threading.Thread(
                target=self._prepare_next, args=(self._segment + 1,), name="journal-prepare",
                daemon=True,
            )
            self._preparing.start()

    def _seal(self) -> None:
        """Finish the current segment: a mapped one is cut to the length of its frames (from
        here on, the reader relies on its size). Nothing is written to it again."""
        if self._fd < 0:
            return
        mapping, self._map = self._map, None
        if mapping is not None:
            mapping.close()
            with contextlib.suppress(OSError):  # else the reader stops at the zeros anyway
                os.ftruncate(self._fd, self._size)
        if self._syncer is not None:
            with contextlib.suppress(OSError):
                os.fdatasync(self._fd)
        os.close(self._fd)
        self._fd = -1

    def append(self, capture: Capture) -> None:
        """Write one capture to the journal (or hold it for this turn's group). Never raises."""
        payload = encode_record(capture)
        checksum = zlib.crc32(payload)
        mapping = self._map
        if mapping is not None:
            start = self._size
            end = start + _FRAME.size + len(payload)
            if end <= self._capacity:
                # Payload, checksum, then the length: a reader takes nothing before it is whole.
                mapping[start + _FRAME.size : end] = payload
                _U32.pack_into(mapping, start + 4, checksum)
                _U32.pack_into(mapping, start, len(payload))
                self._size = end
                self._dirty = True
                self.appended += 1
                if self.group.wanted():
                    self.group.defer()
                return
        frame = _FRAME.pack(len(payload), checksum) + payload
        group = self.group
        if mapping is None and group.wanted():
            group.hold(frame, capture.request_id)
            return
        self.write_frames((frame,), (capture.request_id,))

    def write_frames(
        self, frames: tuple[bytes, ...] | list[bytes], request_ids: tuple[str, ...] | list[str]
    ) -> None:
        """Write whole frames (a record's, or a group's: ``request_ids``, theirs, name them if
        they are lost), in one system call into a plain segment. Never raises."""
        try:
            if self._syncer is None:
                self._write(frames)
            else:
                with self._sync_lock:  # the syncer must not sync a segment being rotated
                    self._write(frames)
        except OSError as exc:
            done = exc.done if isinstance(exc, _Unwritten) else 0
            self.appended += done
            lost = request_ids[done:]
            self.lost += len(lost)
            if len(lost) == 1:
                logger.error("could not journal request %s: it is lost (%s)", lost[0], exc)
            else:
                logger.error(
                    "could not journal requests %s: they are lost (%s)", ", ".join(lost), exc
                )
            return
        self.appended += len(frames)

    def _write(self, frames: tuple[bytes, ...] | list[bytes]) -> None:
        """Write ``frames``; on failure, :class:`_Unwritten` says how many are journaled."""
        done = 0
        try:
            for frame in frames:
                if self._map is None or self._size + len(frame) > self._capacity:
                    if self._map is not None:
                        self._open_next(len(frame))
                    if self._map is None:
                        self._write_plain(frames[done:])
                        return
                start, end = self._size, self._size + len(frame)
                self._map[start + 4 : end] = frame[4:]
                self._map[start : start + 4] = frame[:4]
                self._size = end
                self._dirty = True
                done += 1
        except _Unwritten as exc:
            raise _Unwritten(done + exc.done, exc) from exc
        except OSError as exc:
            raise _Unwritten(done, exc) from exc

    def _write_plain(self, frames: tuple[bytes, ...] | list[bytes]) -> None:
        if self._fd < 0 or self._size >= self._segment_bytes:  # full, or its start failed
            self._open_next(len(frames[0]))
            if self._map is not None:
                self._write(frames)
                return
        size = written = 0
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
        except OSError as exc:
            # The frames written whole stay: a reader may have taken them already. Part of the
            # next may be in the file: cut it off, or the frames appended after it (once there
            # is room again) would sit behind a torn one. If even that fails, the next append
            # starts a new segment and the reader skips the torn tail.
            done = kept = 0
            for frame in frames:
                if kept + len(frame) > written:
                    break
                kept += len(frame)
                done += 1
            self._dirty = self._dirty or kept > 0
            try:
                os.ftruncate(self._fd, self._size + kept)
                self._size += kept
            except OSError:
                self._size = self._segment_bytes
            raise _Unwritten(done, exc) from exc
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
                os.fdatasync(fd)  # the mapping's pages too: they are the file's page cache
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
        if self._preparing is not None:
            self._preparing.join()
            self._preparing = None
        if self._next is not None:
            _discard(self._next)
            self._next = None
        with self._sync_lock:
            self._seal()
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


DEEP_GROUP = 4
"""Requests in progress from which :class:`GroupCommit` holds a group for two turns."""


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

    A record in a mapped segment has nothing left to write, but its answer is still held to
    the turn's end (:meth:`defer`): the turn's answers then leave together, the clients' next
    requests arrive together, and the loop serves more of them per wake-up. Measured at 32
    connections: ~12 µs less CPU per request than answering each at once (README: "The
    journal's mapped segments").

    With :data:`DEEP_GROUP` or more requests in progress, the group is held one turn longer:
    its commit runs after the next turn's input (the answers upstreams and clients sent while
    this turn ran) has been served, so the answers that input finishes join the group. Measured
    against one turn, logging on (README: "Answers held two turns under load"): ~4% more req/s
    at 32 connections (the serving process ~7-9 µs less per request), ~8% at 8; at 2 and 3
    connections (where it does not apply) a second turn cost 6% and ~3% of req/s: one answer
    waited for another request's work.
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
        self.defer()

    def defer(self) -> None:
        """Hold the clients' writes until the loop's next turn (a record already in a mapped
        segment: nothing to write, but the answers of a turn still leave together)."""
        if not self.holding:
            self.holding = True
            loop = self._loop
            assert loop is not None and self._running is not None  # wanted() after serve()
            loop.call_soon(self._next_turn if len(self._running) >= DEEP_GROUP else self.commit)

    def _next_turn(self) -> None:
        """A deep group's first turn is over: commit in the turn after the next one's input."""
        assert self._loop is not None
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


def _frames_end(fd: int, offset: int) -> int:
    """Where the whole frames of a segment end, from the frame boundary ``offset``: at the
    first zero length (a mapped segment's unwritten space), at a frame that would run past
    the file (torn, or being written), or at the file's end."""
    size = os.fstat(fd).st_size
    while True:
        chunk = os.pread(fd, _READ_CHUNK, offset)
        position = 0
        while position + _U32.size <= len(chunk):
            (length,) = _U32.unpack_from(chunk, position)
            following = position + _FRAME.size + length
            if length == 0 or offset + following > size:
                return offset + position
            position = following
        if position == 0:
            return offset
        offset += position


def _has_bytes_at(fd: int, offset: int) -> bool:
    """Whether anything was written at ``offset``: a frame, or part of one (bytes that are not
    a mapped segment's zeros)."""
    head = os.pread(fd, _U32.size, offset)
    if len(head) < _U32.size:
        return len(head) > 0
    return bool(_U32.unpack(head)[0])


def _uncommitted(directory: Path, known: Position | None = None) -> tuple[int, Position | None]:
    """Bytes of ``directory``'s frames after its committed position, and where its last
    segment's frames end (scanned from ``known``, an earlier answer, when it is further on).

    Segments before the last are cut to the length of their frames when the next one starts,
    so their size says; the last one may be a mapped segment, and is scanned.
    """
    committed = _read_committed(directory)
    numbers = [n for n in _segments(directory) if n >= committed.segment]
    total = 0
    end: Position | None = None
    for number in numbers:
        start = committed.offset if number == committed.segment else 0
        try:
            fd = os.open(directory / _segment_name(number), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # deleted by its reader meanwhile
            continue
        try:
            if number == numbers[-1]:
                scan = start
                if known is not None and known.segment == number:
                    scan = max(scan, known.offset)
                stop = _frames_end(fd, scan)
                end = Position(number, stop)
            else:
                stop = os.fstat(fd).st_size
        finally:
            os.close(fd)
        total += max(0, stop - start)
    return total, end


def _fully_committed(directory: Path) -> bool:
    """Nothing at all after the committed position, not even a torn frame."""
    committed = _read_committed(directory)
    for number in _segments(directory):
        if number < committed.segment:
            continue
        try:
            fd = os.open(directory / _segment_name(number), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            if _has_bytes_at(fd, committed.offset if number == committed.segment else 0):
                return False
        finally:
            os.close(fd)
    return True


class Backlog:
    """Journal bytes not yet committed by a writer, over every directory under a root.

    Measured after every batch (the writer's ``pending_bytes`` gauge, which readiness reads),
    so it remembers where each directory's last segment was found to end and scans on from
    there: each frame's header is read about once, not once per measure.
    """

    def __init__(self) -> None:
        self._ends: dict[Path, Position] = {}

    def measure(self, root: Path) -> int:
        if not root.exists():
            return 0
        ends: dict[Path, Position] = {}
        total = 0
        for directory in root.iterdir():
            if not directory.is_dir():
                continue
            count, end = _uncommitted(directory, self._ends.get(directory))
            total += count
            if end is not None:
                ends[directory] = end
        self._ends = ends
        return total


def pending_bytes(root: Path) -> int:
    """Journal bytes not yet committed by a writer, over every directory under ``root``."""
    return Backlog().measure(root)


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
            if length == 0:
                break  # a mapped segment's unwritten space: the end, for now
            end = position + _FRAME.size + length
            if end > len(buffer):
                if position > 0:
                    break  # the rest of this frame comes with the next read
                buffer = os.pread(self._fd, _FRAME.size + length, offset)
                if len(buffer) < _FRAME.size + length:
                    return self._incomplete(segment)
                continue
            payload = buffer[position + _FRAME.size : end]
            if zlib.crc32(payload) != checksum:
                if position > 0:
                    break  # read it again on its own: it may be being written
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
        if 0 < len(buffer) < _FRAME.size:
            return self._incomplete(segment)  # a partial header
        # Nothing (more) in this segment for now: move on if a later one exists.
        following = self._later_segment(segment)
        if following is None:
            return False
        if _has_bytes_at(self._fd, offset):
            return True  # frames that landed just before the rotation: read them first
        self._cursor = Position(following, 0)
        return True

    def _incomplete(self, segment: int) -> bool:
        """A frame that is not (yet) whole: wait for it, unless it can never be completed."""
        if self._later_segment(segment) is None and owner_alive(self.directory):
            return False  # being written right now, or will be: read it next time
        if self._whole_frame_at(self._cursor.offset):
            return True  # finished just before its writer moved on or left: read it
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

    def _whole_frame_at(self, offset: int) -> bool:
        header = os.pread(self._fd, _FRAME.size, offset)
        if len(header) < _FRAME.size:
            return False
        length, checksum = _FRAME.unpack(header)
        payload = os.pread(self._fd, length, offset + _FRAME.size) if length else b""
        return bool(length) and len(payload) == length and zlib.crc32(payload) == int(checksum)

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
