"""Managed prompts in the control-plane store (SQLite or PostgreSQL): one store behind the
Helicone facade, the PostHog facade and request-time ``prompt_id`` (prompts-and-peer-apis.md
E.2, E.8).

A prompt has three names: ``short_id`` (Helicone's 6-character id, never reused), ``slug``
(PostHog's name, unique among live prompts, immutable) and ``display_name`` (free text).
Versions are immutable; each has a ``seq`` (PostHog's linear version, never reused) and a
``major.minor`` (Helicone's). A deployment points an environment of a prompt at one version;
``production`` is mirrored in ``prompts.production_version_id``.

Publishing is serialised per prompt: the transaction starts by writing the prompt row (a row
lock on PostgreSQL, the write lock on SQLite), so a concurrent publish waits, then sees the
new latest version; with ``expected_latest_seq`` it fails as :class:`StaleVersion` — of two
publishes on the same base exactly one wins. Every method takes the caller's organisation
and never reads another's rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import orjson
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store._prompt_rows import (
    MAX_PROMPT_VERSIONS,
    PRODUCTION,
    RESERVED_SLUGS,
    SHORT_ID_ATTEMPTS,
    PromptDeploymentRow,
    PromptNotFound,
    PromptRecord,
    PromptRow,
    PromptSlugExists,
    PromptSummary,
    PromptVersionNotFound,
    PromptVersionRecord,
    PromptVersionRow,
    StaleVersion,
    UnknownSelection,
    VersionDeployed,
    VersionLimit,
    body_kind,
    body_model,
    derive_slug,
    is_uuid,
    new_short_id,
    prompt_record,
    version_record,
)
from gateway.store._schema import utc_now


class PromptStore:
    """Prompts, versions and deployments, scoped to the organisation given to every call."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    # -- prompts ---------------------------------------------------------------------------

    async def create(
        self,
        org_id: str,
        *,
        display_name: str,
        body: Any,
        slug: str | None = None,
        tags: Sequence[str] = (),
        template_syntax: str = "helicone",
        commit_message: str = "First version.",
        author: str | None = None,
        deploy_to: Sequence[str] = (PRODUCTION,),
    ) -> tuple[PromptRecord, PromptVersionRecord]:
        """A new prompt with its first version (seq 1, v0.0), deployed to ``deploy_to``.

        ``slug`` given (PostHog): taken as is, :class:`PromptSlugExists` when a live prompt
        has it. ``slug`` absent (Helicone): derived from ``display_name``; an empty or reserved
        one becomes the short id, a taken one gets ``-<short id>`` appended."""
        for _attempt in range(SHORT_ID_ATTEMPTS):
            short_id = new_short_id()
            # Reads first, in their own session: on SQLite a write transaction that began
            # with a read cannot wait for another writer (it fails at once, "locked").
            async with self._sessions() as session:
                chosen = (
                    slug
                    if slug is not None
                    else await self._free_slug(session, org_id, display_name, short_id)
                )
                if slug is not None and await self._slug_taken(session, org_id, slug):
                    raise PromptSlugExists(slug)
            try:
                async with self._sessions.begin() as session:
                    now = utc_now()
                    prompt = PromptRow(
                        id=str(uuid.uuid4()),
                        org_id=org_id,
                        short_id=short_id,
                        slug=chosen,
                        display_name=display_name[:255],
                        tags=orjson.dumps(list(tags)).decode(),
                        production_version_id=None,
                        created_by_key_id=author,
                        created_at=now,
                        updated_at=now,
                        archived_at=None,
                    )
                    session.add(prompt)
                    await session.flush()
                    version = self._new_version(
                        prompt.id, 1, 0, 0, body, template_syntax, commit_message, author, now
                    )
                    session.add(version)
                    await session.flush()
                    for environment in deploy_to:
                        await self._deploy(session, prompt, version.id, environment, author)
                    record = prompt_record(prompt)
                    return record, version_record(version, short_id, deploy_to)
            except IntegrityError:
                # A short-id collision (retried) or a slug taken meanwhile.
                if slug is not None:
                    async with self._sessions() as session:
                        if await self._slug_taken(session, org_id, slug):
                            raise PromptSlugExists(slug) from None
        raise RuntimeError("could not allocate a unique prompt id")  # pragma: no cover

    async def find(self, org_id: str, ref: str) -> PromptRecord | None:
        """The live prompt ``ref`` names: its short id, else its uuid, else its slug."""
        async with self._sessions() as session:
            row = await self._find(session, org_id, ref)
            return None if row is None else prompt_record(row)

    async def find_slug(self, org_id: str, slug: str) -> PromptRecord | None:
        """The live prompt with this slug (PostHog's name), and only by slug."""
        async with self._sessions() as session:
            row = await session.scalar(
                select(PromptRow).where(
                    PromptRow.org_id == org_id,
                    PromptRow.slug == slug,
                    PromptRow.archived_at.is_(None),
                )
            )
            return None if row is None else prompt_record(row)

    async def summaries(self, org_id: str, prompt_id: str | None = None) -> list[PromptSummary]:
        """Every live prompt (or the one ``prompt_id``) that has a live version, with its
        latest version, its live version count and its first live version's time."""
        agg = (
            select(
                PromptVersionRow.prompt_id.label("pid"),
                func.max(PromptVersionRow.seq).label("top"),
                func.min(PromptVersionRow.seq).label("bottom"),
                func.count().label("n"),
            )
            .where(PromptVersionRow.deleted_at.is_(None))
            .group_by(PromptVersionRow.prompt_id)
            .subquery()
        )
        scope = [PromptRow.org_id == org_id, PromptRow.archived_at.is_(None)]
        if prompt_id is not None:
            scope.append(PromptRow.id == prompt_id)
        latest = (
            select(PromptVersionRow, PromptRow, agg.c.n)
            .join(
                agg,
                and_(agg.c.pid == PromptVersionRow.prompt_id, agg.c.top == PromptVersionRow.seq),
            )
            .join(PromptRow, PromptRow.id == PromptVersionRow.prompt_id)
            .where(*scope)
        )
        first = (
            select(PromptVersionRow.prompt_id, PromptVersionRow.created_at)
            .join(
                agg,
                and_(agg.c.pid == PromptVersionRow.prompt_id, agg.c.bottom == PromptVersionRow.seq),
            )
            .join(PromptRow, PromptRow.id == PromptVersionRow.prompt_id)
            .where(*scope)
        )
        async with self._sessions() as session:
            rows = (await session.execute(latest)).all()
            firsts = {pid: created for pid, created in (await session.execute(first)).all()}
            envs = await self._environments(session, [r[0].id for r in rows])
        return [
            PromptSummary(
                prompt_record(prompt),
                version_record(version, prompt.short_id, envs.get(version.id, ())),
                int(count),
                firsts.get(prompt.id, version.created_at),
            )
            for version, prompt, count in rows
        ]

    async def list_prompts(
        self,
        org_id: str,
        *,
        search: str = "",
        tags: Sequence[str] = (),
        offset: int = 0,
        limit: int = 100,
    ) -> list[PromptRecord]:
        """Live prompts, newest first; ``search`` is a case-insensitive substring of the
        display name or slug, ``tags`` any-of."""
        query = select(PromptRow).where(PromptRow.org_id == org_id, PromptRow.archived_at.is_(None))
        if search:
            pattern = f"%{search.lower()}%"
            query = query.where(
                or_(
                    func.lower(PromptRow.display_name).like(pattern),
                    func.lower(PromptRow.slug).like(pattern),
                )
            )
        query = query.order_by(PromptRow.created_at.desc(), PromptRow.id.desc())
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        records = [prompt_record(row) for row in rows]
        if tags:
            wanted = set(tags)
            records = [r for r in records if wanted.intersection(r.tags)]
        return records[offset : offset + limit]

    async def count(self, org_id: str) -> int:
        async with self._sessions() as session:
            value = await session.scalar(
                select(func.count())
                .select_from(PromptRow)
                .where(PromptRow.org_id == org_id, PromptRow.archived_at.is_(None))
            )
        return int(value or 0)

    async def all_tags(self, org_id: str) -> list[str]:
        """Distinct tags of the organisation's live prompts, sorted."""
        tags: set[str] = set()
        for record in await self.list_prompts(org_id, limit=1_000_000):
            tags.update(record.tags)
        return sorted(tags)

    async def all_environments(self, org_id: str) -> list[str]:
        """Distinct environments deployed on the organisation's live prompts, sorted."""
        query = (
            select(PromptDeploymentRow.environment)
            .distinct()
            .join(PromptRow, PromptRow.id == PromptDeploymentRow.prompt_id)
            .where(PromptRow.org_id == org_id, PromptRow.archived_at.is_(None))
        )
        async with self._sessions() as session:
            return sorted((await session.scalars(query)).all())

    async def update_prompt(
        self,
        org_id: str,
        ref: str,
        *,
        display_name: str | None = None,
        tags: Sequence[str] | None = None,
    ) -> PromptRecord:
        """Change the display name and/or tags (the slug is immutable)."""
        prompt_id = await self._prompt_id(org_id, ref)
        async with self._sessions.begin() as session:
            row = await self._lock(session, prompt_id, ref)
            if display_name is not None:
                row.display_name = display_name[:255]
            if tags is not None:
                row.tags = orjson.dumps(list(tags)).decode()
            row.updated_at = utc_now()
            await session.flush()
            return prompt_record(row)

    async def archive(self, org_id: str, ref: str) -> PromptRecord:
        """Archive the prompt: its slug is free again, its short id is not; its versions and
        deployments are no longer served."""
        prompt_id = await self._prompt_id(org_id, ref)
        async with self._sessions.begin() as session:
            row = await self._lock(session, prompt_id, ref)
            now = utc_now()
            row.archived_at = row.updated_at = now
            await session.execute(
                update(PromptVersionRow)
                .where(PromptVersionRow.prompt_id == row.id, PromptVersionRow.deleted_at.is_(None))
                .values(deleted_at=now)
            )
            await session.execute(
                delete(PromptDeploymentRow).where(PromptDeploymentRow.prompt_id == row.id)
            )
            row.production_version_id = None
            await session.flush()
            return prompt_record(row)

    # -- versions --------------------------------------------------------------------------

    async def publish(
        self,
        org_id: str,
        ref: str,
        *,
        body: Any,
        bump: Literal["major", "minor"] = "minor",
        base_version_id: str | None = None,
        expected_latest_seq: int | None = None,
        commit_message: str = "",
        author: str | None = None,
        deploy_to: Sequence[str] = (),
        template_syntax: str | None = None,
    ) -> PromptVersionRecord:
        """A new version (seq = highest ever + 1).

        ``bump="major"``: major = highest live major + 1, minor 0; ``"minor"``: the base's
        major (``base_version_id``, else the latest), minor = highest live minor of that
        major + 1. ``expected_latest_seq`` (PostHog's ``base_version``) must be the latest
        live seq, else :class:`StaleVersion`. The new version is then deployed to
        ``deploy_to``. ``template_syntax`` defaults to the base's."""
        prompt_id = await self._prompt_id(org_id, ref)
        async with self._sessions.begin() as session:
            # The lock: a concurrent publish of this prompt waits here until we commit.
            prompt = await self._lock(session, prompt_id, ref)
            now = utc_now()
            live = await self._live_versions(session, prompt.id)
            latest = live[0] if live else None
            if expected_latest_seq is not None and (
                latest is None or latest.seq != expected_latest_seq
            ):
                raise StaleVersion(latest.seq if latest is not None else 0)
            if latest is not None and latest.seq >= MAX_PROMPT_VERSIONS:
                raise VersionLimit(str(latest.seq))
            base = latest
            if base_version_id is not None:
                base = next((v for v in live if v.id == base_version_id), None)
                if base is None:
                    raise PromptVersionNotFound(base_version_id)
            highest_seq = await session.scalar(
                select(func.max(PromptVersionRow.seq)).where(
                    PromptVersionRow.prompt_id == prompt.id
                )
            )
            if bump == "major" or base is None:
                major = max((v.major for v in live), default=-1) + 1
                minor = 0
            else:
                major = base.major
                minor = max(v.minor for v in live if v.major == major) + 1
            syntax = template_syntax or (base.template_syntax if base is not None else "helicone")
            row = self._new_version(
                prompt.id,
                int(highest_seq or 0) + 1,
                major,
                minor,
                body,
                syntax,
                commit_message,
                author,
                now,
            )
            if latest is not None:
                await session.execute(
                    update(PromptVersionRow)
                    .where(PromptVersionRow.id == latest.id)
                    .values(superseded_at=now)
                )
            session.add(row)
            await session.flush()
            for environment in deploy_to:
                await self._deploy(session, prompt, row.id, environment, author)
            return version_record(row, prompt.short_id, deploy_to)

    async def version(
        self, org_id: str, version_id: str, prompt_ref: str | None = None
    ) -> PromptVersionRecord | None:
        """A live version of a live prompt by id (and of ``prompt_ref`` when given)."""
        if not is_uuid(version_id):
            return None
        async with self._sessions() as session:
            found = await session.execute(
                select(PromptVersionRow, PromptRow)
                .join(PromptRow, PromptRow.id == PromptVersionRow.prompt_id)
                .where(
                    PromptVersionRow.id == version_id,
                    PromptVersionRow.deleted_at.is_(None),
                    PromptRow.org_id == org_id,
                    PromptRow.archived_at.is_(None),
                )
            )
            pair = found.first()
            if pair is None:
                return None
            row, prompt = pair
            if prompt_ref is not None and prompt_ref not in (
                prompt.short_id,
                prompt.id,
                prompt.slug,
            ):
                return None
            envs = await self._environments(session, [row.id])
            return version_record(row, prompt.short_id, envs.get(row.id, ()))

    async def versions(
        self,
        org_id: str,
        ref: str,
        *,
        major: int | None = None,
        limit: int = 50,
        offset: int = 0,
        before_seq: int | None = None,
    ) -> list[PromptVersionRecord]:
        """Live versions, newest (highest seq) first."""
        async with self._sessions() as session:
            prompt = await self._find(session, org_id, ref)
            if prompt is None:
                raise PromptNotFound(ref)
            query = select(PromptVersionRow).where(
                PromptVersionRow.prompt_id == prompt.id, PromptVersionRow.deleted_at.is_(None)
            )
            if major is not None:
                query = query.where(PromptVersionRow.major == major)
            if before_seq is not None:
                query = query.where(PromptVersionRow.seq < before_seq)
            query = query.order_by(PromptVersionRow.seq.desc()).offset(offset).limit(limit)
            rows = (await session.scalars(query)).all()
            envs = await self._environments(session, [r.id for r in rows])
            return [version_record(r, prompt.short_id, envs.get(r.id, ())) for r in rows]

    async def version_by_seq(self, org_id: str, ref: str, seq: int) -> PromptVersionRecord | None:
        async with self._sessions() as session:
            prompt = await self._find(session, org_id, ref)
            if prompt is None:
                return None
            row = await session.scalar(
                select(PromptVersionRow).where(
                    PromptVersionRow.prompt_id == prompt.id,
                    PromptVersionRow.seq == seq,
                    PromptVersionRow.deleted_at.is_(None),
                )
            )
            if row is None:
                return None
            envs = await self._environments(session, [row.id])
            return version_record(row, prompt.short_id, envs.get(row.id, ()))

    async def version_stats(self, org_id: str, ref: str) -> tuple[int, int, int]:
        """``(count, highest major, highest seq)`` of the live versions (0s without any)."""
        async with self._sessions() as session:
            prompt = await self._find(session, org_id, ref)
            if prompt is None:
                raise PromptNotFound(ref)
            row = (
                await session.execute(
                    select(
                        func.count(),
                        func.max(PromptVersionRow.major),
                        func.max(PromptVersionRow.seq),
                    ).where(
                        PromptVersionRow.prompt_id == prompt.id,
                        PromptVersionRow.deleted_at.is_(None),
                    )
                )
            ).one()
            return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)

    async def resolve(
        self,
        org_id: str,
        ref: str,
        environment: str | None,
        version_id: str | None,
        *,
        lenient: bool = False,
    ) -> tuple[PromptRecord, PromptVersionRecord, bool]:
        """The version a gateway request gets, in one session (the request path's cold
        load): deployed to ``environment``, else ``version_id`` (of this prompt), else
        production. An unknown environment or version raises :class:`UnknownSelection`, or
        with ``lenient`` falls through (the flag returned says so). The version's
        ``environments`` are not read (the request path does not need them)."""
        async with self._sessions() as session:
            prompt = await self._find(session, org_id, ref)
            if prompt is None:
                raise PromptNotFound(ref)
            fallback = False
            live = (PromptVersionRow.prompt_id == prompt.id, PromptVersionRow.deleted_at.is_(None))
            if environment is not None:
                row = await session.scalar(
                    select(PromptVersionRow)
                    .join(
                        PromptDeploymentRow, PromptDeploymentRow.version_id == PromptVersionRow.id
                    )
                    .where(*live, PromptDeploymentRow.environment == environment)
                )
                if row is not None:
                    return prompt_record(prompt), version_record(row, prompt.short_id), False
                if not lenient:
                    raise UnknownSelection("Invalid prompt environment")
                fallback = True
            if version_id is not None:
                row = None
                if is_uuid(version_id):
                    row = await session.scalar(
                        select(PromptVersionRow).where(*live, PromptVersionRow.id == version_id)
                    )
                if row is not None:
                    return prompt_record(prompt), version_record(row, prompt.short_id), fallback
                if not lenient:
                    raise UnknownSelection("Invalid prompt version")
                fallback = True
            if prompt.production_version_id is not None:
                row = await session.scalar(
                    select(PromptVersionRow).where(
                        *live, PromptVersionRow.id == prompt.production_version_id
                    )
                )
                if row is not None:
                    return prompt_record(prompt), version_record(row, prompt.short_id), fallback
        raise UnknownSelection("Invalid prompt ID - no valid version found")

    async def deployed(self, org_id: str, ref: str, environment: str) -> PromptVersionRecord | None:
        """The version deployed to ``environment`` of the live prompt ``ref``."""
        async with self._sessions() as session:
            prompt = await self._find(session, org_id, ref)
            if prompt is None:
                raise PromptNotFound(ref)
            version_id = await session.scalar(
                select(PromptDeploymentRow.version_id).where(
                    PromptDeploymentRow.prompt_id == prompt.id,
                    PromptDeploymentRow.environment == environment,
                )
            )
        return None if version_id is None else await self.version(org_id, version_id)

    async def delete_version(
        self, org_id: str, ref: str, version_id: str, *, force: bool = False
    ) -> None:
        """Delete a version; a deployed one only with ``force`` (its deployments go too)."""
        prompt_id = await self._prompt_id(org_id, ref)
        async with self._sessions.begin() as session:
            prompt = await self._lock(session, prompt_id, ref)
            row = await self._live_version(session, prompt.id, version_id)
            envs = (await self._environments(session, [version_id])).get(version_id, ())
            if envs and not force:
                raise VersionDeployed(sorted(envs))
            row.deleted_at = utc_now()
            await session.execute(
                delete(PromptDeploymentRow).where(PromptDeploymentRow.version_id == version_id)
            )
            if prompt.production_version_id == version_id:
                prompt.production_version_id = None
            prompt.updated_at = utc_now()

    # -- deployments -----------------------------------------------------------------------

    async def deploy(
        self, org_id: str, ref: str, version_id: str, environment: str, author: str | None = None
    ) -> None:
        """Point ``environment`` of the prompt at ``version_id`` (moved off any other)."""
        prompt_id = await self._prompt_id(org_id, ref)
        async with self._sessions.begin() as session:
            prompt = await self._lock(session, prompt_id, ref)
            await self._live_version(session, prompt.id, version_id)
            await self._deploy(session, prompt, version_id, environment, author)
            prompt.updated_at = utc_now()

    async def undeploy(
        self, org_id: str, ref: str, version_id: str, environment: str, *, force: bool = False
    ) -> None:
        """Take ``environment`` off ``version_id``; ``production`` only with ``force`` (after
        which requests without an environment or version fail)."""
        if environment == PRODUCTION and not force:
            raise VersionDeployed([PRODUCTION])
        prompt_id = await self._prompt_id(org_id, ref)
        async with self._sessions.begin() as session:
            prompt = await self._lock(session, prompt_id, ref)
            await self._live_version(session, prompt.id, version_id)
            await session.execute(
                delete(PromptDeploymentRow).where(
                    PromptDeploymentRow.prompt_id == prompt.id,
                    PromptDeploymentRow.environment == environment,
                    PromptDeploymentRow.version_id == version_id,
                )
            )
            if environment == PRODUCTION and prompt.production_version_id == version_id:
                prompt.production_version_id = None
            prompt.updated_at = utc_now()

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _new_version(
        prompt_id: str,
        seq: int,
        major: int,
        minor: int,
        body: Any,
        syntax: str,
        commit_message: str,
        author: str | None,
        now: datetime,
    ) -> PromptVersionRow:
        return PromptVersionRow(
            id=str(uuid.uuid4()),
            prompt_id=prompt_id,
            seq=seq,
            major=major,
            minor=minor,
            body=orjson.dumps(body).decode(),
            body_kind=body_kind(body),
            template_syntax=syntax,
            model=body_model(body),
            commit_message=commit_message,
            created_by_key_id=author,
            created_at=now,
            superseded_at=None,
            deleted_at=None,
        )

    @staticmethod
    async def _deploy(
        session: AsyncSession,
        prompt: PromptRow,
        version_id: str,
        environment: str,
        author: str | None,
    ) -> None:
        await session.execute(
            delete(PromptDeploymentRow).where(
                PromptDeploymentRow.prompt_id == prompt.id,
                PromptDeploymentRow.environment == environment,
            )
        )
        session.add(
            PromptDeploymentRow(
                prompt_id=prompt.id,
                environment=environment,
                version_id=version_id,
                updated_by_key_id=author,
                updated_at=utc_now(),
            )
        )
        if environment == PRODUCTION:
            prompt.production_version_id = version_id
        await session.flush()

    async def _prompt_id(self, org_id: str, ref: str) -> str:
        async with self._sessions() as session:
            row = await self._find(session, org_id, ref)
        if row is None:
            raise PromptNotFound(ref)
        return row.id

    @staticmethod
    async def _lock(session: AsyncSession, prompt_id: str, ref: str) -> PromptRow:
        """The live prompt, write-locked for the rest of the transaction: the first statement
        is a write, so on PostgreSQL it takes the row lock and on SQLite the database's write
        lock (waiting for another writer with the busy timeout)."""
        locked = await session.execute(
            update(PromptRow)
            .where(PromptRow.id == prompt_id, PromptRow.archived_at.is_(None))
            .values(updated_at=utc_now())
            .execution_options(synchronize_session=False)
        )
        row = await session.get(PromptRow, prompt_id) if getattr(locked, "rowcount", 0) else None
        if row is None:
            raise PromptNotFound(ref)
        return row

    @staticmethod
    async def _find(session: AsyncSession, org_id: str, ref: str) -> PromptRow | None:
        if not ref or len(ref) > 255:
            return None
        rows = (
            await session.scalars(
                select(PromptRow).where(
                    PromptRow.org_id == org_id,
                    PromptRow.archived_at.is_(None),
                    or_(PromptRow.short_id == ref, PromptRow.id == ref, PromptRow.slug == ref),
                )
            )
        ).all()
        for matches in (lambda r: r.short_id == ref, lambda r: r.id == ref, lambda r: True):
            for row in rows:
                if matches(row):
                    return row
        return None

    @staticmethod
    async def _slug_taken(session: AsyncSession, org_id: str, slug: str) -> bool:
        found = await session.scalar(
            select(PromptRow.id).where(
                PromptRow.org_id == org_id, PromptRow.slug == slug, PromptRow.archived_at.is_(None)
            )
        )
        return found is not None

    async def _free_slug(self, session: AsyncSession, org_id: str, name: str, short_id: str) -> str:
        slug = derive_slug(name)
        if not slug or slug.lower() in RESERVED_SLUGS:
            return short_id
        if await self._slug_taken(session, org_id, slug):
            return f"{slug}-{short_id}"
        return slug

    @staticmethod
    async def _live_versions(session: AsyncSession, prompt_id: str) -> list[PromptVersionRow]:
        return list(
            (
                await session.scalars(
                    select(PromptVersionRow)
                    .where(
                        PromptVersionRow.prompt_id == prompt_id,
                        PromptVersionRow.deleted_at.is_(None),
                    )
                    .order_by(PromptVersionRow.seq.desc())
                )
            ).all()
        )

    @staticmethod
    async def _live_version(
        session: AsyncSession, prompt_id: str, version_id: str
    ) -> PromptVersionRow:
        row = None
        if is_uuid(version_id):
            row = await session.scalar(
                select(PromptVersionRow).where(
                    PromptVersionRow.id == version_id,
                    PromptVersionRow.prompt_id == prompt_id,
                    PromptVersionRow.deleted_at.is_(None),
                )
            )
        if row is None:
            raise PromptVersionNotFound(version_id)
        return row

    @staticmethod
    async def _environments(
        session: AsyncSession, version_ids: Sequence[str]
    ) -> dict[str, tuple[str, ...]]:
        if not version_ids:
            return {}
        found: dict[str, list[str]] = {}
        rows = await session.execute(
            select(PromptDeploymentRow.version_id, PromptDeploymentRow.environment).where(
                PromptDeploymentRow.version_id.in_(version_ids)
            )
        )
        for version_id, environment in rows:
            found.setdefault(version_id, []).append(environment)
        return {k: tuple(sorted(v)) for k, v in found.items()}
