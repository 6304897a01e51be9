"""Provider keys at rest: AES-256-GCM under the operator's key ring.

Why AES-GCM (``cryptography``'s ``AESGCM``): it is authenticated, so a row read under the wrong
key, or a tampered row, is an error and never garbage; and the row's identity (organisation and
key id) is bound in as associated data, so a ciphertext copied into another row or another
organisation does not decrypt there.

A stored value is ``b"\\x01"`` (format) + an 8-byte key id + a 12-byte random nonce + the
ciphertext and tag. The key id (the head of a SHA-256 of the key) says which key of the ring
encrypted the row, so a read under a ring that lacks that key fails with a message naming it,
and rotation finds the rows still under an old key.

The ring comes from ``GATEWAY_ENCRYPTION_KEY``: URL-safe base64 keys of 32 bytes, comma
separated; the first encrypts, every one decrypts. Rotating is: put a new key first, keep the
old ones after it, run ``gateway provider-keys reencrypt``, then drop the old ones.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from logging_pipeline.private import FILE_MODE, private_dir

if TYPE_CHECKING:
    from gateway.settings import Settings

KEY_BYTES = 32
_FORMAT = b"\x01"
_ID_BYTES = 8
_NONCE_BYTES = 12
_HEADER = len(_FORMAT) + _ID_BYTES + _NONCE_BYTES
KEY_FILE_NAME = "encryption.key"
SETTING = "GATEWAY_ENCRYPTION_KEY"

MISSING_KEY_MESSAGE = (
    f"{SETTING} is not set. With a server database (DATABASE_URL) the gateway encrypts "
    "provider keys with a key it will not generate itself: every gateway process must share "
    "it, and it must not be stored in the database it protects. Create one with "
    f"'gateway encryption-key' and set {SETTING} in every gateway process's environment."
)


class EncryptionKeyError(ValueError):
    """The configured key ring is missing or malformed (an operator error, said clearly)."""


class DecryptionError(Exception):
    """A stored value cannot be decrypted with the configured ring (wrong key, or tampered)."""


def generate_key() -> str:
    """A new random key in the form ``GATEWAY_ENCRYPTION_KEY`` takes."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"gateway-provider-key-kek\x00" + key).digest()[:_ID_BYTES]


def _decode_key(text: str, position: int, source: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise EncryptionKeyError(
            f"{source}: key #{position} is not {KEY_BYTES} bytes of URL-safe base64 "
            "(create one with 'gateway encryption-key')"
        )
    return raw


class KeyRing:
    """The encryption keys: the first encrypts, every one decrypts (see the module doc)."""

    __slots__ = ("_ciphers", "_current")

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise EncryptionKeyError("the key ring is empty")
        self._ciphers = {_key_id(key): AESGCM(key) for key in keys}
        self._current = _key_id(keys[0])

    @classmethod
    def parse(cls, text: str, source: str = SETTING) -> KeyRing:
        """The ring of a comma-separated key list; raises :class:`EncryptionKeyError`."""
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if not parts:
            raise EncryptionKeyError(f"{source} is empty")
        return cls([_decode_key(part, index, source) for index, part in enumerate(parts, 1)])

    @property
    def current_id(self) -> str:
        """Hex id of the key that encrypts (what ``encryption_key_id`` columns hold)."""
        return self._current.hex()

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self._current].encrypt(nonce, plaintext, context)
        return _FORMAT + self._current + nonce + sealed

    def decrypt(self, blob: bytes, context: bytes) -> bytes:
        """The plaintext, or :class:`DecryptionError` saying which key would be needed."""
        if len(blob) <= _HEADER or blob[:1] != _FORMAT:
            raise DecryptionError("the stored value is not in a known encrypted format")
        key_id = blob[1 : 1 + _ID_BYTES]
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptionError(
                f"the stored value was encrypted with key {key_id.hex()}, which is not in "
                f"{SETTING} (configured: {', '.join(k.hex() for k in self._ciphers)}); "
                "add the old key after the new one to read it"
            )
        nonce = blob[1 + _ID_BYTES : _HEADER]
        try:
            return cipher.decrypt(nonce, blob[_HEADER:], context)
        except InvalidTag:
            raise DecryptionError(
                "the stored value failed authentication (tampered, or moved from another row)"
            ) from None

    @staticmethod
    def key_id_of(blob: bytes) -> str:
        return blob[1 : 1 + _ID_BYTES].hex()


def load_keyring(settings: Settings) -> KeyRing | None:
    """The ring of ``settings``: ``GATEWAY_ENCRYPTION_KEY``, else (embedded SQLite only) the
    data directory's ``encryption.key``, generated on first use. ``None`` for a server
    database without a configured key: the caller refuses to start (:data:`MISSING_KEY_MESSAGE`).
    """
    if settings.encryption_key is not None and settings.encryption_key.get_secret_value():
        return KeyRing.parse(settings.encryption_key.get_secret_value())
    if settings.database_url:
        return None
    path = settings.data_dir / KEY_FILE_NAME
    return KeyRing.parse(_read_or_create(path), source=str(path))


def _read_or_create(path: Path) -> str:
    """The key in ``path``, creating the file (``0600``) with a new key when it is missing.

    The new file is written aside and linked into place, so a second process starting at the
    same moment either loses the link and reads the winner's complete key, or wins; nobody
    reads a half-written file.
    """
    with contextlib.suppress(FileNotFoundError):
        return path.read_text("ascii").strip()
    private_dir(path.parent)
    temporary = path.with_name(f".{KEY_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(generate_key() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_text("ascii").strip()
