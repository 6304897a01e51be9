"""The limiter: one request's policy → its counter → admitted (headers) or a 429.

Call :meth:`Limiter.acquire` after authentication and before forwarding; it returns a
:class:`Ticket` (or None when no policy applies), and :meth:`Limiter.settle` gives a cents
policy's reservation back against the real cost once the answer is in (:meth:`Limiter.limit`
does both around a block).

Scopes (custom-rate-limits page): a counter per organisation and canonical policy, and per
``Helicone-User-Id`` (``s=user``) or per ``Helicone-Property-<name>`` value (``s=<name>``). A
segmented policy whose header is missing or empty is a 400 naming the header (the reference
requires the user id; a property is treated the same way, our choice: a limit the client asked
for is never silently skipped). Two different policies never share a counter: a policy is the
client's own declaration, so changing it starts afresh.

Failing open (reference "availability": feature failures must not block requests): when the
counter store cannot be reached the request is served without a limit and without the
rate-limit headers; the fault is counted (``/healthz``), logged at most once per
``log_interval``, and the store is not asked again for ``retry_interval`` (so an outage costs
requests nothing), after which the next request tries it again: recovery needs no restart.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from gateway.context import RequestContext
from gateway.errors import GatewayError
from logging_pipeline.capture import Capture
from providers.registry import Registry
from ratelimit._buckets import (
    BackendUnavailable,
    Buckets,
    MemoryBuckets,
    RedisBuckets,
    retry_after,
)
from ratelimit._cost import CostEstimate, answer_cost
from ratelimit._lease import LeasedBuckets
from ratelimit._policy import PolicyError, RatePolicy, parse_policy
from ratelimit._redis import RedisScripts

logger = logging.getLogger("ratelimit")

DEFAULT_PREFIX = "gw:rl:"
LOG_INTERVAL_SECONDS = 60.0
RETRY_INTERVAL_SECONDS = 1.0
MAX_PARSED = 1024


@dataclass(slots=True)
class Ticket:
    """An admitted request: its counter, and for a cents policy the reservation to settle."""

    key: str
    policy: RatePolicy
    reserved: int
    """Counter units taken (1 for a request, the estimate in nano-dollars for cents)."""
    capture: Capture | None = None
    """A cents policy's view of the answer (the request log's capture, or one kept for it)."""
    model: str = ""
    """The model the answer is priced as when it names none (passthrough)."""


class Limiter:
    """The process's rate limiter over one :class:`~ratelimit._buckets.Buckets` backend."""

    def __init__(
        self,
        buckets: Buckets,
        backend: str = "memory",
        *,
        prices: Callable[[], Registry | None] = lambda: None,
        prefix: str = DEFAULT_PREFIX,
        log_interval: float = LOG_INTERVAL_SECONDS,
        retry_interval: float = RETRY_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        scripts: RedisScripts | None = None,
    ) -> None:
        self._buckets = buckets
        self.backend = backend
        self._prices = prices
        self._prefix = prefix
        self._log_interval = log_interval
        self._retry_interval = retry_interval
        self._clock = clock
        self._scripts = scripts
        self._down_until = 0.0
        self._degraded = False
        self._last_report = -math.inf
        self._unreported = 0
        self.faults = 0
        """Calls to the counter store that failed."""
        self.unlimited = 0
        """Requests served without their limit because the store was unreachable."""
        self._parsed: dict[str, RatePolicy] = {}
        """Policies by header value: a client sends the same few values again and again."""

    @classmethod
    def create(
        cls,
        redis_url: str | None,
        *,
        prices: Callable[[], Registry | None] = lambda: None,
        prefix: str = DEFAULT_PREFIX,
    ) -> Limiter:
        """In process without ``redis_url``; on that Redis server with it."""
        if not redis_url:
            return cls(MemoryBuckets(), "memory", prices=prices, prefix=prefix)
        scripts = RedisScripts(redis_url)
        buckets = LeasedBuckets(RedisBuckets(scripts))
        return cls(buckets, "redis", prices=prices, prefix=prefix, scripts=scripts)

    async def close(self) -> None:
        if isinstance(self._buckets, (RedisBuckets, LeasedBuckets)):
            await self._buckets.close()
        if self._scripts is not None:
            await self._scripts.close()

    # -- the request path ------------------------------------------------------------------

    async def acquire(
        self, ctx: RequestContext, estimate: Callable[[], CostEstimate] | None = None
    ) -> Ticket | None:
        """Count the request against its policy (``estimate``: a cents policy's reservation).

        Sets the ``Helicone-RateLimit-*`` headers on ``ctx``; raises a 429 (with them and
        ``Retry-After``) when the quota is spent, a 400 for an invalid policy or a missing
        segment header. None when no policy applies or the store is unreachable (fail open).
        """
        policy = self._policy(ctx)
        if policy is None:
            return None
        key = self._key(ctx, policy)
        cost = estimate() if estimate is not None and policy.unit == "cents" else None
        amount = 1 if policy.unit == "request" else (cost.nano_usd if cost else 0)
        if self._clock() < self._down_until:
            self.unlimited += 1
            return None
        quota, window_us = policy.quota_units, policy.window * 1_000_000
        try:
            decision = await self._buckets.take(key, quota, window_us, amount)
        except BackendUnavailable as exc:
            self._fault(exc)
            self.unlimited += 1
            return None
        self._reachable()
        remaining = max(0, math.floor((quota - decision.level) / policy.scale))
        if not decision.admitted:
            wait = retry_after(decision.level, amount, quota, window_us)
            ctx.rate_limited(policy.quota, remaining, policy.canonical, wait)
            raise GatewayError(429, _refusal(policy, amount, wait), code="rate_limited")
        ctx.rate_limit_admitted(*policy.header_values, remaining)
        if policy.unit == "request":
            return Ticket(key, policy, amount)
        capture = ctx.capture
        if capture is None and ctx.identity is not None:
            # Logging is off: keep a capture anyway (never journaled, no sink) so the relay
            # records the answer and its usage for settling.
            capture = ctx.capture = ctx.new_capture(ctx.identity, "")
        return Ticket(key, policy, amount, capture, cost.model if cost else "")

    async def take_quota(self, name: str, quota: int, window_seconds: int) -> int | None:
        """One unit of a gateway-defined quota (``name`` identifies the counter, e.g. an API's
        per-org limit): None when admitted (or the store is unreachable: fail open, like
        policies), else the seconds until a unit is free. Same counters and backend as
        ``Helicone-RateLimit-Policy``, under their own key space."""
        if self._clock() < self._down_until:
            self.unlimited += 1
            return None
        window_us = window_seconds * 1_000_000
        try:
            decision = await self._buckets.take(f"{self._prefix}q|{name}", quota, window_us, 1)
        except BackendUnavailable as exc:
            self._fault(exc)
            self.unlimited += 1
            return None
        self._reachable()
        if decision.admitted:
            return None
        return retry_after(decision.level, 1, quota, window_us)

    async def settle(self, ticket: Ticket | None, nano_usd: int | None) -> None:
        """Replace a cents reservation by the real cost (None: unknown, the reservation
        stands). Requests policies have nothing to settle."""
        if ticket is None or ticket.policy.unit != "cents" or nano_usd is None:
            return
        delta = nano_usd - ticket.reserved
        if delta == 0 or self._clock() < self._down_until:
            return
        policy = ticket.policy
        try:
            await self._buckets.adjust(
                ticket.key, policy.quota_units, policy.window * 1_000_000, delta
            )
        except BackendUnavailable as exc:
            self._fault(exc)
            return
        self._reachable()

    @staticmethod
    def wanted(ctx: RequestContext) -> bool:
        """Whether the request asks for a rate limit at all (most do not: the hot path skips
        :meth:`limit` and its context manager then)."""
        options = ctx.options
        return options.rate_limit_policy is not None or options.rate_limit_alias is not None

    @asynccontextmanager
    async def limit(
        self, ctx: RequestContext, estimate: Callable[[], CostEstimate] | None = None
    ) -> AsyncIterator[Ticket | None]:
        """:meth:`acquire` before the block, :meth:`settle` with the answer's cost after it
        (also when it raised: an error costs nothing)."""
        ticket = await self.acquire(ctx, estimate)
        try:
            yield ticket
        finally:
            if ticket is not None and ticket.capture is not None:
                await self.settle(ticket, self.real_cost(ticket))

    def real_cost(self, ticket: Ticket) -> int | None:
        """The answer's cost (nano-dollars) from the ticket's capture, if it can be known."""
        prices = self._prices()
        if ticket.capture is None or prices is None:
            return None
        try:
            return answer_cost(prices, ticket.capture, ticket.model)
        except Exception:  # a body we cannot read must not fail the request after the fact
            logger.exception("could not price the answer for a cents rate limit")
            return None

    # -- parts -----------------------------------------------------------------------------

    def _parse(self, value: str) -> RatePolicy:
        policy = self._parsed.get(value)
        if policy is None:
            policy = parse_policy(value)
            if len(self._parsed) >= MAX_PARSED:  # values come from clients: stay bounded
                self._parsed.clear()
            self._parsed[value] = policy
        return policy

    def _policy(self, ctx: RequestContext) -> RatePolicy | None:
        options = ctx.options
        if options.rate_limit_policy is not None:
            try:
                return self._parse(options.rate_limit_policy)
            except PolicyError as exc:
                raise GatewayError(
                    400,
                    f"Invalid Helicone-RateLimit-Policy ({exc.part}): {exc.message}",
                    code="invalid_rate_limit_policy",
                    param=exc.part,
                ) from exc
        if options.rate_limit_alias is not None:
            try:
                return self._parse(options.rate_limit_alias)
            except PolicyError:
                return None  # the integration pages' "basic-100": not a policy, ignored
        return None

    def _key(self, ctx: RequestContext, policy: RatePolicy) -> str:
        assert ctx.identity is not None  # acquire runs after authentication
        base = f"{self._prefix}{ctx.identity.org_id}|{policy.canonical}|"
        segment = policy.segment
        if segment is None:
            return base
        options = ctx.options
        if segment == "user":
            if not options.user_id.strip():
                raise GatewayError(
                    400,
                    f"The rate-limit policy {policy.canonical!r} is per user: send the "
                    "Helicone-User-Id header.",
                    code="missing_user_id",
                    param="Helicone-User-Id",
                )
            return base + "u:" + options.user_id
        value = options.properties.get(segment, "")
        if not value.strip():
            header = f"Helicone-Property-{segment}"
            raise GatewayError(
                400,
                f"The rate-limit policy {policy.canonical!r} is per property {segment!r}: send "
                f"the {header} header.",
                code="missing_property",
                param=header,
            )
        return base + "p:" + value

    def _fault(self, exc: BackendUnavailable) -> None:
        now = self._clock()
        self.faults += 1
        self._unreported += 1
        self._degraded = True
        self._down_until = now + self._retry_interval
        if now - self._last_report >= self._log_interval:
            logger.warning(
                "rate limits are not enforced (failing open): the %s counter store is "
                "unreachable (%s); %d failed call(s) since the last report",
                self.backend, exc, self._unreported,
            )
            self._last_report = now
            self._unreported = 0

    def _reachable(self) -> None:
        if self._degraded:
            self._degraded = False
            logger.warning("rate limits are enforced again: the %s counter store is back",
                           self.backend)

    def health(self) -> dict[str, object]:
        """For ``/healthz``: numbers and a state only (an error text may name hosts)."""
        return {
            "backend": self.backend,
            "state": "degraded" if self._degraded else "ok",
            "faults": self.faults,
            "unlimited": self.unlimited,
        }


def _refusal(policy: RatePolicy, amount: int, wait: int) -> str:
    per = {"user": " per user"}.get(policy.segment or "", "")
    if policy.segment not in (None, "user"):
        per = f" per {policy.segment!r}"
    if policy.unit == "cents":
        if amount > policy.quota_units:
            return (
                f"Rate limit exceeded: this request's estimated cost "
                f"({amount / policy.scale:.4f} cents) is above the whole quota of policy "
                f"{policy.canonical!r} ({policy.quota} cents per {policy.window} s{per})."
            )
        what = f"{policy.quota} cents per {policy.window} s{per}"
    else:
        what = f"{policy.quota} requests per {policy.window} s{per}"
    return (
        f"Rate limit exceeded: policy {policy.canonical!r} allows {what}; "
        f"retry in {wait} s."
    )
