"""Request bodies checked against the official SDK's own request types.

The SDK's ``*CreateParams`` TypedDicts are the most precise machine-readable description of
what OpenAI accepts, but used as-is through pydantic they are too lenient in two ways:

* TypedDicts ignore unknown keys, and ``TypeAdapter(T, config=ConfigDict(extra="forbid"))``
  is refused for TypedDicts (pydantic raises ``PydanticUserError``); OpenAI rejects unknown
  parameters, so a gateway that leaks one must fail here too;
* ``Iterable[...]`` fields (``messages``, ``tools``, content parts...) compile to *lazy*
  generator validators, so a bad nested message is only noticed when someone iterates.

Both are fixed in the compiled core schema: every ``typed-dict`` gets
``extra_behavior="forbid"`` and every ``generator`` becomes a ``list``, which validates
eagerly and reports full error locations. Validation runs in strict JSON mode, as OpenAI
does not coerce ``"0.5"`` into a number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from openai.types import embedding_create_params
from openai.types.chat import completion_create_params
from openai.types.responses import response_create_params
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails, SchemaValidator

from .errors import InvalidRequest

Kind = Literal["chat", "responses", "embeddings"]

_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON.)"
)
_DISCRIMINATORS = frozenset({"role", "type"})
Loc = tuple[int | str, ...]


def _request_type(kind: Kind, stream: bool) -> Any:
    if kind == "chat":
        return (
            completion_create_params.CompletionCreateParamsStreaming
            if stream
            else completion_create_params.CompletionCreateParamsNonStreaming
        )
    if kind == "responses":
        return (
            response_create_params.ResponseCreateParamsStreaming
            if stream
            else response_create_params.ResponseCreateParamsNonStreaming
        )
    return embedding_create_params.EmbeddingCreateParams


def _tighten(schema: Any) -> Any:
    """A copy of a core schema with extra keys forbidden and iterables validated eagerly."""
    if isinstance(schema, Mapping):
        out = {key: _tighten(value) for key, value in schema.items()}
        if out.get("type") == "typed-dict" and "extras_schema" not in out:
            out["extra_behavior"] = "forbid"  # (a TypedDict that types its extras allows them)
        elif out.get("type") == "generator":
            out["type"] = "list"
        return out
    if isinstance(schema, list):
        return [_tighten(item) for item in schema]
    if isinstance(schema, tuple):
        return tuple(_tighten(item) for item in schema)
    return schema


class RequestValidator:
    """Validates request bodies; validators are compiled on first use of each type."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[Kind, bool], SchemaValidator] = {}

    def _validator(self, kind: Kind, stream: bool) -> SchemaValidator:
        key = (kind, stream)
        if key not in self._compiled:
            schema = TypeAdapter(_request_type(kind, stream)).core_schema
            self._compiled[key] = SchemaValidator(_tighten(schema))
        return self._compiled[key]

    def validate(self, kind: Kind, raw: bytes) -> dict[str, Any]:
        """The parsed body, or ``InvalidRequest`` worded and located the way OpenAI does."""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InvalidRequest(_BAD_JSON) from None
        if not isinstance(body, dict):
            raise InvalidRequest(_BAD_JSON)
        stream = body.get("stream") is True and kind != "embeddings"
        try:
            self._validator(kind, stream).validate_json(raw, strict=True)
        except ValidationError as exc:
            message, param = summarise(exc.errors(), body)
            raise InvalidRequest(message, param) from None
        return body


@dataclass(frozen=True)
class _Located:
    """A pydantic error split into its path in the input and the union branches it went via."""

    error: ErrorDetails
    path: Loc
    branches: tuple[Loc, ...]


def _locate(error: ErrorDetails, body: Any) -> _Located:
    """Separate real keys/indexes from union-member tags by walking the input alongside."""
    loc = tuple(error["loc"])
    path: list[int | str] = []
    branches: list[Loc] = []
    node = body
    for index, part in enumerate(loc):
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif index == len(loc) - 1 and error["type"] == "missing":
            path.append(part)
        else:
            branches.append(loc[: index + 1])
    return _Located(error, tuple(path), tuple(branches))


def _discriminator_miss(item: _Located) -> Loc | None:
    """The union member ruled out by ``item``: its ``role``/``type`` is wrong, absent, or one
    the member does not have at all."""
    loc = tuple(item.error["loc"])
    if (
        item.error["type"] in ("literal_error", "missing", "extra_forbidden")
        and len(loc) >= 2
        and loc[-1] in _DISCRIMINATORS
        and item.branches
        and item.branches[-1] == loc[:-1]
    ):
        return item.branches[-1]
    return None


def _relevant(located: Sequence[_Located]) -> list[_Located]:
    """Errors from the union members the input was plausibly meant to be.

    A union member whose ``role``/``type`` does not match the input is not what the caller
    meant, so its errors are noise, unless *no* member of that union matched, in which case
    the wrong discriminator value itself is the mistake and is what gets reported.
    """
    missed = {branch for item in located if (branch := _discriminator_miss(item))}
    members: dict[Loc, set[Loc]] = {}
    for item in located:
        for branch in item.branches:
            members.setdefault(branch[:-1], set()).add(branch)
    hopeless = {union for union, branches in members.items() if branches <= missed}
    kept = []
    for item in located:
        if not any(branch in missed for branch in item.branches):
            kept.append(item)
        elif (
            item.error["type"] != "extra_forbidden"
            and _discriminator_miss(item) is not None
            and item.branches[-1][:-1] in hopeless
            and not any(branch in missed for branch in item.branches[:-1])
        ):
            kept.append(item)
    return kept or list(located)


def _param(path: Loc) -> str | None:
    """``messages[0].role``, OpenAI's notation for a location."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or None


def _quote(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else orjson.dumps(value).decode()


def _supported(items: Sequence[_Located]) -> str:
    values: list[str] = []
    for item in items:
        expected = str((item.error.get("ctx") or {}).get("expected", ""))
        for value in re.findall(r"'[^']*'", expected):
            if value not in values:
                values.append(value)
    if len(values) <= 2:
        return " and ".join(values)
    return ", ".join(values[:-1]) + f", and {values[-1]}"


def summarise(errors: Sequence[ErrorDetails], body: Any) -> tuple[str, str | None]:
    """One readable (message, param) for a pydantic error list, as OpenAI reports one."""
    located = [_locate(error, body) for error in errors]
    for item in located:
        if item.error["type"] == "extra_forbidden" and len(item.path) == 1:
            return f"Unrecognized request argument supplied: {item.path[0]}", None
    relevant = _relevant(located)
    # The most specific location wins; at equal depth a wrong value beats an absent key.
    chosen = max(relevant, key=lambda item: (len(item.path), item.error["type"] != "missing"))
    same = [item for item in relevant if item.path == chosen.path]
    param = _param(chosen.path)
    kinds = {item.error["type"] for item in same}
    if param is None:
        return f"Invalid request body: {chosen.error['msg']}.", None
    if "extra_forbidden" in kinds:
        return f"Unknown parameter: '{param}'.", param
    if "missing" in kinds:
        return f"Missing required parameter: '{param}'.", param
    if kinds == {"literal_error"}:
        supported = _supported(same)
        return (
            f"Invalid value: {_quote(chosen.error['input'])}. Supported values are: {supported}.",
            param,
        )
    reasons = list(dict.fromkeys(item.error["msg"] for item in same))
    return f"Invalid value for '{param}': {', or '.join(reasons)}.", param
