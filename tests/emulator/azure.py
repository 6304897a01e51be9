"""Azure OpenAI's addressing on the OpenAI emulator: the same endpoints behind Azure's paths.

Azure serves the OpenAI format at ``/openai/deployments/{deployment}/{endpoint}?api-version=…``
(and ``/openai/responses?api-version=…``) or, in its v1 API, ``/openai/v1/{endpoint}``, with
the key in an ``api-key`` header. :func:`openai_path` maps such a path to the emulator's own
OpenAI route; a deployments path without ``api-version`` is a 404, as on Azure. The deployment
named is recorded by the request log (tests read ``path``).
"""

from __future__ import annotations

import re

from aiohttp import web

from .errors import error_response

PREFIX = "/openai/"
_DEPLOYMENT = re.compile(r"^/openai/deployments/([^/]+)(/.+)$")


def is_azure(request: web.Request) -> bool:
    return request.path.startswith(PREFIX)


def openai_path(request: web.Request) -> str | None:
    """The OpenAI route an Azure path stands for, or None (Azure's 404). The deployments
    listing (``GET /openai/deployments``, what a key check calls) is the models list."""
    path = request.path
    if path == "/openai/deployments" and "api-version" in request.query:
        return "/v1/models"
    if path.startswith("/openai/v1/"):
        return path[len("/openai") :]
    if "api-version" not in request.query:
        return None
    if path == "/openai/responses":
        return "/v1/responses"
    match = _DEPLOYMENT.match(path)
    return "/v1" + match.group(2) if match else None


def check_key(request: web.Request, api_key: str | None) -> web.Response | None:
    """Azure's ``api-key`` check (401 with Azure's wording)."""
    if api_key is None:
        return None
    if request.headers.get("api-key") != api_key:
        return error_response(
            401,
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
            "provide a valid key for an active subscription and use a correct regional API "
            "endpoint for your resource.",
            code="401",
        )
    return None


def not_found() -> web.Response:
    return error_response(404, "Resource not found", code="404")
