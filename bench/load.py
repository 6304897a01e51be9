"""Closed-loop HTTP load: wrk, driven by a generated Lua script.

wrk (C, epoll) costs little CPU per request, which matters on a 2-core machine where the load
generator, nginx and the gateway share the cores. The Lua script sets the POST body and the
auth header and, in ``done()``, prints the exact latency percentiles in microseconds as one
JSON line: wrk's own ``--latency`` table rounds to two decimals of a unit that changes between
us and ms, so the script is the reliable source; the text table is parsed only as a fallback.

wrk's ``requests`` counts answered requests only: when a run stops, the requests still in
flight on the other connections were sent (and the gateway serves and logs them) but are not
counted. Runs made with ``count_sent`` therefore also count every request wrk *sends*, with a
``request()`` hook per thread that ``done()`` sums via ``thread:get``; it costs a Lua call per
request, negligible at gateway rates, so only gateway runs use it (direct runs reach ~100k
req/s, where wrk itself is the limit).
If wrk cannot be installed, an aiohttp load generator stands in (and the report says so).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.procs import BenchError, ensure_tool

_MARK = "BENCH_RESULT "

_LUA_COUNT_SENT = """
local threads = {}
setup = function(thread) table.insert(threads, thread) end
sent = 0
request = function()
  sent = sent + 1
  return wrk.request()
end
"""
"""Per-thread count of requests handed to the socket (``wrk.request()`` is the cached one).

wrk calls ``request()`` once more, on the first thread before the run starts, to check what it
returns (``script_verify_request``); ``done()`` takes that call off the total."""

_LUA_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  local total_sent = -1
  if threads ~= nil then
    -- minus the one request() call wrk makes before the run to check the script's request
    total_sent = -1
    for _, t in ipairs(threads) do total_sent = total_sent + t:get("sent") end
  end
  io.write(string.format(
    '%s{"requests":%d,"sent":%d,"duration_us":%d,"bytes":%d,'
    .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
    .. '"latency_us":{"min":%d,"mean":%.3f,"stdev":%.3f,"max":%d,'
    .. '"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p999":%d}}\\n',
    MARK, summary.requests, total_sent, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
"""


@dataclass
class LoadResult:
    """One measured run: throughput, latency percentiles (ms) and error counts."""

    label: str
    connections: int
    threads: int
    duration_s: float
    requests: int
    rps: float
    latency_ms: dict[str, float]
    errors: dict[str, int] = field(default_factory=dict)
    tool: str = "wrk"
    sent: int = -1
    """Requests sent, answered or not (``-1``: not counted for this run, see the module doc)."""
    server_cpu_s: float = math.nan
    """CPU seconds the server under test used during the run (filled in by the caller)."""
    server_main_cpu_s: float = math.nan
    """The part of ``server_cpu_s`` its main process used (the rest: its children, e.g. the
    gateway's log writer)."""

    @property
    def server_cpu_pct(self) -> float:
        """Server CPU as a percentage of one core; ~100 means a 1-process server is saturated."""
        return 100 * self.server_cpu_s / self.duration_s if self.duration_s else math.nan

    @property
    def server_cpu_us_per_request(self) -> float:
        return 1e6 * self.server_cpu_s / self.requests if self.requests else math.nan

    @property
    def server_main_cpu_us_per_request(self) -> float:
        return 1e6 * self.server_main_cpu_s / self.requests if self.requests else math.nan

    @property
    def server_children_cpu_us_per_request(self) -> float:
        return self.server_cpu_us_per_request - self.server_main_cpu_us_per_request

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "error_total": self.error_total,
            "server_cpu_pct": self.server_cpu_pct,
            "server_cpu_us_per_request": self.server_cpu_us_per_request,
            "server_main_cpu_us_per_request": self.server_main_cpu_us_per_request,
            "server_children_cpu_us_per_request": self.server_children_cpu_us_per_request,
        }


@dataclass(frozen=True)
class RequestSpec:
    """The one request a run repeats: path, JSON body and extra headers."""

    path: str
    body: str
    headers: dict[str, str] = field(default_factory=dict)


class LoadGenerator(Protocol):
    """What the bench needs from a load tool (wrk, or the aiohttp fallback)."""

    tool: str

    def version(self) -> str: ...

    def run(
        self,
        label: str,
        base_url: str,
        spec: RequestSpec,
        connections: int,
        duration_s: float,
        count_sent: bool = False,
    ) -> LoadResult: ...


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (what wrk reports, too)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _lua_string(text: str) -> str:
    """``text`` as a double-quoted Lua string literal (any byte survives the round trip)."""
    escaped = "".join(
        c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "".join(f"\\{b:03d}" for b in c.encode())
        for c in text
    )
    return f'"{escaped}"'


def lua_script(spec: RequestSpec, count_sent: bool = False) -> str:
    """The wrk Lua script for one request shape, with the ``done()`` reporting hook."""
    lines = [
        'wrk.method = "POST"',
        f"wrk.path = {_lua_string(spec.path)}",
        f"wrk.body = {_lua_string(spec.body)}",
        'wrk.headers["Content-Type"] = "application/json"',
        *(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in spec.headers.items()),
        f"MARK = {_lua_string(_MARK)}",
        _LUA_COUNT_SENT if count_sent else "",
        _LUA_DONE,
    ]
    return "\n".join(lines)


class Wrk:
    """Runs wrk against a base URL with a prepared Lua script."""

    tool = "wrk"

    def __init__(self, binary: str, workdir: Path, timeout_s: float = 5.0) -> None:
        self.binary = binary
        self.workdir = workdir
        self.timeout_s = timeout_s

    def version(self) -> str:
        out = subprocess.run([self.binary, "-v"], capture_output=True, text=True, check=False)
        match = re.search(r"wrk (\S+)", out.stdout + out.stderr)
        return match.group(1) if match else "?"

    def run(
        self,
        label: str,
        base_url: str,
        spec: RequestSpec,
        connections: int,
        duration_s: float,
        count_sent: bool = False,
    ) -> LoadResult:
        script = self.workdir / "wrk-request.lua"
        script.write_text(lua_script(spec, count_sent))
        threads = 1 if connections == 1 else min(2, connections)
        argv = [
            self.binary,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration_s))}s",
            f"--timeout={self.timeout_s:g}s",
            "--latency",
            "-s",
            str(script),
            base_url,
        ]
        done = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=duration_s + 60
        )
        if done.returncode != 0 or (_MARK not in done.stdout and done.stderr.strip()):
            # A Lua error does not fail wrk: it silently sends GET / instead. Treat as fatal.
            raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
        return parse_wrk(done.stdout, label, connections, threads)


def parse_wrk(output: str, label: str, connections: int, threads: int) -> LoadResult:
    """Read the ``done()`` JSON line; fall back to wrk's text report when it is missing."""
    for line in output.splitlines():
        if line.startswith(_MARK):
            data = json.loads(line[len(_MARK) :])
            seconds = data["duration_us"] / 1e6
            lat = {k: v / 1000 for k, v in data["latency_us"].items()}
            return LoadResult(
                label=label,
                connections=connections,
                threads=threads,
                duration_s=round(seconds, 3),
                requests=data["requests"],
                rps=data["requests"] / seconds if seconds else 0.0,
                latency_ms=lat,
                errors=data["errors"],
                sent=data.get("sent", -1),
            )
    return _parse_wrk_text(output, label, connections, threads)


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _parse_wrk_text(output: str, label: str, connections: int, threads: int) -> LoadResult:
    """Parse wrk's human report (``--latency`` table, ``Requests/sec``) as a last resort."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    if rps is None or total is None:
        raise BenchError(f"cannot parse wrk output:\n{output}")
    lat: dict[str, float] = {}
    for pct, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M):
        lat[f"p{pct}"] = float(value) * _UNITS_MS[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    seconds = float(total.group(2)) * {"s": 1.0, "m": 60.0, "ms": 1e-3}.get(total.group(3), 1.0)
    return LoadResult(
        label=label,
        connections=connections,
        threads=threads,
        duration_s=seconds,
        requests=int(total.group(1)),
        rps=float(rps.group(1)),
        latency_ms=lat,
        errors={"status": int(non2xx.group(1)) if non2xx else 0},
    )


class AiohttpLoad:
    """Fallback closed-loop generator, used only when wrk cannot be installed.

    It runs in the bench's own Python process, so at 32 connections it is itself a bottleneck:
    its RPS is a lower bound, not the gateway's limit.
    """

    tool = "aiohttp"

    def version(self) -> str:
        import aiohttp

        return f"aiohttp {aiohttp.__version__} fallback"

    def run(
        self,
        label: str,
        base_url: str,
        spec: RequestSpec,
        connections: int,
        duration_s: float,
        count_sent: bool = False,
    ) -> LoadResult:
        """Every request it starts is awaited, so ``sent`` is always counted here."""
        return asyncio.run(self._run(label, base_url, spec, connections, duration_s))

    async def _run(
        self, label: str, base_url: str, spec: RequestSpec, connections: int, duration_s: float
    ) -> LoadResult:
        import aiohttp

        data = spec.body.encode()
        all_headers = {"Content-Type": "application/json", **spec.headers}
        latencies: list[float] = []
        errors = {"status": 0, "other": 0}
        sent = 0
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(base_url, connector=connector) as session:
            start = time.perf_counter()
            deadline = start + duration_s

            async def worker() -> None:
                nonlocal sent
                while time.perf_counter() < deadline:
                    sent += 1
                    started = time.perf_counter()
                    try:
                        async with session.post(spec.path, data=data, headers=all_headers) as r:
                            await r.read()
                            if r.status >= 400:
                                errors["status"] += 1
                    except aiohttp.ClientError:
                        errors["other"] += 1
                        continue
                    latencies.append((time.perf_counter() - started) * 1000)

            await asyncio.gather(*(worker() for _ in range(connections)))
            elapsed = time.perf_counter() - start
        latencies.sort()
        lat = {f"p{p}": percentile(latencies, p) for p in (50, 75, 90, 99)}
        lat["p999"] = percentile(latencies, 99.9)
        lat["mean"] = sum(latencies) / len(latencies) if latencies else math.nan
        lat["max"] = latencies[-1] if latencies else math.nan
        return LoadResult(
            label=label,
            connections=connections,
            threads=1,
            duration_s=round(elapsed, 3),
            requests=len(latencies),
            rps=len(latencies) / elapsed,
            latency_ms=lat,
            errors=errors,
            tool="aiohttp",
            sent=sent,
        )


def load_generator(workdir: Path) -> LoadGenerator:
    """wrk (installed with apt-get if missing), else the aiohttp fallback."""
    binary = ensure_tool("wrk", ("wrk",))
    if binary is None:
        print("[bench] wrk unavailable: using the aiohttp fallback load generator")
        return AiohttpLoad()
    return Wrk(binary, workdir)


def combine(label: str, rounds: Sequence[LoadResult]) -> LoadResult:
    """Several measured runs of one target as one: pooled throughput, the median run's latency.

    Requests, errors, duration and server CPU add up, so ``rps`` is total requests over total
    time. Latency percentiles cannot be pooled from percentiles; the run with the median
    throughput lends its own.
    """
    if not rounds:
        raise ValueError("combine() needs at least one run")
    median = sorted(rounds, key=lambda r: r.rps)[(len(rounds) - 1) // 2]
    duration = sum(r.duration_s for r in rounds)
    requests = sum(r.requests for r in rounds)
    errors: dict[str, int] = {}
    for r in rounds:
        for kind, count in r.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    return LoadResult(
        label=label,
        connections=median.connections,
        threads=median.threads,
        duration_s=duration,
        requests=requests,
        rps=requests / duration if duration else math.nan,
        latency_ms=dict(median.latency_ms),
        errors=errors,
        tool=median.tool,
        sent=sum(r.sent for r in rounds) if all(r.sent >= 0 for r in rounds) else -1,
        server_cpu_s=sum(r.server_cpu_s for r in rounds),
        server_main_cpu_s=sum(r.server_main_cpu_s for r in rounds),
    )
