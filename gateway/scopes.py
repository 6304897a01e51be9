"""Gateway-key scopes: the native catalogue, upstream aliases, and the check.

A key stores native scopes only (``provider_key:read``…); upstream names (PostHog's
``llm_provider_key:read``…) are aliases expanded when a key is created, so one stored set
serves every facade. A key without scopes (``None``: every key made before scopes existed,
and any key created without ``--scope``) has full access.

``X:write`` implies ``X:read``, as PostHog's personal API keys do: a key that may change
provider keys may also list them.

The reference's catalogue (prompts-and-peer-apis.md E.5) is kept whole, also for features
not served yet (reviews, evaluations, ingest), so a key created today keeps its
meaning when they arrive. One scope is ours: ``gateway:admin`` (the operator's admin API),
which a key must name explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType

INVOKE = "gateway:invoke"
"""The data plane: every proxied request (unified routes and passthrough)."""
PROMPT_READ = "prompt:read"
"""Managed prompts: the prompt APIs' reads, and a data-plane request with ``prompt_id``."""
PROMPT_WRITE = "prompt:write"
PROVIDER_KEY_READ = "provider_key:read"
PROVIDER_KEY_WRITE = "provider_key:write"
TRACE_READ = "trace:read"
"""The request log (``/v1/request/*``)."""
TRACE_WRITE = "trace:write"
"""Writes to the log other than proxying: logging without proxying (manual logger,
OpenTelemetry, HoneyHive), request properties, session feedback."""
EVALUATION_WRITE = "evaluation:write"
ADMIN = "gateway:admin"
"""The operator's powers over every organisation (credit accounts and budgets:
``/admin/credits``). Ours, not the reference's; never implied by full access
(:func:`is_admin`): an organisation's key must not be able to add credits to itself."""

NATIVE_SCOPES: frozenset[str] = frozenset(
    {
        PROMPT_READ,
        PROMPT_WRITE,
        PROVIDER_KEY_READ,
        PROVIDER_KEY_WRITE,
        TRACE_READ,
        "trace:write",
        "review:read",
        "review:write",
        "evaluation:read",
        EVALUATION_WRITE,
        INVOKE,
        ADMIN,
    }
)

ALIASES = MappingProxyType(
    {
        "llm_prompt:read": frozenset({PROMPT_READ}),
        "llm_prompt:write": frozenset({PROMPT_WRITE}),
        "llm_provider_key:read": frozenset({PROVIDER_KEY_READ}),
        "llm_provider_key:write": frozenset({PROVIDER_KEY_WRITE}),
        "llm_analytics:read": frozenset({TRACE_READ, "review:read", "evaluation:read"}),
        "llm_analytics:write": frozenset({"review:write", EVALUATION_WRITE}),
    }
)
"""PostHog scope names and the native scopes each stands for (E.5)."""

POSTHOG_NAMES = MappingProxyType(
    {
        PROVIDER_KEY_READ: "llm_provider_key:read",
        PROVIDER_KEY_WRITE: "llm_provider_key:write",
        PROMPT_READ: "llm_prompt:read",
        PROMPT_WRITE: "llm_prompt:write",
        "evaluation:read": "llm_analytics:read",
        EVALUATION_WRITE: "llm_analytics:write",
    }
)
"""How a PostHog 403 names a missing native scope (the name PostHog clients know)."""


class UnknownScope(ValueError):
    """A scope name that is neither native nor an alias."""


def expand(names: Iterable[str]) -> frozenset[str]:
    """The native scopes ``names`` (native or alias) stand for; raises :class:`UnknownScope`."""
    out: set[str] = set()
    for raw in names:
        name = raw.strip()
        if name in NATIVE_SCOPES:
            out.add(name)
        elif name in ALIASES:
            out |= ALIASES[name]
        else:
            known = ", ".join(sorted(NATIVE_SCOPES | ALIASES.keys()))
            raise UnknownScope(f"unknown scope {name!r}; known scopes: {known}")
    return frozenset(out)


def encode(scopes: frozenset[str] | None) -> str | None:
    """The stored form: native scopes, sorted, space separated (``None``: full access)."""
    return None if scopes is None else " ".join(sorted(scopes))


def decode(stored: str | None) -> frozenset[str] | None:
    return None if stored is None else frozenset(stored.split())


def allows(scopes: frozenset[str] | None, required: str) -> bool:
    """Whether a key with ``scopes`` may do what needs ``required`` (write implies read)."""
    if scopes is None or required in scopes:
        return True
    if required.endswith(":read"):
        return required[: -len("read")] + "write" in scopes
    return False


def is_admin(scopes: frozenset[str] | None) -> bool:
    """Whether a key may use the operator's admin API: only with :data:`ADMIN` named
    explicitly (``gateway keys create --scope gateway:admin``), never by full access."""
    return scopes is not None and ADMIN in scopes
