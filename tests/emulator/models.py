"""``GET /v1/models`` and ``GET /v1/models/{id}``: a small fixed catalogue, in OpenAI's shape,
and Anthropic's ``GET /v1/models`` (a request carrying ``anthropic-version``) in its own.

The emulator answers any model name on the other endpoints (tests route arbitrary names
through the gateway); the catalogue only serves clients that list or look up models.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from anthropic.types import ModelInfo
from openai.types import Model

from .errors import error_response
from .exchange import Exchange
from .wire import dump, json_response

CATALOGUE: tuple[tuple[str, int], ...] = (
    ("gpt-4o-mini", 1721172741),
    ("gpt-4o", 1715367049),
    ("gpt-4.1-mini", 1744318173),
    ("text-embedding-3-small", 1705948997),
    ("text-embedding-3-large", 1705953180),
)


ANTHROPIC_CATALOGUE: tuple[tuple[str, str, str], ...] = (
    ("claude-sonnet-4-5", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    ("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-15T00:00:00Z"),
)


def _model(model_id: str, created: int) -> dict[str, Any]:
    return dump(
        Model.model_validate(
            {"id": model_id, "object": "model", "created": created, "owned_by": "system"}
        )
    )


async def list_models(exchange: Exchange) -> web.StreamResponse:
    data = [_model(model_id, created) for model_id, created in CATALOGUE]
    return json_response({"object": "list", "data": data}, exchange.serial)


async def retrieve_model(exchange: Exchange, model_id: str) -> web.StreamResponse:
    for known, created in CATALOGUE:
        if known == model_id:
            return json_response(_model(known, created), exchange.serial)
    return error_response(
        404,
        f"The model '{model_id}' does not exist",
        param="model",
        code="model_not_found",
    )


async def list_anthropic_models(exchange: Exchange) -> web.StreamResponse:
    """Anthropic's model list: one page of ``ModelInfo`` (what a key check asks for)."""
    data = [
        dump(
            ModelInfo.model_validate(
                {
                    "type": "model",
                    "id": model_id,
                    "display_name": name,
                    "created_at": created,
                    "lifecycle": "active",
                }
            )
        )
        for model_id, name, created in ANTHROPIC_CATALOGUE
    ]
    page = {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"],
        "last_id": data[-1]["id"],
    }
    return json_response(page, exchange.serial)
