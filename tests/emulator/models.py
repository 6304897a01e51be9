"""``GET /v1/models`` and ``GET /v1/models/{id}``: a small fixed catalogue.

The emulator answers any model name on the other endpoints (tests route arbitrary names
through the gateway); the catalogue only serves clients that list or look up models.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
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
