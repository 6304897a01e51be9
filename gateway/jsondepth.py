"""How deeply a JSON request body may nest, and the cheap test for it.

``orjson.loads`` reads up to 1,024 levels but ``orjson.dumps`` writes at most 254, and the
data plane re-encodes some bodies (a ``model/provider`` suffix stripped, ``include_usage``
added to a logged stream): without a limit, a body between the two failed with a 500 after
it had been accepted. Every route that parses a JSON body (the unified data-plane routes and
the query API) refuses bodies deeper than :data:`MAX_JSON_DEPTH` with a 400 instead, whether
or not that body would be re-encoded, so the answer does not depend on the route taken.

128 is serde_json's default recursion limit (what Rust services, Helicone's gateway among
them, accept), far above any real request: OpenAI's structured-output schemas may nest 10
levels.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_JSON_DEPTH = 128
"""Containers (objects and arrays) from the body down to its deepest value; the body is 1."""
ORJSON_MAX_DEPTH = 254
"""The deepest value ``orjson.dumps`` writes (orjson's own recursion limit; a test pins it)."""


def too_deep(raw: bytes, value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` (the parse of ``raw``) nests more than ``limit`` containers deep.

    The depth can never exceed the number of ``{`` and ``[`` bytes in ``raw``, and counting
    bytes runs in C (1.2-1.5 µs for a 0.7-1.7 KB body on the development machine, under
    half of parsing it), so a typical body costs only that count. A body with more brackets
    than ``limit`` is measured by orjson itself, also in C: wrapped in
    ``ORJSON_MAX_DEPTH - limit`` arrays, it serialises exactly when its own depth is at most
    ``limit`` (44 µs for a 27 KB body of 40 tool schemas, a third of what parsing it costs;
    a Python walk took 150).
    """
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return False
    wrapped = value
    for _ in range(ORJSON_MAX_DEPTH - limit):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)
    except orjson.JSONEncodeError:
        return True
    return False


def depth_message(limit: int = MAX_JSON_DEPTH) -> str:
    """The 400's message: names the limit so a client knows what to change."""
    return (
        f"The request body is nested deeper than {limit} levels, the gateway's limit for "
        "JSON bodies."
    )
