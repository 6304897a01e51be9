"""The request path's cold load of a prompt version: one prebuilt Core statement per shape.

A gateway request naming a prompt whose version is not cached reads the prompt and the
version it selects (deployed to the asked environment, else the named version, else
production: prompts-and-peer-apis.md D.2.2). That read is issue 17's "cold version load"
(p50 <= 5 ms on PostgreSQL), and on a busy 2-core machine its cost was mostly SQLAlchemy's
Python work, not the database: building an ORM statement with three aliased joins and loading
ORM entities took several milliseconds of CPU per call. So the statement is built once per
shape (environment given or not, version id given or not) with bound parameters, the rows
are plain Core rows, and the records are made from them directly: one round trip, little
Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Select, and_, bindparam, or_, select
from sqlalchemy.sql.expression import Label

from gateway.store._prompt_rows import (
    PromptDeploymentRow,
    PromptRecord,
    PromptRow,
    PromptVersionRecord,
    PromptVersionRow,
)

CANDIDATES = ("deployed", "named", "production")
"""The outer-joined versions, in the order they are preferred."""
_PROMPT_COLUMNS = (
    "id", "org_id", "short_id", "slug", "display_name", "tags", "production_version_id",
    "created_by_key_id", "created_at", "archived_at",
)  # fmt: skip
_VERSION_COLUMNS = (
    "id", "prompt_id", "seq", "major", "minor", "body", "body_kind", "template_syntax", "model",
    "commit_message", "created_by_key_id", "created_at", "superseded_at", "deleted_at",
)  # fmt: skip


def resolution_statement(with_environment: bool, with_version: bool) -> Select[Any]:
    """The prompt that ``:ref`` names in ``:org`` (short id, uuid or slug; live only) with its
    candidate versions outer-joined (live only): deployed to ``:env`` (when
    ``with_environment``), ``:vid`` of this prompt (when ``with_version``) and production."""
    prompts = PromptRow.__table__
    versions = PromptVersionRow.__table__
    deployments = PromptDeploymentRow.__table__.alias("dep")
    columns: list[Label[Any]] = [prompts.c[name].label(f"p_{name}") for name in _PROMPT_COLUMNS]
    source: Any = prompts
    for candidate in CANDIDATES:
        if (candidate == "deployed" and not with_environment) or (
            candidate == "named" and not with_version
        ):
            continue
        alias = versions.alias(candidate)
        if candidate == "deployed":
            source = source.outerjoin(
                deployments,
                and_(
                    deployments.c.prompt_id == prompts.c.id,
                    deployments.c.environment == bindparam("env"),
                ),
            )
            on = alias.c.id == deployments.c.version_id
        elif candidate == "named":
            on = and_(alias.c.id == bindparam("vid"), alias.c.prompt_id == prompts.c.id)
        else:
            on = alias.c.id == prompts.c.production_version_id
        source = source.outerjoin(alias, and_(on, alias.c.deleted_at.is_(None)))
        columns.extend(alias.c[name].label(f"{candidate}_{name}") for name in _VERSION_COLUMNS)
    ref: Any = bindparam("ref")
    return (
        select(*columns)
        .select_from(source)
        .where(
            prompts.c.org_id == bindparam("org"),
            prompts.c.archived_at.is_(None),
            or_(prompts.c.short_id == ref, prompts.c.id == ref, prompts.c.slug == ref),
        )
    )


def preferred(rows: Sequence[Mapping[str, Any]], ref: str) -> Mapping[str, Any] | None:
    """Of the rows whose prompt ``ref`` names, the one it names first: by short id, else by
    uuid, else by slug (a slug may equal another prompt's short id)."""
    for column in ("p_short_id", "p_id"):
        for row in rows:
            if row[column] == ref:
                return row
    return rows[0] if rows else None


def prompt_of(row: Mapping[str, Any]) -> PromptRecord:
    values = [row[f"p_{name}"] for name in _PROMPT_COLUMNS]
    values[5] = tuple(orjson.loads(values[5]))  # tags
    return PromptRecord(*values)


def candidate_of(
    row: Mapping[str, Any], candidate: str, short_id: str
) -> PromptVersionRecord | None:
    """The ``candidate`` version of the row (None when the join found none)."""
    if row.get(f"{candidate}_id") is None:
        return None
    values = [row[f"{candidate}_{name}"] for name in _VERSION_COLUMNS]
    values[5] = orjson.loads(values[5])  # body
    return PromptVersionRecord(values[0], values[1], short_id, *values[2:])
