"""Request cost from token usage and the packaged model registry (``providers/models.json``).

Why this shape:

* ClickHouse stores cost as ``UInt64`` USD x 1e9 ("nano-USD"), so the result is an integer
  computed exactly: prices are read from JSON as :class:`~decimal.Decimal` and held as
  :class:`~fractions.Fraction`; the only rounding is one half-up rounding of the total.
* Cost is recorded on the logging path, where an exception would lose the log row, so an
  unknown model is not an error: it costs 0 with ``known=False`` ("cost not supported").
* Every provider reports usage differently. :class:`Usage` has one convention (OpenAI's, which
  is also how the rows are persisted) and a per-provider adapter converts into it; the
  conversion rules are in the :class:`Usage` docstring.
* The registry is data. :meth:`PriceTable.load` reads it on every call and keeps it in the
  returned instance: nothing is cached at module level, so tests and reloads see fresh data.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from fractions import Fraction
from importlib import resources
from typing import Any

from providers.spec import PROVIDERS
from providers.usage import Usage

__all__ = [
    "ALLOWED_PROVIDERS",
    "CostResult",
    "ModelPrice",
    "PriceTable",
    "PriceTier",
    "Usage",
]

DATA_PACKAGE = "providers"
DATA_FILE = "models.json"

ALLOWED_PROVIDERS: frozenset[str] = PROVIDERS.price_slugs()
"""Provider slugs the registry may price: the ``price_slug`` of every provider in
:mod:`providers.spec` (``google`` is the Gemini API / AI Studio)."""

_PROVIDER_ALIASES: Mapping[str, str] = PROVIDERS.price_names()
"""Every spelling of a priced provider (its slug, OpenRouter-style prefixes such as
``x-ai/grok-4``) → its registry slug, from the provider table."""

_DATED_SUFFIX = re.compile(r"[-@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{6}|\d{4}|\d{3})(?:[-:@.].*)?")
"""What may follow a known id for it to count as an unlisted snapshot of that id.

Three or more digits right after the separator (``-2024-08-06``, ``-20250514``, ``-0709``,
``-2411``, ``-001``, ``@20250514``, optionally followed by e.g. ``-v1:0``). One- or two-digit
remainders are *not* snapshots: ``claude-opus-4-5`` is a different model from ``claude-opus-4``,
and must not inherit its price.
"""

_PRICE_FIELDS = (
    "input",
    "output",
    "cache_read",
    "cache_write",
    "cache_write_1h",
    "reasoning",
    "audio_input",
    "audio_output",
)
_MAX_REMEMBERED = 4096
"""Distinct (provider, model) lookups a :class:`PriceTable` remembers (then it starts over)."""
_MAX_REMEMBERED_CHARS = 200
"""Longer (provider, model) strings are looked up every time, never kept."""
_ONE_THOUSAND = 1000  # USD per 1M tokens x tokens / 1e6 x 1e9 == per-1M price x tokens x 1000


@dataclass(frozen=True, slots=True)
class CostResult:
    """Cost of one request.

    ``nano_usd`` is USD x 1e9 as an integer, the ClickHouse ``cost`` column (UInt64). ``known``
    is false when the model has no price; then ``nano_usd`` is 0 ("cost not supported").
    """

    nano_usd: int
    known: bool

    @property
    def usd(self) -> float:
        """The cost in USD, for display only (store ``nano_usd``)."""
        return self.nano_usd / 1e9


UNKNOWN_COST = CostResult(nano_usd=0, known=False)


@dataclass(frozen=True, slots=True)
class PriceTier:
    """Prices that replace the base prices when ``prompt_tokens > above_prompt_tokens``.

    Providers such as Gemini 2.5 Pro, Claude Sonnet 4 (1M context) and Grok 4 charge the *whole*
    request at a higher rate once the prompt passes a length threshold. ``None`` fields inherit.
    """

    above_prompt_tokens: int
    input: Fraction | None = None
    output: Fraction | None = None
    cache_read: Fraction | None = None
    cache_write: Fraction | None = None
    cache_write_1h: Fraction | None = None
    reasoning: Fraction | None = None
    audio_input: Fraction | None = None
    audio_output: Fraction | None = None


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model as served by one provider. Prices are exact USD per 1,000,000 tokens.

    Optional prices fall back sensibly: ``cache_read``/``cache_write``/``audio_input`` to
    ``input``, ``reasoning``/``audio_output`` to ``output`` (no discount, no surcharge).
    """

    model: str
    """Canonical model id in the registry (e.g. ``claude-sonnet-4.5``)."""
    provider: str
    provider_model_id: str
    """The id the provider's API uses (e.g. ``claude-sonnet-4-5-20250929``)."""
    input: Fraction
    output: Fraction
    cache_read: Fraction | None = None
    cache_write: Fraction | None = None
    cache_write_1h: Fraction | None = None
    reasoning: Fraction | None = None
    audio_input: Fraction | None = None
    audio_output: Fraction | None = None
    tiers: tuple[PriceTier, ...] = ()
    """Ascending by threshold."""
    context_window: int | None = None
    max_output_tokens: int | None = None
    source: str = ""
    _rates: tuple[Fraction, ...] = field(init=False, repr=False, compare=False)
    """Price per token kind, fallbacks applied, in the order :meth:`cost` splits usage into."""
    _pico_rates: tuple[int, ...] | None = field(init=False, repr=False, compare=False)
    """The same as whole pico-USD per token, or None if a price has more than 6 decimals."""

    def __post_init__(self) -> None:
        # Computed once per price (and per tier merge) instead of per request: Fraction
        # attribute and arithmetic work was most of the cost of costing a request.
        rates = (
            self.input,
            _or(self.cache_read, self.input),
            _or(self.cache_write, self.input),
            _or(self.audio_input, self.input),
            self.output,
            _or(self.reasoning, self.output),
            _or(self.audio_output, self.output),
        )
        pico: tuple[int, ...] | None = None
        scaled = [rate * 1_000_000 for rate in rates]
        if all(value.denominator == 1 for value in scaled):
            pico = tuple(value.numerator for value in scaled)
        object.__setattr__(self, "_rates", rates)
        object.__setattr__(self, "_pico_rates", pico)

    def for_prompt(self, prompt_tokens: int) -> ModelPrice:
        """The prices that apply to a request with this many prompt tokens (tiers merged in).

        Tiers are applied cumulatively in ascending order, so a higher tier that omits a price
        keeps the one from the tier below it rather than reverting to the base price.
        """
        if not self.tiers or prompt_tokens <= self.tiers[0].above_prompt_tokens:
            return self  # the common case: no tier applies, nothing to copy
        effective = self
        for tier in self.tiers:
            if prompt_tokens <= tier.above_prompt_tokens:
                break
            overrides = {
                name: value for name in _PRICE_FIELDS if (value := getattr(tier, name)) is not None
            }
            effective = replace(effective, **overrides)
        return replace(effective, tiers=())

    def cost(self, usage: Usage) -> CostResult:
        """Exact cost of ``usage`` at these prices (see :class:`Usage` for the convention)."""
        prompt = max(usage.prompt_tokens, 0)
        completion = max(usage.completion_tokens, 0)
        p = self.for_prompt(prompt)

        # Split the totals into disjoint parts; each subset is clamped to what is left so a
        # token is billed exactly once even when an adapter reports inconsistent counts.
        # (Most counts are 0: the clamp is only called for the others.)
        cache_read = usage.cache_read_tokens and _clamp(usage.cache_read_tokens, prompt)
        cache_write = usage.cache_write_tokens and _clamp(
            usage.cache_write_tokens, prompt - cache_read
        )
        audio_in = usage.prompt_audio_tokens and _clamp(
            usage.prompt_audio_tokens, prompt - cache_read - cache_write
        )
        text_in = prompt - cache_read - cache_write - audio_in
        reasoning = usage.reasoning_tokens and _clamp(usage.reasoning_tokens, completion)
        audio_out = usage.completion_audio_tokens and _clamp(
            usage.completion_audio_tokens, completion - reasoning
        )
        text_out = completion - reasoning - audio_out
        counts = (text_in, cache_read, cache_write, audio_in, text_out, reasoning, audio_out)

        # Fast exact path in integers: a price with at most 6 decimals per 1M tokens is a whole
        # number of pico-USD per token. Fraction arithmetic (the general path) is kept for
        # prices that need it.
        if p._pico_rates is not None:
            pico = sum(map(operator.mul, counts, p._pico_rates))
            return CostResult(nano_usd=(pico + 500) // 1000, known=True)
        per_million = sum(
            (tokens * rate for tokens, rate in zip(counts, p._rates, strict=True) if tokens),
            Fraction(0),
        )
        return CostResult(nano_usd=_round_half_up(per_million * _ONE_THOUSAND), known=True)


class PriceTable:
    """The model registry: canonical models, their aliases, and per-provider prices.

    Build it once (``PriceTable.load()``) and keep the instance; lookups are dictionary hits
    plus, for unlisted dated snapshots, one scan over the separators of the model string, and
    each distinct (provider, model) pair's answer is remembered: the writer prices every
    logged request, nearly always with the same few pairs.
    """

    def __init__(self, prices: list[ModelPrice], aliases: Mapping[str, list[str]]) -> None:
        """Index ``prices``; ``aliases`` maps each canonical id to its extra names.

        Raises :class:`ValueError` if a name (canonical id, alias or provider model id) would
        resolve to two different models, or a provider prices a model twice: an ambiguous
        registry would price requests arbitrarily.
        """
        self._names: dict[str, str] = {}
        self._offerings: dict[str, dict[str, ModelPrice]] = {}
        self._found: dict[tuple[str, str], ModelPrice | None] = {}
        """Answers of :meth:`lookup` (the table never changes after construction)."""
        for canonical, extra in aliases.items():
            self._offerings.setdefault(canonical, {})
            for name in (canonical, *extra):
                self._add_name(name, canonical)
        for price in prices:
            by_provider = self._offerings.setdefault(price.model, {})
            if price.provider in by_provider:
                raise ValueError(f"{price.provider} prices {price.model!r} twice")
            by_provider[price.provider] = price
            self._add_name(price.model, price.model)
            self._add_name(price.provider_model_id, price.model)

    def _add_name(self, name: str, canonical: str) -> None:
        key = name.strip().lower()
        existing = self._names.setdefault(key, canonical)
        if existing != canonical:
            raise ValueError(f"name {name!r} resolves to both {existing!r} and {canonical!r}")

    @classmethod
    def load(cls) -> PriceTable:
        """Read the registry packaged with this module (``providers/models.json``)."""
        text = resources.files(DATA_PACKAGE).joinpath(DATA_FILE).read_text(encoding="utf-8")
        return cls.from_json(text)

    @classmethod
    def from_json(cls, text: str) -> PriceTable:
        """Parse registry JSON; numbers are read as Decimal so prices stay exact."""
        data = json.loads(text, parse_float=Decimal)
        return cls.from_data(data)

    @classmethod
    def from_data(cls, data: Any) -> PriceTable:
        """Build from the parsed registry document; raises ValueError naming the bad field."""
        models = _field(data, "models", list, "registry")
        prices: list[ModelPrice] = []
        aliases: dict[str, list[str]] = {}
        for index, model in enumerate(models):
            where = f"models[{index}]"
            canonical = _field(model, "id", str, where)
            unknown = set(model) - _MODEL_KEYS
            if unknown:
                raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
            if canonical in aliases:
                raise ValueError(f"{where}: duplicate model id {canonical!r}")
            names = _field(model, "aliases", list, where)
            if not all(isinstance(name, str) for name in names):
                raise ValueError(f"{where}.aliases: must be strings")
            aliases[canonical] = list(names)
            offerings = _field(model, "offerings", list, where)
            if not offerings:
                raise ValueError(f"{where}.offerings: empty")
            for number, offering in enumerate(offerings):
                prices.append(_parse_offering(canonical, offering, f"{where}.offerings[{number}]"))
        return cls(prices, aliases)

    def prices(self) -> tuple[ModelPrice, ...]:
        """Every (model, provider) price in the registry."""
        return tuple(p for by_provider in self._offerings.values() for p in by_provider.values())

    def lookup(self, provider: str, model: str) -> ModelPrice | None:
        """The price of ``model`` as served by ``provider``, or None if it is not priced.

        Normalisation of ``model``: case and surrounding whitespace are ignored; provider
        prefixes are stripped one segment at a time (``openai/gpt-4o``,
        ``openrouter/anthropic/claude-sonnet-4.5``, Gemini's ``models/gemini-2.5-pro``), but the
        full string is tried first because some provider ids contain a slash
        (Groq's ``openai/gpt-oss-120b``); a gateway-style ``gpt-4o/openai`` suffix is accepted
        too. A name matches a canonical id, an alias, or a provider's own model id; failing
        that, an unlisted dated snapshot (``gpt-4o-2024-12-01``, ``claude-sonnet-4-5-20260101``)
        matches the longest known id it extends (see ``_DATED_SUFFIX``). An exact entry always
        wins over a snapshot match, which is how ``gpt-4o-2024-05-13`` keeps its own price.

        Choice of provider:

        1. ``provider`` (case-insensitive; ``gemini``/``x-ai``/``mistralai``... accepted) is one
           of :data:`ALLOWED_PROVIDERS`: only that provider's price is used. A first-party slug
           is a precise claim, and pricing another vendor's list instead would be a guess.
        2. Otherwise (a reseller such as ``openrouter``, ``together``, ``azure``, or an unknown
           slug): if the model string carried a registry provider prefix
           (``openrouter`` + ``anthropic/claude-sonnet-4.5``), that provider's price is used;
           else the model-only match is used **only when unambiguous**, i.e. exactly one
           registry provider serves that model. This is best effort: resellers may charge
           differently from the first-party list price recorded here.
        """
        key = (provider, model)
        try:
            return self._found[key]
        except KeyError:
            pass
        found = self._lookup(provider, model)
        if len(model) + len(provider) <= _MAX_REMEMBERED_CHARS:
            # Model strings come from clients: keep the memory bounded.
            if len(self._found) >= _MAX_REMEMBERED:
                self._found.clear()
            self._found[key] = found
        return found

    def _lookup(self, provider: str, model: str) -> ModelPrice | None:
        provider_slug = _normalise_provider(provider)
        for name, hint in _candidates(model):
            canonical = self._resolve(name)
            if canonical is None:
                continue
            price = self._choose(canonical, provider_slug, hint)
            if price is not None:
                return price
        return None

    def offerings(self, model: str) -> tuple[str, tuple[ModelPrice, ...]] | None:
        """The canonical id of ``model`` (a name, alias or provider id, any case; or an
        unlisted dated snapshot of one) and every provider's price of it; None when the
        registry does not know it."""
        canonical = self._resolve(model.strip().lower())
        if canonical is None:
            return None
        return canonical, tuple(self._offerings.get(canonical, {}).values())

    def cost(self, provider: str, model: str, usage: Usage) -> CostResult:
        """Cost of one request; ``known=False`` and 0 when the model has no price (no raise)."""
        price = self.lookup(provider, model)
        if price is None:
            return UNKNOWN_COST
        return price.cost(usage)

    def _resolve(self, name: str) -> str | None:
        exact = self._names.get(name)
        if exact is not None:
            return exact
        best: str | None = None
        for i, char in enumerate(name):
            if char in "-@" and i > 0 and _DATED_SUFFIX.fullmatch(name, i):
                canonical = self._names.get(name[:i])
                if canonical is not None:
                    best = canonical  # later separators give longer, more specific prefixes
        return best

    def _choose(self, canonical: str, provider: str, hint: str | None) -> ModelPrice | None:
        offerings = self._offerings.get(canonical, {})
        if provider in ALLOWED_PROVIDERS:
            return offerings.get(provider)
        if hint is not None and hint in offerings:
            return offerings[hint]
        if len(offerings) == 1:
            return next(iter(offerings.values()))
        return None


def _normalise_provider(provider: str) -> str:
    slug = provider.strip().lower().replace("_", "-")
    return _PROVIDER_ALIASES.get(slug, slug)


def _candidates(model: str) -> Iterator[tuple[str, str | None]]:
    """Names to try for ``model``, most specific first, each with a provider hint or None."""
    name = model.strip().lower()
    if not name:
        return
    yield name, None
    head, sep, tail = name.rpartition("/")
    if sep and head and _normalise_provider(tail) in ALLOWED_PROVIDERS:
        yield head, _normalise_provider(tail)
    rest = name
    while "/" in rest:
        prefix, rest = rest.split("/", 1)
        if not rest:
            return
        slug = _normalise_provider(prefix)
        yield rest, slug if slug in ALLOWED_PROVIDERS else None


def _or(price: Fraction | None, fallback: Fraction) -> Fraction:
    return fallback if price is None else price


def _clamp(value: int, upper: int) -> int:
    return min(max(value, 0), max(upper, 0))



def _round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


# --- registry parsing -------------------------------------------------------------------------

_MODEL_KEYS = frozenset({"id", "kind", "aliases", "offerings"})
_OFFERING_KEYS = frozenset(
    {
        "provider",
        "model_id",
        "prices",
        "tiers",
        "context_window",
        "max_output_tokens",
        "source",
        "notes",
    }
)


def _parse_offering(canonical: str, raw: Any, where: str) -> ModelPrice:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: must be an object")
    unknown = set(raw) - _OFFERING_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    provider = _field(raw, "provider", str, where)
    if provider not in ALLOWED_PROVIDERS:
        allowed = ", ".join(sorted(ALLOWED_PROVIDERS))
        raise ValueError(f"{where}.provider: {provider!r} is not one of {allowed}")
    source = _field(raw, "source", str, where)
    if not source.startswith("https://"):
        raise ValueError(f"{where}.source: must be an https URL")
    prices = _parse_prices(_field(raw, "prices", dict, where), f"{where}.prices")
    if "input" not in prices or "output" not in prices:
        raise ValueError(f"{where}.prices: input and output are required")
    tiers: list[PriceTier] = []
    for number, tier in enumerate(raw.get("tiers", [])):
        tier_where = f"{where}.tiers[{number}]"
        tier_prices = _parse_prices(_field(tier, "prices", dict, tier_where), tier_where)
        tiers.append(
            PriceTier(
                above_prompt_tokens=_field(tier, "above_prompt_tokens", int, tier_where),
                input=tier_prices.get("input"),
                output=tier_prices.get("output"),
                cache_read=tier_prices.get("cache_read"),
                cache_write=tier_prices.get("cache_write"),
                cache_write_1h=tier_prices.get("cache_write_1h"),
                reasoning=tier_prices.get("reasoning"),
                audio_input=tier_prices.get("audio_input"),
                audio_output=tier_prices.get("audio_output"),
            )
        )
    tiers.sort(key=lambda t: t.above_prompt_tokens)
    return ModelPrice(
        model=canonical,
        provider=provider,
        provider_model_id=_field(raw, "model_id", str, where),
        input=prices["input"],
        output=prices["output"],
        cache_read=prices.get("cache_read"),
        cache_write=prices.get("cache_write"),
        cache_write_1h=prices.get("cache_write_1h"),
        reasoning=prices.get("reasoning"),
        audio_input=prices.get("audio_input"),
        audio_output=prices.get("audio_output"),
        tiers=tuple(tiers),
        context_window=_optional_int(raw, "context_window", where),
        max_output_tokens=_optional_int(raw, "max_output_tokens", where),
        source=source,
    )


def _parse_prices(raw: dict[str, Any], where: str) -> dict[str, Fraction]:
    unknown = set(raw) - set(_PRICE_FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown price fields {sorted(unknown)}")
    parsed: dict[str, Fraction] = {}
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
            raise ValueError(f"{where}.{name}: must be a number")
        price = Fraction(Decimal(value) if isinstance(value, str) else value)
        if price < 0:
            raise ValueError(f"{where}.{name}: must be >= 0")
        parsed[name] = price
    return parsed


def _field(raw: Any, key: str, kind: type[Any], where: str) -> Any:
    if not isinstance(raw, dict) or key not in raw:
        raise ValueError(f"{where}: missing {key!r}")
    value = raw[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{where}.{key}: must be {kind.__name__}")
    return value


def _optional_int(raw: dict[str, Any], key: str, where: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{where}.{key}: must be a positive integer or null")
    return value
