"""Bedrock runtime requests checked as AWS checks them: the signature, then the body.

* **SigV4.** The ``Authorization`` header is parsed (credential scope, signed headers,
  signature); the signature is recomputed with botocore's own :class:`~botocore.auth.SigV4Auth`
  over the request as received (method, raw path, query, the signed headers, the body) at the
  request's ``X-Amz-Date``, and compared. AWS's refusals and wordings: a missing header
  (``MissingAuthenticationTokenException``), an unknown key id
  (``UnrecognizedClientException``), a scope for another region or service, a date more than
  5 minutes off, or a mismatch (``InvalidSignatureException``).
* **The body** against botocore's service model of ``bedrock-runtime`` (the definition boto3
  itself is generated from): the JSON is walked along the operation's input shape — unknown
  keys refused, blobs base64-decoded — then botocore's :class:`~botocore.validate.
  ParamValidator` checks types, required members, lengths and tagged unions.
* **Rules the shapes cannot express**, worded as Bedrock words them: a conversation starts with
  a user turn and alternates; ``toolResult`` blocks answer the ``toolUse`` ids of the
  assistant turn just before; tool blocks need a ``toolConfig``; text blocks are not blank.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
from collections.abc import Mapping
from typing import Any

import botocore.session
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.model import OperationModel, Shape
from botocore.validate import ParamValidator

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<headers>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
_SKEW = datetime.timedelta(minutes=5)
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details."
)


class BedrockError(Exception):
    """An error Bedrock answers with ``status``, ``x-amzn-ErrorType: <kind>`` and
    ``{"message": …}``."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


def validation_error(message: str) -> BedrockError:
    return BedrockError(400, "ValidationException", message)


# --- SigV4 ---------------------------------------------------------------------------------------


def verify_signature(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Mapping[str, tuple[str, str | None]],
    region: str,
    now: datetime.datetime | None = None,
) -> str:
    """The access key id that signed the request, or a :class:`BedrockError`.

    ``url`` is the request's URL as received (scheme, ``Host`` header, raw path and query);
    ``credentials`` maps access key ids to ``(secret, session token)``.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    authorization = lowered.get("authorization")
    if not authorization:
        raise BedrockError(
            403, "MissingAuthenticationTokenException", "Missing Authentication Token"
        )
    match = _AUTHORIZATION.fullmatch(authorization.strip())
    if match is None:
        raise BedrockError(
            403,
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    known = credentials.get(match["key"])
    if known is None:
        raise BedrockError(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    secret, token = known
    if match["service"] != "bedrock" or match["region"] != region:
        raise BedrockError(
            403,
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region and service 'bedrock' ({region}).",
        )
    amz_date = lowered.get("x-amz-date", "")
    try:
        signed_at = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    except ValueError:
        raise BedrockError(403, "IncompleteSignatureException", "Missing X-Amz-Date.") from None
    current = now or datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    if abs(current - signed_at) > _SKEW or match["date"] != amz_date[:8]:
        raise BedrockError(403, "InvalidSignatureException", "Signature expired or not yet valid.")
    if token is not None and lowered.get("x-amz-security-token") != token:
        raise BedrockError(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    signed = match["headers"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        raise BedrockError(403, "InvalidSignatureException", "Host and X-Amz-Date must be signed.")
    request = AWSRequest(
        method=method,
        url=url,
        data=body,
        headers={name: lowered[name] for name in signed if name in lowered and name != "host"},
    )
    request.context["timestamp"] = amz_date
    auth = SigV4Auth(Credentials(match["key"], secret, token), "bedrock", region)
    canonical = auth.canonical_request(request)
    if sorted(auth.headers_to_sign(request)) != sorted(signed):
        raise BedrockError(403, "InvalidSignatureException", _MISMATCH)
    expected = auth.signature(auth.string_to_sign(request, canonical), request)
    if expected != match["signature"]:
        raise BedrockError(403, "InvalidSignatureException", _MISMATCH)
    return match["key"]


# --- shapes ---------------------------------------------------------------------------------------


def _from_json(shape: Shape, value: Any, path: str) -> Any:
    """``value`` (parsed JSON) as botocore's parameters: blobs decoded, unknown keys refused."""
    kind = shape.type_name
    if kind == "structure" and getattr(shape, "is_document_type", False):
        return value
    if kind == "structure" and isinstance(value, dict):
        members = shape.members
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key not in members:
                raise validation_error(f'Unknown parameter in {path or "input"}: "{key}"')
            out[key] = _from_json(members[key], item, f"{path}.{key}" if path else key)
        return out
    if kind == "list" and isinstance(value, list):
        return [_from_json(shape.member, item, f"{path}[{i}]") for i, item in enumerate(value)]
    if kind == "map" and isinstance(value, dict):
        return {key: _from_json(shape.value, item, f"{path}.{key}") for key, item in value.items()}
    if kind == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise validation_error(f"{path}: invalid base64 blob") from None
    return value


def check_shape(shape: Shape, value: Any, where: str) -> dict[str, Any]:
    """Walk and validate ``value`` against ``shape``; the botocore parameters."""
    params = _from_json(shape, value, "")
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        raise validation_error(f"{where}: {report.generate_report()}")
    return params  # type: ignore[no-any-return]


class BedrockValidator:
    """The service model, loaded once; request and answer checks per operation."""

    def __init__(self) -> None:
        self._model = botocore.session.get_session().get_service_model("bedrock-runtime")

    def operation(self, name: str) -> OperationModel:
        return self._model.operation_model(name)

    def request(self, operation: str, model_id: str, raw: bytes) -> dict[str, Any]:
        """The parsed JSON body of a Converse/ConverseStream request, validated."""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise validation_error(
                "Malformed input request, please reformat your input and try again."
            ) from None
        if not isinstance(body, dict):
            raise validation_error(
                "Malformed input request, please reformat your input and try again."
            )
        if "modelId" in body:
            raise validation_error('Unknown parameter in input: "modelId" (it is in the path)')
        check_shape(self.operation(operation).input_shape, {**body, "modelId": model_id}, "input")
        _check_conversation(body)
        return body

    def answer(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` once it matches the operation's output shape (what we send)."""
        check_shape(self.operation(operation).output_shape, body, f"{operation} answer")
        return body

    def stream_event(self, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A ConverseStream event payload, checked against its event shape."""
        stream = self.operation("ConverseStream").output_shape.members["stream"]
        check_shape(stream.members[event_type], payload, f"{event_type} event")
        return payload


_START = "A conversation must start with a user message."
_ALTERNATE = "A conversation must alternate between user and assistant roles."
_NO_TOOL_CONFIG = (
    "The toolConfig field must be defined when using toolUse and toolResult content blocks."
)


def _check_conversation(body: Mapping[str, Any]) -> None:
    messages = body.get("messages") or []
    if not messages or messages[0].get("role") != "user":
        raise validation_error(_START)
    uses_tools = False
    previous_uses: set[str] = set()
    for index, message in enumerate(messages):
        if index and message.get("role") == messages[index - 1].get("role"):
            raise validation_error(_ALTERNATE)
        uses: set[str] = set()
        for block in message.get("content") or []:
            if "text" in block and not block["text"].strip():
                raise validation_error(
                    f"The text field in the ContentBlock object at messages.{index}.content "
                    "is blank. Add text to the text field, and try again."
                )
            if "toolUse" in block:
                uses.add(block["toolUse"]["toolUseId"])
                uses_tools = True
            if "toolResult" in block:
                uses_tools = True
                if block["toolResult"]["toolUseId"] not in previous_uses:
                    raise validation_error(
                        f"The toolResult blocks at messages.{index}.content do not match the "
                        "toolUse blocks of the previous turn."
                    )
        previous_uses = uses
    if uses_tools and "toolConfig" not in body:
        raise validation_error(_NO_TOOL_CONFIG)
