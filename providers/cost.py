"""Request cost from token usage: one model's prices as one provider charges them.

The prices themselves come from the model registry (:mod:`providers.registry`), which looks
a (provider, model) pair up and hands back a :class:`ModelPrice`; this module only computes.

Why this shape:

* ClickHouse stores cost as ``UInt64`` USD x 1e9 ("nano-USD"), so the result is an integer
  computed exactly: prices arrive as :class:`~decimal.Decimal` (the registry's JSON and the
  ``genai-prices`` library both keep them so) and are held as :class:`~fractions.Fraction`;
  the only rounding is one half-up rounding of the total.
* Cost is recorded on the logging path, where an exception would lose the log row, so an
  unknown model is not an error: it costs 0 with ``known=False`` ("cost not supported").
* Every provider reports usage differently. :class:`Usage` has one convention (OpenAI's, which
  is also how the rows are persisted) and a per-provider adapter converts into it; the
  conversion rules are in the :class:`Usage` docstring.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field, replace
from fractions import Fraction

from providers.spec import PROVIDERS
from providers.usage import Usage

__all__ = [
    "ALLOWED_PROVIDERS",
    "UNKNOWN_COST",
    "CostResult",
    "ModelPrice",
    "PriceTier",
    "Usage",
]

ALLOWED_PROVIDERS: frozenset[str] = PROVIDERS.price_slugs()
"""First-party provider slugs: the ``price_slug`` of every provider in :mod:`providers.spec`
(``google`` is the Gemini API / AI Studio). The registry treats a lookup for one of them as
a precise claim (see :meth:`providers.registry.Registry.lookup`)."""

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
    """Canonical model id in the registry (e.g. ``claude-sonnet-4.5``); for a model only the
    ``genai-prices`` library knows, the library's id."""
    provider: str
    """The provider these prices are charged by (for a maker price: the serving provider)."""
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
    """Where the prices come from: ``genai-prices``, ``override`` (the registry's own table),
    or ``maker:<provider>:<source>`` (another provider's price, see
    :mod:`providers.registry`)."""
    _rates: tuple[Fraction, ...] = field(init=False, repr=False, compare=False)
    """Price per token kind, fallbacks applied, in the order :meth:`cost` splits usage into."""
    _pico_rates: tuple[int, ...] | None = field(init=False, repr=False, compare=False)
    """The same as whole pico-USD per token, or None if a price has more than 6 decimals."""

    @property
    def per_million(self) -> Fraction:
        """Input plus output price per 1M tokens at the base tier: one number to order
        providers of a model by (cheapest first)."""
        return self.input + self.output

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
        rates = self._pico_rates
        if (
            rates is not None
            and not (
                usage.cache_read_tokens
                or usage.cache_write_tokens
                or usage.prompt_audio_tokens
                or usage.reasoning_tokens
                or usage.completion_audio_tokens
            )
            and (not self.tiers or prompt <= self.tiers[0].above_prompt_tokens)
        ):
            # The usual request (text in, text out, no tier reached: the log writer costs
            # one per record): the sum below with its five other counts 0, ~0.5 µs less
            # (``tests/test_record_fastpaths.py`` compares the two over many usages and prices).
            return CostResult((prompt * rates[0] + completion * rates[4] + 500) // 1000, True)
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


def _or(price: Fraction | None, fallback: Fraction) -> Fraction:
    return fallback if price is None else price


def _clamp(value: int, upper: int) -> int:
    return min(max(value, 0), max(upper, 0))


def _round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))
