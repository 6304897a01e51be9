"""The model listings, computed once from the registry: ``/v1/models``, its multimodal
subset and the public model registry (``/v1/public/model-registry/models``).

Why computed once: what a listing says depends only on the registry and on which providers
this process can call, and neither changes while it runs. ``/v1/models`` is public (no key),
so it must not cost an upstream call per request (it used to call every configured
provider's ``/models``); its body is serialised at startup and sent as it is.

Id conventions of ``/v1/models`` (every listed id is a valid ``model`` string): a model
offered by the default provider (``openai``) is listed by its registry id (``gpt-4o-mini``);
each other usable provider's offering by ``<registry id>/<provider>``
(``llama-3.3-70b/groq``). A provider is usable when it has a managed key (or needs none and
the operator configured it: ``ollama``). ``owned_by`` is the model's author and ``created``
its release date. Models the registry does not list (a newly released one) are not listed,
but stay usable as ``model/provider``; a configured local server's (``ollama``) own models,
which no registry can know, are asked once at startup by the runtime and appended
(``extra``).

The public registry lists every model with at least one routed, priced offering, whatever
is configured (the gateway *can* route there); ``supportsPtb`` says whether the operator's
managed key is configured (requests can be served "on credits"). Its shapes follow
Helicone's ``ModelRegistryResponse``; the query filters are this gateway's (Helicone's
documents none): ``providers``, ``authors``, ``capabilities``, ``inputModalities``,
``outputModalities`` (comma-separated or repeated; a model matches a filter when it has any
of its values, and every given filter), and ``search`` (a substring of the id or name).
``filters`` in the answer lists every value present in the whole registry, so a client can
offer them whatever it filtered on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import orjson

from providers.cost import ModelPrice
from providers.registry import Model, Offering, Registry
from providers.spec import DEFAULT_PROVIDER, PROVIDERS, ProviderTable

MODEL_CAPABILITIES = ("audio", "video", "image", "thinking", "web_search", "caching", "reasoning")
"""Helicone's ``ModelCapability`` values."""
MODALITIES = ("text", "image", "audio", "video")

_CHAT_PARAMETERS = (
    "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "stream", "seed",
    "frequency_penalty", "presence_penalty", "response_format",
)  # fmt: skip
_FILTERS = {
    "providers": "providers", "provider": "providers",
    "authors": "authors", "author": "authors",
    "capabilities": "capabilities", "capability": "capabilities",
    "inputModalities": "inputModalities", "inputModality": "inputModalities",
    "outputModalities": "outputModalities", "outputModality": "outputModalities",
    "search": "search",
}  # fmt: skip
_ENUMS = {
    "capabilities": MODEL_CAPABILITIES,
    "inputModalities": MODALITIES,
    "outputModalities": MODALITIES,
}


class ListingError(ValueError):
    """A bad query filter; the message names it and the values it accepts."""


class ModelListing:
    """The listings of one process: built once at startup, read per request."""

    def __init__(
        self,
        registry: Registry,
        usable: Iterable[str],
        table: ProviderTable = PROVIDERS,
        extra: Sequence[dict[str, Any]] = (),
        default_provider: str = DEFAULT_PROVIDER,
    ) -> None:
        usable_providers = frozenset(usable)
        self._table = table
        everything = _openai_models(registry.models(), usable_providers, default_provider)
        everything += extra
        multimodal = _openai_models(
            (m for m in registry.models() if m.multimodal), usable_providers, default_provider
        )
        self.models_body: bytes = orjson.dumps({"object": "list", "data": everything})
        """``GET /v1/models``, serialised."""
        self.multimodal_body: bytes = orjson.dumps({"object": "list", "data": multimodal})
        """``GET /v1/models/multimodal``, serialised."""
        self._items: list[tuple[Model, dict[str, Any], frozenset[str], frozenset[str]]] = []
        for model in registry.models():
            offerings = [o for o in registry.offerings(model.id) if o.price is not None]
            if not offerings:
                continue
            item = _registry_item(model, offerings, usable_providers)
            self._items.append(
                (model, item, frozenset(o.provider for o in offerings), _capabilities(model))
            )
        self._filters = self._facets()

    def public_registry(self, query: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        """``ModelRegistryResponse`` for the query's filters (see the module docstring);
        raises :class:`ListingError` for an unknown capability or modality."""
        wanted = _parse_filters(query)
        search = " ".join(wanted.pop("search", ())).strip().lower()
        models = [
            item
            for model, item, providers, capabilities in self._items
            if _matches(model, providers, capabilities, wanted)
            and (not search or search in model.id.lower() or search in model.name.lower())
        ]
        return {"models": models, "total": len(models), "filters": self._filters}

    def _facets(self) -> dict[str, Any]:
        providers = sorted({p for _, _, names, _ in self._items for p in names})
        present = {c for _, _, _, capabilities in self._items for c in capabilities}
        return {
            "providers": [
                {"name": name, "displayName": _title(self._table, name)} for name in providers
            ],
            "authors": sorted({model.author for model, _, _, _ in self._items}),
            "capabilities": [c for c in MODEL_CAPABILITIES if c in present],
        }


def _openai_models(
    models: Iterable[Model], usable: frozenset[str], default_provider: str
) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = []
    seen: set[str] = set()
    for model in models:
        for offering in model.offerings:
            if not offering.endpoints or offering.provider not in usable:
                continue
            model_id = model.id
            if offering.provider != default_provider:
                model_id = f"{model.id}/{offering.provider}"
            if model_id in seen:
                continue
            seen.add(model_id)
            listed.append(
                {
                    "id": model_id,
                    "object": "model",
                    "created": model.created,
                    "owned_by": model.author or offering.provider,
                }
            )
    return listed


def _registry_item(
    model: Model, offerings: Sequence[Offering], usable: frozenset[str]
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": model.id,
        "name": model.name,
        "author": model.author,
        "contextLength": model.context_window
        or max((o.context_window or 0 for o in offerings), default=0),
        "endpoints": [_endpoint(o, usable) for o in offerings],
    }
    if model.max_output_tokens:
        item["maxOutput"] = model.max_output_tokens
    if model.created:
        item["trainingDate"] = datetime.fromtimestamp(model.created, UTC).date().isoformat()
    if model.description:
        item["description"] = model.description
    item["inputModalities"] = list(model.input_modalities)
    item["outputModalities"] = list(model.output_modalities)
    item["supportedParameters"] = _parameters(model)
    return item


def _endpoint(offering: Offering, usable: frozenset[str]) -> dict[str, Any]:
    price = offering.price
    assert price is not None  # only priced offerings are listed
    endpoint: dict[str, Any] = {
        "provider": offering.provider,
        "providerSlug": offering.provider,
        "supportsPtb": offering.provider in usable,
        "pricing": _pricing(price),
    }
    if price.tiers:
        endpoint["pricingTiers"] = [
            _pricing(price, 0),
            *(_pricing(price.for_prompt(t.above_prompt_tokens + 1), t.above_prompt_tokens)
              for t in price.tiers),
        ]  # fmt: skip
    return endpoint


def _pricing(price: ModelPrice, threshold: int | None = None) -> dict[str, Any]:
    """``SimplifiedPricing``: USD per 1M tokens, as JSON numbers (display only: costs are
    computed from the exact prices)."""
    pricing: dict[str, Any] = {"prompt": _number(price.input), "completion": _number(price.output)}
    if price.cache_read is not None:
        pricing["cacheRead"] = _number(price.cache_read)
    if price.cache_write is not None:
        pricing["cacheWrite"] = _number(price.cache_write)
    if price.reasoning is not None:
        pricing["thinking"] = _number(price.reasoning)
    if price.audio_input is not None or price.audio_output is not None:
        audio: dict[str, float] = {}
        if price.audio_input is not None:
            audio["input"] = _number(price.audio_input)
        if price.audio_output is not None:
            audio["output"] = _number(price.audio_output)
        pricing["audio"] = audio
    if threshold is not None:
        pricing["threshold"] = threshold
    return pricing


def _number(value: Fraction) -> float:
    return float(value)


def _parameters(model: Model) -> list[str]:
    """``supportedParameters``, derived from the kind and the capabilities (the common
    OpenAI parameters for chat; tools and reasoning where the model has them)."""
    if model.kind == "embedding":
        return []
    parameters = list(_CHAT_PARAMETERS)
    if model.supports_tools:
        parameters += ["tools", "tool_choice"]
    if model.supports_reasoning:
        parameters += ["reasoning", "include_reasoning"]
    return parameters


def _capabilities(model: Model) -> frozenset[str]:
    """Helicone's capability names for a model: modalities, ``reasoning`` (also listed as
    ``thinking``), ``caching``, ``web_search``."""
    found = {m for m in (*model.input_modalities, *model.output_modalities) if m != "text"}
    if model.supports_reasoning:
        found |= {"reasoning", "thinking"}
    found |= model.capabilities & {"caching", "web_search"}
    return frozenset(found)


def _parse_filters(query: Mapping[str, Sequence[str]]) -> dict[str, set[str]]:
    wanted: dict[str, set[str]] = {}
    for key, values in query.items():
        name = _FILTERS.get(key)
        if name is None:
            continue  # other parameters are ignored, as Helicone's list endpoints do
        found = wanted.setdefault(name, set())
        for value in values:
            parts = [value] if name == "search" else value.split(",")
            found.update(part.strip() for part in parts if part.strip())
        allowed = _ENUMS.get(name)
        if allowed is not None and not found <= set(allowed):
            bad = ", ".join(sorted(found - set(allowed)))
            raise ListingError(
                f"Unknown {name} value(s): {bad}. Use any of: {', '.join(allowed)}."
            )
    return {name: values for name, values in wanted.items() if values}


def _matches(
    model: Model,
    providers: frozenset[str],
    capabilities: frozenset[str],
    wanted: Mapping[str, set[str]],
) -> bool:
    checks = {
        "providers": providers,
        "authors": {model.author},
        "capabilities": capabilities,
        "inputModalities": set(model.input_modalities),
        "outputModalities": set(model.output_modalities),
    }
    return all(values & checks[name] for name, values in wanted.items())


def _title(table: ProviderTable, name: str) -> str:
    spec = table.get(name)
    return spec.title if spec is not None else name
