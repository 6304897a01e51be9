"""Owner-only files and directories for everything the gateway stores on disk.

The data directory holds request and response bodies, the control-plane database (key hashes)
and the request journal: nobody but the gateway's own user should read them. Directories are
``0700`` and files ``0600``, also when they already existed with looser modes. Files created
by embedded engines themselves (SQLite's side files, chdb's parts) are covered by the
``0077`` umask that :func:`restrict_umask` sets in the gateway's server and writer processes,
and by their parent directories being ``0700``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) owner-only; tighten it if it exists.

    Each missing level is created ``0700`` (``mkdir(parents=True)`` would give the parents the
    umask's default instead); existing parents are left as they are — they may be shared.
    """
    missing: list[Path] = []
    level = path
    while not level.exists():
        missing.append(level)
        if level.parent == level:
            break
        level = level.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            os.mkdir(directory, DIRECTORY_MODE)
        os.chmod(directory, DIRECTORY_MODE)  # mkdir's mode is filtered by the umask
    if path.stat().st_mode & 0o077:
        os.chmod(path, DIRECTORY_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty if missing, owner-only (before an engine opens it)."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    os.close(fd)
    if path.stat().st_mode & 0o077:
        os.chmod(path, FILE_MODE)
    return path


def restrict_umask() -> None:
    """Make files this process creates from now on owner-only (server and writer processes)."""
    os.umask(0o077)


def try_lock(path: Path) -> int | None:
    """An exclusive ``flock`` on ``path`` (created ``0600`` if missing), held by the returned
    descriptor until it is closed; None when another process (or descriptor) holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
