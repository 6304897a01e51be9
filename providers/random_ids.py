"""Random ids for answers that come without one, without a system call per id.

A Converse answer has no id, so its ``chat.completion`` gets a fresh ``chatcmpl-`` one: 24
random bytes as hex, as ``secrets.token_hex`` makes them. Asking the kernel for 24 bytes is a
``getrandom`` system call per request (the request ids' own call was ~2% of a loaded
gateway's CPU per request, :class:`gateway.options.RequestIds`); here the kernel's CSPRNG
bytes are asked for a batch at a time and handed out as hex slices, each used once. A fork
drops the batch in the child (``os.register_at_fork``), so two processes never hand out the
same id.
"""

from __future__ import annotations

import os
import weakref

BATCH_IDS = 170
"""Ids per batch of random bytes (170 ids of 24 bytes: one ~4 KB ``getrandom``)."""


class RandomIds:
    """``prefix`` + ``size`` random bytes as lower-case hex, per call."""

    __slots__ = ("__weakref__", "_hex", "_offset", "_prefix", "_width")

    def __init__(self, prefix: str, size: int) -> None:
        self._prefix = prefix
        self._width = 2 * size
        self._hex = ""
        self._offset = 0
        ref = weakref.ref(self)

        def forget() -> None:  # in a forked child: never reuse the parent's bytes
            ids = ref()
            if ids is not None:
                ids._hex, ids._offset = "", 0

        os.register_at_fork(after_in_child=forget)

    def __call__(self) -> str:
        offset = self._offset
        end = offset + self._width
        if end > len(self._hex):
            self._hex = os.urandom(BATCH_IDS * self._width // 2).hex()
            offset, end = 0, self._width
        self._offset = end
        return self._prefix + self._hex[offset:end]
