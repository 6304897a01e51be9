"""Vertex AI as a routed provider: Google's Gemini models and Anthropic's Claude on Google
Cloud, through the Gemini and Anthropic translations (pure, no network, no gateway imports).

* :class:`VertexAdapter` — the adapter protocol on Vertex's resource paths;
* :func:`chat_to_vertex_claude` — OpenAI chat request → Claude's ``rawPredict`` body;
* :mod:`.embeddings` — OpenAI embeddings ⇄ Vertex's text embeddings ``:predict``;
* :mod:`.paths` — locations, hosts, resource paths, the answer format of a Vertex path.

Access tokens (minted from a service-account key, cached) are the gateway's business:
:mod:`gateway.vertex_auth`.
"""

from providers.vertex.adapter import VERTEX_ANTHROPIC_VERSION, VertexAdapter, chat_to_vertex_claude
from providers.vertex.embeddings import embeddings_to_vertex, vertex_to_embeddings
from providers.vertex.paths import (
    DEFAULT_LOCATION,
    MULTI_REGIONS,
    answer_wire,
    endpoint_url,
    is_location,
    is_project,
    location_in_path,
    location_path,
)

__all__ = [
    "DEFAULT_LOCATION",
    "MULTI_REGIONS",
    "VERTEX_ANTHROPIC_VERSION",
    "VertexAdapter",
    "answer_wire",
    "chat_to_vertex_claude",
    "embeddings_to_vertex",
    "endpoint_url",
    "is_location",
    "is_project",
    "location_in_path",
    "location_path",
    "vertex_to_embeddings",
]
