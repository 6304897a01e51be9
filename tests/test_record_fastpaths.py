"""The log writer's per-record fast paths against the forms they replaced, value for value.

``build_record`` writes its row as a positional tuple, ``openai_format.usage_from`` builds
:class:`Usage` by position with ``_int`` inlined, and ``ModelPrice.cost`` has a shortcut for
text-only usage below any tier. Each reference below is the code as it was before (copied),
and each test runs both over many shapes: a column out of order, a count read from the wrong
field, or a shortcut taken where the sum would differ fails here.
"""

from __future__ import annotations

import itertools
import operator
import random
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from logging_pipeline import record as rec
from logging_pipeline.capture import Capture
from logging_pipeline.estimate import TokenEstimator, prompt_text
from logging_pipeline.schema import INSERT_COLUMNS
from providers.cost import CostResult, ModelPrice, PriceTier, _clamp, _round_half_up
from providers.formats import response_reader
from providers.openai_format import usage_from
from providers.registry import Registry
from providers.usage import Usage

# --- usage_from ----------------------------------------------------------------------------


def _int(value: Any) -> int:
    return value if type(value) is int else 0


def _reference_chat_usage(obj: Any) -> Usage | None:
    """``usage_from``'s chat-completions branch as it was (keyword fields, ``_int``)."""
    if not isinstance(obj, dict):
        return None
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if type(prompt) is not int and type(completion) is not int:
        return None
    return Usage(
        prompt_tokens=_int(prompt),
        completion_tokens=_int(completion),
        cache_read_tokens=_int(prompt_details.get("cached_tokens")),
        cache_write_tokens=_int(prompt_details.get("cache_write_tokens")),
        reasoning_tokens=_int(completion_details.get("reasoning_tokens")),
        prompt_audio_tokens=_int(prompt_details.get("audio_tokens")),
        completion_audio_tokens=_int(completion_details.get("audio_tokens")),
    )


_MISSING = object()
_VALUES: tuple[Any, ...] = (_MISSING, None, 0, 7, -3, True, 2.0, "5")


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not _MISSING:
        target[key] = value


def _usage_shapes() -> list[Any]:
    rng = random.Random(10)
    shapes: list[Any] = [None, [], "x", {}, {"usage": None}, {"usage": []}, {"usage": {}}]
    details: tuple[Any, ...] = (_MISSING, None, {}, [], "")
    for _ in range(3000):
        usage: dict[str, Any] = {}
        for key in ("prompt_tokens", "completion_tokens"):
            _put(usage, key, rng.choice(_VALUES))
        prompt_details: Any = rng.choice(details + ({},) * 3)
        if prompt_details == {}:
            prompt_details = {}
            for key in ("cached_tokens", "cache_write_tokens", "audio_tokens"):
                _put(prompt_details, key, rng.choice(_VALUES))
        completion_details: Any = rng.choice(details + ({},) * 3)
        if completion_details == {}:
            completion_details = {}
            for key in ("reasoning_tokens", "audio_tokens"):
                _put(completion_details, key, rng.choice(_VALUES))
        _put(usage, "prompt_tokens_details", prompt_details)
        _put(usage, "completion_tokens_details", completion_details)
        shapes.append({"usage": usage})
    return shapes


def test_usage_from_matches_the_keyword_form() -> None:
    seen = set()
    for shape in _usage_shapes():
        got, want = usage_from(shape), _reference_chat_usage(shape)
        assert got == want, shape
        assert type(got) is type(want)
        seen.add(want is None)
        if want is not None:
            assert all(type(value) is int for value in got)  # type: ignore[union-attr]
    assert seen == {True, False}
    # Details that are neither an object nor empty raised before (the record falls back to
    # a row without usage), and still do.
    odd = {"usage": {"prompt_tokens": 1, "prompt_tokens_details": [1]}}
    with pytest.raises(AttributeError):
        _reference_chat_usage(odd)
    with pytest.raises(AttributeError):
        usage_from(odd)


# --- ModelPrice.cost -----------------------------------------------------------------------


def _reference_cost(price: ModelPrice, usage: Usage) -> CostResult:
    """``ModelPrice.cost`` as it was: every count split out and summed, no shortcut."""
    prompt = max(usage.prompt_tokens, 0)
    completion = max(usage.completion_tokens, 0)
    p = price.for_prompt(prompt)
    cache_read = usage.cache_read_tokens and _clamp(usage.cache_read_tokens, prompt)
    cache_write = usage.cache_write_tokens and _clamp(
        usage.cache_write_tokens, prompt - cache_read
    )
    audio_in = usage.prompt_audio_tokens and _clamp(
        usage.prompt_audio_tokens, prompt - cache_read - cache_write
    )
    text_in = prompt - cache_read - cache_write - audio_in
    reasoning = usage.reasoning_tokens and _clamp(usage.reasoning_tokens, completion)
    audio_out = usage.completion_audio_tokens and _clamp(
        usage.completion_audio_tokens, completion - reasoning
    )
    text_out = completion - reasoning - audio_out
    counts = (text_in, cache_read, cache_write, audio_in, text_out, reasoning, audio_out)
    if p._pico_rates is not None:
        pico = sum(map(operator.mul, counts, p._pico_rates))
        return CostResult(nano_usd=(pico + 500) // 1000, known=True)
    per_million = sum(
        (tokens * rate for tokens, rate in zip(counts, p._rates, strict=True) if tokens),
        Fraction(0),
    )
    return CostResult(nano_usd=_round_half_up(per_million * 1000), known=True)


def _prices() -> list[ModelPrice]:
    def price(**kwargs: Any) -> ModelPrice:
        return ModelPrice(model="m", provider="p", provider_model_id="m", **kwargs)

    made = [
        price(input=Fraction(3, 20), output=Fraction(3, 5)),  # pico rates
        price(input=Fraction(1, 3), output=Fraction(2, 7)),  # no pico rates: Fraction path
        price(
            input=Fraction(5, 4),
            output=Fraction(10),
            cache_read=Fraction(1, 8),
            reasoning=Fraction(12),
            tiers=(PriceTier(above_prompt_tokens=100, input=Fraction(5, 2), output=Fraction(15)),),
        ),
        price(
            input=Fraction(Decimal("0.0000015")),  # 7 decimals: no pico rates
            output=Fraction(2),
            tiers=(PriceTier(above_prompt_tokens=0, output=Fraction(3)),),
        ),
    ]
    return made + list(Registry.load().prices()[:40])


def test_cost_shortcut_matches_the_full_sum() -> None:
    rng = random.Random(11)
    counts = (0, 0, 0, 1, 19, 100, 101, 1_000_003, -5)
    usages = [Usage(p, c) for p, c in itertools.product(counts, counts)]
    for _ in range(400):
        usages.append(Usage(*(rng.choice(counts) for _ in Usage._fields)))
    shortcut = 0
    for price in _prices():
        for usage in usages:
            assert price.cost(usage) == _reference_cost(price, usage), (price, usage)
            shortcut += price._pico_rates is not None and not any(usage[2:])
    assert shortcut > 100  # the shortcut was exercised, not just the sum


# --- build_record's row ----------------------------------------------------------------------


def _reference_row(
    capture: Capture, prices: Registry, estimator: TokenEstimator, location: str
) -> tuple[tuple[Any, ...], bytes | None]:
    """``build_record`` as it was: the 45 values in a dict, then ``_ROW`` over it."""
    request, request_json = rec._parse(capture.request_body)
    reader = response_reader(capture.wire)
    response: Any = None
    if capture.is_stream:
        summary = reader.summarise_stream(capture.response_body)
        usage = summary.usage
        response_model = summary.model or ""
        completion_text: str | None = summary.text
        if summary.final is None and summary.usage is None and not completion_text:
            completion_text = None
        response_json = rec._stream_document(capture.response_body, summary.final)
    else:
        response, response_json = rec._parse(capture.response_body)
        usage = reader.usage(response)
        response_model = reader.model(response) or ""
        completion_text = None
    if capture.reported_usage is not None:
        usage = rec._reported(capture.reported_usage)
    estimated = False
    if usage is None and 200 <= capture.status < 300:
        if completion_text is None:
            completion_text = (
                rec._plain_stream_text(capture.response_body)
                if capture.is_stream
                else rec._answer_text(reader, response)
            )
        usage = Usage(
            prompt_tokens=estimator.count(prompt_text(request)),
            completion_tokens=estimator.count(completion_text),
        )
        estimated = True
    request_model = capture.request_model
    if not request_model and isinstance(request, dict) and isinstance(request.get("model"), str):
        request_model = request["model"]
    model = capture.model_override or response_model or request_model
    cost = rec._cost(capture, prices, model, usage)
    hit = capture.cache_reference_id is not None
    document: bytes | None = None
    token = rec.body_token(capture)
    if not (capture.omit_request and capture.omit_response):
        document = b"".join(
            (
                b'{"token":%d,"request":' % token,
                b"null" if capture.omit_request else request_json,
                b',"response":',
                b"null" if capture.omit_response else response_json,
                b',"request_headers":',
                b"null" if capture.omit_request else rec._headers_json(capture.request_headers),
                b',"response_headers":',
                b"null" if capture.omit_response else rec._headers_json(capture.response_headers),
                b"}",
            )
        )
    created = datetime.fromtimestamp(capture.created_at, UTC)
    finished = None
    latency = rec._ms(capture.started, capture.finished_at)
    if latency is not None:
        finished = datetime.fromtimestamp(capture.created_at + latency / 1000, UTC)
    values: dict[str, Any] = {
        "organization_id": capture.organization_id,
        "request_id": capture.request_id,
        "request_created_at": created,
        "response_created_at": finished,
        "latency": latency,
        "time_to_first_token": (
            rec._ms(capture.started, capture.first_byte_at)
            if capture.is_stream or capture.first_token_reported
            else None
        ),
        "status": capture.status,
        "model": model,
        "request_model": request_model,
        "response_model": response_model,
        "model_override": capture.model_override,
        "provider": capture.provider,
        "target_url": capture.target_url,
        "request_path": capture.path,
        "user_id": capture.user_id,
        "api_key_id": capture.api_key_id,
        "country_code": capture.country_code,
        "prompt_tokens": None if usage is None else usage.prompt_tokens,
        "completion_tokens": None if usage is None else usage.completion_tokens,
        "prompt_cache_write_tokens": (usage or rec._NO_USAGE).cache_write_tokens,
        "prompt_cache_read_tokens": (usage or rec._NO_USAGE).cache_read_tokens,
        "prompt_audio_tokens": (usage or rec._NO_USAGE).prompt_audio_tokens,
        "completion_audio_tokens": (usage or rec._NO_USAGE).completion_audio_tokens,
        "reasoning_tokens": (usage or rec._NO_USAGE).reasoning_tokens,
        "tokens_estimated": estimated,
        "cost": 0 if hit else cost.nano_usd,
        "cost_known": hit or cost.known,
        "properties": capture.properties,
        "cache_enabled": capture.cache_enabled,
        "cache_reference_id": capture.cache_reference_id,
        "is_stream": capture.is_stream,
        "storage_location": "omitted" if document is None else location,
        "request_size_bytes": len(capture.request_body),
        "response_size_bytes": len(capture.response_body),
        "updated_at": datetime.now(UTC),
        "body_token": token,
        "wire_format": capture.wire,
        "attempts": rec._attempts(capture),
        "cache_saved_cost": cost.nano_usd if hit else 0,
        "cache_saved_latency": capture.cache_saved_latency_ms if hit else 0,
        "prompt_id": capture.prompt_id or capture.properties.get("Helicone-Prompt-Id", ""),
        "prompt_version": capture.prompt_version,
        "prompt_inputs": capture.prompt_inputs,
        "prompt_environment": capture.prompt_environment,
    }
    return operator.itemgetter(*INSERT_COLUMNS)(values), document


_CHAT = (
    b'{"id":"c","object":"chat.completion","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"hello there"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,'
    b'"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},'
    b'"completion_tokens_details":{"reasoning_tokens":3,"audio_tokens":0}}}'
)
_STREAM = (
    b'data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,'
    b'"delta":{"role":"assistant","content":"hi"},"finish_reason":null}]}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,'
    b'"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n'
    b"data: [DONE]\n\n"
)
_CHOICES: dict[str, tuple[Any, ...]] = {
    "request_body": (
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}',
        b"not json",
        b"",
    ),
    "response": (
        (False, _CHAT),
        (False, b'{"model":"gpt-4o","choices":[{"message":{"content":"no usage here"}}]}'),
        (False, b"plain text answer"),
        (False, b""),
        (True, _STREAM),
        (True, b"a streamed text"),
    ),
    "status": (200, 429, 500),
    "provider": ("openai", "anthropic", "nobody"),
    "wire": ("openai", "anthropic", "made-up"),
    "request_model": ("", "gpt-4o-mini", "no-such-model"),
    "model_override": ("", "gpt-4o"),
    "omit_request": (False, True),
    "omit_response": (False, True),
    "cache_reference_id": (None, "11111111-2222-3333-4444-555555555555"),
    "cache_saved_latency_ms": (0, 250),
    "reported_usage": (None, {"prompt_tokens": 3, "completion_tokens": 4, "bogus": 9}),
    "reported_cost": (None, 0, 1234),
    "finished": (True, False),
    "first_byte": (None, 0.01),
    "first_token_reported": (False, True),
    "attempts": ([], [("openai", 500, 12), ("azure", 200, 30)]),
    "prompt_id": ("", "p-1"),
    "properties": ({}, {"Helicone-Prompt-Id": "legacy"}, {"a": "b"}),
    "country_code": (None, "DE"),
    "user_id": ("", "u"),
    "cache_enabled": (False, True),
    "headers": (False, True),
}


def _capture(rng: random.Random) -> Capture:
    pick = {name: rng.choice(options) for name, options in _CHOICES.items()}
    is_stream, response = pick["response"]
    capture = Capture(
        request_id=f"r{rng.random()}",
        organization_id="5d9f3c1e-7a2b-4c8d-9e0f-112233445566",
        api_key_id="k",
        path="/v1/chat/completions",
        created_at=1_764_000_000 + rng.random() * 1e6,
        started=1000.0,
        provider=pick["provider"],
        target_url="http://upstream/v1/chat/completions",
        request_model=pick["request_model"],
        request_body=pick["request_body"],
        status=pick["status"],
        response_body=response,
        is_stream=is_stream,
        first_byte_at=None if pick["first_byte"] is None else 1000.0 + pick["first_byte"],
        finished_at=1000.0 + rng.random() if pick["finished"] else None,
        user_id=pick["user_id"],
        properties=dict(pick["properties"]),
        model_override=pick["model_override"],
        omit_request=pick["omit_request"],
        omit_response=pick["omit_response"],
        cache_enabled=pick["cache_enabled"],
        country_code=pick["country_code"],
        wire=pick["wire"],
        attempts=list(pick["attempts"]),
        cache_reference_id=pick["cache_reference_id"],
        cache_saved_latency_ms=pick["cache_saved_latency_ms"],
        reported_usage=pick["reported_usage"],
        prompt_id=pick["prompt_id"],
        prompt_version="v1" if pick["prompt_id"] else "",
        reported_cost=pick["reported_cost"],
        first_token_reported=pick["first_token_reported"],
    )
    if pick["headers"]:
        capture.request_headers = [(b"Authorization", b"Bearer sk-x"), (b"host", b"h")]
        capture.response_headers = [(b"x-request-id", b"abc"), (b"Set-Cookie", b"s=1")]
    return capture


def test_build_record_row_matches_the_dict_form(tmp_path: Path) -> None:
    prices, estimator = Registry.load(), TokenEstimator(tmp_path)
    updated = INSERT_COLUMNS.index("updated_at")
    rng = random.Random(12)
    column = {name: index for index, name in enumerate(INSERT_COLUMNS)}
    seen: set[tuple[Any, ...]] = set()
    for _ in range(1500):
        capture = _capture(rng)
        built = rec.build_record(capture, prices, estimator, "local")
        row, document = _reference_row(capture, prices, estimator, "local")
        assert len(built.row) == len(INSERT_COLUMNS)
        assert isinstance(built.row[updated], datetime)
        for name, got, want in zip(INSERT_COLUMNS, built.row, row, strict=True):
            if name != "updated_at":
                assert got == want and type(got) is type(want), (name, capture)
        assert built.document == document
        assert built.capture is capture
        empty = [
            row[column[name]] is None or row[column[name]] == 0
            for name in ("prompt_tokens", "tokens_estimated", "cost", "cache_saved_cost")
        ]
        seen.add((*empty, document is None, row[column["storage_location"]]))
    # The rows compared span the cases (no usage, estimated, costed, cache hits, omitted
    # bodies), not one shape 1,500 times.
    assert len(seen) >= 12, seen
