"""The record journal's mapped segments (logging_pipeline/journal.py).

A segment is allocated at full size and mapped; appends copy into it, payload first and the
length last; it is cut to the length of its frames when the next one starts; readers stop at
the first zero length. These tests run the appender and the reader on real files, with the
reader racing the appender across rotations, a real process dying with its segment mapped,
and a real file-size limit making the allocation fail.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from logging_pipeline import journal as journal_module
from logging_pipeline.capture import Capture
from logging_pipeline.journal import (
    Backlog,
    JournalAppender,
    JournalReader,
    encode_record,
    file_system,
    mappable,
    pending_bytes,
)
from tests.test_writer import capture

_REPO = Path(__file__).resolve().parents[1]
_HEADER = 8


def test_segments_are_mapped_only_on_file_systems_that_write_in_place() -> None:
    # /dev/shm is a mount inside another: the deepest one containing a path says.
    assert file_system(Path("/dev/shm")) == "tmpfs" and mappable(Path("/dev/shm/a/b"))
    assert file_system(Path("/proc/self")) == "proc" and not mappable(Path("/proc/self"))


def test_a_journal_on_another_file_system_writes_plain_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_module, "_MAPPABLE", frozenset({"btrfs"}))
    journal = JournalAppender(tmp_path / "journal", segment_bytes=4096)
    assert not journal.mapped
    captures = [capture(i) for i in range(20)]
    for c in captures:
        journal.append(c)
    assert not journal.mapped and not list(journal.directory.glob("*.next"))
    segments = sorted(journal.directory.glob("*.seg"))
    assert len(segments) > 1 and segments[-1].stat().st_size < 4096 + 1024  # written, not allocated
    reader = JournalReader.attach(journal.directory)
    assert reader is not None
    assert _numbers(_read_all(reader)) == _numbers(captures)
    reader.close()
    journal.close()


def _frame_size(c: Capture) -> int:
    return _HEADER + len(encode_record(c))


def _numbers(captures: list[Capture]) -> list[str]:
    return [c.properties["n"] for c in captures]


def _read_all(reader: JournalReader) -> list[Capture]:
    out: list[Capture] = []
    while True:
        batch, position = reader.read(1000)
        if not batch:
            return out
        out.extend(batch)
        reader.commit(position)


def test_a_mapped_segment_is_allocated_whole_and_cut_to_its_frames_when_sealed(
    mapped_root: Path,
) -> None:
    journal = JournalAppender(mapped_root, segment_bytes=4096)
    assert journal.mapped
    captures = [capture(i) for i in range(40)]
    for c in captures:
        journal.append(c)
    segments = sorted(journal.directory.glob("*.seg"))
    assert len(segments) > 3
    # The one being written keeps its allocated size; the next is prepared (on a thread)
    # under a name readers do not look at.
    assert segments[-1].stat().st_size == 4096
    deadline = time.monotonic() + 10
    while not list(journal.directory.glob("*.next")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(list(journal.directory.glob("*.next"))) == 1
    # Every earlier one ends exactly where its frames do, so that frame sizes add up.
    sealed = sum(path.stat().st_size for path in segments[:-1])
    written_last = pending_bytes(mapped_root) - sealed
    assert sealed + written_last == sum(map(_frame_size, captures))
    assert 0 < written_last < 4096
    journal.close()
    assert not list(journal.directory.glob("*.next"))  # the prepared segment is gone
    assert segments[-1].stat().st_size == written_last  # the last one was cut on close
    reader = JournalReader.attach(journal.directory)
    assert reader is not None
    assert _numbers(_read_all(reader)) == _numbers(captures) and reader.lost == 0
    assert reader.finished()
    reader.close(remove=True)


def test_a_reader_racing_the_appender_across_rotations_takes_every_record_once(
    mapped_root: Path,
) -> None:
    """The reader relies on "segment N+1 exists ⇒ N is complete" and on reading a frame only
    once its length is written: with a segment every few records and a reader reading as
    fast as it can, every record comes back exactly once, in order."""
    journal = JournalAppender(mapped_root, segment_bytes=4096)
    reader = JournalReader.attach(journal.directory)
    assert reader is not None
    total = 3000
    captures = [capture(i) for i in range(total)]
    done = threading.Event()

    def append() -> None:
        for c in captures:
            journal.append(c)
        done.set()

    appender = threading.Thread(target=append)
    appender.start()
    seen: list[Capture] = []
    while True:
        finished = done.is_set()  # before the read: a read after it sees every record
        batch, position = reader.read(50)
        seen.extend(batch)
        reader.commit(position)
        if finished and not batch:
            break
    appender.join()
    assert _numbers(seen) == _numbers(captures) and reader.lost == 0
    assert journal.appended == total and journal.lost == 0
    reader.close()
    journal.close()
    assert not journal.directory.exists()  # all of it committed


def test_a_record_larger_than_a_segment_goes_into_a_plain_one(mapped_root: Path) -> None:
    journal = JournalAppender(mapped_root, segment_bytes=4096)
    big = capture(1)
    big.request_body = b'{"messages":"%s"}' % (b"x" * 10_000)
    captures = [capture(0), big, capture(2), capture(3)]
    for c in captures:
        journal.append(c)
    assert journal.mapped  # back to a mapped segment after the big one
    assert journal.lost == 0
    reader = JournalReader.attach(journal.directory)
    assert reader is not None
    read = _read_all(reader)
    assert _numbers(read) == _numbers(captures) and read[1].request_body == big.request_body
    reader.close()
    journal.close()


def test_a_prepared_segment_that_cannot_be_renamed_is_released_and_the_next_append_recovers(
    mapped_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renaming the prepared segment into place can fail (an I/O error, say):
    the append that needed it is lost and counted, the prepared file is unmapped, closed and
    deleted rather than leaked, and the next append starts a segment again."""
    open_fds = len(list(Path("/proc/self/fd").iterdir()))
    journal = JournalAppender(mapped_root, segment_bytes=4096)
    rename = journal_module.os.rename
    refused: list[str] = []

    def refuse_once(source: object, target: object) -> None:
        if not refused:
            refused.append(str(source))
            raise PermissionError(13, "Permission denied")
        rename(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(journal_module.os, "rename", refuse_once)
    captures = [capture(i) for i in range(40)]
    for c in captures:
        journal.append(c)
    assert refused and refused[0].endswith(".next") and not Path(refused[0]).exists()
    assert refused[0] not in Path("/proc/self/maps").read_text()  # unmapped
    assert journal.lost == 1 and journal.appended == len(captures) - 1
    reader = JournalReader.attach(journal.directory)
    assert reader is not None
    first_full = next(
        i for i in range(len(captures))
        if sum(map(_frame_size, captures[: i + 1])) > 4096
    )
    expected = _numbers(captures[:first_full] + captures[first_full + 1 :])
    assert _numbers(_read_all(reader)) == expected and reader.lost == 0
    assert journal.mapped  # back to prepared segments after the failed one
    reader.close()
    journal.close()
    # Nothing leaked: every descriptor the journal opened, the refused segment's included,
    # is closed.
    assert len(list(Path("/proc/self/fd").iterdir())) == open_fds


def test_the_backlog_counts_frames_not_the_allocated_space(mapped_root: Path) -> None:
    root = mapped_root
    journal = JournalAppender(root)
    backlog = Backlog()
    assert backlog.measure(root) == 0
    first = [capture(i) for i in range(5)]
    for c in first:
        journal.append(c)
    assert backlog.measure(root) == sum(map(_frame_size, first))
    second = [capture(i) for i in range(5, 9)]
    for c in second:
        journal.append(c)
    # Measured on from where it stopped, and the same as measuring afresh.
    assert backlog.measure(root) == pending_bytes(root) == sum(map(_frame_size, first + second))
    reader = JournalReader.attach(journal.directory)
    assert reader is not None
    batch, position = reader.read(5)
    assert _numbers(batch) == _numbers(first)
    reader.commit(position)
    assert backlog.measure(root) == sum(map(_frame_size, second))
    reader.close()
    journal.close()


_TORN = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from logging_pipeline.journal import JournalAppender, encode_record
    from tests.test_writer import capture

    journal = JournalAppender(Path(sys.argv[1]))
    assert journal.mapped
    end = 0
    for i in range(3):
        c = capture(i)
        journal.append(c)
        end += 8 + len(encode_record(c))
    # What a power loss can leave: a frame's header on disk and not its payload.
    fd = os.open(next(journal.directory.glob("*.seg")), os.O_WRONLY)
    os.pwrite(fd, b"\\x00\\x01\\x00\\x00\\x12\\x34\\x56\\x78", end)
    print(journal.directory, flush=True)
    os._exit(0)  # no close: the segment keeps its allocated size and its zeros
    """
)


def test_a_mapped_segment_left_by_a_dead_process_is_read_to_its_last_whole_frame(
    mapped_root: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _TORN, str(mapped_root)],
        capture_output=True, text=True, timeout=60, check=False, cwd=_REPO,
    )
    assert result.returncode == 0, result.stderr
    directory = Path(result.stdout.strip())
    segment = next(directory.glob("*.seg"))
    assert segment.stat().st_size == journal_module._SEGMENT_BYTES  # never cut
    reader = JournalReader.attach(directory)
    assert reader is not None
    read, position = reader.read(100)
    assert _numbers(read) == ["0", "1", "2"]
    assert reader.lost == 1  # the torn frame: its owner is gone, so it never completes
    reader.commit(position)
    assert pending_bytes(mapped_root) == 0
    assert reader.finished()
    reader.close(remove=True)
    assert not directory.exists()
