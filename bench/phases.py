"""The measurement phases of one run: the direct upstream, then each gateway in turn.

Every target gets the same treatment: one request of each kind end to end (so a broken target
fails fast with its output instead of producing a table of errors), wrk at 1 and at N
connections (each measured run preceded by an unmeasured warm-up), then streaming TTFB. A
gateway is started fresh (own data dir, key and port) for its phase and stopped after it, so
two gateways never compete for the CPUs. The logging gateway then gets the optional soak run
and the request-log accounting.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import payloads
from bench.gateway_proc import Gateway
from bench.load import LoadGenerator, LoadResult, RequestSpec
from bench.procs import BenchError
from bench.requestlog import LogAccount, RequestTally, wait_for_log
from bench.ttfb import RawHttpClient, TtfbResult, measure_ttfb, raw_request
from bench.upstream import Upstream

_SSE = {"Accept": "text/event-stream"}


@dataclass(frozen=True)
class Plan:
    """How long and how hard each phase runs."""

    duration_s: float
    warmup_s: float
    connections: int
    ttfb_requests: int
    soak_s: float = 0.0


@dataclass
class TargetRun:
    """What one target's phase measured; ``load`` is keyed ``c1``, ``c<N>`` and ``soak``."""

    name: str
    load: dict[str, LoadResult] = field(default_factory=dict)
    ttfb: TtfbResult | None = None
    rss_kib: dict[str, int] = field(default_factory=dict)
    tally: RequestTally = field(default_factory=RequestTally)
    request_log: LogAccount | None = None
    log_problems: list[str] = field(default_factory=list)


def progress(message: str) -> None:
    """Progress goes to stderr so stdout is the report alone."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def probe(port: int, spec: RequestSpec, expect: bytes, what: str) -> None:
    """One request end to end; a clear error if it is not a 200 with the expected body."""
    client = RawHttpClient(port)
    try:
        exchange = client.request(raw_request(port, spec))
    except OSError as exc:
        raise BenchError(f"{what}: request failed: {exc}") from exc
    finally:
        client.close()
    if exchange.status != 200 or expect not in exchange.body:
        raise BenchError(
            f"{what}: expected a 200 containing {expect!r}, got {exchange.status}: "
            f"{exchange.body[:500]!r}"
        )


class Phases:
    """Runs the phases against one upstream with one load generator."""

    def __init__(self, plan: Plan, tool: LoadGenerator, upstream: Upstream, workdir: Path) -> None:
        self.plan = plan
        self.tool = tool
        self.upstream = upstream
        self.workdir = workdir
        self.chat_body = payloads.request_body(payloads.CHAT_MODEL)
        self.stream_body = payloads.request_body(payloads.STREAM_MODEL, stream=True)

    def direct(self) -> TargetRun:
        auth = {"Authorization": "Bearer bench"}
        chat = RequestSpec(payloads.CHAT_PATH, self.chat_body, auth)
        stream = RequestSpec(payloads.STREAM_UPSTREAM_PATH, self.stream_body, {**auth, **_SSE})
        return self._measure(TargetRun("direct"), self.upstream, chat, stream)

    def gateway(self, name: str, *, logging: bool) -> TargetRun:
        gateway = Gateway(self.workdir, self.upstream.base_url, name=name, logging=logging)
        run = TargetRun(name)
        try:
            progress(f"{name}: creating a key ...")
            gateway.create_key()
            state = "on" if logging else "off"
            progress(f"{name}: starting on port {gateway.port} (logging {state}) ...")
            gateway.start()
            auth = {"Authorization": f"Bearer {gateway.key}"}
            chat = RequestSpec(payloads.CHAT_PATH, self.chat_body, auth)
            stream = RequestSpec(payloads.CHAT_PATH, self.stream_body, {**auth, **_SSE})
            run.rss_kib["before"] = gateway.rss_kib()
            self._measure(run, gateway, chat, stream)
            time.sleep(0.5)  # let in-flight background work (e.g. logging) settle first
            run.rss_kib["after"] = gateway.rss_kib()
            if logging:
                if self.plan.soak_s > 0:
                    self._soak(run, gateway, chat)
                progress(f"{name}: waiting for the request log to settle ...")
                run.request_log = wait_for_log(gateway, run.tally)
            gateway.check_alive()
            run.log_problems = gateway.log_problems()
            return run
        finally:
            gateway.stop()

    def _measure(
        self, run: TargetRun, server: Upstream | Gateway, chat: RequestSpec, stream: RequestSpec
    ) -> TargetRun:
        plan, counted = self.plan, isinstance(server, Gateway)
        probe(server.port, chat, b'"chat.completion"', f"non-streaming via {run.name}")
        probe(server.port, stream, b"data: [DONE]", f"streaming via {run.name}")
        run.tally.probes += 2
        for conns in (1, plan.connections):
            label = f"{run.name}_c{conns}"
            progress(f"{label}: {plan.warmup_s:g} s warm-up, then {plan.duration_s:g} s ...")
            warm = self.tool.run(label, server.base_url, chat, conns, plan.warmup_s, counted)
            run.tally.add_load(warm)
            cpu_before = server.cpu_seconds()
            result = self.tool.run(label, server.base_url, chat, conns, plan.duration_s, counted)
            result.server_cpu_s = server.cpu_seconds() - cpu_before
            run.tally.add_load(result)
            run.load[f"c{conns}"] = result
            self.upstream.check_alive()
            server.check_alive()
        progress(f"streaming TTFB via {run.name}: {plan.ttfb_requests} requests ...")
        run.ttfb = measure_ttfb(run.name, server.port, stream, plan.ttfb_requests)
        run.tally.add_ttfb(run.ttfb)
        server.check_alive()
        return run

    def _soak(self, run: TargetRun, gateway: Gateway, chat: RequestSpec) -> None:
        conns, seconds = self.plan.connections, self.plan.soak_s
        label = f"{run.name}_soak"
        progress(f"{label}: {seconds:g} s at {conns} connections ...")
        cpu_before = gateway.cpu_seconds()
        result = self.tool.run(label, gateway.base_url, chat, conns, seconds, True)
        result.server_cpu_s = gateway.cpu_seconds() - cpu_before
        run.tally.add_load(result)
        run.load["soak"] = result
        self.upstream.check_alive()
        gateway.check_alive()
        time.sleep(0.5)
        run.rss_kib["after_soak"] = gateway.rss_kib()
