"""``Helicone-Fallbacks``: the legacy generic gateway's ordered list of targets.

The header is a JSON array; each entry is ``{"target-url": str, "headers": {str: str},
"onCodes": [int | {"from": int, "to": int}], "bodyKeyOverride": {...}?}``. The entries are
tried in order: each target (checked against the passthrough allow-list, like
``Helicone-Target-Url``) gets the request's path, the client's headers with the entry's
``headers`` on top (typically its own ``Authorization``), and the JSON body with
``bodyKeyOverride`` merged in shallowly (``{"model": "..."}``). An answer whose status is in
the entry's ``onCodes`` (or an unreachable or timed-out target whose 502/504 is) moves on to the
next entry, before anything reaches the client; the last entry's answer is returned whatever
it is. The response says which entry served in ``Helicone-Fallback-Index`` (0-based).

Our choices where the reference is silent: the entries alone are the targets (a
``Helicone-Target-Url`` sent alongside is not tried); the header is used on any path (it
selects this relay as ``Helicone-Target-Url`` selects the generic one); a malformed header is a
400 saying what is wrong (the reference throws); at most 10 entries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from yarl import URL

from gateway.asgi import Receive, Scope, Send
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.passthrough import body_cost_estimate, check_path, join_target, reserve_client_key
from gateway.redact import redact_url
from gateway.relay import forward
from gateway.upstream import upstream_request_headers

if TYPE_CHECKING:
    from gateway.runtime import Runtime

MAX_ENTRIES = 10
_HEADER = "Helicone-Fallbacks"


@dataclass(frozen=True, slots=True)
class Fallback:
    """One entry of ``Helicone-Fallbacks``."""

    target_url: str
    headers: dict[str, str]
    on_codes: tuple[tuple[int, int], ...]
    """Inclusive status ranges that move on to the next entry."""
    body_override: dict[str, Any] | None = None

    def moves_on(self, status: int) -> bool:
        return any(low <= status <= high for low, high in self.on_codes)


def _bad(message: str) -> GatewayError:
    return GatewayError(
        400, f"Invalid {_HEADER} header: {message}", code="invalid_fallbacks", param=_HEADER
    )


def _status(value: Any, where: str) -> int:
    if type(value) is not int or not 100 <= value <= 599:
        raise _bad(f"{where} must be an HTTP status (100-599), got {value!r}.")
    return value


def _codes(raw: Any, where: str) -> tuple[tuple[int, int], ...]:
    if not isinstance(raw, list):
        raise _bad(f"{where}.onCodes must be an array of statuses or {{from, to}} ranges.")
    codes: list[tuple[int, int]] = []
    for i, code in enumerate(raw):
        if isinstance(code, dict):
            low = _status(code.get("from"), f"{where}.onCodes[{i}].from")
            high = _status(code.get("to"), f"{where}.onCodes[{i}].to")
            if low > high:
                raise _bad(f"{where}.onCodes[{i}]: 'from' is above 'to'.")
            codes.append((low, high))
        else:
            status = _status(code, f"{where}.onCodes[{i}]")
            codes.append((status, status))
    return tuple(codes)


def parse_fallbacks(raw: str) -> list[Fallback]:
    """The entries of a ``Helicone-Fallbacks`` value; a 400 naming what is wrong."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"not JSON ({exc}).") from exc
    if not isinstance(value, list) or not value:
        raise _bad("it must be a non-empty JSON array of fallback objects.")
    if len(value) > MAX_ENTRIES:
        raise _bad(f"at most {MAX_ENTRIES} entries, got {len(value)}.")
    entries: list[Fallback] = []
    for i, entry in enumerate(value):
        where = f"[{i}]"
        if not isinstance(entry, dict):
            raise _bad(f"{where} must be an object.")
        target = entry.get("target-url")
        if not isinstance(target, str) or not target:
            raise _bad(f"{where}.target-url is required (a URL string).")
        headers = entry.get("headers")
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise _bad(f"{where}.headers is required (an object of string values).")
        if "onCodes" not in entry:
            raise _bad(f"{where}.onCodes is required.")
        override = entry.get("bodyKeyOverride")
        if override is not None and not isinstance(override, dict):
            raise _bad(f"{where}.bodyKeyOverride must be an object.")
        entries.append(
            Fallback(
                target,
                {k.lower(): v for k, v in headers.items()},
                _codes(entry["onCodes"], where),
                override,
            )
        )
    return entries


def _body(body: bytes, override: dict[str, Any] | None) -> bytes:
    if override is None:
        return body
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(
            400, "bodyKeyOverride needs a JSON object request body.", param=_HEADER
        ) from exc
    if not isinstance(payload, dict):
        raise GatewayError(400, "bodyKeyOverride needs a JSON object request body.", param=_HEADER)
    payload.update(override)
    return orjson.dumps(payload)


class FallbackRelay:
    """The handler of requests carrying ``Helicone-Fallbacks``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        ctx: RequestContext,
    ) -> None:
        check_path(scope)
        runtime = self.runtime
        assert ctx.options.fallbacks is not None  # the data plane routes here only then
        entries = parse_fallbacks(ctx.options.fallbacks)
        targets: list[tuple[URL, str]] = []
        for i, entry in enumerate(entries):
            origin = str(runtime.targets.check(entry.target_url, f"{_HEADER}[{i}]"))
            url, tail = join_target(origin, scope["path"], scope.get("query_string", b""))
            runtime.targets.require(url, f"{_HEADER}[{i}]")
            targets.append((url, redact_url(origin + tail)))
        body = await runtime.start_request(ctx, scope, receive, headers)
        credentials = ctx.request_credentials(headers)
        metering = await runtime.meter.session(ctx)
        provider = ctx.options.target_provider
        method: str = scope["method"]
        last = len(entries) - 1
        estimate = body_cost_estimate(runtime, provider, body, scope["path"])
        async with runtime.limiter.limit(ctx, estimate):
            for index, (entry, (url, recorded)) in enumerate(zip(entries, targets, strict=True)):
                sent_headers = upstream_request_headers(
                    headers, credentials.provider_authorization, credentials.gateway_key
                )
                sent_headers.update(entry.headers)
                data = _body(body, entry.body_override)
                ctx.provider = provider
                ctx.attempts += 1
                capture = ctx.capture
                wire = runtime.providers.table.wire_for(url.raw_host or "", provider, scope["path"])
                if capture is not None:
                    capture.provider = provider
                    capture.target_url = recorded
                    capture.wire = wire
                ctx.served_by_fallback(index)
                hold = None
                if metering is not None and method == "POST":  # budgets: the client's own keys
                    hold = await reserve_client_key(
                        metering, provider=provider, wire=wire, body=data, path=scope["path"]
                    )
                started = time.perf_counter()
                try:
                    async with runtime.upstream.open(
                        method, url, sent_headers, data if data or method not in ("GET", "HEAD")
                        else None, provider
                    ) as response:
                        if index < last and entry.moves_on(response.status):
                            await response.read()
                            ctx.upstream_seconds += time.perf_counter() - started
                            continue
                        await forward(ctx, response, receive, send, None, started)
                        return
                except GatewayError as exc:
                    if index < last and entry.moves_on(exc.status):
                        ctx.upstream_seconds += time.perf_counter() - started
                        continue
                    raise
                finally:
                    if metering is not None:
                        await metering.finish(hold)
