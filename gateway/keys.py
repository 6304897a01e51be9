"""Gateway API keys: generation, hashing and recognition.

A key looks like ``sk-helicone-xxxxxxx-xxxxxxx-xxxxxxx-xxxxxxx`` (four groups of seven characters
from ``[a-z0-9]``), the shape Helicone's gateway keys have, so clients and tooling that recognise
those keep working. Only :func:`hash_key` digests and :func:`key_prefix` prefixes are stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets

KEY_SCHEME = "sk-helicone-"
"""Fixed head of every gateway key; carries no entropy."""

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_GROUPS = 4
_GROUP_LENGTH = 7
PREFIX_LENGTH = 16
"""Characters of a key kept in the clear (``sk-helicone-`` plus four random characters) so that
operators can tell keys apart in listings without the store holding anything usable."""

_GROUP = f"[a-z0-9]{{{_GROUP_LENGTH}}}"
KEY_PATTERN = re.compile(rf"{re.escape(KEY_SCHEME)}{_GROUP}(?:-{_GROUP}){{{_GROUPS - 1}}}")


def generate_key() -> str:
    """A new random key: 28 characters from a 36-symbol alphabet, about 144 bits of entropy."""
    groups = (
        "".join(secrets.choice(_ALPHABET) for _ in range(_GROUP_LENGTH)) for _ in range(_GROUPS)
    )
    return KEY_SCHEME + "-".join(groups)


def hash_key(key: str) -> str:
    """The SHA-256 hex digest under which a key is stored and looked up.

    No salt and no slow KDF: keys are generated with ~144 bits of entropy, so they cannot be
    guessed or looked up in precomputed tables, and a plain digest keeps the lookup a single
    indexed equality match on the request path.
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_prefix(key: str) -> str:
    """The displayable head of a key, e.g. ``sk-helicone-ab12``."""
    return key[:PREFIX_LENGTH]


def looks_like_key(value: str) -> bool:
    """Whether ``value`` has the exact shape of a gateway key (it may still be unknown)."""
    return KEY_PATTERN.fullmatch(value) is not None
