"""A :class:`~logging_pipeline.capture.Capture` for a call the gateway did not proxy.

A proxied request's capture holds monotonic clock readings taken while it was served; a logged
call arrives with wall-clock times the client measured (start, first token, end). Here they
become a capture that the writer treats exactly like a proxied one: ``created_at`` is the
reported start, and the monotonic fields are placed so that the latency and time to first
token the writer derives from them are the reported ones. Usage the client reported (rather
than a response body to read it from) goes in ``reported_usage``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from logging_pipeline.capture import Capture


@dataclass(slots=True)
class LoggedCall:
    """What one logged call says about itself; every ingestion route fills one of these.

    Times are Unix seconds (wall clock). ``end`` None: the call is logged as ending at
    ``start`` (latency 0); ``first_token`` None: no time to first token. ``wire`` names the
    reader of ``response_body`` (``openai``, ``anthropic``, ``gemini``…) when usage is to be
    read from it, as for proxied requests.
    """

    organization_id: str
    api_key_id: str
    request_id: str
    path: str
    start: float
    end: float | None = None
    first_token: float | None = None
    provider: str = ""
    target_url: str = ""
    model: str = ""
    model_override: str = ""
    """``Helicone-Model-Override``: the model the record names and prices, bodies aside."""
    request_body: bytes = b""
    response_body: bytes = b""
    status: int = 200
    is_stream: bool = False
    wire: str = "openai"
    user_id: str = ""
    properties: dict[str, str] = field(default_factory=dict)
    usage: dict[str, int] | None = None
    omit_request: bool = False
    omit_response: bool = False


def logged_capture(call: LoggedCall) -> Capture:
    """The capture the writer stores for ``call`` (same row and body document as a proxied
    request's). An end before the start, or a first token outside [start, end], is clamped
    to the start or end rather than refused: clocks on two machines disagree."""
    started = time.perf_counter()
    end = call.start if call.end is None else max(call.start, call.end)
    first_byte: float | None = None
    if call.first_token is not None:
        first_byte = started + min(max(call.first_token, call.start), end) - call.start
    return Capture(
        request_id=call.request_id,
        organization_id=call.organization_id,
        api_key_id=call.api_key_id,
        path=call.path,
        created_at=call.start,
        started=started,
        provider=call.provider,
        target_url=call.target_url,
        request_model=call.model,
        model_override=call.model_override,
        request_body=call.request_body,
        status=call.status,
        response_body=call.response_body,
        is_stream=call.is_stream,
        first_byte_at=first_byte,
        finished_at=started + (end - call.start),
        user_id=call.user_id,
        properties=call.properties,
        omit_request=call.omit_request,
        omit_response=call.omit_response,
        wire=call.wire,
        reported_usage=call.usage,
    )
