"""The manual logger's endpoints on the data plane (reference §2.10).

``POST /custom/v1/log``, ``/oai/v1/log``, ``/anthropic/v1/log``, ``/googleapis/v1/log``, the
self-hosted ``/v1/trace/custom/v1/log`` and ``/v1/gateway/{provider}/v1/log`` (a logger whose
base URL is a gateway prefix), with or without a gateway key in the path: the data plane
sends every path :func:`gateway.passthrough.is_log_endpoint` accepts here, before any other
route (a log call is never forwarded to a provider, whatever its headers say).

Per call: authenticate the gateway key (``Authorization: Bearer``, ``Helicone-Auth`` or the
path) and check its ``trace:write`` scope, read the body (``GATEWAY_MANUAL_LOG_MAX_BYTES``),
parse it (:mod:`gateway.ingest.manual`), journal the capture (durable when ``submit``
returns, microseconds) and answer ``200 {"data": {"request_id": …}, "error": null}``. The
writer does the rest asynchronously: the answer's parse, usage, cost, storage. Refusals use
the same envelope: ``{"data": null, "error": "<message>"}`` with 400, 401, 403, 405, 413,
415 or 503.
"""

from __future__ import annotations

import time

import orjson

from gateway.asgi import BodyTooLarge, Receive, Scope, Send, read_body, send_bytes
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.ingest.access import admit, too_large
from gateway.ingest.logged import logged_capture
from gateway.ingest.manual import CUSTOM, ManualLogError, parse_manual_log
from gateway.keys import looks_like_key
from gateway.options import check_json_content_type, declared_length
from gateway.passthrough import LOG_MARK
from gateway.runtime import Runtime

_HINTS = {"oai": "openai", "anthropic": "anthropic", "googleapis": "google-ai-studio"}
"""The root of a log path → the provider it names (``custom`` and the rest: none)."""
_JSON = b"application/json"


def _envelope_error(error: GatewayError) -> GatewayError:
    """``error`` with the REST API's envelope as its body."""
    return GatewayError(
        error.status, error.message, error.code, error.param,
        payload={"data": None, "error": error.message},
    )  # fmt: skip


class ManualLogRoute:
    """The handler the data plane calls for the manual-logger paths."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def split_path(self, path: str) -> tuple[str | None, str, str]:
        """(the gateway key the path carries, the path without it, the provider hint)."""
        segments = [s for s in path.rstrip("/").split("/") if s]
        keys = [s for s in segments if looks_like_key(s)]
        if len(keys) > 1:
            raise GatewayError(400, "A log path may carry one gateway key, not several.")
        kept = [s for s in segments if not looks_like_key(s)]
        clean = "/" + "/".join(kept)
        head = kept[: -len([s for s in LOG_MARK.split("/") if s])]
        hint = ""
        if len(head) == 1:
            hint = _HINTS.get(head[0], "")
        elif len(head) == 3 and head[:2] == ["v1", "gateway"]:
            table = self.runtime.providers.table
            hint = _HINTS.get(head[2]) or table.passthrough_name(head[2]) or ""
            if hint == CUSTOM:
                hint = ""
        return (keys[0] if keys else None), clean, hint

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        ctx: RequestContext,
    ) -> None:
        try:
            await self._serve(scope, receive, send, headers, ctx)
        except BodyTooLarge as exc:
            raise _envelope_error(GatewayError(
                413, too_large(exc.limit, "GATEWAY_MANUAL_LOG_MAX_BYTES"),
                code="request_too_large",
            )) from None  # fmt: skip
        except GatewayError as exc:
            if exc.payload is not None:
                raise
            raise _envelope_error(exc) from None

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        ctx: RequestContext,
    ) -> None:
        runtime = self.runtime
        key, path, hint = self.split_path(scope["path"])
        if scope["method"] != "POST":
            raise GatewayError(
                405, f"Method {scope['method']} not allowed; the manual logger takes POST {path}."
            )
        if key is not None:
            ctx.use_path_key(key, headers)
        identity = await runtime.authenticate(ctx.request_credentials(headers))
        writer = runtime.writer
        submit = admit(identity, writer.submit if writer is not None else None)
        ctx.identity = identity
        check_json_content_type(headers)
        limit = runtime.settings.manual_log_max_bytes
        raw = await read_body(receive, limit, declared_length(headers))
        try:
            parsed = parse_manual_log(
                raw,
                hint=hint,
                headers=headers,
                organization_id=identity.org_id,
                api_key_id=identity.key_id,
                path=path,
                table=runtime.providers.table,
                now=time.time(),
            )
        except ManualLogError as exc:
            raise GatewayError(400, str(exc), code="invalid_log") from None
        submit(logged_capture(parsed.call))  # journaled (durable) before the answer goes out
        request_id = parsed.call.request_id
        # The logged call's id (meta may name one) is the one this answer and the request
        # line name.
        ctx.options.request_id = request_id
        ctx.status = 200
        ctx.provider = parsed.call.provider
        ctx.model = parsed.call.model
        body = orjson.dumps({"data": {"request_id": request_id}, "error": None})
        await send_bytes(send, 200, body, ctx.base_headers, _JSON)
