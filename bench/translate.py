"""Micro-benchmark: what a request costs the gateway by provider, in process (issue 13's bar).

The bench's throughput bar for the Gemini- and Bedrock-translated paths (>= 85% of the OpenAI
path's at 32 connections) is, on a CPU-bound machine, a bar on the gateway's CPU per request.
Most of that is the same for every provider (the server, authentication, the body parse, the
plan, the upstream client); this times the part that is not, through the entry points the
data plane itself calls, for the bench's own request (:func:`bench.payloads.request_body`)
and the fake upstream's canned answers:

1. the plan of the model string (``Router.plan``, remembered after the first request);
2. ``Exchange.prepare`` for its first attempt: the upstream URL, headers (key, and for
   Bedrock the SigV4 signature on the process's one ``Signer``) and body bytes — the OpenAI
   path forwards the client's bytes as they are, the others translate;
3. ``relay.forward`` of the canned answer, bytes in, client bytes out: the OpenAI path relays
   them, the others parse, translate back into a ``chat.completion`` and serialise.

No network: the answer is an in-memory object with nginx's headers and body, and the
coroutines never suspend, so they are run to completion without an event loop. Usage is not
extracted here because the no-logging gateway (the bar's) does not extract it either.

Providers are timed in interleaved repetitions (a batch of ``--batch`` requests each, the
order rotated and reversed from one repetition to the next, so that a slow phase of a shared
machine falls on all of them alike); each request is timed alone, its per-request state made
just before it, untimed, as the server makes it. Reported per provider: the median and the minimum
per-request time over repetitions, and the extra over the OpenAI path's as the median of the
repetitions' paired differences (each batch against the OpenAI batch of the same repetition)
and as the difference of the minimums — on a busy machine the minimums are the steadier
figures. ``--profile PROVIDER`` runs cProfile over that provider's loop instead::

    python -m bench.translate [--reps 30] [--batch 500] [--json] [--profile bedrock]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from bench import payloads
from bench.gateway_proc import BEDROCK_KEY, BEDROCK_REGION
from gateway.asgi import Message
from gateway.context import RequestContext, parse_options
from gateway.relay import forward
from gateway.routing import Exchange, Router
from gateway.runtime import Runtime
from gateway.settings import Settings
from providers.registry import Registry

PROVIDERS = ("openai", "anthropic", "gemini", "bedrock")
MODELS = {
    "openai": payloads.CHAT_MODEL,
    "anthropic": payloads.TRANSLATED_MODEL,
    "gemini": payloads.GEMINI_MODEL,
    "bedrock": payloads.BEDROCK_MODEL,
}
ANSWERS: dict[str, Callable[[], str]] = {
    "openai": payloads.chat_completion,
    "anthropic": payloads.anthropic_message,
    "gemini": payloads.gemini_response,
    "bedrock": payloads.converse_response,
}
UPSTREAM = "http://127.0.0.1:9"
"""The fake upstream's base URL (never connected to)."""
ENDPOINT = "/chat/completions"
GATEWAY_KEY = "sk-helicone-bench-0000000-0000000-0000000-0000000"


def _settings(data_dir: Path) -> Settings:
    """The bench's no-logging gateway (:mod:`bench.gateway_proc`), as settings."""
    keys = {
        "openai": "bench",
        "anthropic": "bench",
        "google-ai-studio": "bench",
        "bedrock": BEDROCK_KEY,
    }
    urls = {
        "openai": f"{UPSTREAM}/v1",
        "anthropic": UPSTREAM,
        "google-ai-studio": UPSTREAM,
        "bedrock": UPSTREAM,
    }
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        database_url=None,
        logging_enabled=False,
        provider_api_keys=keys,
        provider_base_urls=urls,
        bedrock_region=BEDROCK_REGION,
    )


class _Answer:
    """An upstream answer as aiohttp hands it to the relay: nginx's headers and one body."""

    __slots__ = ("_body", "raw_headers")

    status = 200
    content_type = "application/json"
    content: Any = None

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.raw_headers = (
            (b"Server", b"nginx"),
            (b"Date", b"Wed, 02 Dec 2026 12:00:00 GMT"),
            (b"Content-Type", b"application/json"),
            (b"Content-Length", str(len(body)).encode()),
            (b"Connection", b"keep-alive"),
        )

    async def read(self) -> bytes:
        return self._body

    def close(self) -> None:
        return None


def _run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (no I/O behind it) to its result."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("the coroutine suspended: it was expected to run without I/O")


async def _receive() -> Message:
    return {"type": "http.disconnect"}


class Case:
    """One provider's request: what the data plane has before it plans (headers, body bytes,
    the parsed body) and the upstream's answer."""

    def __init__(self, runtime: Runtime, router: Router, provider: str) -> None:
        self.provider = provider
        self.runtime = runtime
        self.router = router
        self.model = MODELS[provider]
        self.raw = payloads.request_body(self.model).encode()
        self.headers = {
            "host": "127.0.0.1:8080",
            "content-length": str(len(self.raw)),
            "content-type": "application/json",
            "authorization": f"Bearer {GATEWAY_KEY}",
        }
        self.answer = _Answer(ANSWERS[provider]().encode())
        self.last: Message | None = None

    async def _send(self, message: Message) -> None:
        self.last = message  # the client's bytes are sent and dropped, one request at a time

    def state(self) -> tuple[RequestContext, dict[str, Any]]:
        """Per-request state the data plane builds alike for every provider before this
        work (the context, the parsed body): made afresh for each request, untimed."""
        return RequestContext(parse_options(dict(self.headers))), orjson.loads(self.raw)

    def one(self, ctx: RequestContext, payload: dict[str, Any]) -> None:
        """The provider-dependent work of one request (module doc, steps 1-3)."""
        attempt = self.router.plan(self.model, ENDPOINT, None)[0]
        exchange = Exchange(self.runtime, ctx, ENDPOINT, payload, self.raw, self.headers)
        call = _run(exchange.prepare(attempt, exchange.key_for(attempt, None)))
        _run(forward(ctx, self.answer, _receive, self._send, call.translation, ctx.started))

    def batch(self, count: int) -> float:
        """Seconds per request over ``count`` requests, each timed alone (its state is made
        just before it, as the server makes it, so it is in the caches as it would be)."""
        one, state, clock = self.one, self.state, time.perf_counter_ns
        total = 0
        for _ in range(count):
            ctx, payload = state()
            started = clock()
            one(ctx, payload)
            total += clock() - started
        return total / count / 1e9

    def client_body(self) -> bytes:
        """What the client gets for one request (to check the case works)."""
        self.one(*self.state())
        assert self.last is not None
        body: bytes = self.last["body"]
        return body


@contextmanager
def cases(providers: tuple[str, ...] = PROVIDERS) -> Iterator[dict[str, Case]]:
    """A runtime like the bench's no-logging gateway (not started: nothing here does I/O),
    its router, and one :class:`Case` per provider."""
    with tempfile.TemporaryDirectory(prefix="bench-translate-") as tmp:
        runtime = Runtime(_settings(Path(tmp)))
        registry = Registry.load()
        runtime.registry = registry  # what start() sets: the translations' default limits
        router = Router(runtime, registry)
        yield {name: Case(runtime, router, name) for name in providers}


def measure(reps: int, batch: int, warmup: int = 300) -> dict[str, dict[str, float]]:
    """Microseconds per request by provider (median and minimum over ``reps``), and each
    one's extra over OpenAI's (median of paired differences, difference of minimums)."""
    with cases() as by_name:
        for case in by_name.values():
            case.batch(warmup)
        samples: dict[str, list[float]] = {name: [] for name in PROVIDERS}
        order = list(PROVIDERS)
        for rep in range(reps):
            for name in order if rep % 2 == 0 else reversed(order):
                samples[name].append(by_name[name].batch(batch) * 1e6)
            order = order[1:] + order[:1]  # every provider leads in turn
    result: dict[str, dict[str, float]] = {}
    base = samples["openai"]
    for name in PROVIDERS:
        result[name] = {
            "median_us": statistics.median(samples[name]),
            "min_us": min(samples[name]),
            # Paired: each rep's OpenAI batch ran next to this one, in the same machine phase.
            "extra_us": statistics.median(a - b for a, b in zip(samples[name], base, strict=True)),
            "extra_min_us": min(samples[name]) - min(base),
        }
    return result


def profile(provider: str, requests: int, top: int = 30) -> str:
    """cProfile of ``requests`` requests of one provider: the top functions by own time."""
    with cases((provider,)) as by_name:
        case = by_name[provider]
        case.batch(300)
        profiler = cProfile.Profile()
        for _ in range(requests):
            ctx, payload = case.state()
            profiler.enable()
            case.one(ctx, payload)
            profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.translate", description=__doc__)
    parser.add_argument("--reps", type=int, default=30, help="interleaved repetitions")
    parser.add_argument("--batch", type=int, default=500, help="requests per provider per rep")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--profile", choices=PROVIDERS, help="cProfile one provider instead")
    args = parser.parse_args(argv)
    if args.profile:
        print(profile(args.profile, max(1, args.reps * args.batch // 4)))
        return 0
    result = measure(max(1, args.reps), max(1, args.batch))
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"provider-dependent work per request (plan, prepare, relay of the answer; median of "
        f"{args.reps} interleaved reps of {args.batch})"
    )
    for name, figures in result.items():
        extra = (
            ""
            if name == "openai"
            else f"  over openai: +{figures['extra_us']:.1f} us (median of pairs), "
            f"+{figures['extra_min_us']:.1f} us (min)"
        )
        median, least = figures["median_us"], figures["min_us"]
        print(f"  {name:<10} median {median:6.1f} us  min {least:6.1f}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
