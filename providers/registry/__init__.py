"""The model registry: one data source for routing and prices.

What it holds: every model the gateway knows (id, name, author, release date, context window,
max output, input/output modalities, capabilities) and, per model, its *offerings*: which
provider serves it under which provider-side id, at which price, on which unified endpoints.

Where the facts come from:

* **Prices** come from ``genai-prices`` (Pydantic's price database: many providers, cache,
  audio and long-context tier prices, prices by date), converted once per (provider, model)
  into the exact :class:`~providers.cost.ModelPrice` the cost calculation uses
  (:mod:`providers.registry.library`).
* **The project's own table**, ``providers/models.json`` (:mod:`providers.registry.catalog`),
  holds the routing facts, and prices only where it must override the library (it lacks a
  price, or has a stale one): each override names its source URL and says why.
* **Resellers without a price of their own.** A known model served by a provider that has no
  price for it (neither in the table nor in the library) is priced at the *model maker's*
  price (the offering of the provider that is the model's author: ``gpt-4o-mini`` on
  ``groq`` costs what OpenAI charges), flagged as such: ``Offering.price_source == "maker"``
  and ``ModelPrice.source == "maker:<maker>:<maker's source>"``. A model whose maker sells it
  nowhere in the registry (open-weight models) has no maker price; an unknown pair then
  costs nothing known (``CostResult.known`` false) rather than a guess.

Build it once per process (``Registry.load()``: about half a second, so off the event loop)
and keep it; every lookup after that is dictionary work, each distinct answer remembered.

API (for routing, the listings and the log writer)::

    Registry.load(at: datetime | None = None, table: ProviderTable = PROVIDERS) -> Registry
    Registry.from_data(data, *, library: PriceLibrary | None = None, table=PROVIDERS)

    registry.models() -> tuple[Model, ...]              # table order
    registry.resolve(name: str) -> str | None           # id / alias / provider id / snapshot
    registry.model(name: str) -> Model | None
    registry.offerings(name: str) -> tuple[Offering, ...]
        # routed offerings only, cheapest first (input + output per 1M, unpriced last,
        # ties in table order)
    registry.offering(name: str, provider: str) -> Offering | None

    registry.lookup(provider: str, model: str) -> ModelPrice | None
    registry.cost(provider: str, model: str, usage: Usage) -> CostResult
    registry.prices() -> tuple[ModelPrice, ...]

    Offering: model, provider, provider_model_id, price: ModelPrice | None,
        price_source ("genai-prices" | "override" | "maker" | "none"), price_from,
        context_window, max_output_tokens, routed, endpoints (unified paths),
        supports_responses, per_million (Fraction | None), source_label
    Model: id, name, author, kind ("chat" | "embedding" | "audio"), created (unix time),
        aliases, description, context_window, max_output_tokens, input_modalities,
        output_modalities, capabilities (tools, reasoning, web_search, vision, audio,
        caching), offerings (all, table order), multimodal, supports_tools,
        supports_vision, supports_reasoning

Name resolution: ``claude-sonnet-4.5``, its alias ``claude-sonnet-4-5``, Anthropic's id
``claude-sonnet-4-5-20250929`` and an unlisted later snapshot
``claude-sonnet-4-5-20260101`` all resolve to ``claude-sonnet-4.5``; case is ignored.
"""

from providers.registry.core import Model, Offering, PriceSource, Registry
from providers.registry.library import PriceLibrary

__all__ = ["Model", "Offering", "PriceLibrary", "PriceSource", "Registry"]
