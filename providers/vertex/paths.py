"""Where a Vertex AI request goes: hosts per location, the resource path of a publisher's
model, and what a Vertex path says about the answer's format.

Vertex serves every model under one resource path,
``/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{model}:{method}``,
on the location's host, ``https://{location}-aiplatform.googleapis.com`` (the ``global``
location: ``https://aiplatform.googleapis.com``; the multi-region locations ``us`` and ``eu``:
``https://aiplatform.{us,eu}.rep.googleapis.com``, Google's regional endpoint proxies, which
pool the capacity of one geography's regions). Google's models (publisher ``google``) speak
the Gemini API's ``generateContent``; Anthropic's (publisher ``anthropic``) speak the Messages
API through ``rawPredict`` / ``streamRawPredict``. The project and location become part of a
host name and a path, so they are checked strictly before use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

GLOBAL = "global"
DEFAULT_LOCATION = GLOBAL
"""Where requests go when neither the deployment nor the operator names a location: the
global endpoint serves Gemini 2.x and the current Claude models alike."""

MULTI_REGIONS: Mapping[str, str] = MappingProxyType(
    {
        "us": "https://aiplatform.us.rep.googleapis.com",
        "eu": "https://aiplatform.eu.rep.googleapis.com",
    }
)
"""The multi-region locations Google documents for Vertex AI and their hosts: not
``us-aiplatform.googleapis.com`` (no such host) but the ``rep`` (regional endpoint proxy)
hosts, as the anthropic SDK's ``AnthropicVertex`` and google-genai build them."""

Publisher = Literal["google", "anthropic"]

_LOCATION = re.compile(r"[a-z]+-[a-z]+[0-9]{1,2}")
"""A Google Cloud region (``us-central1``, ``europe-west4``, ``us-east5``)."""
_PROJECT = re.compile(r"(?:[a-z0-9][a-z0-9.-]{0,62}:)?[a-z0-9][a-z0-9-]{0,62}")
"""A project id (``my-project``), a project number, or a domain-scoped id (``example.com:p``)."""
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
"""A model id as it may appear in the path (``claude-sonnet-4@20250514``): no ``/`` or ``:``."""
_PUBLISHER = re.compile(r"/projects/[^/]+/locations/[^/]+/publishers/([^/]+)/models/")
_LOCATION_IN_PATH = re.compile(r"^/v1(?:beta1)?/projects/[^/]+/locations/([^/:]+)")


def is_location(value: str) -> bool:
    """Whether ``value`` is a location the gateway sends requests to: ``global``, a
    multi-region (``us``, ``eu``) or a region."""
    return value == GLOBAL or value in MULTI_REGIONS or _LOCATION.fullmatch(value) is not None


def is_project(value: str) -> bool:
    return _PROJECT.fullmatch(value) is not None and ".." not in value


def is_model_id(value: str) -> bool:
    return _MODEL.fullmatch(value) is not None and ".." not in value


def endpoint_url(location: str) -> str:
    """The API host of ``location`` (checked with :func:`is_location` first)."""
    if location == GLOBAL:
        return "https://aiplatform.googleapis.com"
    multi = MULTI_REGIONS.get(location)
    if multi is not None:
        return multi
    return f"https://{location}-aiplatform.googleapis.com"


def location_path(project: str, location: str) -> str:
    """``/v1/projects/{project}/locations/{location}``: what every model path starts with."""
    return f"/v1/projects/{project}/locations/{location}"


def publisher_of(model: str) -> Publisher:
    """Who publishes ``model`` on Vertex: Anthropic for Claude, else Google."""
    return "anthropic" if model.startswith("claude") else "google"


def model_path(publisher: Publisher, model: str, method: str) -> str:
    """``/publishers/{publisher}/models/{model}:{method}`` (under :func:`location_path`)."""
    return f"/publishers/{publisher}/models/{model}:{method}"


def answer_wire(path: str) -> Literal["anthropic", "gemini"]:
    """The format a Vertex path answers in: Anthropic's for Anthropic's models, else the
    Gemini API's (a passthrough request is logged with that format's reader)."""
    match = _PUBLISHER.search(path)
    return "anthropic" if match is not None and match[1] == "anthropic" else "gemini"


def location_in_path(path: str) -> str | None:
    """The location a Vertex resource path names (``/v1/projects/p/locations/{it}/…``)."""
    match = _LOCATION_IN_PATH.match(path)
    return match[1] if match is not None else None
