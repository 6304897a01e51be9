"""Worst-case cost of a request before it is sent, and USD amounts as exact nano-USD.

Pure functions; the meter (:mod:`gateway.metering.meter`) applies them.

**The estimate** a reservation holds is ``prompt x input rate + output x output rate``:

* *prompt tokens*: the size of the body sent upstream divided by
  :data:`PROMPT_BYTES_PER_TOKEN` (2), rounded up, and capped at the model's context window
  when the registry knows it (no provider bills a prompt longer than the window: it refuses
  it). English text runs about 4 bytes a token and JSON framing adds bytes that are no tokens,
  so halving the size over-counts text about twofold, which is what a hold should do;
  scripts of 3-byte UTF-8 characters still come out above one token a character. No
  tokenizer runs on the request path (tiktoken costs ~1 µs per 100 bytes, and each provider
  counts differently anyway). Images are the known blind spot: a URL is a few bytes and can
  cost a thousand tokens; base64 data is counted at its (large) size, capped by the window;
* *output tokens*: the request's own cap (``max_completion_tokens``, ``max_tokens`` or the
  Responses API's ``max_output_tokens``), at most the model's limit, else the model's limit
  from the registry, else :data:`DEFAULT_OUTPUT_TOKENS`; times ``n`` when the request asks
  for several choices; none for embeddings;
* *rates*: the dearest of each side at the prompt's tier (input, cache write, audio input;
  output, reasoning, audio output), so whichever way the provider splits the usage, the real
  cost stays within the estimate unless the token counts themselves exceed it.

The settled cost is the registry's price of the usage the answer reports
(:meth:`providers.cost.ModelPrice.cost`); an answer that reports none is charged the prompt
estimate plus its text's size by the same rule (:func:`text_tokens`), within the output cap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from providers.cost import ModelPrice

PROMPT_BYTES_PER_TOKEN = 2
DEFAULT_OUTPUT_TOKENS = 4096
"""Output cap assumed when neither the request nor the registry gives one."""
_OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
_NANO = 10**9
_MAX_NANO = 2**63 - 1
"""The columns are signed 64-bit integers."""


def prompt_tokens(body_size: int, context_window: int | None) -> int:
    """The prompt estimate of a body of ``body_size`` bytes (see the module docstring)."""
    estimate = -(-body_size // PROMPT_BYTES_PER_TOKEN)
    return min(estimate, context_window) if context_window else estimate


def text_tokens(text: str) -> int:
    """The same rule for answer text, when the answer reports no usage."""
    return -(-len(text.encode()) // PROMPT_BYTES_PER_TOKEN)


def output_tokens(payload: Mapping[str, Any] | None, path: str, model_limit: int | None) -> int:
    """The most output tokens a request can be billed for (see the module docstring)."""
    if path.rstrip("/").endswith("/embeddings"):
        return 0
    cap = None
    if payload is not None:
        for name in _OUTPUT_FIELDS:
            value = payload.get(name)
            if type(value) is int and value > 0:
                cap = value
                break
    if cap is None:
        cap = model_limit or DEFAULT_OUTPUT_TOKENS
    elif model_limit:
        cap = min(cap, model_limit)
    choices = payload.get("n") if payload is not None else None
    if type(choices) is int and choices > 1:
        cap *= choices
    return cap


def worst_case_nano(price: ModelPrice, prompt: int, output: int) -> int:
    """The most ``prompt`` input and ``output`` output tokens can cost at ``price``, in
    nano-USD, rounded up (prices are USD per 1M tokens: tokens x price x 1000 nano-USD)."""
    tiered = price.for_prompt(prompt)
    input_rate = max(
        rate
        for rate in (tiered.input, tiered.cache_write, tiered.cache_write_1h, tiered.audio_input)
        if rate is not None
    )
    output_rate = max(
        rate
        for rate in (tiered.output, tiered.reasoning, tiered.audio_output)
        if rate is not None
    )
    total = (prompt * input_rate + output * output_rate) * 1000
    return math.ceil(Fraction(total))


class AmountError(ValueError):
    """A USD amount that is not a decimal number, or not a whole number of nano-USD."""


def usd_to_nano(text: str) -> int:
    """``"12.5"`` → ``12_500_000_000``, exactly; more than 9 decimals is an error, not a
    rounding."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise AmountError(f"not a decimal USD amount: {text!r}") from None
    if not value.is_finite():
        raise AmountError(f"not a finite USD amount: {text!r}")
    nano = value.scaleb(9)
    if nano != nano.to_integral_value():
        raise AmountError(f"{text!r} has more than 9 decimals (amounts are whole nano-USD)")
    result = int(nano)
    if abs(result) > _MAX_NANO:
        raise AmountError(f"{text!r} is too large")
    return result


def nano_to_usd(nano: int) -> str:
    """``12_500_000_000`` → ``"12.50"``: exact, at least two decimals, no trailing zeros
    beyond them."""
    sign = "-" if nano < 0 else ""
    whole, fraction = divmod(abs(nano), _NANO)
    digits = f"{fraction:09d}".rstrip("0").ljust(2, "0")
    return f"{sign}{whole}.{digits}"
