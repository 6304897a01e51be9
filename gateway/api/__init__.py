"""Helicone-compatible REST query API (``/v1/request/*``) mounted on the gateway's FastAPI app.

Wiring (done in :mod:`gateway.app`): ``include_request_api(app, RequestApiDeps(...))``.
"""

from gateway.api.requests import RequestApiDeps, include_request_api, request_router

__all__ = ["RequestApiDeps", "include_request_api", "request_router"]
