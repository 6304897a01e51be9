"""Process and port helpers shared by the upstream, gateway and load modules.

Everything the bench starts is a child process; these helpers exist so that every child is
started the same way (own log files, never a pipe that could fill up and stall it) and is
always stopped, even when the bench fails half-way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

HOST = "127.0.0.1"
"""All bench traffic stays on loopback."""


T = TypeVar("T")


class BenchError(RuntimeError):
    """A failure the bench reports as one clear message (exit status 1), not a traceback."""


def in_workdir(name: str, keep: bool, work: Callable[[Path], T]) -> tuple[T, float] | None:
    """``work(workdir)`` in a new temporary ``gateway-bench-<name>-*`` directory: its result
    and the wall time in seconds (0.1 s), or None after printing a :class:`BenchError` as
    ``bench.<name>: error: ...``. The directory is removed afterwards unless ``keep``."""
    workdir = Path(tempfile.mkdtemp(prefix=f"gateway-bench-{name}-"))
    started = time.monotonic()
    try:
        result = work(workdir)
    except BenchError as exc:
        print(f"bench.{name}: error: {exc}", file=sys.stderr)
        return None
    finally:
        if keep:
            print(f"[bench] workdir kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return result, round(time.monotonic() - started, 1)


def print_report(name: str, keep: bool, work: Callable[[Path], str], *, timed: bool = False) -> int:
    """A report tool's ``main`` once its arguments are read: ``work`` in a workdir
    (:func:`in_workdir`), the report it returns printed (then the wall time, if ``timed``);
    the exit status, 1 after a :class:`BenchError` (printed)."""
    done = in_workdir(name, keep, work)
    if done is None:
        return 1
    text, seconds = done
    print(text)
    if timed:
        print(f"  ({seconds:g} s)")
    return 0


def write_results(
    name: str,
    keep: bool,
    work: Callable[[Path], dict[str, Any]],
    output: Path,
    report: Callable[[dict[str, Any]], str],
) -> int:
    """A results tool's ``main`` once its arguments are read: ``work`` in a workdir
    (:func:`in_workdir`), its results (with the wall time as ``meta.wall_s``) written to
    ``output`` as JSON and ``report(results)`` printed; the exit status, 1 after a
    :class:`BenchError` (printed)."""
    done = in_workdir(name, keep, work)
    if done is None:
        return 1
    results, wall_s = done
    results["meta"]["wall_s"] = wall_s
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(report(results))
    return 0


def free_port() -> int:
    """A currently unused TCP port on loopback (the kernel picks it, so runs never collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on ``HOST:port``."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes], name: str, log: Path, timeout: float = 30.0
) -> None:
    """Block until ``port`` accepts connections; fail early if ``proc`` dies meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(
                f"{name} exited with status {proc.returncode} before opening port {port}.\n"
                f"--- last lines of {log} ---\n{tail(log)}"
            )
        if port_open(port):
            return
        time.sleep(0.05)
    raise BenchError(
        f"{name} did not open port {port} within {timeout:.0f} s.\n"
        f"--- last lines of {log} ---\n{tail(log)}"
    )


def spawn(
    argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout and stderr going to ``log`` (a file, so it can never block)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """Terminate ``proc`` (SIGTERM, then SIGKILL after ``timeout``) and reap it.

    Children were started in their own session, so the signal goes to that process group:
    this reaches uvicorn's or nginx's worker processes too, and nothing else.
    """
    if proc is None or proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file (empty when it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def problem_lines(log: Path, limit: int = 10) -> list[str]:
    """Warning, error and traceback lines a server printed to ``log`` (it should print none)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    found = [line for line in text.splitlines() if _is_problem(line)]
    return found[:limit]


_MARKERS = ("warning", "error", "traceback", "exception", "critical")
_PROBLEM_LEVELS = frozenset({"warning", "error", "critical"})


def _is_problem(line: str) -> bool:
    """A text line naming a problem; a JSON line (``GATEWAY_LOG_FORMAT=json``, the default)
    at level warning or above, or with a traceback (its logger's name, ``uvicorn.error``,
    says nothing)."""
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            return record.get("level") in _PROBLEM_LEVELS or "exc" in record
    return any(m in line.lower() for m in _MARKERS)


def ensure_tool(binary: str, packages: tuple[str, ...]) -> str | None:
    """Path of ``binary``; if missing, try ``apt-get install`` of the first package that works.

    Returns ``None`` when the tool cannot be had (no apt-get, not root, no network): the caller
    then uses its Python fallback and says so in the report.
    """
    found = shutil.which(binary) or _sbin(binary)
    if found:
        return found
    if shutil.which("apt-get") is None:
        return None
    print(f"[bench] {binary} not found; installing it with apt-get ...", file=sys.stderr)
    subprocess.run(
        ["apt-get", "update", "-qq"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    for package in packages:
        done = subprocess.run(
            ["apt-get", "install", "-y", "-qq", package],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode == 0:
            break
    return shutil.which(binary) or _sbin(binary)


def _sbin(binary: str) -> str | None:
    """nginx lives in /usr/sbin, which is not on every user's PATH."""
    path = Path("/usr/sbin") / binary
    return str(path) if path.exists() else None


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (uvicorn with --workers > 1 forks worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(root: int) -> float:
    """User + system CPU seconds of ``root`` and its descendants, from ``/proc/<pid>/stat``.

    Sampled around a load run, it shows whether a server was CPU-bound (near 1.0 s per second
    for a single-threaded event loop) and how much CPU one request costs.
    """
    return sum(own_cpu_seconds(pid) for pid in process_tree(root))


def own_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` alone (its threads included, children not)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime, stime (fields 14 and 15)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident memory of one process in KiB, from ``/proc/<pid>/status`` (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class ServedProcess:
    """A server the bench started and measures (a gateway, the reference forwarder).

    Subclasses set ``label`` (how errors name it), ``port``, ``log`` and start ``_proc``.
    """

    label = "the server"
    port: int
    log: Path
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise BenchError(f"{self.label} is not running")
        return self._proc.pid

    def check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise BenchError(
                f"{self.label} died (status {self._proc.returncode}).\n"
                f"--- last lines of its output ({self.log}) ---\n{tail(self.log)}"
            )

    def rss_kib(self) -> int:
        """VmRSS of the process and all its children, in KiB."""
        return sum(rss_kib(pid) for pid in process_tree(self.pid))

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the process and its children."""
        return cpu_seconds(self.pid)

    def main_cpu_seconds(self) -> float:
        """The same for the process alone (a gateway's children: its log writer)."""
        return own_cpu_seconds(self.pid)

    def log_problems(self, limit: int = 10) -> list[str]:
        """Warning, error and traceback lines it printed (it should print none)."""
        return problem_lines(self.log, limit)

    def stop(self) -> None:
        stop(self._proc)
        self._proc = None
