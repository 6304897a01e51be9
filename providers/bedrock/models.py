"""Bedrock's addressing: regions, endpoints, model paths, and which models speak Anthropic.

Model ids come in three shapes, all accepted wherever a model id is: a base model
(``anthropic.claude-sonnet-4-5-20250929-v1:0``), a cross-region inference profile (the base
id behind a geography prefix: ``us.``, ``eu.``, ``apac.``, ``global.``…) and an ARN
(``arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-…``). In a
path the id is one segment, percent-encoded as boto3 encodes it (``:`` → ``%3A``, ``/`` →
``%2F``), so the signature covers the same bytes AWS reads.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import quote

Operation = Literal["converse", "converse-stream", "invoke", "invoke-with-response-stream"]

DEFAULT_REGION = "us-east-1"
"""Where requests go when neither the deployment nor the operator names a region."""

_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}")
"""An AWS region name (``us-east-1``, ``ap-southeast-2``, ``us-gov-west-1``): checked before
one is put in a host name, since a client's path may name it."""

_PROFILE_GEOGRAPHIES = frozenset({"us", "us-gov", "eu", "apac", "au", "ca", "jp", "in", "global"})
"""A cross-region inference profile's geography: the id's first dot-separated segment
(``us.``, ``apac.``, ``us-gov.``, ``global.``)."""


def is_region(value: str) -> bool:
    return _REGION.fullmatch(value) is not None


def endpoint_url(region: str) -> str:
    """The Bedrock runtime endpoint of ``region`` (checked: a bad name is a ValueError)."""
    if not is_region(region):
        raise ValueError(f"{region!r} is not an AWS region name")
    return f"https://bedrock-runtime.{region}.amazonaws.com"


_PLAIN_ID = re.compile(r"[A-Za-z0-9._~:-]+")
"""A model id whose only character to encode is ``:`` (every base id and inference profile)."""


def model_path(model_id: str, operation: Operation) -> str:
    """``/model/{modelId}/{operation}``, the id encoded as one path segment.

    A plain id (no ``/``, space or other reserved character) has only its ``:`` to encode,
    which is what ``quote(…, safe="")`` would give, a few times cheaper (once per request)."""
    if _PLAIN_ID.fullmatch(model_id):
        return f"/model/{model_id.replace(':', '%3A')}/{operation}"
    return f"/model/{quote(model_id, safe='')}/{operation}"


_NATIVE_ID = re.compile(r"[a-z0-9]+\.[a-z0-9]")


def is_model_id(name: str) -> bool:
    """Whether ``name`` is spelled as Bedrock spells model ids (``vendor.model…``, behind an
    optional geography, or an ARN), not as a registry alias (``claude-sonnet-4-5``)."""
    return name.startswith("arn:") or _NATIVE_ID.match(base_model(name)) is not None


def base_model(model_id: str) -> str:
    """The base model behind an id: an ARN's resource name, without a profile's geography."""
    name = model_id.rsplit("/", 1)[-1] if model_id.startswith("arn:") else model_id
    geography, dot, rest = name.partition(".")  # a split, not a regex: once per request
    return rest if dot and geography in _PROFILE_GEOGRAPHIES else name


def is_anthropic(model_id: str) -> bool:
    """Whether the model is Claude (InvokeModel then takes Anthropic's Messages body).
    (:func:`base_model` inline: once per Bedrock request.)"""
    name = model_id.rsplit("/", 1)[-1] if model_id.startswith("arn:") else model_id
    geography, dot, rest = name.partition(".")
    return (rest if dot and geography in _PROFILE_GEOGRAPHIES else name).startswith("anthropic.")
