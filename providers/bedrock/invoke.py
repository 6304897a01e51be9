"""InvokeModel with Anthropic's Messages body: Claude on Bedrock in its own format.

The body is the Anthropic adapter's (:func:`providers.anthropic.chat_to_messages`) with the
changes Bedrock's Claude endpoint needs: ``anthropic_version: "bedrock-2023-05-31"`` in the
body instead of a header, no ``model`` (it is in the path) and no ``stream`` (the operation
says it: ``invoke-with-response-stream``). Fields Bedrock's Messages body does not take are
handled as the gateway documents them: ``context_management`` (the gateway's context editing,
§5.1) is an Anthropic-API feature and is not sent ("ignored when routing to other
providers"); ``metadata.user_id`` is not sent (Bedrock has no such field; it is a tracking
hint); ``service_tier`` cannot be expressed and is refused.
"""

from __future__ import annotations

from typing import Any

from providers.anthropic.request import platform_body

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"

JSONObject = dict[str, Any]


def chat_to_invoke(payload: JSONObject, *, default_max_tokens: int) -> JSONObject:
    """The InvokeModel body for Claude for an OpenAI chat request."""
    return platform_body(
        payload,
        platform="Bedrock",
        anthropic_version=BEDROCK_ANTHROPIC_VERSION,
        default_max_tokens=default_max_tokens,
        dropped=frozenset({"model", "stream", "metadata", "context_management"}),
    )
