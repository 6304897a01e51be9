"""Answers built through the SDK's own response models, then serialised for the wire.

Going through ``ChatCompletion``, ``Response``... checks every required field is present
and typed. The SDK models accept unknown keys silently, so ``dump`` also refuses any key the
model does not declare: a typo here would otherwise reach the gateway as a "valid" field.

Serialisation uses ``exclude_unset`` rather than ``exclude_none``: OpenAI sends explicit
nulls in places (``"usage": null`` on stream chunks with ``include_usage``, ``"logprobs":
null``, ``"refusal": null``), and a field set to ``None`` on purpose must survive.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel


def _undeclared(value: Any, where: str) -> list[str]:
    found: list[str] = []
    if isinstance(value, BaseModel):
        for key in value.model_extra or {}:
            found.append(f"{where}.{key}")
        for name in type(value).model_fields:
            found += _undeclared(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _undeclared(item, f"{where}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += _undeclared(item, f"{where}.{key}")
    return found


def dump(model: BaseModel) -> dict[str, Any]:
    """``model`` as the JSON-ready dict OpenAI would send."""
    undeclared = _undeclared(model, type(model).__name__)
    if undeclared:
        raise TypeError(f"keys the SDK model does not declare: {undeclared}")
    data: dict[str, Any] = model.model_dump(mode="json", exclude_unset=True, by_alias=True)
    return data


def json_response(data: Any, serial: int, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(data),
        content_type="application/json",
        headers={"x-request-id": f"req_emu_{serial}"},
    )
