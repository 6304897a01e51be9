"""Bedrock's passthrough: ``/bedrock/v1/{region}/...`` (and ``/v1/gateway/bedrock/v1/{region}/
...``) forwarded to ``https://bedrock-runtime.{region}.amazonaws.com/...``, re-signed.

The form of Helicone's ``bedrock.helicone.ai/v1/{region}`` (reference §1.2): a client points
boto3's ``bedrock-runtime`` client at ``{gateway}/bedrock/v1/{region}`` (``endpoint_url``);
boto3 appends its own paths (``/model/{modelId}/converse``, ``/converse-stream``,
``/invoke``, ``/invoke-with-response-stream``…) and signs for the gateway's host, a signature
AWS would refuse. The client therefore also sends its AWS credentials in ``aws-access-key``,
``aws-secret-key`` and (for temporary credentials) ``aws-session-token``; the gateway drops
the client's signature and these three headers, and signs the request again for AWS's host
(:mod:`providers.bedrock.signing`). A client holding a Bedrock API key sends it as
``Authorization: Bearer`` instead, which is forwarded as it is (no signature involved).

The path after the region is forwarded byte for byte as the client encoded it (boto3 encodes
a model id's ``:`` as ``%3A`` and an ARN's ``/`` as ``%2F``), since that is what the signature
must cover; the dot-segment checks of :mod:`gateway.passthrough` have run on it already. The
credential headers are never forwarded, stored in the request log only as ``REDACTED``
(:mod:`logging_pipeline.headers`), and never echoed in an error.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from yarl import URL

from gateway.asgi import Receive, Scope, Send
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.upstream import upstream_request_headers
from providers.bedrock import endpoint_url, is_region
from providers.bedrock.signing import AwsCredentials

if TYPE_CHECKING:
    from gateway.runtime import Runtime
    from providers.routing import ProviderConfig

CREDENTIAL_HEADERS = ("aws-access-key", "aws-secret-key", "aws-session-token")
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_MODEL = re.compile(r"/model/([^/]+)/")
_NO_CREDENTIALS = (
    "Bedrock passthrough needs the caller's AWS credentials: send them in the "
    "'aws-access-key' and 'aws-secret-key' headers (and 'aws-session-token' for temporary "
    "credentials), or a Bedrock API key in 'Authorization: Bearer'. The gateway signs the "
    "request for AWS itself."
)


def split_region(rest: str) -> tuple[str, str]:
    """``/v1/{region}/tail`` → ``(region, /tail)``; a 400 for any other shape."""
    parts = rest.split("/", 3)
    if len(parts) < 4 or parts[0] or parts[1] != "v1" or not is_region(parts[2]):
        raise GatewayError(
            400,
            "Bedrock passthrough paths are /bedrock/v1/{region}/... with an AWS region name "
            "(point boto3's endpoint_url at {gateway}/bedrock/v1/us-east-1).",
            code="invalid_path",
        )
    return parts[2], "/" + parts[3]


def raw_tail(scope: Scope, region: str, tail: str) -> str:
    """The tail as the client encoded it (from the raw path), else ``tail`` re-encoded."""
    raw: bytes = scope.get("raw_path") or b""
    text = raw.decode("latin-1")
    marker = f"/v1/{region}/"
    index = text.find(marker)
    if index >= 0 and unquote(text[index + len(marker) - 1 :]) == tail:
        return text[index + len(marker) - 1 :]
    return quote(tail, safe=_PATH_SAFE)


def model_in_path(tail: str) -> str:
    """The model id a Bedrock runtime path names (``/model/{modelId}/…``), decoded; ``""``."""
    match = _MODEL.match(tail)
    return unquote(match[1]) if match is not None else ""


async def forward(
    runtime: Runtime,
    scope: Scope,
    receive: Receive,
    send: Send,
    headers: dict[str, str],
    ctx: RequestContext,
    rest: str,
    config: ProviderConfig,
) -> None:
    """Forward one Bedrock passthrough request (``rest``: the path after the prefix)."""
    region, tail = split_region(rest)
    encoded = raw_tail(scope, region, tail)
    base = config.base_url if config.base_url_overridden else endpoint_url(region)
    recorded = config.recorded_base_url if config.base_url_overridden else base
    query: bytes = scope.get("query_string", b"")
    target = base.rstrip("/") + encoded + (f"?{query.decode('latin-1')}" if query else "")
    url = URL(target, encoded=True)
    body = await runtime.start_request(ctx, scope, receive, headers)
    ctx.provider, ctx.model = config.spec.name, model_in_path(tail)
    capture = ctx.capture
    if capture is not None:
        capture.provider = config.spec.name
        capture.target_url = recorded.rstrip("/") + encoded
        capture.wire = config.spec.wire
        capture.request_model = ctx.model
    credentials = ctx.request_credentials(headers)
    access, secret = headers.get("aws-access-key"), headers.get("aws-secret-key")
    sent = {k: v for k, v in headers.items() if k not in CREDENTIAL_HEADERS}
    method: str = scope["method"]
    if access and secret:
        aws = AwsCredentials(access.strip(), secret.strip(), headers.get("aws-session-token"))
        upstream = upstream_request_headers(sent, None, credentials.gateway_key)
        upstream = runtime.signer.signed_headers(method, str(url), upstream, body, aws, region)
    elif (bearer := credentials.provider_authorization) and bearer.lower().startswith("bearer "):
        upstream = upstream_request_headers(sent, bearer, credentials.gateway_key)
        upstream = {k: v for k, v in upstream.items() if not k.startswith("x-amz-")}
    else:
        raise GatewayError(401, _NO_CREDENTIALS, code="missing_provider_credentials")
    await runtime.upstream.relay(
        ctx,
        method,
        url,
        upstream,
        body if body or method not in ("GET", "HEAD") else None,
        receive,
        send,
        config.spec.name,
    )
