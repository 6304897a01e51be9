"""``Helicone-RateLimit-Policy``: the grammar, the parser's rules, the canonical form.

Grammar (reference §2.4, custom-rate-limits page): ``[quota];w=[seconds];u=[unit];s=[segment]``.
The parser follows the reference implementation's rules exactly where they are known:

* the parts come in that order, ``;``-separated, no spaces inside (the value as a whole is
  trimmed, as HTTP trims a header value); ``u`` and ``s`` are optional;
* parameter names and the unit are case-insensitive (``W=60;U=CENTS`` is fine);
* ``quota`` is a positive whole number (digits only: no sign, no decimals);
* ``w`` is a whole number of seconds, at least 60 and at most 31,536,000 (a year);
* ``u`` is ``request`` (the default) or ``cents``;
* ``s`` is ``user`` (per ``Helicone-User-Id``) or a property name (``[A-Za-z0-9_-]+``,
  matched against ``Helicone-Property-<name>`` case-insensitively, so lower-cased here);
  absent means one limit for the whole organisation.

Our choices, documented in the README: an invalid policy is a 400 naming the part that is
wrong (the reference ignores it, which leaves a client believing it is limited when it is
not); a quota is at most what the counters hold exactly (2**53 - 1 requests; 900,719,925
cents, since cents are counted in nano-dollars).

The response header ``Helicone-RateLimit-Policy`` carries :attr:`RatePolicy.canonical`: the
quota and window as numbers, ``u`` only when it is ``cents``, ``s`` only when segmented.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

Unit = Literal["request", "cents"]

MIN_WINDOW_SECONDS = 60
MAX_WINDOW_SECONDS = 31_536_000
NANO_USD_PER_CENT = 10_000_000
"""Cents policies count nano-dollars (the request log's cost unit): whole numbers, exact."""
_EXACT = 2**53 - 1
"""The largest whole number a Redis Lua number (a double) holds exactly."""
MAX_QUOTA: dict[Unit, int] = {"request": _EXACT, "cents": _EXACT // NANO_USD_PER_CENT}

_QUOTA = re.compile(r"[0-9]+")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_NAMES = ("w", "u", "s")
_GRAMMAR = "[quota];w=[seconds];u=[request|cents];s=[user|<property>]"


class PolicyError(ValueError):
    """An invalid policy: ``part`` names what is wrong (``quota``, ``w``, ``u``, ``s``)."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(message)
        self.part = part
        self.message = message


@dataclass(frozen=True)
class RatePolicy:
    """One parsed policy (no ``__slots__``: :attr:`canonical` is computed once and kept)."""

    quota: int
    window: int
    """Seconds."""
    unit: Unit = "request"
    segment: str | None = None
    """``user``, a lower-cased property name, or None (the organisation)."""

    @functools.cached_property
    def canonical(self) -> str:
        """The policy as the response header states it (reference: rebuilt, not echoed)."""
        text = f"{self.quota};w={self.window}"
        if self.unit == "cents":
            text += ";u=cents"
        if self.segment is not None:
            text += f";s={self.segment}"
        return text

    @functools.cached_property
    def header_values(self) -> tuple[bytes, bytes]:
        """``Helicone-RateLimit-Limit`` and ``-Policy`` as sent: the same for every request."""
        return b"%d" % self.quota, self.canonical.encode()

    @property
    def scale(self) -> int:
        """Counter units per policy unit: 1 per request, nano-dollars per cent."""
        return NANO_USD_PER_CENT if self.unit == "cents" else 1

    @property
    def quota_units(self) -> int:
        return self.quota * self.scale


def parse_policy(value: str) -> RatePolicy:
    """Parse ``value``; a :class:`PolicyError` names the first part that is wrong."""
    text = value.strip()
    if not text:
        raise PolicyError("quota", f"The policy is empty; expected {_GRAMMAR}.")
    quota_text, *rest = text.split(";")
    if not _QUOTA.fullmatch(quota_text):
        raise PolicyError(
            "quota",
            f"The quota {quota_text!r} is not a positive whole number (digits only); "
            f"expected {_GRAMMAR}.",
        )
    params = _params(rest)
    window_text = params.get("w")
    if window_text is None:
        raise PolicyError("w", f"The window 'w=[seconds]' is missing; expected {_GRAMMAR}.")
    if not _QUOTA.fullmatch(window_text):
        raise PolicyError("w", f"The window w={window_text!r} is not a whole number of seconds.")
    window = int(window_text)
    if not MIN_WINDOW_SECONDS <= window <= MAX_WINDOW_SECONDS:
        raise PolicyError(
            "w",
            f"The window w={window} is out of range: at least {MIN_WINDOW_SECONDS} and at most "
            f"{MAX_WINDOW_SECONDS} seconds.",
        )
    unit_text = params.get("u", "request").lower()
    if unit_text not in ("request", "cents"):
        raise PolicyError("u", f"The unit u={params['u']!r} is neither 'request' nor 'cents'.")
    unit: Unit = "cents" if unit_text == "cents" else "request"
    quota = int(quota_text)
    if quota == 0:
        raise PolicyError("quota", "The quota is 0; it must be at least 1.")
    if quota > MAX_QUOTA[unit]:
        raise PolicyError(
            "quota", f"The quota {quota} is above the largest {unit} quota, {MAX_QUOTA[unit]}."
        )
    segment: str | None = None
    if "s" in params:
        segment_text = params["s"]
        if not _SEGMENT.fullmatch(segment_text):
            raise PolicyError(
                "s",
                f"The segment s={segment_text!r} is neither 'user' nor a property name "
                "(letters, digits, '_' and '-').",
            )
        segment = segment_text.lower()
    return RatePolicy(quota, window, unit, segment)


def _params(parts: list[str]) -> dict[str, str]:
    """``w``, ``u``, ``s`` by lower-cased name, in the grammar's order, each at most once."""
    params: dict[str, str] = {}
    position = 0
    for part in parts:
        name, equals, value = part.partition("=")
        key = name.lower()
        if not equals or key not in _NAMES:
            raise PolicyError(
                _blame(key), f"Unexpected part {part!r}; expected {_GRAMMAR}."
            )
        index = _NAMES.index(key)
        if index < position:
            raise PolicyError(
                key, f"The part {part!r} is out of place or repeated; expected {_GRAMMAR}."
            )
        position = index + 1
        params[key] = value
    return params


def _blame(name: str) -> str:
    """The part an unrecognised piece is attributed to: a misspelt name, or the whole."""
    return name if name in _NAMES else "policy"
