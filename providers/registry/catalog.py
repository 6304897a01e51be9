"""The registry's own table (``providers/models.json``): routing facts and price overrides.

The file says which models the gateway knows and which providers serve each of them under
which provider-side id, with the facts routing and the listings need (author, aliases,
release date, context window, max output, modalities, capabilities). Prices are *not* kept
here: they come from the ``genai-prices`` library (:mod:`providers.registry.library`). An
offering carries ``prices`` only to override the library, where it lacks a price (audio
tokens, a long-context tier) or has a stale one, with a ``source`` URL and ``notes`` saying
why; the catalog test checks that every such note exists.

Parsing is strict (unknown keys, a bad provider, an ambiguous name are errors naming the
field) because a typo here would silently misprice or misroute requests. Numbers are read as
:class:`~decimal.Decimal` so override prices stay exact.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from importlib import resources
from typing import Any

from providers.cost import _PRICE_FIELDS, PriceTier
from providers.spec import PROVIDERS, ProviderTable

DATA_PACKAGE = "providers"
DATA_FILE = "models.json"

KINDS = frozenset({"chat", "embedding", "audio"})
"""``chat``: chat completions and Responses; ``embedding``: embeddings only; ``audio``: chat
completions with audio in or out (no Responses API)."""
MODALITIES = frozenset({"text", "image", "audio", "video"})
CAPABILITIES = frozenset({"tools", "reasoning", "web_search"})
"""Declared per model; vision, audio and caching follow from modalities and prices."""

_MODEL_KEYS = frozenset(
    {
        "id", "name", "author", "kind", "created", "aliases", "description", "context_window",
        "max_output_tokens", "input", "output", "capabilities", "offerings",
    }
)  # fmt: skip
_OFFERING_KEYS = frozenset(
    {
        "provider", "model_id", "genai_prices", "prices", "tiers", "source", "notes",
        "context_window", "max_output_tokens",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """Prices the table sets itself for one offering (USD per 1M tokens, exact)."""

    prices: Mapping[str, Fraction]
    """``input`` and ``output`` always; the other :data:`_PRICE_FIELDS` where given."""
    tiers: tuple[PriceTier, ...]
    source: str
    """Where the price is published (an https URL)."""


@dataclass(frozen=True, slots=True)
class CatalogOffering:
    provider: str
    model_id: str
    library_ref: str | None
    """The model's id in ``genai-prices`` when ``model_id`` does not match there."""
    override: PriceOverride | None
    context_window: int | None
    max_output_tokens: int | None
    notes: str


@dataclass(frozen=True, slots=True)
class CatalogModel:
    id: str
    name: str
    author: str
    kind: str
    created: int
    """Unix time of the release date (UTC midnight)."""
    aliases: tuple[str, ...]
    description: str
    context_window: int | None
    max_output_tokens: int | None
    input_modalities: tuple[str, ...]
    output_modalities: tuple[str, ...]
    capabilities: frozenset[str]
    offerings: tuple[CatalogOffering, ...]


def load_catalog_text() -> str:
    """The packaged table's text."""
    return resources.files(DATA_PACKAGE).joinpath(DATA_FILE).read_text(encoding="utf-8")


def parse_catalog(text: str, table: ProviderTable = PROVIDERS) -> list[CatalogModel]:
    """Parse the table's JSON; numbers as Decimal so prices stay exact."""
    return catalog_from_data(json.loads(text, parse_float=Decimal), table)


def catalog_from_data(data: Any, table: ProviderTable = PROVIDERS) -> list[CatalogModel]:
    """Build from the parsed document; raises :class:`ValueError` naming the bad field."""
    models: list[CatalogModel] = []
    seen: set[str] = set()
    for index, raw in enumerate(_field(data, "models", list, "registry")):
        where = f"models[{index}]"
        model = _parse_model(raw, where, table)
        if model.id in seen:
            raise ValueError(f"{where}: duplicate model id {model.id!r}")
        seen.add(model.id)
        models.append(model)
    return models


def _parse_model(raw: Any, where: str, table: ProviderTable) -> CatalogModel:
    model_id = _field(raw, "id", str, where)
    unknown = set(raw) - _MODEL_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    kind = raw.get("kind", "chat")
    if kind not in KINDS:
        raise ValueError(f"{where}.kind: {kind!r} is not one of {sorted(KINDS)}")
    aliases = _strings(raw, "aliases", where)
    input_modalities = _strings(raw, "input", where, MODALITIES, default=("text",))
    output_modalities = _strings(
        raw, "output", where, MODALITIES, default=() if kind == "embedding" else ("text",)
    )
    capabilities = _strings(raw, "capabilities", where, CAPABILITIES)
    offerings_raw = _field(raw, "offerings", list, where)
    if not offerings_raw:
        raise ValueError(f"{where}.offerings: empty")
    offerings: list[CatalogOffering] = []
    for number, offering in enumerate(offerings_raw):
        parsed = _parse_offering(offering, f"{where}.offerings[{number}]", table)
        if any(o.provider == parsed.provider for o in offerings):
            raise ValueError(f"{where}: {parsed.provider} offers {model_id!r} twice")
        offerings.append(parsed)
    return CatalogModel(
        id=model_id,
        name=raw.get("name") or model_id,
        author=raw.get("author") or "",
        kind=kind,
        created=_created(raw.get("created"), where),
        aliases=aliases,
        description=raw.get("description") or "",
        context_window=_optional_int(raw, "context_window", where),
        max_output_tokens=_optional_int(raw, "max_output_tokens", where),
        input_modalities=input_modalities,
        output_modalities=output_modalities,
        capabilities=frozenset(capabilities),
        offerings=tuple(offerings),
    )


def _parse_offering(raw: Any, where: str, table: ProviderTable) -> CatalogOffering:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: must be an object")
    unknown = set(raw) - _OFFERING_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    provider = _field(raw, "provider", str, where)
    if table.get(provider) is None:
        known = ", ".join(spec.name for spec in table)
        raise ValueError(f"{where}.provider: {provider!r} is not one of {known}")
    override: PriceOverride | None = None
    if "prices" in raw:
        source = _field(raw, "source", str, where)
        if not source.startswith("https://"):
            raise ValueError(f"{where}.source: must be an https URL")
        if not isinstance(raw.get("notes"), str) or not raw["notes"].strip():
            raise ValueError(f"{where}.notes: an override says why the library is not used")
        prices = _parse_prices(_field(raw, "prices", dict, where), f"{where}.prices")
        if "input" not in prices or "output" not in prices:
            raise ValueError(f"{where}.prices: input and output are required")
        override = PriceOverride(prices, _parse_tiers(raw.get("tiers", []), where), source)
    elif "tiers" in raw or "source" in raw:
        raise ValueError(f"{where}: 'tiers' and 'source' belong to a 'prices' override")
    library_ref = raw.get("genai_prices")
    if library_ref is not None and not isinstance(library_ref, str):
        raise ValueError(f"{where}.genai_prices: must be a string")
    return CatalogOffering(
        provider=provider,
        model_id=_field(raw, "model_id", str, where),
        library_ref=library_ref,
        override=override,
        context_window=_optional_int(raw, "context_window", where),
        max_output_tokens=_optional_int(raw, "max_output_tokens", where),
        notes=raw.get("notes") or "",
    )


def _parse_tiers(raw: Any, where: str) -> tuple[PriceTier, ...]:
    if not isinstance(raw, list):
        raise ValueError(f"{where}.tiers: must be a list")
    tiers: list[PriceTier] = []
    for number, tier in enumerate(raw):
        tier_where = f"{where}.tiers[{number}]"
        prices = _parse_prices(_field(tier, "prices", dict, tier_where), tier_where)
        threshold = _field(tier, "above_prompt_tokens", int, tier_where)
        if threshold <= 0:
            raise ValueError(f"{tier_where}.above_prompt_tokens: must be positive")
        tiers.append(PriceTier(above_prompt_tokens=threshold, **prices))
    return tuple(sorted(tiers, key=lambda t: t.above_prompt_tokens))


def _parse_prices(raw: dict[str, Any], where: str) -> dict[str, Fraction]:
    unknown = set(raw) - set(_PRICE_FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown price fields {sorted(unknown)}")
    parsed: dict[str, Fraction] = {}
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
            raise ValueError(f"{where}.{name}: must be a number")
        try:
            price = Fraction(Decimal(value) if isinstance(value, str) else value)
        except (ArithmeticError, ValueError):
            raise ValueError(f"{where}.{name}: must be a number") from None
        if price < 0:
            raise ValueError(f"{where}.{name}: must be >= 0")
        parsed[name] = price
    return parsed


def _created(value: Any, where: str) -> int:
    if value is None:
        return 0
    if not isinstance(value, str):
        raise ValueError(f"{where}.created: must be a YYYY-MM-DD date")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{where}.created: must be a YYYY-MM-DD date") from None
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _strings(
    raw: dict[str, Any],
    key: str,
    where: str,
    allowed: frozenset[str] | None = None,
    default: tuple[str, ...] = (),
) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{where}.{key}: must be a list of strings")
    if allowed is not None and not set(value) <= allowed:
        raise ValueError(f"{where}.{key}: {sorted(set(value) - allowed)} not in {sorted(allowed)}")
    return tuple(value)


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
