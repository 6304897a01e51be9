"""Managed prompts' tables, records and errors (the store is :mod:`gateway.store._prompts`)."""

from __future__ import annotations

import re
import secrets
import string
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store._schema import Base, UTCDateTime, utc_now

PRODUCTION = "production"
MAX_PROMPT_VERSIONS = 2000
"""PostHog's ``MAX_PROMPT_VERSION``: publishing on top of this is refused."""
SHORT_ID_ALPHABET = string.ascii_letters + string.digits
SHORT_ID_ATTEMPTS = 3
_SLUG_JUNK = re.compile(r"[^A-Za-z0-9_-]+")
RESERVED_SLUGS = frozenset({"new"})
BodyKind = Literal["chat", "text", "json"]


class PromptRow(Base):
    """One prompt (migration 0005)."""

    __tablename__ = "prompts"
    __table_args__ = (
        UniqueConstraint("org_id", "short_id"),
        Index(
            "uq_prompts_live_slug",
            "org_id",
            "slug",
            unique=True,
            sqlite_where=text("archived_at IS NULL"),
            postgresql_where=text("archived_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE")
    )
    short_id: Mapped[str] = mapped_column(String(6))
    slug: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(255))
    tags: Mapped[str] = mapped_column(Text)
    production_version_id: Mapped[str | None] = mapped_column(String(36))
    created_by_key_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PromptVersionRow(Base):
    """One immutable version of a prompt (migration 0005)."""

    __tablename__ = "prompt_versions"
    __table_args__ = (
        UniqueConstraint("prompt_id", "seq"),
        Index(
            "uq_prompt_versions_live_number",
            "prompt_id",
            "major",
            "minor",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    prompt_id: Mapped[str] = mapped_column(String(36), ForeignKey("prompts.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    major: Mapped[int] = mapped_column(Integer)
    minor: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    body_kind: Mapped[str] = mapped_column(String(8))
    template_syntax: Mapped[str] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(255))
    commit_message: Mapped[str] = mapped_column(Text)
    created_by_key_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PromptDeploymentRow(Base):
    """An environment of a prompt pointing at one of its versions (migration 0005)."""

    __tablename__ = "prompt_deployments"

    prompt_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("prompts.id", ondelete="CASCADE"), primary_key=True
    )
    environment: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("prompt_versions.id", ondelete="CASCADE"), index=True
    )
    updated_by_key_id: Mapped[str | None] = mapped_column(String(36))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


# -- records and errors ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PromptRecord:
    id: str
    org_id: str
    short_id: str
    slug: str
    display_name: str
    tags: tuple[str, ...]
    production_version_id: str | None
    created_by_key_id: str | None
    created_at: datetime
    archived_at: datetime | None


@dataclass(frozen=True, slots=True)
class PromptVersionRecord:
    """A version as stored. ``body`` is the parsed JSON: shared by every reader (the
    request-time cache hands the same object out), so never mutate it."""

    id: str
    prompt_id: str
    short_id: str
    seq: int
    major: int
    minor: int
    body: Any
    body_kind: str
    template_syntax: str
    model: str | None
    commit_message: str
    created_by_key_id: str | None
    created_at: datetime
    superseded_at: datetime | None
    deleted_at: datetime | None
    environments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PromptSummary:
    """A live prompt with its latest live version and the counts PostHog shows on every row."""

    prompt: PromptRecord
    latest: PromptVersionRecord
    version_count: int
    first_created_at: datetime


class PromptNotFound(Exception):
    """No live prompt of the organisation has this id, short id or slug."""


class PromptVersionNotFound(Exception):
    """No live version of the prompt has this id."""


class UnknownSelection(Exception):
    """A request's environment or version does not exist for the prompt, or the prompt has no
    production version: the message is the 400's."""


class PromptSlugExists(Exception):
    """A live prompt of the organisation already has this slug."""


class StaleVersion(Exception):
    """A publish based on an older latest version (PostHog's 409)."""

    def __init__(self, current_seq: int) -> None:
        super().__init__(f"the latest version is {current_seq}")
        self.current_seq = current_seq


class VersionLimit(Exception):
    """The prompt has :data:`MAX_PROMPT_VERSIONS` versions."""


class VersionDeployed(Exception):
    """The version is deployed to these environments (delete or undeploy needs force)."""

    def __init__(self, environments: Sequence[str]) -> None:
        super().__init__(", ".join(environments))
        self.environments = tuple(environments)


def body_kind(body: Any) -> BodyKind:
    """``text`` for a bare string, ``chat`` for an object with a ``messages`` array (an
    OpenAI chat request), else ``json`` (E.8)."""
    if isinstance(body, str):
        return "text"
    if isinstance(body, dict) and isinstance(body.get("messages"), list):
        return "chat"
    return "json"


def derive_slug(name: str) -> str:
    """A slug from a Helicone display name: runs of other characters become ``-``."""
    return _SLUG_JUNK.sub("-", name).strip("-")[:200]


def new_short_id() -> str:
    return "".join(secrets.choice(SHORT_ID_ALPHABET) for _ in range(6))


def prompt_record(row: PromptRow) -> PromptRecord:
    return PromptRecord(
        row.id,
        row.org_id,
        row.short_id,
        row.slug,
        row.display_name,
        tuple(orjson.loads(row.tags)),
        row.production_version_id,
        row.created_by_key_id,
        row.created_at,
        row.archived_at,
    )


def version_record(
    row: PromptVersionRow, short_id: str, envs: Iterable[str] = ()
) -> PromptVersionRecord:
    return PromptVersionRecord(
        row.id,
        row.prompt_id,
        short_id,
        row.seq,
        row.major,
        row.minor,
        orjson.loads(row.body),
        row.body_kind,
        row.template_syntax,
        row.model,
        row.commit_message,
        row.created_by_key_id,
        row.created_at,
        row.superseded_at,
        row.deleted_at,
        tuple(sorted(envs)),
    )


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def body_model(body: Any) -> str | None:
    model = body.get("model") if isinstance(body, dict) else None
    return model[:255] if isinstance(model, str) and model else None
