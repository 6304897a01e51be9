"""The OpenAI Responses API over Chat Completions, for providers without a Responses endpoint.

Pure translation, no I/O: :func:`responses_to_chat` turns a ``/v1/responses`` body into the
gateway's unified chat request; :func:`chat_to_response` turns the chat completion back into a
``Response``; :class:`ChatToResponsesStream` does the same for a stream, chunk by chunk, and
:func:`encode_event` frames its events as SSE. How reasoning round-trips through
``encrypted_content`` is in :mod:`providers.responses.reasoning`.
"""

from providers.responses.request import responses_to_chat
from providers.responses.response import chat_to_response
from providers.responses.stream import ChatToResponsesStream, encode_event

__all__ = ["ChatToResponsesStream", "chat_to_response", "encode_event", "responses_to_chat"]
