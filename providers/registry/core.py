"""The :class:`Registry`: models and their offerings, priced once, looked up by any of their names.

See the package docstring (:mod:`providers.registry`) for the API and the pricing rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from fractions import Fraction
from typing import Any, Literal

from providers.cost import ALLOWED_PROVIDERS, UNKNOWN_COST, CostResult, ModelPrice, Usage
from providers.registry.catalog import (
    CatalogModel,
    CatalogOffering,
    catalog_from_data,
    load_catalog_text,
    parse_catalog,
)
from providers.registry.library import PriceLibrary
from providers.spec import PROVIDERS, ProviderTable

__all__ = ["MAKER_PREFIX", "Model", "Offering", "PriceSource", "Registry"]

PriceSource = Literal["genai-prices", "override", "maker", "none"]
"""Where an offering's price comes from: the library, the registry's own table (an
override), the model maker's price (the serving provider has none of its own), or nowhere."""

MAKER_PREFIX = "maker:"

_DATED_SUFFIX = re.compile(r"[-@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{6}|\d{4}|\d{3})(?:[-:@.].*)?")
"""What may follow a known id for it to count as an unlisted snapshot of that id.

Three or more digits right after the separator (``-2024-08-06``, ``-20250514``, ``-0709``,
``-2411``, ``-001``, ``@20250514``, optionally followed by e.g. ``-v1:0``). One- or two-digit
remainders are *not* snapshots: ``claude-opus-4-5`` is a different model from ``claude-opus-4``,
and must not inherit its price.
"""
_MAX_REMEMBERED = 4096
"""Distinct (provider, model) lookups a :class:`Registry` remembers (then it starts over)."""
_MAX_REMEMBERED_CHARS = 200
"""Longer (provider, model) strings are looked up every time, never kept."""
_UNIFIED = {
    "chat": ("/chat/completions", "/responses"),
    "audio": ("/chat/completions",),
    "embedding": ("/embeddings",),
}
"""Unified endpoints a model kind can be asked on (an audio model has no Responses API)."""


@dataclass(frozen=True, slots=True)
class Offering:
    """One model as one provider serves it: the routing facts and the price.

    ``endpoints`` are the unified endpoints this offering answers (the model kind's endpoints
    that the provider serves, natively or by translation); empty when the gateway does not
    route to the provider (a host-only provider, priced for logging only).
    """

    model: str
    """The registry's model id."""
    provider: str
    """The provider's slug in :mod:`providers.spec` (``groq``)."""
    provider_model_id: str
    """The id the provider's API expects (``llama-3.3-70b-versatile``)."""
    price: ModelPrice | None
    price_source: PriceSource
    price_from: str | None
    """The provider whose price list applies: ``provider`` itself, or the maker's slug."""
    context_window: int | None
    max_output_tokens: int | None
    routed: bool
    endpoints: frozenset[str]

    @property
    def supports_responses(self) -> bool:
        return "/responses" in self.endpoints

    @property
    def per_million(self) -> Fraction | None:
        """Input + output USD per 1M tokens (base tier), to order offerings; None: unpriced."""
        return None if self.price is None else self.price.per_million

    @property
    def source_label(self) -> str:
        """How ``gateway models`` and the listings show the price's source."""
        if self.price_source == "maker":
            return f"maker {self.price_from} ({_plain_source(self.price)})"
        return self.price_source


@dataclass(frozen=True, slots=True)
class Model:
    """A model the registry knows, with every provider that serves it (catalog order)."""

    id: str
    name: str
    author: str
    kind: str
    created: int
    aliases: tuple[str, ...]
    description: str
    context_window: int | None
    max_output_tokens: int | None
    input_modalities: tuple[str, ...]
    output_modalities: tuple[str, ...]
    capabilities: frozenset[str]
    """``tools``, ``reasoning``, ``web_search`` as declared, plus ``vision`` (image input),
    ``audio`` (audio in or out) and ``caching`` (an offering prices cached input)."""
    offerings: tuple[Offering, ...]

    @property
    def multimodal(self) -> bool:
        """More than one input modality or more than one output modality (Helicone's
        definition for ``/v1/models/multimodal``)."""
        return len(self.input_modalities) > 1 or len(self.output_modalities) > 1

    @property
    def supports_tools(self) -> bool:
        return "tools" in self.capabilities

    @property
    def supports_vision(self) -> bool:
        return "vision" in self.capabilities

    @property
    def supports_reasoning(self) -> bool:
        return "reasoning" in self.capabilities


class Registry:
    """Models, their offerings and prices; every name they go by. Immutable once built
    (apart from bounded memories of answered lookups)."""

    def __init__(
        self,
        catalog: list[CatalogModel],
        library: PriceLibrary | None,
        table: ProviderTable = PROVIDERS,
    ) -> None:
        """Index ``catalog`` and price every offering (``library`` None: overrides only).

        Raises :class:`ValueError` if a name (id, alias or provider model id) would resolve to
        two models: an ambiguous registry would route and price requests arbitrarily.
        """
        self._table = table
        self._library = library
        self._names: dict[str, str] = {}
        self._models: dict[str, Model] = {}
        self._priced: dict[str, dict[str, ModelPrice]] = {}
        self._routed: dict[str, tuple[Offering, ...]] = {}
        self._found: dict[tuple[str, str], ModelPrice | None] = {}
        for entry in catalog:
            for name in (entry.id, *entry.aliases):
                self._add_name(name, entry.id)
            for offering in entry.offerings:
                self._add_name(offering.model_id, entry.id)
            self._models[entry.id] = self._build_model(entry)
        for model in self._models.values():
            self._priced[model.id] = {
                o.provider: o.price for o in model.offerings if o.price is not None
            }
            routed = [o for o in model.offerings if o.routed]
            routed.sort(key=_cheapest_first)
            self._routed[model.id] = tuple(routed)

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def load(cls, at: datetime | None = None, table: ProviderTable = PROVIDERS) -> Registry:
        """The packaged table priced by the library (prices in force at ``at``, default now).

        Reads and converts everything once (about half a second): call it off the event
        loop, once per process, and keep the instance.
        """
        return cls(parse_catalog(load_catalog_text(), table), PriceLibrary(table, at), table)

    @classmethod
    def from_data(
        cls,
        data: Any,
        *,
        library: PriceLibrary | None = None,
        table: ProviderTable = PROVIDERS,
    ) -> Registry:
        """Build from a parsed table document (tests; ``library`` None: overrides only)."""
        return cls(catalog_from_data(data, table), library, table)

    def _add_name(self, name: str, canonical: str) -> None:
        key = name.strip().lower()
        existing = self._names.setdefault(key, canonical)
        if existing != canonical:
            raise ValueError(f"name {name!r} resolves to both {existing!r} and {canonical!r}")

    def _build_model(self, entry: CatalogModel) -> Model:
        own = {o.provider: self._own_price(entry, o) for o in entry.offerings}
        maker_price = own.get(self._maker(entry.author))
        offerings: list[Offering] = []
        for catalog_offering in entry.offerings:
            price, context = own[catalog_offering.provider]
            source: PriceSource = "none" if price is None else _source_of(price)
            price_from: str | None = catalog_offering.provider if price is not None else None
            if price is None and maker_price is not None and maker_price[0] is not None:
                price = _as_maker_price(
                    maker_price[0], catalog_offering.provider, catalog_offering.model_id
                )
                source, price_from = "maker", entry.author
            offerings.append(
                self._offering(entry, catalog_offering, price, source, price_from, context)
            )
        capabilities = set(entry.capabilities)
        if "image" in entry.input_modalities:
            capabilities.add("vision")
        if "audio" in (*entry.input_modalities, *entry.output_modalities):
            capabilities.add("audio")
        if any(o.price is not None and o.price.cache_read is not None for o in offerings):
            capabilities.add("caching")
        return Model(
            id=entry.id,
            name=entry.name,
            author=entry.author,
            kind=entry.kind,
            created=entry.created,
            aliases=entry.aliases,
            description=entry.description,
            context_window=entry.context_window,
            max_output_tokens=entry.max_output_tokens,
            input_modalities=entry.input_modalities,
            output_modalities=entry.output_modalities,
            capabilities=frozenset(capabilities),
            offerings=tuple(offerings),
        )

    def _own_price(
        self, entry: CatalogModel, offering: CatalogOffering
    ) -> tuple[ModelPrice | None, int | None]:
        """The offering's own price (override, else the library) and the library's context
        window (a fallback for the table's)."""
        context = offering.context_window or entry.context_window
        max_output = offering.max_output_tokens or entry.max_output_tokens
        override = offering.override
        if override is not None:
            price = ModelPrice(
                model=entry.id,
                provider=offering.provider,
                provider_model_id=offering.model_id,
                tiers=override.tiers,
                context_window=context,
                max_output_tokens=max_output,
                source="override",
                **override.prices,
            )
            return price, context
        if self._library is None:
            return None, context
        refs = (offering.library_ref or "", offering.model_id, entry.id, *entry.aliases)
        found = self._library.own(offering.provider, refs)
        if found is None or found.price is None:
            return None, context
        context = context or found.context_window
        price = replace(
            found.price,
            model=entry.id,
            provider_model_id=offering.model_id,
            context_window=context,
            max_output_tokens=max_output,
        )
        return price, context

    def _offering(
        self,
        entry: CatalogModel,
        offering: CatalogOffering,
        price: ModelPrice | None,
        source: PriceSource,
        price_from: str | None,
        context: int | None,
    ) -> Offering:
        spec = self._table.get(offering.provider)
        assert spec is not None  # the catalog parser checked it
        endpoints = frozenset(e for e in _UNIFIED[entry.kind] if spec.routed and spec.serves(e))
        return Offering(
            model=entry.id,
            provider=offering.provider,
            provider_model_id=offering.model_id,
            price=price,
            price_source=source,
            price_from=price_from,
            context_window=context,
            max_output_tokens=offering.max_output_tokens or entry.max_output_tokens,
            routed=spec.routed,
            endpoints=endpoints,
        )

    # --- routing facts --------------------------------------------------------------------

    def models(self) -> tuple[Model, ...]:
        """Every model, in the table's order."""
        return tuple(self._models.values())

    def resolve(self, name: str) -> str | None:
        """The registry id ``name`` stands for: an id, an alias, a provider's model id, or an
        unlisted dated snapshot of one of those (case and surrounding space ignored)."""
        return self._resolve(name.strip().lower())

    def model(self, name: str) -> Model | None:
        """The model ``name`` stands for (see :meth:`resolve`), or None."""
        canonical = self.resolve(name)
        return None if canonical is None else self._models[canonical]

    def offerings(self, name: str) -> tuple[Offering, ...]:
        """The providers the gateway can route ``name`` to, cheapest first.

        Routed offerings only (host-only providers are priced but not callable), ordered by
        :attr:`Offering.per_million` ascending, unpriced last; equal prices keep the table's
        order (the plan builder load-balances them). Empty for an unknown model.
        """
        canonical = self.resolve(name)
        return () if canonical is None else self._routed[canonical]

    def offering(self, name: str, provider: str) -> Offering | None:
        """``name`` as ``provider`` serves it (routed or not), or None."""
        model = self.model(name)
        if model is None:
            return None
        return next((o for o in model.offerings if o.provider == provider), None)

    # --- prices ---------------------------------------------------------------------------

    def prices(self) -> tuple[ModelPrice, ...]:
        """Every catalog offering's price (maker prices included)."""
        return tuple(p for by_provider in self._priced.values() for p in by_provider.values())

    def cost(self, provider: str, model: str, usage: Usage) -> CostResult:
        """Cost of one request; ``known=False`` and 0 when the model has no price (no raise)."""
        price = self.lookup(provider, model)
        if price is None:
            return UNKNOWN_COST
        return price.cost(usage)

    def lookup(self, provider: str, model: str) -> ModelPrice | None:
        """The price of ``model`` as served by ``provider``, or None if it is not priced.

        Names: case and surrounding whitespace are ignored; provider prefixes are stripped
        one segment at a time (``openai/gpt-4o``, ``openrouter/anthropic/claude-sonnet-4.5``,
        Gemini's ``models/gemini-2.5-pro``), but the full string is tried first because some
        provider ids contain a slash (Groq's ``openai/gpt-oss-120b``); a gateway-style
        ``gpt-4o/openai`` suffix is accepted too. A name matches a registry id, an alias or a
        provider's model id, else an unlisted dated snapshot of the longest known id it
        extends (an exact entry always wins: ``gpt-4o-2024-05-13`` keeps its own price).

        The price, in order (first found wins):

        1. ``provider``'s own offering of the model in the registry;
        2. ``provider``'s own price in ``genai-prices`` (for models the table does not list,
           and providers it lists no offering for), with the library's own reseller
           fallbacks (Azure → OpenAI's list…);
        3. for a registry model: the provider a prefix names (``deepinfra`` +
           ``anthropic/claude-sonnet-4.5`` → Anthropic's), else the **maker's price** (the
           model's author sells it: ``gpt-4o-mini`` on ``groq`` → OpenAI's price, with
           ``source`` ``maker:openai:…``), else, for a provider that is not a first party
           (:data:`~providers.cost.ALLOWED_PROVIDERS`), the only offering if there is
           exactly one. A first-party slug never borrows a non-maker's price.

        Each distinct (provider, model) answer is remembered (bounded).
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
        slug = self._normalise_provider(provider)
        candidates = list(_candidates(model, self._normalise_provider))
        resolved = [
            (canonical, hint)
            for name, hint in candidates
            if (canonical := self._resolve(name)) is not None
        ]
        for canonical, _hint in resolved:
            own = self._priced[canonical].get(slug)
            if own is not None:
                return own
        if self._library is not None and self._library.knows(slug):
            for name, _hint in candidates:
                found = self._library.find(slug, name)
                if found is not None and found.price is not None:
                    return found.price
        for canonical, hint in resolved:
            fallback = self._fallback(canonical, slug, hint)
            if fallback is not None:
                return fallback
        return None

    def _fallback(self, canonical: str, slug: str, hint: str | None) -> ModelPrice | None:
        priced = self._priced[canonical]
        if hint is not None and hint in priced:
            return priced[hint]
        maker = priced.get(self._maker(self._models[canonical].author))
        if maker is not None and not maker.source.startswith(MAKER_PREFIX):
            return _as_maker_price(maker, slug, maker.provider_model_id)
        if slug not in ALLOWED_PROVIDERS and len(priced) == 1:
            return next(iter(priced.values()))
        return None

    def _maker(self, author: str) -> str:
        """The provider slug that sells a maker's own models: the author itself, or the
        provider whose price slug the author's name spells (``google`` →
        ``google-ai-studio``)."""
        return self._table.price_names().get(author, author)

    def _normalise_provider(self, provider: str) -> str:
        slug = provider.strip().lower().replace("_", "-")
        return self._table.price_names().get(slug, slug)

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


def _candidates(
    model: str, normalise: Callable[[str], str]
) -> Iterator[tuple[str, str | None]]:
    """Names to try for ``model``, most specific first, each with a provider hint or None."""
    name = model.strip().lower()
    if not name:
        return
    yield name, None
    head, sep, tail = name.rpartition("/")
    if sep and head and normalise(tail) in ALLOWED_PROVIDERS:
        yield head, normalise(tail)
    rest = name
    while "/" in rest:
        prefix, rest = rest.split("/", 1)
        if not rest:
            return
        slug = normalise(prefix)
        yield rest, slug if slug in ALLOWED_PROVIDERS else None


def _as_maker_price(maker: ModelPrice, provider: str, provider_model_id: str) -> ModelPrice:
    """The maker's price, as charged for the model served by ``provider``."""
    return replace(
        maker,
        provider=provider,
        provider_model_id=provider_model_id,
        source=f"{MAKER_PREFIX}{maker.provider}:{maker.source}",
    )


def _source_of(price: ModelPrice) -> PriceSource:
    return "override" if price.source == "override" else "genai-prices"


def _plain_source(price: ModelPrice | None) -> str:
    if price is None:
        return "none"
    return price.source.rsplit(":", 1)[-1]


def _cheapest_first(offering: Offering) -> tuple[bool, Fraction]:
    rate = offering.per_million
    return (rate is None, rate if rate is not None else Fraction(0))

