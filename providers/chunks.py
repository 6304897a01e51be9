"""The ``chat.completion.chunk`` objects a translated stream emits, whatever it translates.

The stream decoders of Anthropic's Messages, Bedrock's Converse and Gemini differ in what they
read and agree on what they write, as OpenAI streams it: every chunk stamped with the answer's
id, creation time and model; ``usage: null`` on each chunk when the client asked for usage,
and then one last chunk with ``choices: []`` and the usage; an error after the 200 as the
unified format's error chunk. :class:`OneChoiceDecoder` is the single-choice decoders' shared
end of a stream (Messages and Converse answer one choice; Gemini may answer several).
"""

from __future__ import annotations

from typing import Any, ClassVar

from providers.adapter import ChatStreamDecoder

JSONObject = dict[str, Any]


def error_chunk(message: str, kind: str, code: str | None = None) -> JSONObject:
    """An error in the middle of a stream, as the unified format carries it."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def choice_chunk(
    answer_id: str,
    created: int,
    model: str,
    index: int,
    delta: JSONObject,
    finish: str | None,
    include_usage: bool,
) -> JSONObject:
    """One choice's ``delta`` (and its finish reason, once known); ``usage: null`` when the
    client asked for usage (it comes in the stream's last chunk)."""
    chunk: JSONObject = {
        "id": answer_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if include_usage:
        chunk["usage"] = None
    return chunk


def usage_chunk(answer_id: str, created: int, model: str, usage: JSONObject) -> JSONObject:
    """The last chunk of a stream whose client asked for usage: no choices, the usage
    (already in OpenAI's shape: each provider maps its own details)."""
    return {
        "id": answer_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage,
    }


class OneChoiceDecoder(ChatStreamDecoder):
    """A decoder of a one-choice stream: its chunks, its finish, its usage chunk and its end.

    A subclass reads its provider's events in ``feed`` and ``usage`` and keeps ``_id`` and
    ``_model`` up to date; it calls :meth:`_closing` when the upstream says the answer ended,
    and sets ``_finished`` once it has sent the finish reason's chunk. ``close`` (the upstream
    stream is over) then adds what the answer still lacks, or, when it never finished, says
    so with an error chunk naming the provider (``_INCOMPLETE``).
    """

    _INCOMPLETE: ClassVar[str]
    """The error message of a stream that ended before the answer was complete."""

    def __init__(self, *, include_usage: bool, created: int, answer_id: str, model: str) -> None:
        self._include_usage = include_usage
        self._created = created
        self._id = answer_id
        self._model = model
        self._finished = False
        """The finish reason's chunk was sent."""
        self._ended = False
        """Nothing more is emitted: the answer ended, failed, or the stream was closed."""

    def close(self) -> list[JSONObject]:
        if self._ended:
            return []
        self._ended = True
        if self._finished:  # the upstream's last event never came, but the answer was complete
            return self._closing()
        return [error_chunk(self._INCOMPLETE, "api_error")]

    def _usage_json(self) -> JSONObject | None:
        """The usage so far in OpenAI's shape (None: none reported); each provider's own."""
        raise NotImplementedError

    def _chunk(self, delta: JSONObject, finish: str | None = None) -> JSONObject:
        return choice_chunk(
            self._id, self._created, self._model, 0, delta, finish, self._include_usage
        )

    def _closing(self) -> list[JSONObject]:
        """The end of the answer: a ``stop`` finish unless one was sent, then the usage chunk
        if the client asked for it and the upstream reported usage."""
        chunks = [] if self._finished else [self._chunk({}, "stop")]
        self._finished = True
        if self._include_usage:
            usage = self._usage_json()
            if usage is not None:
                chunks.append(usage_chunk(self._id, self._created, self._model, usage))
        return chunks
