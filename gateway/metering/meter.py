"""The meter: credit accounts and budgets applied to requests (reserve, settle, release).

One :class:`Meter` per process, owned by the runtime. Per request, :meth:`Meter.session`
answers whether anything is metered for it: the organisation's credit account (credits
attempts are charged to it) and the budgets that apply (the organisation's, the gateway key's,
the ``Helicone-User-Id`` user's). When nothing is, it returns None and the request pays
nothing more: a dictionary lookup in the per-organisation policy cache (the store is asked
once per organisation per ``GATEWAY_CREDITS_CACHE_TTL_SECONDS``, concurrent misses sharing one
query), no body parsing, no answer recording, no database write. Other processes' changes to
accounts and budgets (the CLI, another replica's admin API) are seen within that TTL; this
process's admin API invalidates at once.

A metered request goes through :class:`MeterSession`, attempt by attempt:

1. :meth:`MeterSession.reserve` before an attempt is sent: its worst-case cost
   (:mod:`gateway.metering.estimate`) is held on every budget that applies and, for a
   *credits* attempt (the operator's managed key), on the credit account, in one transaction
   (:class:`gateway.store.CreditStore`). A budget that cannot cover it raises
   :class:`BudgetExceeded` (429 ``budget_exceeded``, the gateway's own refusal: the walk
   ends); an account that cannot raises :class:`InsufficientCredits`, whose outcome fails over
   to the next attempt (the org's own key…);
2. :meth:`MeterSession.finish` after it: the attempt that was committed to the client is
   settled to the cost of the usage its answer reports (read from the bytes the relay
   recorded in the request's :class:`~gateway.context.AnswerTap`, so logging may be off), a
   failed-over attempt's hold is released. Holds left behind by a process that died are
   released by the sweep (:meth:`Meter.start`: at startup, then every
   ``GATEWAY_CREDIT_SWEEP_INTERVAL_SECONDS``) once ``GATEWAY_CREDIT_HOLD_TTL_SECONDS`` pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson

from gateway.context import AnswerTap, RequestContext
from gateway.errors import GatewayError
from gateway.metering.estimate import (
    nano_to_usd,
    output_tokens,
    prompt_tokens,
    text_tokens,
    worst_case_nano,
)
from gateway.store import (
    BudgetRefused,
    BudgetRule,
    CreditsRefused,
    CreditStore,
    HoldRecord,
    KeyIdentity,
    MeterPolicy,
    period_start,
)
from gateway.store._schema import utc_now
from providers.cost import ModelPrice
from providers.failover import INSUFFICIENT_CREDITS, Outcome, insufficient_credits
from providers.formats import response_reader
from providers.registry import Registry
from providers.usage import Usage

logger = logging.getLogger("gateway.metering")

BUDGET_EXCEEDED = "budget_exceeded"
_MAX_ORGS = 10_000
_PERIOD_WORDS = {"day": ("daily", "UTC day"), "month": ("monthly", "UTC calendar month")}


class InsufficientCredits(Exception):
    """A credits attempt the organisation's account cannot pay for; ``outcome`` fails over."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


class BudgetExceeded(GatewayError):
    """A budget refused the request: 429 ``budget_exceeded``, naming the budget."""

    def __init__(self, rule: BudgetRule, who: str) -> None:
        adjective, unit = _PERIOD_WORDS[rule.period]
        resets = _next_period(rule)
        message = (
            f"Budget exceeded: the {adjective} budget of {who} (limit "
            f"{nano_to_usd(rule.limit_nano)} USD per {unit}) has too little left for this "
            f"request; it resets at {resets}."
        )
        body = {
            "error": {
                "message": message,
                "type": "rate_limit_error",
                "param": None,
                "code": BUDGET_EXCEEDED,
                "budget": {
                    "id": rule.id,
                    "scope": rule.scope,
                    "subject": rule.subject,
                    "period": rule.period,
                    "limit_usd": nano_to_usd(rule.limit_nano),
                    "resets_at": resets,
                },
            }
        }
        super().__init__(429, message, code=BUDGET_EXCEEDED, payload=body)
        self.rule = rule


def _next_period(rule: BudgetRule) -> str:
    start = period_start(rule.period, utc_now())
    if rule.period == "day":
        end = start + timedelta(days=1)
    else:
        end = (start + timedelta(days=32)).replace(day=1)
    return end.strftime("%Y-%m-%dT%H:%M:%SZ")


def _unpriced(source: str, provider: str, model: str) -> Outcome:
    """A credits attempt for a model the registry has no price for: it cannot be metered,
    so the account does not pay for it (fails over like insufficient credits)."""
    outcome = insufficient_credits(source)
    error = dict(outcome.error or {})
    error["message"] = (
        f"Insufficient credits: model {model!r} at provider {provider!r} has no price in the "
        "model registry, so credits cannot pay for it; use your own provider key."
    )
    assert error["code"] == INSUFFICIENT_CREDITS
    return Outcome(source, 429, error, gateway=True)


@dataclass(slots=True)
class Hold:
    """One attempt's reservation and what settling it needs."""

    record: HoldRecord
    price: ModelPrice | None
    wire: str
    prompt_tokens: int
    output_tokens: int


class MeterSession:
    """The metering of one request (see the module docstring)."""

    __slots__ = ("_account", "_budgets", "_identity", "_meter", "_user_id", "tap")

    def __init__(
        self,
        meter: Meter,
        identity: KeyIdentity,
        user_id: str,
        account: bool,
        budgets: tuple[BudgetRule, ...],
        tap: AnswerTap,
    ) -> None:
        self._meter = meter
        self._identity = identity
        self._user_id = user_id
        self._account = account
        self._budgets = budgets
        self.tap = tap

    @property
    def account(self) -> bool:
        """Whether the organisation has a credit account (credits attempts are metered)."""
        return self._account

    async def reserve(
        self,
        *,
        provider: str,
        model: str | None,
        wire: str,
        body_size: int,
        payload: Mapping[str, Any] | None,
        path: str,
        credits: bool,
        source: str = "",
    ) -> Hold | None:
        """Hold the worst-case cost of sending this attempt (None: nothing to hold).

        ``credits``: the attempt uses the operator's managed key. Raises
        :class:`BudgetExceeded` or :class:`InsufficientCredits`.
        """
        self.tap.status = 0  # set again by the relay if this attempt's answer is committed
        account = credits and self._account
        if not account and not self._budgets:
            return None
        meter = self._meter
        price = meter.registry.lookup(provider, model) if model else None
        if account and price is None:
            raise InsufficientCredits(_unpriced(source, provider, model or "?"))
        prompt = prompt_tokens(body_size, price.context_window if price else None)
        output = output_tokens(payload, path, price.max_output_tokens if price else None)
        # An unpriced request (a budget only) holds 1 nano-USD: an exhausted budget still
        # refuses it.
        amount = max(worst_case_nano(price, prompt, output), 1) if price else 1
        try:
            record = await meter.store.reserve(
                self._identity.org_id,
                amount,
                account=account,
                budget_ids=[rule.id for rule in self._budgets],
                ttl_seconds=meter.hold_ttl,
            )
        except BudgetRefused as refused:
            rule = next(r for r in self._budgets if r.id == refused.budget_id)
            raise BudgetExceeded(rule, self._who(rule)) from None
        except CreditsRefused:
            raise InsufficientCredits(insufficient_credits(source)) from None
        return Hold(record, price, wire, prompt, output)

    async def finish(self, hold: Hold | None) -> None:
        """After an attempt: settle ``hold`` to the committed answer's cost, or release it
        when the attempt was not committed. Never raises (a failure is logged; the hold then
        expires and the sweep releases it)."""
        if hold is None:
            return
        try:
            cost = self.cost(hold) if self.tap.status else 0
            await self._meter.store.settle(hold.record, cost)
        except Exception:
            logger.exception("could not settle credit hold %s", hold.record.id)

    def cost(self, hold: Hold) -> int:
        """The committed answer's cost in nano-USD (0 for an error answer)."""
        tap = self.tap
        if not 200 <= tap.status < 400 or hold.price is None:
            return 0
        reader = response_reader(hold.wire)
        text: str | None = None
        if tap.streamed:
            summary = reader.summarise_stream(tap.body)
            usage, text = summary.usage, summary.text
        else:
            try:
                answer = orjson.loads(tap.body) if tap.body else None
            except orjson.JSONDecodeError:
                answer = None
            usage = reader.usage(answer)
            if usage is None:
                text = reader.completion_text(answer) if answer is not None else ""
        if usage is None:
            usage = Usage(
                prompt_tokens=hold.prompt_tokens,
                completion_tokens=min(text_tokens(text or ""), hold.output_tokens),
            )
        return hold.price.cost(usage).nano_usd

    def _who(self, rule: BudgetRule) -> str:
        if rule.scope == "org":
            return f"organisation '{self._identity.org_name}'"
        if rule.scope == "key":
            return f"gateway key {self._identity.key_id}"
        return f"user '{self._user_id}'"


class Meter:
    """Per-process metering: the policy cache, sessions and the hold sweep."""

    def __init__(
        self,
        store: CreditStore,
        registry: Registry,
        *,
        cache_ttl: float,
        hold_ttl: float,
        sweep_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.registry = registry
        self.hold_ttl = hold_ttl
        self._cache_ttl = cache_ttl
        self._sweep_interval = sweep_interval
        self._clock = clock
        self._policies: dict[str, tuple[float, MeterPolicy]] = {}
        self._inflight: dict[str, asyncio.Future[MeterPolicy]] = {}
        self._invalidations = 0
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Release holds that expired while no gateway was running, then keep sweeping."""
        await self.sweep()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="credit-hold-sweep")

    async def close(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper

    async def sweep(self) -> int:
        released = await self.store.sweep()
        if released:
            logger.info("released %d expired credit hold(s)", released)
        return released

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                await self.sweep()
            except Exception:
                logger.exception("credit hold sweep failed; retrying later")

    async def session(self, ctx: RequestContext) -> MeterSession | None:
        """The metering of an authenticated request, or None when nothing is metered for it
        (then the request pays one cached lookup and nothing else)."""
        identity = ctx.identity
        assert identity is not None, "metering needs an authenticated request"
        policy = self.cached_policy(identity.org_id) or await self.policy(identity.org_id)
        return self.session_under(ctx, policy)

    def session_under(self, ctx: RequestContext, policy: MeterPolicy) -> MeterSession | None:
        """:meth:`session` with the organisation's ``policy`` already looked up."""
        identity = ctx.identity
        assert identity is not None, "metering needs an authenticated request"
        if not policy.account and not policy.budgets:
            return None
        user_id = ctx.options.user_id
        budgets = tuple(
            rule
            for rule in policy.budgets
            if (rule.scope == "org" and rule.subject == identity.org_id)
            or (rule.scope == "key" and rule.subject == identity.key_id)
            or (rule.scope == "user" and user_id and rule.subject == user_id)
        )
        if not policy.account and not budgets:
            return None
        tap = AnswerTap()
        ctx.tap = tap
        return MeterSession(self, identity, user_id, policy.account, budgets, tap)

    def cached_policy(self, org_id: str) -> MeterPolicy | None:
        """:meth:`policy` when it is cached and fresh, without awaiting (the usual request);
        None when a store query is due."""
        entry = self._policies.get(org_id)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        return None

    async def policy(self, org_id: str) -> MeterPolicy:
        """What is metered for ``org_id`` (cached for the TTL)."""
        entry = self._policies.get(org_id)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        pending = self._inflight.get(org_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[MeterPolicy] = asyncio.get_running_loop().create_future()
        self._inflight[org_id] = future
        invalidations = self._invalidations
        try:
            policy = await self.store.policy(org_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters re-raise it themselves
            raise
        finally:
            if self._inflight.get(org_id) is future:
                del self._inflight[org_id]
        if invalidations == self._invalidations:
            if len(self._policies) >= _MAX_ORGS:
                self._policies.clear()
            self._policies[org_id] = (self._clock() + self._cache_ttl, policy)
        future.set_result(policy)
        return policy

    def invalidate(self, org_id: str) -> None:
        """Forget ``org_id``'s policy (after a change made in this process)."""
        self._policies.pop(org_id, None)
        self._inflight.pop(org_id, None)
        self._invalidations += 1
