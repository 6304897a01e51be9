"""``GET /v1/public/model-registry/models``: the model registry, public (no key), in
Helicone's ``Result<ModelRegistryResponse, string>`` envelope.

The answer comes from :class:`gateway.listing.ModelListing` (built once at startup); the
query filters and shapes are documented there.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from gateway.api.envelope import fail, ok
from gateway.errors import GatewayError
from gateway.listing import ListingError, ModelListing

PATH = "/v1/public/model-registry/models"


def model_registry_router(listing: Callable[[], ModelListing]) -> APIRouter:
    """The public registry endpoint, reading the listing ``listing()`` returns."""
    router = APIRouter(tags=["Model Registry"])

    @router.get(PATH, operation_id="GetModelRegistry")
    async def get_model_registry(request: Request) -> Response:
        """All models the gateway can route to, with providers, prices and capabilities."""
        query = {key: request.query_params.getlist(key) for key in request.query_params}
        try:
            return ok(listing().public_registry(query))
        except ListingError as exc:
            return fail(400, str(exc))
        except GatewayError as exc:
            return fail(exc.status, exc.message)

    return router


def include_model_registry(app: FastAPI, listing: Callable[[], ModelListing]) -> None:
    app.include_router(model_registry_router(listing))
