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

The translated path (``model/anthropic``: the gateway sends an Anthropic Messages request and
translates the answer back) is a fourth target in those rounds, served by the no-logging
gateway, so its throughput is compared with the OpenAI path's of the same process under the
same conditions. Its stream needs the upstream's event-stream location, which nginx picks by
path alone, so it goes through a second no-logging gateway (``gateway_stream``, Anthropic's
base URL at that location); there, after each round, the OpenAI stream and the translated
stream take turns at the TTFB measurement (order reversed every round), and the pooled
samples of all rounds are compared.

Issue 13's lines put two more translated paths in those rounds, on the same no-logging
gateway: Gemini (``model/google-ai-studio``) and Bedrock (``model/bedrock``, Converse, SigV4),
at half the run length (their pooled throughput is compared with the OpenAI path's); their
streams (Gemini's SSE, Bedrock's binary event stream) join the TTFB turns on
``gateway_stream``.

Issue 11's routing lines (:mod:`bench.routing`) use a fourth no-logging gateway
(``gateway_routing``: an organisation BYOK key stored through the provider-keys API, a
provider that always fails, no health cool-down): the routed model (``gpt-4o-mini``, BYOK
first) and the pinned one (``gpt-4o-mini/openai`` with the client's key) are two more targets
of the rounds, at half the run length; after each round, the failover measurement.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from bench import observability as obs
from bench import pairing, payloads
from bench import ratelimit as rl
from bench.forwarder_proc import ForwarderProcess
from bench.gateway_proc import Gateway
from bench.load import LoadGenerator, LoadResult, RequestSpec, combine
from bench.pairing import PairedResult
from bench.procs import BenchError
from bench.requestlog import LogAccount, RequestTally, wait_for_log
from bench.routing import (
    FailoverResult,
    RoutingSpecs,
    measure_failover,
    routing_gateway,
    routing_specs,
    store_byok_key,
)
from bench.ttfb import RawHttpClient, TtfbResult, measure_ttfb, pool_ttfb, raw_request
from bench.upstream import Upstream

_SSE = {"Accept": "text/event-stream"}

Server = Upstream | Gateway | ForwarderProcess
"""Anything the phases load: the direct upstream, a gateway, the reference forwarder."""

NATIVE = {"gemini": payloads.GEMINI_MODEL, "bedrock": payloads.BEDROCK_MODEL}
"""Issue 13's translated paths (run names → model): throughput in the rounds on the
no-logging gateway, their streams in the TTFB turns on ``gateway_stream``."""


@dataclass(frozen=True)
class Plan:
    """How long and how hard each phase runs."""

    duration_s: float
    warmup_s: float
    connections: int
    ttfb_requests: int
    soak_s: float = 0.0
    rounds: int = 3
    failover_requests: int = 200
    """Turns of the failover measurement after each round (see :mod:`bench.routing`)."""
    paired_turns: int = 10000
    """Turns of the paired 1-connection measurement after the rounds (:mod:`bench.pairing`);
    a tenth as many unmeasured turns go first."""


@dataclass(frozen=True)
class Paired:
    """One of the two streams measured in turn after each round: its run, gateway, request."""

    run: TargetRun
    gateway: Gateway
    spec: RequestSpec


@dataclass
class TargetRun:
    """What one target's phase measured; ``load`` is keyed ``c1``, ``c<N>`` and ``soak``.

    For a gateway, ``c<N>`` combines its ``rounds`` (see :func:`bench.load.combine`); for the
    paired streams (``translated``, ``gateway_stream``) ``ttfb`` pools ``ttfb_rounds``.
    """

    name: str
    load: dict[str, LoadResult] = field(default_factory=dict)
    rounds: list[LoadResult] = field(default_factory=list)
    ttfb: TtfbResult | None = None
    ttfb_rounds: list[TtfbResult] = field(default_factory=list)
    rss_kib: dict[str, int] = field(default_factory=dict)
    tally: RequestTally = field(default_factory=RequestTally)
    request_log: LogAccount | None = None
    log_problems: list[str] = field(default_factory=list)


def progress(message: str) -> None:
    """Progress goes to stderr so stdout is the report alone."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def probe(
    port: int, spec: RequestSpec, expect: bytes, what: str, headers: dict[str, str] | None = None
) -> None:
    """One request end to end; a clear error if it is not a 200 with the expected body (and
    the expected response ``headers``, names lower-case)."""
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
    for name, value in (headers or {}).items():
        if exchange.headers.get(name) != value:
            raise BenchError(
                f"{what}: expected {name}: {value}, got {exchange.headers.get(name)!r}"
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
        self.translated_body = payloads.request_body(payloads.TRANSLATED_MODEL)
        self.translated_stream_body = payloads.request_body(payloads.TRANSLATED_MODEL, stream=True)
        self.native_bodies = {
            name: (payloads.request_body(model), payloads.request_body(model, stream=True))
            for name, model in NATIVE.items()
        }
        self.failover_rounds: list[FailoverResult] = []
        """Filled by :meth:`gateways`: the failover measurement after each round."""
        self.paired: dict[str, PairedResult] = {}
        """Filled by :meth:`gateways`: direct, forwarder and both gateways asked in turn."""

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
        """Both gateways (logging off, on), the reference forwarder, the translated path,
        Gemini's and Bedrock's (:data:`NATIVE`), the OpenAI stream they are paired with, the
        routed and the pinned model and the routing
        gateway that serves them, and — when a Redis server answers — the rate-limit target
        (the no-logging gateway's process, requests with a policy), in that order.

        Started together, loaded one at a time: each gets its 1-connection run and TTFB in
        turn (the translated path and the rate-limited requests right after the OpenAI path of
        the same gateway), then the N-connection runs go in interleaved rounds, each round
        followed by the TTFB turns of the streams and the failover measurement
        (:mod:`bench.routing`).
        """
        base = self.upstream.base_url
        redis_url = rl.redis_url()
        plain = Gateway(self.workdir, base, name="gateway", logging=False, redis_url=redis_url)
        logged = Gateway(self.workdir, base, name="gateway_logging", logging=True)
        paired = Gateway(
            self.workdir, base, name="gateway_stream", logging=False, anthropic_stream=True
        )
        routing = routing_gateway(self.workdir, base)
        forwarder = ForwarderProcess(self.workdir, base)
        quiet = obs.quiet_gateway(self.workdir, base)  # issue 14: metrics and request line off
        gateways = [plain, logged, paired, routing, quiet]
        servers: list[Gateway | ForwarderProcess] = [
            plain, logged, forwarder, paired, routing, quiet,
        ]  # fmt: skip
        runs = [TargetRun(server.name) for server in servers]
        quiet_run = runs[5]
        translated, routed, pinned = (
            TargetRun("translated"),
            TargetRun("routed"),
            TargetRun("pinned"),
        )
        natives = [TargetRun(name) for name in NATIVE]
        limited_run = TargetRun(rl.NAME) if redis_url is not None else None
        if limited_run is None:
            progress("no Redis server answers: the rate-limit line is not measured")
        try:
            for gateway in gateways:
                progress(f"{gateway.name}: creating a key ...")
                gateway.create_key()
                state = "on" if gateway.logging else "off"
                progress(f"{gateway.name}: starting on port {gateway.port} (logging {state}) ...")
                gateway.start()
            progress(f"{forwarder.name}: starting on port {forwarder.port} ...")
            forwarder.start()
            specs = [*(self._gateway_specs(g) for g in gateways[:2]), self._forwarder_specs()]
            routing_requests = self._routing(routing, runs[4])
            translated_chat = self._translated_chat(plain)
            native_chats = [self._native_chat(plain, run) for run in natives]
            limited = (rl.limited(specs[0][0]), rl.limited(specs[0][1]))
            for server, run, (chat, stream) in zip(servers[:3], runs[:3], specs, strict=True):
                run.rss_kib["before"] = server.rss_kib()
                self._probe(run, server, chat, stream)
                run.load["c1"] = self._load(run, server, chat, 1, "c1")
                self._ttfb(run, server, stream)
                self._settle(server, run)
                if server is plain:  # same gateway, right after: the same machine phase
                    probe(plain.port, translated_chat, b'"chat.completion"', "translated")
                    translated.tally.probes += 1
                    translated.load["c1"] = self._load(translated, plain, translated_chat, 1, "c1")
                    if limited_run is not None:
                        self._probe(limited_run, plain, *limited)
                        limited_run.load["c1"] = self._load(limited_run, plain, limited[0], 1, "c1")
                        self._ttfb(limited_run, plain, limited[1])
                    quiet_chat = self._gateway_specs(quiet)[0]
                    probe(quiet.port, quiet_chat, b'"chat.completion"', f"via {quiet.name}")
                    quiet_run.tally.probes += 1
                    quiet_run.load["c1"] = self._load(quiet_run, quiet, quiet_chat, 1, "c1")
            pair = self._pair(runs[3], paired, translated, natives)
            order: list[tuple[Gateway | ForwarderProcess, TargetRun, RequestSpec]] = [
                (plain, runs[0], specs[0][0]),
                (plain, translated, translated_chat),
                *((plain, run, chat) for run, chat in zip(natives, native_chats, strict=True)),
                (logged, runs[1], specs[1][0]),
                (forwarder, runs[2], specs[2][0]),
                (routing, routed, routing_requests.routed),
                (routing, pinned, routing_requests.pinned),
            ]
            if limited_run is not None:
                order.append((plain, limited_run, limited[0]))
            order.append((quiet, quiet_run, quiet_chat))
            self._rounds(
                [o[0] for o in order],
                [o[1] for o in order],
                [o[2] for o in order],
                pair,
                halved={routed.name, pinned.name, *NATIVE},
                after_round=lambda n: self._failover(routing, routing_requests, n),
            )
            paired_order = [(plain, runs[0], specs[0][0]), (logged, runs[1], specs[1][0]),
                            (forwarder, runs[2], specs[2][0])]  # fmt: skip
            self._paired(paired_order)
            time.sleep(0.5)  # let in-flight background work (e.g. logging) settle first
            for server, run in zip(servers, runs, strict=True):
                run.rss_kib["after"] = server.rss_kib()
            logged_run = runs[1]
            if self.plan.soak_s > 0:
                self._soak(logged_run, logged, specs[1][0])
            progress(f"{logged.name}: waiting for the request log to settle ...")
            logged_run.request_log = wait_for_log(logged, logged_run.tally)
            for server, run in zip(servers, runs, strict=True):
                server.check_alive()
                run.log_problems = server.log_problems()
            extra = [limited_run] if limited_run is not None else []
            return [*runs[:3], translated, *natives, runs[3], routed, pinned, runs[4], *extra,
                    quiet_run]
        finally:
            for server in servers:
                server.stop()

    def _routing(self, gateway: Gateway, run: TargetRun) -> RoutingSpecs:
        """Store the org's BYOK key, then probe the routed, pinned and failover requests: each
        must be served where it should be (the org's endpoint, the managed one, the org's
        after a failover)."""
        progress(f"{gateway.name}: storing the organisation's OpenAI key (provider-keys API) ...")
        store_byok_key(gateway, self.upstream.base_url)
        run.rss_kib["before"] = gateway.rss_kib()
        specs = routing_specs(gateway.key)
        port, completion = gateway.port, b'"chat.completion"'
        probe(port, specs.routed, completion, "routed", {"x-request-id": payloads.BYOK_REQUEST_ID})
        probe(port, specs.pinned, completion, "pinned", {"x-request-id": "req_bench_fixed"})
        probe(port, specs.failover, completion, "failover", {"helicone-fallback-index": "1"})
        return specs

    def _failover(self, gateway: Gateway, specs: RoutingSpecs, number: int) -> None:
        count, total = self.plan.failover_requests, self.plan.rounds
        progress(f"failover via {gateway.name}, round {number}/{total}: {count} turns ...")
        result = measure_failover(gateway.port, self.upstream.port, specs, count)
        self.failover_rounds.append(result)
        gateway.check_alive()

    def _translated_chat(self, gateway: Gateway) -> RequestSpec:
        """The translated path's non-streamed request (``model/anthropic``) to ``gateway``."""
        auth = {"Authorization": f"Bearer {gateway.key}"}
        return RequestSpec(payloads.CHAT_PATH, self.translated_body, auth)

    def _native_chat(self, gateway: Gateway, run: TargetRun) -> RequestSpec:
        """An issue-13 path's non-streamed request to ``gateway``, probed."""
        auth = {"Authorization": f"Bearer {gateway.key}"}
        spec = RequestSpec(payloads.CHAT_PATH, self.native_bodies[run.name][0], auth)
        probe(gateway.port, spec, b'"chat.completion"', f"non-streaming via {run.name}")
        run.tally.probes += 1
        return spec

    def _pair(
        self,
        run: TargetRun,
        gateway: Gateway,
        translated: TargetRun,
        natives: Collection[TargetRun] = (),
    ) -> list[Paired]:
        """The streams of the TTFB turns on ``gateway``, probed: the OpenAI path first, then
        the Anthropic-translated stream and issue 13's (``natives``)."""
        run.rss_kib["before"] = gateway.rss_kib()
        auth = {"Authorization": f"Bearer {gateway.key}", **_SSE}
        pair = [
            Paired(run, gateway, RequestSpec(payloads.CHAT_PATH, self.stream_body, auth)),
            Paired(
                translated,
                gateway,
                RequestSpec(payloads.CHAT_PATH, self.translated_stream_body, auth),
            ),
            *(
                Paired(
                    native,
                    gateway,
                    RequestSpec(payloads.CHAT_PATH, self.native_bodies[native.name][1], auth),
                )
                for native in natives
            ),
        ]
        for paired in pair:
            probe(gateway.port, paired.spec, b"data: [DONE]", f"streaming via {paired.run.name}")
            paired.run.tally.probes += 1
        return pair

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
        pair: list[Paired],
        halved: Collection[str] = (),
        after_round: Callable[[int], None] | None = None,
    ) -> None:
        """Interleaved N-connection runs: A B C D, D C B A, A B C D, ...; then each target's
        total. After each round, the TTFB ``pair`` (all on ``gateway_stream``), in the
        round's order too, and ``after_round(number)``; then each stream's pooled TTFB.

        Reversing the order every round gives each target every position equally often (two
        rounds per cycle), so a machine drifting over the rounds favours none of them. The
        runs named in ``halved`` last half as long (warm-up too): the routing pair, compared
        only with each other, and issue 13's paths, compared with the OpenAI path by pooled
        req/s, pool enough over the rounds at half the bench's time.
        """
        conns, total = self.plan.connections, self.plan.rounds
        order = list(zip(servers, runs, chats, strict=True))
        for number in range(1, total + 1):
            forward = number % 2 == 1
            for server, run, chat in order if forward else order[::-1]:
                label = f"c{conns} round {number}/{total}"
                share = 0.5 if run.name in halved else 1.0
                run.rounds.append(self._load(run, server, chat, conns, label, share))
                self._settle(server, run)
            for paired in pair if forward else pair[::-1]:
                self._ttfb(paired.run, paired.gateway, paired.spec, f"round {number}/{total}")
            if after_round is not None:
                after_round(number)
        for run in runs:
            run.load[f"c{conns}"] = combine(f"{run.name}_c{conns}", run.rounds)
        for paired in pair:
            paired.run.ttfb = pool_ttfb(paired.run.name, paired.run.ttfb_rounds)

    def _paired(
        self, order: list[tuple[Gateway | ForwarderProcess, TargetRun, RequestSpec]]
    ) -> None:
        """The 1-connection added latency of each of ``order`` and of the direct upstream,
        asked in turn (:mod:`bench.pairing`): the machine's phase cancels out of the per-turn
        differences, which separate 1-connection runs minutes apart cannot do."""
        turns, warmup = self.plan.paired_turns, max(1, self.plan.paired_turns // 10)
        auth = {"Authorization": "Bearer bench"}
        direct = RequestSpec(payloads.CHAT_PATH, self.chat_body, auth)
        targets = [pairing.Target("direct", self.upstream.port, direct)]
        targets += [pairing.Target(run.name, server.port, chat) for server, run, chat in order]
        progress(f"paired at 1 connection: {warmup} + {turns} turns of {len(targets)} targets ...")
        try:
            pairing.measure(targets, turns, warmup)
        finally:
            for target in targets:
                target.close()
        for _server, run, _chat in order:
            run.tally.paired += turns + warmup
        for server, run, _chat in order:
            self._settle(server, run)
        self.paired = pairing.summarise(targets)

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
        self,
        run: TargetRun,
        server: Server,
        chat: RequestSpec,
        conns: int,
        what: str,
        share: float = 1.0,
    ) -> LoadResult:
        """One warm-up then one measured wrk run (both counted in the request tally), each
        ``share`` of the plan's length."""
        counted = isinstance(server, Gateway)
        warmup, duration = share * self.plan.warmup_s, share * self.plan.duration_s
        label = f"{run.name}_c{conns}"
        progress(f"{run.name} {what}: {warmup:g} s warm-up, then {duration:g} s ...")
        warm = self.tool.run(label, server.base_url, chat, conns, warmup, counted)
        run.tally.add_load(warm)
        return self._measured(run, server, chat, conns, duration, label)

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

    def _ttfb(self, run: TargetRun, server: Server, stream: RequestSpec, rnd: str = "") -> None:
        """One TTFB measurement: the target's (or, with ``rnd``, one more of its rounds)."""
        what = f", {rnd}" if rnd else ""
        count = self.plan.ttfb_requests
        progress(f"streaming TTFB via {run.name}{what}: {count} requests ...")
        result = measure_ttfb(run.name, server.port, stream, count)
        if rnd:
            run.ttfb_rounds.append(result)
        else:
            run.ttfb = result
        run.tally.add_ttfb(result)
        server.check_alive()

    def _soak(self, run: TargetRun, gateway: Gateway, chat: RequestSpec) -> None:
        conns, seconds = self.plan.connections, self.plan.soak_s
        label = f"{run.name}_soak"
        progress(f"{label}: {seconds:g} s at {conns} connections ...")
        run.load["soak"] = self._measured(run, gateway, chat, conns, seconds, label)
        time.sleep(0.5)
        run.rss_kib["after_soak"] = gateway.rss_kib()
