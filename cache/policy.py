"""What a request asks of the response cache: its ``Helicone-Cache-*`` headers, checked.

:mod:`gateway.context` reads the headers (it is the one parser of ``Helicone-*`` headers) and
hands their values to :func:`cache_policy`, only when one of the three switches is on:

* ``Helicone-Cache-Enabled: true`` — read and write;
* ``Helicone-Cache-Read: true`` — read only (a miss is not stored);
* ``Helicone-Cache-Save: true`` — write only (the answer always comes from the provider).

Then the other headers count: ``Cache-Control`` (``s-maxage``, else ``max-age``, in seconds:
the entry's lifetime; absent or without either directive: 7 days; at most 365 days; ``0``:
nothing is stored), ``Helicone-Cache-Bucket-Max-Size`` (1 to 20 answers per request),
``Helicone-Cache-Seed`` (a namespace) and ``Helicone-Cache-Ignore-Keys`` (top-level JSON keys
left out of the key, comma separated).

An invalid bucket size is a 400 naming the header (our choice: the reference drops the cache
for that request silently, which hides the mistake; a bucket past 20 is refused rather than
clamped, since a clamp would change which answers the client gets). Flags follow the other
``Helicone-*`` flags: true only for ``true``, any case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_TTL_SECONDS = 7 * 24 * 3600
"""``Cache-Control`` absent: a week, as the reference."""
MAX_TTL_SECONDS = 365 * 24 * 3600
"""The longest lifetime an entry gets (a larger ``max-age`` is clamped to it)."""
MAX_BUCKET_SIZE = 20

_S_MAXAGE = re.compile(r"(?:^|[,\s])s-maxage\s*=\s*\"?(\d+)", re.IGNORECASE)
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


class CacheHeaderError(ValueError):
    """A cache header with a value the cache cannot honour (a 400 naming ``header``)."""

    def __init__(self, header: str, message: str) -> None:
        super().__init__(message)
        self.header = header
        self.message = message


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """One request's cache settings."""

    read: bool
    """Answer from the cache when the bucket is full."""
    write: bool
    """Store a 2xx answer from the provider in a free slot of the bucket."""
    ttl: int = DEFAULT_TTL_SECONDS
    """Seconds an entry written by this request lives (0: not written)."""
    bucket_size: int = 1
    seed: str = ""
    ignore_keys: frozenset[str] = frozenset()

    @property
    def stores(self) -> bool:
        return self.write and self.ttl > 0


def parse_ttl(cache_control: str | None) -> int:
    """The entry lifetime ``Cache-Control`` asks for (``s-maxage`` first, as a shared cache)."""
    if not cache_control:
        return DEFAULT_TTL_SECONDS
    match = _S_MAXAGE.search(cache_control) or _MAX_AGE.search(cache_control)
    if match is None:
        return DEFAULT_TTL_SECONDS
    return min(int(match.group(1)), MAX_TTL_SECONDS)


def parse_bucket_size(value: str | None) -> int:
    if value is None or not value.strip():
        return 1
    text = value.strip()
    if not text.isdecimal() or not 1 <= int(text) <= MAX_BUCKET_SIZE:
        raise CacheHeaderError(
            "Helicone-Cache-Bucket-Max-Size",
            f"Helicone-Cache-Bucket-Max-Size must be a whole number from 1 to {MAX_BUCKET_SIZE} "
            f"(the number of answers kept for one request), not {value!r}.",
        )
    return int(text)


def parse_ignore_keys(value: str | None) -> frozenset[str]:
    if not value:
        return frozenset()
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def cache_policy(
    *,
    enabled: bool,
    read: bool,
    save: bool,
    cache_control: str | None,
    bucket_size: str | None,
    seed: str | None,
    ignore_keys: str | None,
) -> CachePolicy | None:
    """The policy for these header values, None when the cache is off for the request.

    Raises :class:`CacheHeaderError` for a value the cache cannot honour.
    """
    reads = enabled or read
    writes = enabled or save
    if not reads and not writes:
        return None
    return CachePolicy(
        read=reads,
        write=writes,
        ttl=parse_ttl(cache_control),
        bucket_size=parse_bucket_size(bucket_size),
        seed=seed or "",
        ignore_keys=parse_ignore_keys(ignore_keys),
    )
