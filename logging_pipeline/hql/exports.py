"""Where HQL CSV exports go, and the expiring link that fetches one.

With S3 configured (the body store is S3), an export is an object in the body bucket at
``organizations/{org}/hql-exports/hql-export-<timestamp>-<id>.csv`` and the link is a
presigned GET (the reference behaviour). With the local body store, an export is a file under
``<data dir>/hql-exports/{org}/`` and the link is the gateway's own
``/v1/helicone-sql/exports/{org}/{file}?expires=<unix>&signature=<hex>``: an HMAC-SHA256 of
the path and expiry under a key kept in ``<data dir>/hql-links.key``, so the link needs no
API key (like a presigned URL) and is refused once expired or altered. Local exports older
than the link lifetime are deleted when the next export is written.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import secrets
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from logging_pipeline.bodies import S3BodyStore
from logging_pipeline.private import private_dir

EXPORT_NAME = re.compile(r"hql-export-\d{8}T\d{6}Z-[0-9a-f]{32}\.csv")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
LINK_PATH = "/v1/helicone-sql/exports"


class ExportStore(Protocol):
    async def save(self, org_id: str, data: bytes) -> str:
        """Store one CSV; return its link (absolute, or a path on this gateway)."""
        ...


def export_name() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"hql-export-{stamp}-{uuid.uuid4().hex}.csv"


class S3Exports:
    """Exports in the body bucket, fetched by presigned URL."""

    def __init__(self, store: S3BodyStore, ttl_seconds: int) -> None:
        self._store = store
        self._ttl = ttl_seconds

    async def save(self, org_id: str, data: bytes) -> str:
        key = f"organizations/{org_id.lower()}/hql-exports/{export_name()}"
        await self._store.put_file(key, data, "text/csv; charset=utf-8")
        return await self._store.presigned_url(key, self._ttl)


class LinkError(Exception):
    """A local export link that is malformed, altered, expired or points at nothing."""


class LocalExports:
    """Exports as files, fetched through the gateway with an HMAC-signed, expiring link."""

    def __init__(self, root: Path, key_file: Path, ttl_seconds: int) -> None:
        self.root = root
        self._key_file = key_file
        self._ttl = ttl_seconds
        self._key: bytes | None = None

    def _secret(self) -> bytes:
        """The signing key: made once per data directory (32 random bytes, hex, 0600), so
        every process on it agrees and links survive a restart.

        It is written to a temporary file and hard-linked into place, so a reader never sees
        a partial key and two processes starting at once end up with the same one.
        """
        if self._key is None:
            if not self._key_file.exists():
                private_dir(self._key_file.parent)
                temp = self._key_file.with_name(f".{self._key_file.name}.{os.getpid()}.tmp")
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with open(fd, "w") as handle:
                    handle.write(secrets.token_bytes(32).hex())
                try:
                    os.link(temp, self._key_file)
                except FileExistsError:
                    pass  # another process made it first: use theirs
                finally:
                    temp.unlink()
            text = self._key_file.read_text().strip()
            if not re.fullmatch(r"[0-9a-f]{64}", text):
                raise LinkError(f"the link signing key {self._key_file} is corrupt")
            self._key = bytes.fromhex(text)
        return self._key

    def signature(self, org_id: str, name: str, expires: int) -> str:
        message = f"{org_id}/{name}:{expires}".encode()
        return hmac.new(self._secret(), message, hashlib.sha256).hexdigest()

    async def save(self, org_id: str, data: bytes) -> str:
        name = export_name()
        org = org_id.lower()
        await asyncio.to_thread(self._write, org, name, data)
        expires = int(time.time()) + self._ttl
        signature = await asyncio.to_thread(self.signature, org, name, expires)
        return f"{LINK_PATH}/{org}/{name}?expires={expires}&signature={signature}"

    def _write(self, org: str, name: str, data: bytes) -> None:
        directory = self.root / org
        private_dir(directory)
        self._sweep(time.time() - self._ttl)
        temp = directory / f".{name}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, directory / name)

    def _sweep(self, older_than: float) -> None:
        for path in self.root.glob("*/hql-export-*.csv"):
            try:
                if path.stat().st_mtime < older_than:
                    path.unlink()
            except OSError:
                continue  # gone already, or another process's sweep got there first

    def open(self, org_id: str, name: str, expires: str, signature: str) -> Path:
        """The file a link names, if the link is valid now; else :class:`LinkError`."""
        if not _UUID.fullmatch(org_id) or not EXPORT_NAME.fullmatch(name):
            raise LinkError("no such export")
        if not expires.isdigit() or not re.fullmatch(r"[0-9a-f]{64}", signature):
            raise LinkError("the link is malformed")
        expected = self.signature(org_id, name, int(expires))
        if not hmac.compare_digest(expected, signature):
            raise LinkError("the link signature does not match")
        if int(expires) < time.time():
            raise LinkError("the link has expired")
        path = self.root / org_id / name
        if not path.is_file():
            raise LinkError("no such export")
        return path
