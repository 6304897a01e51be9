"""Token estimates with tiktoken, for upstreams that report no usage.

tiktoken downloads its encoding files at first use, which a gateway without internet access
cannot do. The ``bpe-openai`` package ships the official ``o200k_base`` file; it is unpacked
once into the data directory, checked against tiktoken's published SHA-256, and handed to
tiktoken's own constructor (called with a local loader instead of its downloading one), so
the encoding is exactly tiktoken's. Estimates run in the batch writer, never on the request
path, and records built from them are flagged ``tokens_estimated``.
"""

from __future__ import annotations

import gzip
import logging
import types
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import tiktoken
from tiktoken.load import load_tiktoken_bpe
from tiktoken_ext import openai_public

logger = logging.getLogger("logging_pipeline.estimate")

_ENCODING = "o200k_base"


def _local_loader(cache_dir: Path) -> Callable[..., dict[bytes, int]]:
    def load(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        target = cache_dir / f"{_ENCODING}.tiktoken"
        if not target.exists():
            packaged = resources.files("bpe_openai.data") / f"{_ENCODING}.tiktoken.gz"
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(gzip.decompress(packaged.read_bytes()))
            tmp.replace(target)
        return load_tiktoken_bpe(str(target), expected_hash=expected_hash)

    return load


def load_encoding(cache_dir: Path) -> tiktoken.Encoding | None:
    """tiktoken's ``o200k_base`` from packaged data, or None (then estimates use 4 chars/token)."""
    try:
        constructor = openai_public.o200k_base
        rebound = types.FunctionType(
            constructor.__code__,
            {**constructor.__globals__, "load_tiktoken_bpe": _local_loader(cache_dir)},
        )
        spec: dict[str, Any] = rebound()
        return tiktoken.Encoding(
            spec["name"],
            pat_str=spec["pat_str"],
            mergeable_ranks=spec["mergeable_ranks"],
            special_tokens=spec["special_tokens"],
        )
    except Exception as exc:  # never fail logging over an estimate
        logger.warning("tiktoken encoding unavailable, estimating 4 chars/token: %r", exc)
        return None


class TokenEstimator:
    """Counts tokens of text; created lazily by the writer on the first record that needs it."""

    def __init__(self, cache_dir: Path) -> None:
        self._cache_dir = cache_dir
        self._encoding: tiktoken.Encoding | None = None
        self._loaded = False

    def count(self, text: str) -> int:
        if not text:
            return 0
        if not self._loaded:
            self._encoding = load_encoding(self._cache_dir)
            self._loaded = True
        if self._encoding is None:
            return max(1, len(text) // 4)
        return len(self._encoding.encode(text, disallowed_special=()))


def prompt_text(request: Any) -> str:
    """The text a model reads from a chat/responses/embeddings request body."""
    if not isinstance(request, dict):
        return request if isinstance(request, str) else ""
    parts: list[str] = []
    for message in request.get("messages") or []:
        if isinstance(message, dict):
            _collect(message.get("content"), parts)
    _collect(request.get("input"), parts)
    _collect(request.get("instructions"), parts)
    _collect(request.get("prompt"), parts)
    return "\n".join(parts)


def _collect(value: Any, parts: list[str]) -> None:
    """Append the texts in ``value``, in document order.

    A loop over an explicit stack rather than recursion: bodies are only parsed here (in the
    writer), and a passthrough body may nest as deep as the parser reads (1,024 levels),
    past Python's recursion limit.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(item[key] for key in ("input_text", "content", "text") if key in item)
