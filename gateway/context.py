"""The request context: everything the gateway knows about one request, parsed once.

:func:`parse_options` is the one place a ``Helicone-*`` request header is read (ASGI hands
header names over lower-cased, so every name below is lower-case). The data plane parses them
when the request arrives, into a :class:`HeliconeOptions`, and every later step — routing,
authentication, the capture, the relay — reads that object instead of the headers. The one
other place that names a ``helicone-`` header is :func:`gateway.upstream.upstream_request_headers`,
which drops the whole :data:`HELICONE_PREFIX` family before forwarding.

Invalid values are lenient, as in the reference implementation: an invalid request id is
replaced by a fresh one, a flag is true only for ``true`` (any case), a country code that is
not two letters is skipped. Nothing here refuses a request (a rate-limit policy is kept as
sent; :mod:`ratelimit` refuses an invalid one).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from cache.policy import CacheHeaderError, CachePolicy, cache_policy
from gateway.asgi import RawHeaders
from gateway.auth import Credentials, resolve_credentials
from gateway.options import new_request_id
from gateway.retry import RetryPolicy
from gateway.store import KeyIdentity
from logging_pipeline.capture import Capture

if TYPE_CHECKING:
    from cache.step import CacheRequest

HELICONE_PREFIX = "helicone-"
"""Every gateway control header starts with this; none of them is forwarded upstream."""
_AUTH = "helicone-auth"
_REQUEST_ID_HEADER = "helicone-request-id"
_TARGET_URL = "helicone-target-url"
_TARGET_PROVIDER = "helicone-target-provider"
_OPENAI_API_BASE = "helicone-openai-api-base"
_FORCE_FORMAT = "helicone-stream-force-format"
_USER_ID = "helicone-user-id"
_MODEL_OVERRIDE = "helicone-model-override"
_OMIT_REQUEST = "helicone-omit-request"
_OMIT_RESPONSE = "helicone-omit-response"
_CACHE_ENABLED = "helicone-cache-enabled"
_CACHE_SAVE = "helicone-cache-save"
_CACHE_READ = "helicone-cache-read"
_CACHE_BUCKET = "helicone-cache-bucket-max-size"
_CACHE_SEED = "helicone-cache-seed"
_CACHE_IGNORE_KEYS = "helicone-cache-ignore-keys"
_CACHE_CONTROL = "cache-control"
_FALLBACKS = "helicone-fallbacks"
_RETRY_ENABLED = "helicone-retry-enabled"
_RETRY_NUM = "helicone-retry-num"
_RETRY_FACTOR = "helicone-retry-factor"
_RETRY_MIN_TIMEOUT = "helicone-retry-min-timeout"
_RETRY_MAX_TIMEOUT = "helicone-retry-max-timeout"
_RATE_LIMIT_POLICY = "helicone-ratelimit-policy"
_RATE_LIMIT_POLICY_ALIAS = "helicone-rate-limit-policy"
"""The integration pages' spelling (LangChain, LiteLLM, DSPy: ``basic-100``); see
:attr:`HeliconeOptions.rate_limit_alias`."""
_PROPERTY_PREFIX = "helicone-property-"
_PROPERTY_START = len(_PROPERTY_PREFIX)
_SESSION_KEYS = {
    "helicone-session-id": "Helicone-Session-Id",
    "helicone-session-path": "Helicone-Session-Path",
    "helicone-session-name": "Helicone-Session-Name",
    "helicone-prompt-id": "Helicone-Prompt-Id",
}
"""Reserved properties, stored with the casing the queries (and the schema) name them by."""
_COUNTRY_HEADERS = (
    "cf-ipcountry",
    "cloudfront-viewer-country",
    "x-vercel-ip-country",
    "x-country-code",
)
"""Set by the CDN in front of the gateway, in this order of preference."""
_COUNTRY_NAMES = frozenset(_COUNTRY_HEADERS)
_READ_AFTER = frozenset({_CACHE_SAVE, _CACHE_READ, _RETRY_ENABLED})
"""``Helicone-*`` headers read after the pass, with the headers they go with: seeing one of
them in the pass is what makes those lookups worth doing."""
_RESPONSE_ID = b"helicone-id"
_FALLBACK_INDEX = b"helicone-fallback-index"
_CACHE_STATUS = b"helicone-cache"
_CACHE_BUCKET_INDEX = b"helicone-cache-bucket-idx"
_RATE_LIMIT_LIMIT = b"helicone-ratelimit-limit"
_RATE_LIMIT_REMAINING = b"helicone-ratelimit-remaining"
_RATE_LIMIT_POLICY_OUT = b"helicone-ratelimit-policy"
_RETRY_AFTER = b"retry-after"
_REQUEST_ID = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.IGNORECASE
)
"""A UUID of an RFC 9562 version (1-8) and the RFC variant, in the canonical text form."""


@dataclass(slots=True)
class HeliconeOptions:
    """The ``Helicone-*`` request headers the gateway uses (and the CDN's country header).

    Built by :func:`parse_options` and not changed afterwards. Defaults are what an absent
    header means.
    """

    request_id: str
    """``Helicone-Request-Id`` lower-cased when it is a valid UUID, else a fresh UUIDv7."""
    auth: str | None = None
    """``Helicone-Auth`` as sent: present means it carries the gateway key (see
    :func:`gateway.auth.resolve_credentials`)."""
    target_url: str | None = None
    """``Helicone-Target-Url`` as sent; present (even empty) selects the generic passthrough."""
    target_provider: str = "custom"
    """``Helicone-Target-Provider`` stripped and lower-cased, ``custom`` when absent or empty."""
    openai_api_base: str | None = None
    """``Helicone-OpenAI-Api-Base`` (None when absent or empty): the OpenAI passthrough's
    base URL override (the provider table's ``base_url_header``)."""
    force_format: bool = False
    """``Helicone-Stream-Force-Format: true``: re-frame SSE on event boundaries."""
    user_id: str = ""
    """``Helicone-User-Id`` as sent."""
    model_override: str = ""
    """``Helicone-Model-Override`` as sent: the model the record is priced as."""
    omit_request: bool = False
    """``Helicone-Omit-Request: true``: the request body is not stored."""
    omit_response: bool = False
    """``Helicone-Omit-Response: true``: the response body is not stored."""
    cache_enabled: bool = False
    """``Helicone-Cache-Enabled: true``."""
    cache: CachePolicy | None = None
    """The response cache's settings when ``Helicone-Cache-Enabled``, ``-Save`` or ``-Read``
    is true (with ``Cache-Control`` and the other ``Helicone-Cache-*`` headers): cache/policy.py."""
    cache_error: CacheHeaderError | None = None
    """A cache header the cache cannot honour: the cache step answers 400 with it."""
    fallbacks: str | None = None
    """``Helicone-Fallbacks`` as sent (a JSON array, parsed by gateway/fallbacks.py): selects
    the legacy fallback relay."""
    retry: RetryPolicy | None = None
    """``Helicone-Retry-Enabled: true``: the ``Helicone-Retry-*`` policy (gateway/retry.py)."""
    rate_limit_policy: str | None = None
    """``Helicone-RateLimit-Policy`` as sent (parsed, and refused when invalid, by
    :mod:`ratelimit`)."""
    rate_limit_alias: str | None = None
    """``Helicone-Rate-Limit-Policy`` as sent: applied like the documented header when it
    parses, ignored when it does not (the integration pages' ``basic-100``)."""
    properties: dict[str, str] = field(default_factory=dict)
    """``Helicone-Property-<key>`` by lower-cased key, plus the session and prompt ids under
    their canonical names (``Helicone-Session-Id``…)."""
    country_code: str | None = None
    """The first two-letter country header of :data:`_COUNTRY_HEADERS`, upper-cased."""


def _flag(value: str) -> bool:
    return value.strip().lower() == "true"


def _set_request_id(options: HeliconeOptions, value: str) -> None:
    value = value.strip()
    if _REQUEST_ID.match(value):
        options.request_id = value.lower()


def _set_auth(options: HeliconeOptions, value: str) -> None:
    options.auth = value


def _set_target_url(options: HeliconeOptions, value: str) -> None:
    options.target_url = value


def _set_target_provider(options: HeliconeOptions, value: str) -> None:
    options.target_provider = value.strip().lower() or "custom"


def _set_openai_api_base(options: HeliconeOptions, value: str) -> None:
    options.openai_api_base = value or None


def _set_force_format(options: HeliconeOptions, value: str) -> None:
    options.force_format = _flag(value)


def _set_user_id(options: HeliconeOptions, value: str) -> None:
    options.user_id = value


def _set_model_override(options: HeliconeOptions, value: str) -> None:
    options.model_override = value


def _set_omit_request(options: HeliconeOptions, value: str) -> None:
    options.omit_request = _flag(value)


def _set_omit_response(options: HeliconeOptions, value: str) -> None:
    options.omit_response = _flag(value)


def _set_cache_enabled(options: HeliconeOptions, value: str) -> None:
    options.cache_enabled = _flag(value)


def _set_fallbacks(options: HeliconeOptions, value: str) -> None:
    options.fallbacks = value


def _set_rate_limit_policy(options: HeliconeOptions, value: str) -> None:
    options.rate_limit_policy = value


def _set_rate_limit_alias(options: HeliconeOptions, value: str) -> None:
    options.rate_limit_alias = value


_SETTERS: Mapping[str, Callable[[HeliconeOptions, str], None]] = MappingProxyType(
    {
        _REQUEST_ID_HEADER: _set_request_id,
        _AUTH: _set_auth,
        _TARGET_URL: _set_target_url,
        _TARGET_PROVIDER: _set_target_provider,
        _OPENAI_API_BASE: _set_openai_api_base,
        _FORCE_FORMAT: _set_force_format,
        _USER_ID: _set_user_id,
        _MODEL_OVERRIDE: _set_model_override,
        _OMIT_REQUEST: _set_omit_request,
        _OMIT_RESPONSE: _set_omit_response,
        _CACHE_ENABLED: _set_cache_enabled,
        _FALLBACKS: _set_fallbacks,
        _RATE_LIMIT_POLICY: _set_rate_limit_policy,
        _RATE_LIMIT_POLICY_ALIAS: _set_rate_limit_alias,
    }
)
"""The single-valued headers, by name: what each sets on the options."""


def parse_options(
    headers: dict[str, str], new_id: Callable[[], str] = new_request_id
) -> HeliconeOptions:
    """Parse every ``Helicone-*`` header the gateway uses, once per request.

    One pass over the header names: a substring test each (C speed) skips the headers that
    are not ours, then one dict lookup finds what a ``Helicone-*`` header sets; an absent
    header costs nothing. The multi-header options (the cache's, the retry policy's) are
    looked up only when the pass saw one of theirs, the CDN's country headers only when one of
    them is there (one set test). About 1-2 µs for a typical request (README, performance).
    ``new_id`` makes the request id when the client sent none (the data plane passes its
    :class:`gateway.options.RequestIds`).
    """
    options = HeliconeOptions("")
    properties = options.properties
    later = False
    for name, value in headers.items():
        if HELICONE_PREFIX not in name:  # most headers are not ours
            continue
        setter = _SETTERS.get(name)
        if setter is not None:
            setter(options, value)
        elif name.startswith(_PROPERTY_PREFIX):
            if len(name) > _PROPERTY_START:
                properties[name[_PROPERTY_START:]] = value
        elif name in _SESSION_KEYS:
            properties[_SESSION_KEYS[name]] = value
        elif name in _READ_AFTER:
            later = True
    if not options.request_id:
        options.request_id = new_id()
    if not (later or options.cache_enabled):  # the usual request: no cache or retry headers
        if not _COUNTRY_NAMES.isdisjoint(headers):
            _set_country(options, headers)
        return options
    save = headers.get(_CACHE_SAVE)
    read = headers.get(_CACHE_READ)
    if options.cache_enabled or save is not None or read is not None:
        try:
            options.cache = cache_policy(
                enabled=options.cache_enabled,
                read=read is not None and _flag(read),
                save=save is not None and _flag(save),
                cache_control=headers.get(_CACHE_CONTROL),
                bucket_size=headers.get(_CACHE_BUCKET),
                seed=headers.get(_CACHE_SEED),
                ignore_keys=headers.get(_CACHE_IGNORE_KEYS),
            )
        except CacheHeaderError as exc:
            options.cache_error = exc
    retry = headers.get(_RETRY_ENABLED)
    if retry is not None and _flag(retry):
        options.retry = RetryPolicy.from_headers(
            headers.get(_RETRY_NUM),
            headers.get(_RETRY_FACTOR),
            headers.get(_RETRY_MIN_TIMEOUT),
            headers.get(_RETRY_MAX_TIMEOUT),
        )
    _set_country(options, headers)
    return options


def _set_country(options: HeliconeOptions, headers: dict[str, str]) -> None:
    for name in _COUNTRY_HEADERS:
        country = headers.get(name)
        if country and len(country) == 2 and country.isalpha():
            options.country_code = country.upper()
            return


def read_credentials(headers: dict[str, str]) -> Credentials:
    """The credentials of a request whose options are not parsed (the REST API)."""
    return resolve_credentials(headers.get(_AUTH), headers.get("authorization"))


@dataclass(slots=True)
class AnswerTap:
    """The committed upstream answer, raw, for the meter (gateway/metering): set by the relay
    when a step asks for it (:attr:`RequestContext.tap`), independently of the capture, so
    that metering works with request logging off. The body is the bytes already read or
    recorded: no copy for a whole answer, one join for a stream."""

    status: int = 0
    body: bytes = b""
    streamed: bool = False


Route = Literal[
    "unified", "models", "passthrough", "target_url", "fallbacks", "manual_log", "app"
]
"""Which kind of handler serves a request: a unified route (``/v1/chat/completions``…),
``/v1/models``, a provider passthrough (``/oai``, ``/anthropic``, ``/v1/gateway/{provider}``),
a ``Helicone-Target-Url`` relay, a ``Helicone-Fallbacks`` relay, a manual-logger endpoint, or
the REST app."""


@dataclass(slots=True)
class RequestContext:
    """One request's state, from arrival to the journaled record.

    The relay reads the clock, the flags and the capture from here; :meth:`log` journals the
    capture once, before the last byte of the response goes out.
    """

    options: HeliconeOptions
    started: float = field(default_factory=time.perf_counter)
    route: Route = "app"
    """Set by the data plane when it picks the handler (later steps — cache, rate limits —
    read it instead of looking at the path again)."""
    credentials: Credentials | None = None
    """Set by the request-start step (or earlier by a key-in-path route)."""
    identity: KeyIdentity | None = None
    """Set once the request is authenticated."""
    response_headers: RawHeaders | None = None
    """Extra ``Helicone-*`` response headers set by a step (the fallback index, the cache
    status…)."""
    retries: int = 0
    """Answers discarded and sent again under the request's retry policy."""
    strip_usage: bool = False
    """The gateway asked upstream for a usage chunk the client did not ask for: drop it."""
    capture: Capture | None = None
    """Set once the request is authenticated, when logging is on."""
    sink: Callable[[Capture], None] | None = None
    """Where :meth:`log` hands the finished capture (the request journal)."""
    cache: CacheRequest | None = None
    """Set by the cache step on a miss whose answer is to be stored (the relay stores it)."""
    tap: AnswerTap | None = None
    """Set by the meter when this request is metered: the relay records the answer there."""
    rate_limit_headers: RawHeaders | None = None
    """``Helicone-RateLimit-*`` (and ``Retry-After`` on a refusal), set by :meth:`rate_limited`."""
    # What the request came to, for the metrics and the request log line (gateway/metrics.py,
    # gateway/accesslog.py), read once when the request is over. Kept here, not only on the
    # capture: they are wanted with request logging off too.
    provider: str = ""
    """The provider that answered (or was tried last); empty before one is chosen."""
    model: str = ""
    """The model sent to that provider, as sent (when the route knows it without parsing)."""
    status: int = 0
    """The status sent to the client (0: none yet; the data plane fills in an error's)."""
    attempts: int = 0
    """Upstream attempts of a routed or ``Helicone-Fallbacks`` request (failovers + 1)."""
    upstream_seconds: float = 0.0
    """Time spent waiting on providers: every attempt, the answer's whole body or stream."""
    first_byte_at: float | None = None
    """A streamed answer: when its first chunk arrived (``time.perf_counter``)."""
    cache_hit: bool | None = None
    """The response cache's answer: hit, miss, or None when the request did not ask."""
    tracer: Callable[[RequestContext, Capture], None] | None = None
    """With traces on (gateway/traces.py): :meth:`log` hands it the finished capture too."""
    trace_parent: tuple[str, str | None] | None = None
    """The client's W3C ``traceparent`` (and ``tracestate``), read only when traces are on."""
    overhead_ms: float | None = None
    """The gateway's own time before the answer went out (``X-Gateway-Overhead-Ms``), set by
    the relay; for a stream, the time before the upstream call that served it."""

    @property
    def request_id(self) -> str:
        return self.options.request_id

    @property
    def force_format(self) -> bool:
        return self.options.force_format

    def use_path_key(self, key: str, headers: dict[str, str]) -> None:
        """The gateway key came in the path: as if it had come in ``Helicone-Auth``, so
        ``Authorization`` belongs to the provider."""
        self.credentials = resolve_credentials(f"Bearer {key}", headers.get("authorization"))

    def request_credentials(self, headers: dict[str, str]) -> Credentials:
        if self.credentials is None:
            self.credentials = resolve_credentials(self.options.auth, headers.get("authorization"))
        return self.credentials

    def new_capture(
        self, identity: KeyIdentity, path: str, headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> Capture:
        """A capture of this request, filled from the parsed options. ``headers``: the
        request's raw headers (``scope["headers"]``), kept by reference for the log."""
        options = self.options
        return Capture(
            request_id=options.request_id,
            organization_id=identity.org_id,
            api_key_id=identity.key_id,
            path=path,
            started=self.started,
            user_id=options.user_id,
            properties=options.properties,
            model_override=options.model_override,
            omit_request=options.omit_request,
            omit_response=options.omit_response,
            cache_enabled=options.cache is not None,
            country_code=options.country_code,
            request_headers=headers,
        )

    def log(self) -> None:
        """Finish the capture and journal it (and hand it to the tracer), once.

        Called *before* the last byte of the response is sent: a client that has its whole
        answer can count on the request being in the journal, whatever is killed next.
        """
        capture, self.capture = self.capture, None
        if capture is None:
            return
        if self.sink is not None:
            capture.finish()
            self.sink(capture)
        if self.tracer is not None:
            capture.finish()
            self.tracer(self, capture)

    def served_by_fallback(self, index: int) -> None:
        """Say in the response which ``Helicone-Fallbacks`` entry answered (0-based)."""
        headers = [h for h in self.response_headers or () if h[0] != _FALLBACK_INDEX]
        headers.append((_FALLBACK_INDEX, str(index).encode()))
        self.response_headers = headers

    def served_by_none(self) -> None:
        """Every attempt failed: no fallback index (the other response headers stay)."""
        if self.response_headers:
            self.response_headers = [
                h for h in self.response_headers if h[0] != _FALLBACK_INDEX
            ] or None

    def cache_status(self, hit: bool, index: int | None) -> None:
        """Say in the response whether the cache answered (``Helicone-Cache: HIT|MISS``) and
        which bucket slot it served or will fill (``Helicone-Cache-Bucket-Idx``)."""
        self.cache_hit = hit
        headers = self.response_headers if self.response_headers is not None else []
        headers.append((_CACHE_STATUS, b"HIT" if hit else b"MISS"))
        if index is not None:
            headers.append((_CACHE_BUCKET_INDEX, str(index).encode()))
        self.response_headers = headers

    def rate_limit_admitted(self, limit: bytes, policy: bytes, remaining: int) -> None:
        """:meth:`rate_limited` for an admitted request, the policy's two values already
        encoded (the limiter keeps them per policy: only ``remaining`` changes per request)."""
        self.rate_limit_headers = [
            (_RATE_LIMIT_LIMIT, limit),
            (_RATE_LIMIT_REMAINING, b"%d" % remaining),
            (_RATE_LIMIT_POLICY_OUT, policy),
        ]

    def rate_limited(
        self, limit: int, remaining: int, policy: str, retry_after: int | None = None
    ) -> None:
        """State the active rate-limit policy in the response (custom-rate-limits page): its
        quota, what is left of it, its canonical form; ``retry_after`` (seconds) on a 429."""
        headers = [
            (_RATE_LIMIT_LIMIT, str(limit).encode()),
            (_RATE_LIMIT_REMAINING, str(remaining).encode()),
            (_RATE_LIMIT_POLICY_OUT, policy.encode()),
        ]
        if retry_after is not None:
            headers.append((_RETRY_AFTER, str(retry_after).encode()))
        self.rate_limit_headers = headers

    @property
    def base_headers(self) -> RawHeaders:
        """Headers every response carries: ``Helicone-Id``, plus what a step added
        (:attr:`response_headers`: ``Helicone-Fallback-Index``…; the rate-limit headers)."""
        headers = [(_RESPONSE_ID, self.options.request_id.encode())]
        if self.response_headers:
            headers.extend(self.response_headers)
        if self.rate_limit_headers:
            headers.extend(self.rate_limit_headers)
        return headers
