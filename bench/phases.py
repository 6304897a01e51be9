"""The measurement phases of one run: the direct upstream, then both gateways and the reference.

Every target gets the same treatment: one request of each kind end to end (so a broken target
fails fast with its output instead of producing a table of errors), wrk at 1 and at N
connections (each measured run preceded by an unmeasured warm-up), then streaming TTFB.

The two gateways (logging off, logging on) each get their own data dir, key and port; the
reference forwarder (:mod:`bench.forwarder`, the speed limit of a Python proxy here) its own
port. They are only ever loaded one at a time. Their N-connection throughput is measured in
interleaved rounds — A B C, then C B A, then A B C … — because this kind of machine drifts by
15% or more over a minute: single back-to-back runs compared mostly that drift. Interleaving
puts all three through the same conditions, and the ratios of their pooled throughput (all
rounds) are what the bar checks. After each logging run the bench waits until the writer
has written everything it was handed, so its backlog never runs during another target's
turn. The logging gateway then gets the optional soak run and the request-log accounting.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import payloads
from bench import ratelimit as rl
from bench.forwarder_proc import ForwarderProcess
from bench.gateway_proc import Gateway
from bench.load import LoadGenerator, LoadResult, RequestSpec, combine
from bench.procs import BenchError
from bench.requestlog import LogAccount, RequestTally, wait_for_log
from bench.ttfb import RawHttpClient, TtfbResult, measure_ttfb, raw_request
from bench.upstream import Upstream

_SSE = {"Accept": "text/event-stream"}

Server = Upstream | Gateway | ForwarderProcess
"""Anything the phases load: the direct upstream, a gateway, the reference forwarder."""


@dataclass(frozen=True)
class Plan:
    """How long and how hard each phase runs."""

    duration_s: float
    warmup_s: float
    connections: int
    ttfb_requests: int
    soak_s: float = 0.0
    rounds: int = 3


@dataclass
class TargetRun:
    """What one target's phase measured; ``load`` is keyed ``c1``, ``c<N>`` and ``soak``.

    For a gateway, ``c<N>`` combines its ``rounds`` (see :func:`bench.load.combine`).
    """

    name: str
    load: dict[str, LoadResult] = field(default_factory=dict)
    rounds: list[LoadResult] = field(default_factory=list)
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
        run = TargetRun("direct")
        self._probe(run, self.upstream, chat, stream)
        for conns in (1, self.plan.connections):
            run.load[f"c{conns}"] = self._load(run, self.upstream, chat, conns, f"c{conns}")
        self._ttfb(run, self.upstream, stream)
        return run

    def gateways(self) -> list[TargetRun]:
        """Both gateways (logging off, on) and the reference forwarder, in that order, then
        the rate-limit target (the no-logging gateway's process, requests with a policy) when
        a Redis server is there.

        Started together, loaded one at a time: each gets its 1-connection run and TTFB in
        turn, then the N-connection runs go in interleaved rounds.
        """
        redis_url = rl.redis_url()
        gateways = [
            Gateway(self.workdir, self.upstream.base_url, name="gateway", logging=False,
                    redis_url=redis_url),
            Gateway(self.workdir, self.upstream.base_url, name="gateway_logging", logging=True),
        ]  # fmt: skip
        forwarder = ForwarderProcess(self.workdir, self.upstream.base_url)
        servers: list[Gateway | ForwarderProcess] = [*gateways, forwarder]
        targets = list(servers)
        if redis_url is not None:
            targets.append(gateways[0])
        else:
            progress("no Redis server answers: the rate-limit line is not measured")
        runs = [TargetRun(server.name) for server in servers]
        if redis_url is not None:
            runs.append(TargetRun(rl.NAME))
        try:
            for gateway in gateways:
                progress(f"{gateway.name}: creating a key ...")
                gateway.create_key()
                state = "on" if gateway.logging else "off"
                progress(f"{gateway.name}: starting on port {gateway.port} (logging {state}) ...")
                gateway.start()
            progress(f"{forwarder.name}: starting on port {forwarder.port} ...")
            forwarder.start()
            specs = [*(self._gateway_specs(g) for g in gateways), self._forwarder_specs()]
            if redis_url is not None:
                chat, stream = specs[0]
                specs.append((rl.limited(chat), rl.limited(stream)))
            for server, run, (chat, stream) in zip(targets, runs, specs, strict=True):
                run.rss_kib["before"] = server.rss_kib()
                self._probe(run, server, chat, stream)
                run.load["c1"] = self._load(run, server, chat, 1, "c1")
                self._ttfb(run, server, stream)
                self._settle(server, run)
            self._rounds(targets, runs, [chat for chat, _ in specs])
            time.sleep(0.5)  # let in-flight background work (e.g. logging) settle first
            for server, run in zip(targets, runs, strict=True):
                run.rss_kib["after"] = server.rss_kib()
            logged, logged_run = gateways[1], runs[1]
            if self.plan.soak_s > 0:
                self._soak(logged_run, logged, specs[1][0])
            progress(f"{logged.name}: waiting for the request log to settle ...")
            logged_run.request_log = wait_for_log(logged, logged_run.tally)
            for server, run in zip(servers, runs[: len(servers)], strict=True):
                server.check_alive()
                run.log_problems = server.log_problems()
            return runs
        finally:
            for server in servers:
                server.stop()

    def _gateway_specs(self, gateway: Gateway) -> tuple[RequestSpec, RequestSpec]:
        auth = {"Authorization": f"Bearer {gateway.key}"}
        return (
            RequestSpec(payloads.CHAT_PATH, self.chat_body, auth),
            RequestSpec(payloads.CHAT_PATH, self.stream_body, {**auth, **_SSE}),
        )

    def _forwarder_specs(self) -> tuple[RequestSpec, RequestSpec]:
        """The direct upstream's requests: the forwarder keeps the path and has no routing."""
        auth = {"Authorization": "Bearer bench"}
        return (
            RequestSpec(payloads.CHAT_PATH, self.chat_body, auth),
            RequestSpec(payloads.STREAM_UPSTREAM_PATH, self.stream_body, {**auth, **_SSE}),
        )

    def _rounds(
        self,
        servers: list[Gateway | ForwarderProcess],
        runs: list[TargetRun],
        chats: list[RequestSpec],
    ) -> None:
        """Interleaved N-connection runs: A B C, C B A, A B C, ...; then each target's total.

        Reversing the order every round gives each target every position equally often (two
        rounds per cycle), so a machine drifting over the rounds favours none of them.
        """
        conns = self.plan.connections
        order = list(zip(servers, runs, chats, strict=True))
        for number in range(1, self.plan.rounds + 1):
            for server, run, chat in order if number % 2 else order[::-1]:
                label = f"c{conns} round {number}/{self.plan.rounds}"
                run.rounds.append(self._load(run, server, chat, conns, label))
                self._settle(server, run)
        for run in runs:
            run.load[f"c{conns}"] = combine(f"{run.name}_c{conns}", run.rounds)

    def _settle(self, server: Gateway | ForwarderProcess, run: TargetRun) -> None:
        """Wait until a logging gateway's writer has caught up (no-op without logging)."""
        if isinstance(server, Gateway) and server.logging:
            wait_for_log(server, run.tally)

    def _probe(
        self, run: TargetRun, server: Server, chat: RequestSpec, stream: RequestSpec
    ) -> None:
        probe(server.port, chat, b'"chat.completion"', f"non-streaming via {run.name}")
        probe(server.port, stream, b"data: [DONE]", f"streaming via {run.name}")
        run.tally.probes += 2

    def _load(
        self, run: TargetRun, server: Server, chat: RequestSpec, conns: int, what: str
    ) -> LoadResult:
        """One warm-up then one measured wrk run (both counted in the request tally)."""
        plan, counted = self.plan, isinstance(server, Gateway)
        label = f"{run.name}_c{conns}"
        progress(f"{run.name} {what}: {plan.warmup_s:g} s warm-up, then {plan.duration_s:g} s ...")
        warm = self.tool.run(label, server.base_url, chat, conns, plan.warmup_s, counted)
        run.tally.add_load(warm)
        return self._measured(run, server, chat, conns, plan.duration_s, label)

    def _measured(
        self,
        run: TargetRun,
        server: Server,
        chat: RequestSpec,
        conns: int,
        seconds: float,
        label: str,
    ) -> LoadResult:
        """One wrk run with the server's CPU time over it, counted in the request tally."""
        cpu_before, main_before = server.cpu_seconds(), server.main_cpu_seconds()
        result = self.tool.run(
            label, server.base_url, chat, conns, seconds, isinstance(server, Gateway)
        )
        result.server_cpu_s = server.cpu_seconds() - cpu_before
        result.server_main_cpu_s = server.main_cpu_seconds() - main_before
        run.tally.add_load(result)
        self.upstream.check_alive()
        server.check_alive()
        return result

    def _ttfb(self, run: TargetRun, server: Server, stream: RequestSpec) -> None:
        progress(f"streaming TTFB via {run.name}: {self.plan.ttfb_requests} requests ...")
        run.ttfb = measure_ttfb(run.name, server.port, stream, self.plan.ttfb_requests)
        run.tally.add_ttfb(run.ttfb)
        server.check_alive()

    def _soak(self, run: TargetRun, gateway: Gateway, chat: RequestSpec) -> None:
        conns, seconds = self.plan.connections, self.plan.soak_s
        label = f"{run.name}_soak"
        progress(f"{label}: {seconds:g} s at {conns} connections ...")
        run.load["soak"] = self._measured(run, gateway, chat, conns, seconds, label)
        time.sleep(0.5)
        run.rss_kib["after_soak"] = gateway.rss_kib()
