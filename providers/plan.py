"""From a parsed ``model`` string to the ordered list of attempts a request walks.

Pure: the registry, the organisation's keys, the load-balancing counters and the health
record come in as objects; nothing here does I/O or keeps module state.

Ordering rules (reference §3.2, §3.7; issue 11 §2 and §4), applied in this order:

1. **Items in the order written.** Each item of ``a,b,c`` contributes its attempts as one
   block, and blocks are concatenated in the order written. A later item's BYOK attempt does
   NOT jump ahead of an earlier item's credits attempt (the reference's open point: upstream
   sorts every attempt of every item by BYOK/credits priority, so ``x/openai,y`` with a BYOK
   key for ``y``'s provider would try ``y`` first). Our reasons: the documented contract is
   "tries each provider in the exact order you specify"; items may name different models
   (``gpt-4o/openai,claude-4.5-sonnet/anthropic``), and BYOK-first is a rule about *who
   pays* for the same request, which must not silently change *which model answers*; and a
   client who wants its own key first can say so by writing that item first.
2. **BYOK before credits within an item** (the provider-routing page and upstream; the
   error-handling page's "PTB first" is the contradiction we do not follow): all of the
   org's own keys for the item's providers, then the managed keys.
3. **Cheapest first** across the providers of a bare model, by the registry's cost rank
   (offerings without a price go last); BYOK attempts follow the same order (the registry
   price is the provider's list price, which the org pays on its own key too).
4. **Equal-cost providers load-balanced** by weighted round robin (:class:`RoundRobin`): the
   counter of that (model, key source, provider group) picks which provider of the group
   goes first; the others follow in their cyclic order, so a failover still reaches all of
   them. BYOK and credits attempts are balanced separately, each over the providers that
   have such a key, so both spread evenly whatever keys the org holds.
5. **Health last** (:class:`providers.health.Health`): cooled-down (provider, key) pairs move
   to the end of the whole plan, never out of it.

Which attempts an item yields:

* ``model`` (bare): every registry offering of the model that serves the endpoint and is not
  excluded: one BYOK attempt per org key of that provider (deployments included, in the key
  store's order: the caller passes only keys that may serve the request, e.g. filters Azure
  deployments by model), one credits attempt when the provider has a managed key. A bare
  model the registry does not know is a 400
  (``Unknown model: X. Please specify a provider…``), unless the planner has a
  ``default_provider`` (today's behaviour: a bare model goes to ``openai``), in which case it
  is read as ``model/<default_provider>``.
* ``model/provider``: pinned. BYOK keys of that provider, then its managed key; never another
  provider. The model id sent is the registry's provider model id when the registry lists
  the model there, else the id as written.
* ``model/provider/deployment``: only the org key of that provider whose ``id`` or ``name``
  is ``deployment`` (usually a deployment: Azure endpoint, Bedrock region…); no credits.
* Models the registry does not list at the named provider ("unknown models only route through
  your BYOK deployments"): BYOK only, as the reference says, because credits must be priced
  to be metered. ``KeySources.credits_for_unlisted`` lifts that for an org whose managed keys
  are unmetered (the self-hosted default: the operator pays, as today, where
  ``meta-llama/Llama-3.3-70B-Instruct/together`` goes out on the operator's key).
* Exclusions (``!provider``) remove that provider from every item, pinned ones included.
* Duplicates (same provider, key source, key and provider model id) keep their first place.

When no attempt can be built the planner raises :class:`NoProvidersError` (400, the
reference's message, with each item's reason appended).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
from typing import Literal, Protocol

from providers.grammar import GrammarError, ModelItem, ModelSpec, parse_model
from providers.health import CREDITS_KEY_ID, Health

__all__ = [
    "NO_PROVIDERS",
    "Attempt",
    "KeyRecord",
    "KeySource",
    "KeySources",
    "NoProvidersError",
    "Offer",
    "Offering",
    "Planner",
    "ProviderKey",
    "Registry",
    "RoundRobin",
    "StaticRegistry",
    "UnknownModelError",
    "build_plan",
]

KeySource = Literal["byok", "credits"]

Cost = float | Fraction
"""A cost rank: any number that orders offerings (e.g. input + output USD per 1M tokens)."""


class Offering(Protocol):
    """One provider's offer of a model, as the registry knows it."""

    @property
    def provider(self) -> str: ...

    @property
    def provider_model_id(self) -> str:
        """The model id that provider expects."""
        ...

    @property
    def cost_rank(self) -> Cost | None:
        """Lower is cheaper; None: no price known (ordered last)."""
        ...

    def serves(self, endpoint: str) -> bool:
        """Whether the provider serves this unified endpoint (``/chat/completions``…)."""
        ...


class Registry(Protocol):
    """The model registry, as far as planning needs it."""

    def offerings(self, model_id: str) -> Sequence[Offering]:
        """Every provider offering ``model_id`` (empty: the registry does not know it)."""
        ...


class KeyRecord(Protocol):
    """One of an organisation's provider keys (BYOK).

    ``id`` is stable (health is recorded per key id; a deployment is named by it);
    ``name`` the org's own label, which a model string may also use as the deployment id;
    ``deployment`` an opaque configuration (Azure endpoint and deployment, Bedrock region,
    Vertex project and location, custom base URL) carried to the attempt unread.
    """

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str | None: ...

    @property
    def deployment(self) -> object | None: ...


@dataclass(frozen=True, slots=True)
class Offer:
    """A plain :class:`Offering` (tests, the bench, or a registry that has no record type)."""

    provider: str
    provider_model_id: str
    cost_rank: Cost | None = None
    endpoints: frozenset[str] | None = None
    """The endpoints served; None: every endpoint."""

    def serves(self, endpoint: str) -> bool:
        return self.endpoints is None or endpoint in self.endpoints


@dataclass(frozen=True, slots=True)
class ProviderKey:
    """A plain :class:`KeyRecord`."""

    id: str
    name: str | None = None
    deployment: object | None = None


class StaticRegistry:
    """A :class:`Registry` over a mapping model id → offerings."""

    __slots__ = ("_models",)

    def __init__(self, models: Mapping[str, Sequence[Offering]]) -> None:
        self._models = {model: tuple(offers) for model, offers in models.items()}

    def offerings(self, model_id: str) -> Sequence[Offering]:
        return self._models.get(model_id, ())


_NO_KEYS: Mapping[str, Sequence[KeyRecord]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class KeySources:
    """Where an organisation's attempts can get a key.

    ``byok``: the org's own keys by provider slug, in the order to try them. ``credits``:
    providers with a managed key this org may use. ``credits_for_unlisted``: managed keys may
    serve models the registry does not list at that provider (see the module docstring).
    """

    byok: Mapping[str, Sequence[KeyRecord]] = field(default_factory=lambda: _NO_KEYS)
    credits: Collection[str] = frozenset()
    credits_for_unlisted: bool = False


@dataclass(frozen=True, slots=True)
class Attempt:
    """One way to serve the request: a provider, the model id it expects, and a key.

    ``key`` is the org's key record for BYOK, None for credits (the runtime uses its managed
    key). ``item`` is the index of the model item it came from; ``source`` the label error
    details and records use (``gpt-4o-mini/openai/byok``).
    """

    provider: str
    model: str
    key_source: KeySource
    key: KeyRecord | None
    deployment: object | None
    item: int
    source: str
    requested_model: str
    online: bool = False

    @property
    def key_id(self) -> str:
        """The health key: the BYOK key's id, or :data:`CREDITS_KEY_ID`."""
        return self.key.id if self.key is not None else CREDITS_KEY_ID


class UnknownModelError(GrammarError):
    """A bare model the registry does not know (the client must name a provider)."""


class NoProvidersError(GrammarError):
    """The model string is valid but no attempt can be built (reference §3.1, 400)."""


NO_PROVIDERS = (
    "No available providers for the requested models. "
    "Check provider names and see supported models at /v1/models"
)


class RoundRobin:
    """Weighted round robin among equal-cost providers, one counter per (scope, group).

    Deterministic: the n-th request for a group starts with the provider at position
    ``n mod sum(weights)`` of the group's smooth weighted sequence (nginx's smooth WRR: with
    weights a=2, b=1 the sequence is a, b, a), so over ``k * sum(weights)`` requests each
    provider goes first exactly ``k * weight`` times. Weights default to 1 (plain round robin).
    One object per process, owned by the runtime; its memory is bounded by the number of
    distinct (scope, group) pairs, i.e. by the registry.
    """

    __slots__ = ("_counters", "_sequences", "_weights", "turns")

    def __init__(self, weights: Mapping[str, int] | None = None) -> None:
        self.turns = 0
        """How many times a group was rotated (a plan that did not rotate any can be reused)."""
        self._weights: Mapping[str, int] = dict(weights or {})
        if any(weight < 1 for weight in self._weights.values()):
            raise ValueError("weights must be positive integers")
        self._counters: dict[tuple[Hashable, tuple[str, ...]], int] = {}
        self._sequences: dict[tuple[str, ...], tuple[int, ...]] = {}

    def weight(self, provider: str) -> int:
        return self._weights.get(provider, 1)

    def first(self, scope: Hashable, group: tuple[str, ...]) -> int:
        """The index in ``group`` (provider slugs) that goes first this time; ``scope``
        separates counters (the planner uses (model, key source))."""
        self.turns += 1
        key = (scope, group)
        count = self._counters.get(key, 0)
        self._counters[key] = count + 1
        sequence = self._sequences.get(group)
        if sequence is None:
            sequence = self._sequences[group] = self._smooth(group)
        return sequence[count % len(sequence)]

    def _smooth(self, group: tuple[str, ...]) -> tuple[int, ...]:
        weights = [self.weight(provider) for provider in group]
        total = sum(weights)
        current = [0] * len(group)
        picks: list[int] = []
        for _ in range(total):
            for index, weight in enumerate(weights):
                current[index] += weight
            best = max(range(len(group)), key=current.__getitem__)
            current[best] -= total
            picks.append(best)
        return tuple(picks)


def _rank(offer: Offering) -> tuple[bool, Cost]:
    cost = offer.cost_rank
    return (cost is None, cost if cost is not None else 0)


def _cheapest_first(
    scope: Hashable, offers: list[Offering], balancer: RoundRobin | None
) -> list[Offering]:
    """``offers`` by cost; each run of equal cost rotated by the balancer."""
    if len(offers) < 2:
        return offers
    offers.sort(key=_rank)
    if balancer is None:
        return offers
    ordered: list[Offering] = []
    start = 0
    while start < len(offers):
        end = start + 1
        cost = offers[start].cost_rank
        while end < len(offers) and offers[end].cost_rank == cost:
            end += 1
        run = offers[start:end]
        if len(run) > 1:
            run.sort(key=lambda offer: offer.provider)
            first = balancer.first(scope, tuple(offer.provider for offer in run))
            run = run[first:] + run[:first]
        ordered.extend(run)
        start = end
    return ordered


class _Builder:
    """Accumulates attempts (deduplicated) and why items yielded none."""

    __slots__ = ("attempts", "reasons", "seen")

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self.seen: set[tuple[str, str, str, str]] = set()
        self.reasons: list[str] = []

    def add(
        self, item: ModelItem, provider: str, model: str, key: KeyRecord | None
    ) -> None:
        source: KeySource = "credits" if key is None else "byok"
        identity = (provider, source, key.id if key is not None else "", model)
        if identity in self.seen:
            return
        self.seen.add(identity)
        self.attempts.append(
            Attempt(
                provider=provider,
                model=model,
                key_source=source,
                key=key,
                deployment=key.deployment if key is not None else None,
                item=item.index,
                source=f"{item.model}/{provider}/{source}",
                requested_model=item.model,
                online=item.online,
            )
        )


def _bare(
    item: ModelItem,
    offers: Sequence[Offering],
    excluded: frozenset[str],
    keys: KeySources,
    endpoint: str,
    balancer: RoundRobin | None,
    out: _Builder,
) -> None:
    usable = [o for o in offers if o.provider not in excluded and o.serves(endpoint)]
    if not usable:
        if all(o.provider in excluded for o in offers):
            out.reasons.append(f"{item.text!r}: every provider of the model is excluded")
        else:
            out.reasons.append(f"{item.text!r}: no provider of the model serves {endpoint}")
        return
    byok = [o for o in usable if keys.byok.get(o.provider)]
    credits = [o for o in usable if o.provider in keys.credits]
    if not byok and not credits:
        providers = ", ".join(o.provider for o in usable)
        out.reasons.append(f"{item.text!r}: no key (own or managed) for {providers}")
        return
    for offer in _cheapest_first((item.model, "byok"), byok, balancer):
        for key in keys.byok[offer.provider]:
            out.add(item, offer.provider, offer.provider_model_id, key)
    for offer in _cheapest_first((item.model, "credits"), credits, balancer):
        out.add(item, offer.provider, offer.provider_model_id, None)


def _pinned(
    item: ModelItem,
    provider: str,
    offers: Sequence[Offering],
    excluded: frozenset[str],
    keys: KeySources,
    endpoint: str,
    out: _Builder,
) -> None:
    if provider in excluded:
        out.reasons.append(f"{item.text!r}: provider {provider} is excluded")
        return
    listed = [o for o in offers if o.provider == provider]
    if listed:
        serving = [o for o in listed if o.serves(endpoint)]
        if not serving:
            out.reasons.append(f"{item.text!r}: {provider} does not serve {endpoint}")
            return
        model = min(serving, key=_rank).provider_model_id
    else:
        model = item.model
    org_keys = keys.byok.get(provider, ())
    if item.deployment is not None:
        wanted = item.deployment
        org_keys = [k for k in org_keys if wanted in (k.id, k.name)]
        if not org_keys:
            out.reasons.append(
                f"{item.text!r}: no {provider} deployment or key {wanted!r} in the "
                "organisation's provider keys"
            )
            return
    for key in org_keys:
        out.add(item, provider, model, key)
    credits = (
        item.deployment is None
        and provider in keys.credits
        and (bool(listed) or keys.credits_for_unlisted)
    )
    if credits:
        out.add(item, provider, model, None)
    if not org_keys and not credits:
        if listed or provider not in keys.credits:
            out.reasons.append(f"{item.text!r}: no key (own or managed) for {provider}")
        else:
            out.reasons.append(
                f"{item.text!r}: {item.model} is not listed at {provider}; only the "
                f"organisation's own {provider} keys can serve it"
            )


def build_plan(
    spec: ModelSpec,
    registry: Registry,
    keys: KeySources,
    *,
    endpoint: str = "/chat/completions",
    balancer: RoundRobin | None = None,
    health: Health | None = None,
    default_provider: str | None = None,
) -> list[Attempt]:
    """The attempts for ``spec``, in the order to try them (rules: module docstring).

    Raises :class:`UnknownModelError` for a bare model the registry does not know (no
    ``default_provider``) and :class:`NoProvidersError` when nothing can be attempted.
    """
    out = _Builder()
    excluded = spec.excluded
    for item in spec.items:
        offers = registry.offerings(item.model)
        provider = item.provider
        if provider is None:
            if offers:
                _bare(item, offers, excluded, keys, endpoint, balancer, out)
                continue
            if default_provider is None:
                raise UnknownModelError(
                    f"Unknown model: {item.model}. Please specify a provider (e.g., "
                    f"{item.model}/openai) or use a supported model. See /v1/models",
                    item=item.text,
                    code="unknown_model",
                )
            provider = default_provider
        _pinned(item, provider, offers, excluded, keys, endpoint, out)
    if not out.attempts:
        detail = "; ".join(out.reasons)
        raise NoProvidersError(
            f"{NO_PROVIDERS}. {detail}" if detail else NO_PROVIDERS, code="no_providers"
        )
    if health is not None:
        return health.order(out.attempts)
    return out.attempts


class Planner:
    """The planning step of the data plane: one per process, built at startup.

    Owns nothing mutable but the balancer and the health record it is given; ``plan`` is
    called once per request with the organisation's key sources. ``aliases``: other names of
    providers in a model string → their slugs (``gemini``), for the grammar.
    """

    __slots__ = (
        "_known", "aliases", "balancer", "default_provider", "health", "providers", "registry"
    )  # fmt: skip

    def __init__(
        self,
        registry: Registry,
        providers: Collection[str],
        *,
        balancer: RoundRobin | None = None,
        health: Health | None = None,
        default_provider: str | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        if default_provider is not None and default_provider not in providers:
            raise ValueError(f"default provider {default_provider!r} is not a provider")
        self.registry = registry
        self.providers = providers
        self.balancer = balancer if balancer is not None else RoundRobin()
        self.health = health
        self.default_provider = default_provider
        self.aliases: Mapping[str, str] = aliases or {}
        self._known: Callable[[str], bool] = lambda model: bool(registry.offerings(model))

    def parse(self, model: object) -> ModelSpec:
        """Parse a request's ``model`` (raises :class:`GrammarError`)."""
        return parse_model(model, self.providers, self._known, self.aliases)

    def plan(
        self,
        model: object,
        keys: KeySources,
        *,
        endpoint: str = "/chat/completions",
    ) -> list[Attempt]:
        """Parse ``model`` (or take a parsed :class:`ModelSpec`) and build its attempts."""
        spec = model if isinstance(model, ModelSpec) else self.parse(model)
        return build_plan(
            spec,
            self.registry,
            keys,
            endpoint=endpoint,
            balancer=self.balancer,
            health=self.health,
            default_provider=self.default_provider,
        )
