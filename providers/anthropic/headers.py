"""The HTTP headers of a request to the Anthropic Messages API."""

from __future__ import annotations

from typing import Any

ANTHROPIC_VERSION = "2023-06-01"
"""The ``anthropic-version`` every request names (the only version of the Messages API)."""

CONTEXT_MANAGEMENT_BETA = "context-management-2025-06-27"
"""Context editing (``context_management`` in the body) is a beta feature: Anthropic refuses
the field unless the request opts in with this ``anthropic-beta`` value."""


def request_headers(api_key: str, payload: dict[str, Any]) -> dict[str, str]:
    """Headers for sending ``payload`` (an Anthropic request body, as built by
    :func:`~providers.anthropic.request.chat_to_messages`) with ``api_key``."""
    headers = {
        "x-api-key": api_key,
        "anthropic-version": ANTHROPIC_VERSION,
        "content-type": "application/json",
    }
    betas = [CONTEXT_MANAGEMENT_BETA] if payload.get("context_management") is not None else []
    if betas:
        headers["anthropic-beta"] = ",".join(betas)
    return headers
