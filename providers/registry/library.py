"""Prices from ``genai-prices`` (Pydantic's price database), as exact :class:`ModelPrice`.

The library knows many providers' list prices, with cache, audio and long-context tier
prices and price changes by date. This module is the one place that reads it:

* **Once per (provider, model).** The library matches model names with rules (prefixes,
  regexes) over every model of a provider, and resolves conditional prices per call; that is
  too slow for a per-request path. Each answer here is converted once and remembered, so the
  writer and the gateway only ever do dictionary look-ups after the first request of a pair.
* **Exact.** The library keeps prices as :class:`~decimal.Decimal`; they become
  :class:`~fractions.Fraction` unchanged, so :meth:`ModelPrice.cost` stays integer-exact.
* **What the cost model can count.** Usage has counters for text, cached (read/write), audio
  and reasoning tokens, so those prices are taken (``input_mtok``, ``output_mtok``,
  ``cache_read_mtok``, ``cache_write_mtok`` (5-minute), ``cache_write_1h_mtok``,
  ``input_audio_mtok``, ``output_audio_mtok``, ``output_reasoning_mtok``); per-request,
  per-search, image-token and per-character prices are left out (the cost of such a request
  is the token part only). A model priced *only* in units the cost model cannot count
  (speech by the hour, text-to-speech by the character) gets no price at all rather than a
  wrong one; a model the library lists with no prices (``:free`` variants) costs 0.
* **Prices by date.** A model's conditional prices are resolved once, at the registry's
  build time (``at``): the price in force then. Time-of-day windows (DeepSeek's former
  off-peak discount) cannot be fixed once, so the window's own price is taken, never the
  discount outside it.
* **Tiers.** The library tiers each price separately ("above N input tokens, this price for
  the whole request"); they become :class:`PriceTier` steps at the same thresholds, with the
  same strictly-above rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from providers.cost import ModelPrice, PriceTier
from providers.spec import PROVIDERS, ProviderTable

if TYPE_CHECKING:
    from genai_prices import types as genai

SOURCE = "genai-prices"

_FIELD_OF_KEY = {
    "input_mtok": "input",
    "output_mtok": "output",
    "cache_read_mtok": "cache_read",
    "cache_write_mtok": "cache_write",
    "cache_write_5m_mtok": "cache_write",
    "cache_write_1h_mtok": "cache_write_1h",
    "output_reasoning_mtok": "reasoning",
    "input_audio_mtok": "audio_input",
    "output_audio_mtok": "audio_output",
}
_MAX_NAME = 200
"""Longer names are no model id: not matched against the library (its rules include regexes)."""
_MAX_REMEMBERED = 4096


@dataclass(frozen=True, slots=True)
class LibraryModel:
    """One model of one provider in the library, its prices converted."""

    provider_id: str
    """The library's provider id (``x-ai``)."""
    model_id: str
    """The library's model id (``grok-4-0709``)."""
    context_window: int | None
    price: ModelPrice | None
    """None when every price is in a unit the cost model cannot count."""


class PriceLibrary:
    """The library's data, read through the provider table's ``genai_prices`` ids.

    Built once (it imports the library's data, a few hundred milliseconds: off the event
    loop, at startup); :meth:`find` and :meth:`own` remember what they answered, bounded.
    ``at`` fixes which dated price applies (default: now).
    """

    def __init__(self, table: ProviderTable = PROVIDERS, at: datetime | None = None) -> None:
        from genai_prices.data import providers  # the data: imported here, not at import time

        self._at = at or datetime.now(tz=UTC)
        self._all: list[genai.Provider] = list(providers)
        by_id = {provider.id: provider for provider in self._all}
        self._by_slug: dict[str, genai.Provider] = {}
        for spec in table:
            if spec.genai_prices is not None and spec.genai_prices in by_id:
                self._by_slug[spec.name] = by_id[spec.genai_prices]
        self._found: dict[tuple[str, str], LibraryModel | None] = {}
        self._converted: dict[tuple[str, str], LibraryModel] = {}

    def knows(self, slug: str) -> bool:
        """Whether the library prices provider ``slug`` (a provider table name)."""
        return slug in self._by_slug

    def own(self, slug: str, refs: Iterable[str]) -> LibraryModel | None:
        """The provider's *own* price of the first of ``refs`` the library matches, without
        the library's fallback to other providers (the registry applies its own rule)."""
        provider = self._by_slug.get(slug)
        if provider is None:
            return None
        for ref in refs:
            if ref and len(ref) <= _MAX_NAME:
                info = provider.find_model(ref)
                if info is not None:
                    return self._convert(slug, provider, info)
        return None

    def find(self, slug: str, name: str) -> LibraryModel | None:
        """The library's price of ``name`` as provider ``slug`` charges it, with the library's
        own fallbacks (Azure → OpenAI's list, Vertex → Anthropic's…); remembered."""
        key = (slug, name)
        try:
            return self._found[key]
        except KeyError:
            pass
        found: LibraryModel | None = None
        provider = self._by_slug.get(slug)
        if provider is not None and name and len(name) <= _MAX_NAME:
            info = provider.find_model(name, all_providers=self._all)
            if info is not None:
                found = self._convert(slug, provider, info)
        if len(self._found) >= _MAX_REMEMBERED:
            self._found.clear()  # names come from clients: the memory stays bounded
        self._found[key] = found
        return found

    def _convert(
        self, slug: str, provider: genai.Provider, info: genai.ModelInfo
    ) -> LibraryModel:
        key = (slug, info.id)
        known = self._converted.get(key)
        if known is None:
            price = to_model_price(
                prices_at(info, self._at),
                model=info.id,
                provider=slug,
                provider_model_id=info.id,
                context_window=info.context_window,
            )
            known = LibraryModel(provider.id, info.id, info.context_window, price)
            self._converted[key] = known  # bounded by the library's size
        return known


def prices_at(info: genai.ModelInfo, at: datetime) -> genai.ModelPrice:
    """The model's prices in force at ``at`` (see the module docstring for time-of-day)."""
    from genai_prices import types as genai_types

    if isinstance(info.prices, genai_types.ModelPrice):
        return info.prices
    for conditional in reversed(info.prices):  # the library: later entries take precedence
        constraint = conditional.constraint
        if (
            constraint is None
            or isinstance(constraint, genai_types.TimeOfDateConstraint)
            or constraint.active(at)
        ):
            return conditional.prices
    return info.prices[0].prices


def to_model_price(
    prices: genai.ModelPrice,
    *,
    model: str,
    provider: str,
    provider_model_id: str,
    context_window: int | None = None,
    max_output_tokens: int | None = None,
    source: str = SOURCE,
) -> ModelPrice | None:
    """Convert the library's prices exactly; None if none of them is countable."""
    from genai_prices import types as genai_types

    given: dict[str, Any] = {
        key: value
        for key, value in vars(prices).items()
        if value is not None and not key.startswith("_")
    }
    base: dict[str, Fraction] = {}
    steps: dict[int, dict[str, Fraction]] = {}
    for key, value in given.items():
        field = _FIELD_OF_KEY.get(key)
        if field is None or (field in base and key == "cache_write_5m_mtok"):
            continue
        if isinstance(value, genai_types.TieredPrices):
            base[field] = Fraction(value.base)
            for tier in value.tiers:
                steps.setdefault(tier.start, {})[field] = Fraction(tier.price)
        else:
            base[field] = Fraction(value)
    if given and not base:
        return None
    tiers = tuple(
        PriceTier(above_prompt_tokens=start, **fields) for start, fields in sorted(steps.items())
    )
    return ModelPrice(
        model=model,
        provider=provider,
        provider_model_id=provider_model_id,
        input=base.pop("input", Fraction(0)),
        output=base.pop("output", Fraction(0)),
        tiers=tiers,
        context_window=context_window,
        max_output_tokens=max_output_tokens,
        source=source,
        **base,
    )
