"""Azure OpenAI's URLs: the OpenAI format on a per-resource endpoint, addressed by deployment.

Two forms, chosen by whether an API version is configured (``AZURE_OPENAI_API_VERSION``, or a
deployment's own ``api_version`` in the key store):

* with a version, the classic data-plane API:
  ``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version={version}`` (and
  ``/embeddings``); the Responses API is ``{endpoint}/openai/responses?api-version=…`` with the
  deployment as ``model``;
* without one, the v1 API (generally available since 2025), which is OpenAI's own shape:
  ``{endpoint}/openai/v1/chat/completions`` with the deployment name as ``model``.

The deployment is the model id of ``model/azure`` (``my-gpt4o/azure``) unless a key-store
deployment names its own. A deployment name is one path segment of letters, digits, ``.``,
``-`` and ``_`` (Azure's own rule), checked here so it can never leave the deployments path.
"""

from __future__ import annotations

import re
from urllib.parse import quote

__all__ = ["azure_path", "azure_url", "check_deployment"]

_DEPLOYMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_deployment(name: str) -> str:
    """``name`` if it is a valid Azure deployment name; ValueError naming the rule if not."""
    if not _DEPLOYMENT.fullmatch(name) or ".." in name:
        raise ValueError(
            f"{name!r} is not an Azure OpenAI deployment name (1-64 letters, digits, '.', '-' "
            "or '_', starting with a letter or digit)"
        )
    return name


def azure_url(endpoint: str, deployment: str, api_path: str, api_version: str | None) -> str:
    """The URL of ``api_path`` (``/chat/completions``…) on ``deployment`` at ``endpoint``
    (``https://<resource>.openai.azure.com``; a trailing ``/openai`` or ``/openai/v1`` is
    accepted too)."""
    base = endpoint.rstrip("/")
    for suffix in ("/openai/v1", "/openai"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base + azure_path(deployment, api_path, api_version)


def azure_path(deployment: str, api_path: str, api_version: str | None) -> str:
    """What :func:`azure_url` appends to the resource's endpoint."""
    if api_version is None:
        return f"/openai/v1{api_path}"
    version = quote(api_version, safe="")
    if api_path == "/responses":
        return f"/openai/responses?api-version={version}"
    name = quote(check_deployment(deployment), safe="")
    return f"/openai/deployments/{name}{api_path}?api-version={version}"
