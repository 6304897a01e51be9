"""Issue 11's performance bar in the bench: a routed model against a pinned one, and failover.

One more no-logging gateway (``gateway_routing``) serves both measurements. Its organisation
holds a BYOK OpenAI key, stored the way an operator's tooling would store it — through the
PostHog-compatible provider-keys API, which checks the key live against the endpoint's
``/models`` (nginx answers it) — whose base URL is the upstream's ``/byok`` location; the
operator's managed OpenAI key points at the usual location. So:

* *routed* (``gpt-4o-mini``, the gateway key): planned from the registry, BYOK first — the key
  store's cached lookup, decryption, the planner — and served by the org's endpoint;
* *pinned* (``gpt-4o-mini/openai`` with the client's own key in ``Authorization`` and the
  gateway key in ``Helicone-Auth``): one attempt, no key store. Both are targets of the
  interleaved rounds; the bar is the routed one's pooled throughput over the pinned one's.

For failover, a second provider (:data:`bench.payloads.FAILING_PROVIDER`) points at the
upstream's ``/failing`` location, a 503 in microseconds, and the gateway runs with
``GATEWAY_PROVIDER_COOLDOWN_SECONDS=0``: otherwise health would move the failing provider to
the end of the plan after three requests, and the chain would no longer fail over. After each
round, three requests take turns on one connection each (order reversed every turn): the chain
(failing provider, then ``gpt-4o-mini/openai``), the same request served directly
(``gpt-4o-mini/openai``), and the failed attempt's own request straight to the failing
location. What a failover adds beyond its failed attempt is
``p50(chain) - p50(direct) - p50(failed attempt)``, on the pooled samples of all rounds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import payloads
from bench.gateway_proc import Gateway
from bench.load import RequestSpec, percentile
from bench.procs import BenchError
from bench.ttfb import Exchange, RawHttpClient, raw_request

NAME = "gateway_routing"
BYOK_KEY = "sk-bench-org-own"
"""The organisation's own OpenAI key (the provider-keys API wants OpenAI's ``sk-`` format)."""
CLIENT_KEY = "sk-bench-client"
"""The pinned request's own provider key."""
PROVIDER_KEYS_PATH = "/api/environments/@current/llm_analytics/provider_keys/"
KINDS = ("failover", "direct", "failed")
"""The three requests of a failover turn (see the module doc)."""


def routing_gateway(workdir: Path, upstream_base_url: str) -> Gateway:
    """The no-logging gateway with the failing provider and no health cool-down."""
    prefix = payloads.FAILING_PROVIDER.upper()
    return Gateway(
        workdir,
        upstream_base_url,
        name=NAME,
        logging=False,
        extra_env={
            f"{prefix}_API_KEY": "bench",
            f"{prefix}_BASE_URL": f"{upstream_base_url}{payloads.FAILING_PREFIX}/v1",
            "GATEWAY_PROVIDER_COOLDOWN_SECONDS": "0",
        },
    )


def store_byok_key(gateway: Gateway, upstream_base_url: str) -> str:
    """Store the organisation's OpenAI key through the provider-keys API; its id."""
    body = {
        "provider": "openai",
        "name": "bench own endpoint",
        "api_key": BYOK_KEY,
        "base_url": f"{upstream_base_url}{payloads.BYOK_PREFIX}/v1",
        "set_as_active": True,
    }
    status, answer = gateway.call("POST", PROVIDER_KEYS_PATH, body)
    if status != 201 or not isinstance(answer, dict) or answer.get("state") != "ok":
        raise BenchError(f"storing the BYOK key answered {status}: {answer!r}")
    return str(answer["id"])


@dataclass(frozen=True)
class RoutingSpecs:
    """The requests of the routing measurements (gateway port, upstream port for ``failed``)."""

    routed: RequestSpec
    pinned: RequestSpec
    failover: RequestSpec
    direct: RequestSpec
    failed: RequestSpec


def routing_specs(gateway_key: str) -> RoutingSpecs:
    gateway = {"Authorization": f"Bearer {gateway_key}"}
    own_key = {"Authorization": f"Bearer {CLIENT_KEY}", "Helicone-Auth": f"Bearer {gateway_key}"}

    def chat(model: str, headers: dict[str, str], path: str = payloads.CHAT_PATH) -> RequestSpec:
        return RequestSpec(path, payloads.request_body(model), headers)

    return RoutingSpecs(
        routed=chat(payloads.ROUTED_MODEL, gateway),
        pinned=chat(payloads.PINNED_MODEL, own_key),
        failover=chat(payloads.FAILOVER_MODEL, gateway),
        direct=chat(payloads.PINNED_MODEL, gateway),
        failed=chat(
            payloads.PINNED_MODEL, {"Authorization": "Bearer bench"}, payloads.FAILING_PATH
        ),
    )


def _served(ex: Exchange, request_id: str) -> str | None:
    """Why ``ex`` is not a chat completion served with ``request_id`` (None when it is)."""
    if ex.status != 200 or b'"chat.completion"' not in ex.body:
        return f"status {ex.status}: {ex.body[:200]!r}"
    if ex.headers.get("x-request-id") != request_id:
        return f"served by {ex.headers.get('x-request-id')!r}, not {request_id!r}"
    return None


def failover_problem(ex: Exchange) -> str | None:
    """The chain must be served by its second attempt (the org's endpoint)."""
    problem = _served(ex, payloads.BYOK_REQUEST_ID)
    index = ex.headers.get("helicone-fallback-index")
    if problem is None and index != "1":
        problem = f"Helicone-Fallback-Index {index!r}, not '1': it did not fail over"
    return problem


def direct_problem(ex: Exchange) -> str | None:
    return _served(ex, payloads.BYOK_REQUEST_ID)


def failed_problem(ex: Exchange) -> str | None:
    return None if ex.status == 503 else f"status {ex.status}, not 503: {ex.body[:200]!r}"


CHECKS: dict[str, Callable[[Exchange], str | None]] = {
    "failover": failover_problem,
    "direct": direct_problem,
    "failed": failed_problem,
}


@dataclass
class FailoverResult:
    """Full-response times (ms percentiles) of the three requests of the failover turns."""

    requests: int
    """Turns measured (each kind answered this many times, errors aside)."""
    ms: dict[str, dict[str, float]]
    """Per kind (:data:`KINDS`): p50, p90, p99, mean, max."""
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    sent: int = 0
    samples_s: dict[str, list[float]] = field(default_factory=dict, repr=False)
    """The timings themselves, so rounds can be pooled (:func:`pool_failover`); not saved."""

    @property
    def added_p50_ms(self) -> float:
        """What the failover adds beyond its failed attempt, at the median."""
        return self.added_ms("p50")

    def added_ms(self, pct: str) -> float:
        ms = self.ms
        return ms["failover"][pct] - ms["direct"][pct] - ms["failed"][pct]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["samples_s"]
        return data


def _summary(seconds: Sequence[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    stats = {f"p{p}": percentile(ms, p) for p in (50, 90, 99)}
    stats["mean"] = sum(ms) / len(ms) if ms else float("nan")
    stats["max"] = ms[-1] if ms else float("nan")
    return stats


def summarise(samples: dict[str, list[float]], errors: list[str], sent: int) -> FailoverResult:
    """A result from raw timings (seconds) per kind."""
    return FailoverResult(
        requests=min(len(samples.get(kind, [])) for kind in KINDS),
        ms={kind: _summary(samples.get(kind, [])) for kind in KINDS},
        errors=len(errors),
        error_samples=errors[:3],
        sent=sent,
        samples_s={kind: list(samples.get(kind, [])) for kind in KINDS},
    )


def measure_failover(
    gateway_port: int, upstream_port: int, specs: RoutingSpecs, count: int, warmup: int = 20
) -> FailoverResult:
    """``warmup`` unmeasured then ``count`` measured turns of the three requests."""
    ports = {"failover": gateway_port, "direct": gateway_port, "failed": upstream_port}
    raws = {
        "failover": raw_request(gateway_port, specs.failover),
        "direct": raw_request(gateway_port, specs.direct),
        "failed": raw_request(upstream_port, specs.failed),
    }
    clients = {kind: RawHttpClient(port) for kind, port in ports.items()}
    samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
    errors: list[str] = []
    try:
        for turn in range(warmup + count):
            for kind in KINDS if turn % 2 == 0 else KINDS[::-1]:
                try:
                    ex = clients[kind].request(raws[kind])
                except (OSError, ValueError, IndexError) as exc:
                    clients[kind].close()
                    errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                    continue
                problem = CHECKS[kind](ex)
                if problem is not None:
                    errors.append(f"{kind}: {problem}")
                elif turn >= warmup:
                    samples[kind].append(ex.total_s)
    finally:
        for client in clients.values():
            client.close()
    if not all(samples.values()):
        raise BenchError(f"failover: every request of a kind failed, e.g. {errors[:2]}")
    return summarise(samples, errors, 3 * (warmup + count))


def pool_failover(results: Sequence[FailoverResult]) -> FailoverResult:
    """Several rounds as one: percentiles over all their samples."""
    if not results:
        raise ValueError("pool_failover() needs at least one measurement")
    samples = {kind: [s for r in results for s in r.samples_s[kind]] for kind in KINDS}
    pooled = summarise(samples, [], sum(r.sent for r in results))
    pooled.errors = sum(r.errors for r in results)
    pooled.error_samples = [e for r in results for e in r.error_samples][:3]
    return pooled
