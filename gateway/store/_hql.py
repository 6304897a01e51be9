"""Saved HQL queries in the control-plane store (SQLite or PostgreSQL).

A saved query belongs to an organisation and is shared by all its keys (Helicone: "Saved
queries can be revisited and shared within your organization"); names are unique per
organisation. Every method takes the caller's organisation and never touches another's rows,
so a query id of another organisation reads as "not found".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store._schema import Base, UTCDateTime, utc_now


class HqlSavedQueryRow(Base):
    """One saved query (migration 0004)."""

    __tablename__ = "hql_saved_queries"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(255))
    sql: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class SavedQueryNameExists(Exception):
    """The organisation already has a saved query with this name."""


@dataclass(frozen=True, slots=True)
class SavedQuery:
    id: str
    organization_id: str
    name: str
    sql: str
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "organization_id": self.organization_id,
            "name": self.name,
            "sql": self.sql,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def _record(row: HqlSavedQueryRow) -> SavedQuery:
    return SavedQuery(row.id, row.org_id, row.name, row.sql, row.created_at, row.updated_at)


def _valid_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class SavedQueryStore:
    """CRUD of saved queries, scoped to the organisation given to every call."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def list_all(self, org_id: str) -> list[SavedQuery]:
        """The organisation's saved queries, most recently updated first."""
        query = (
            select(HqlSavedQueryRow)
            .where(HqlSavedQueryRow.org_id == org_id)
            .order_by(HqlSavedQueryRow.updated_at.desc(), HqlSavedQueryRow.id)
        )
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [_record(row) for row in rows]

    async def get(self, org_id: str, query_id: str) -> SavedQuery | None:
        if not _valid_uuid(query_id):
            return None
        async with self._sessions() as session:
            row = await self._find(session, org_id, query_id)
            return None if row is None else _record(row)

    async def create(self, org_id: str, name: str, sql: str) -> SavedQuery:
        now = utc_now()
        row = HqlSavedQueryRow(
            id=str(uuid.uuid4()),
            org_id=org_id,
            name=name,
            sql=sql,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError as exc:
            raise SavedQueryNameExists(name) from exc
        return _record(row)

    async def update(
        self, org_id: str, query_id: str, name: str | None, sql: str | None
    ) -> SavedQuery | None:
        """Change the name and/or SQL; None when the organisation has no such query."""
        if not _valid_uuid(query_id):
            return None
        try:
            async with self._sessions.begin() as session:
                row = await self._find(session, org_id, query_id)
                if row is None:
                    return None
                if name is not None:
                    row.name = name
                if sql is not None:
                    row.sql = sql
                row.updated_at = utc_now()
                await session.flush()
                record = _record(row)
        except IntegrityError as exc:
            raise SavedQueryNameExists(name or "") from exc
        return record

    async def delete(self, org_id: str, query_id: str) -> bool:
        if not _valid_uuid(query_id):
            return False
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(HqlSavedQueryRow).where(
                    HqlSavedQueryRow.org_id == org_id, HqlSavedQueryRow.id == query_id
                )
            )
        return bool(getattr(result, "rowcount", 0))

    @staticmethod
    async def _find(session: AsyncSession, org_id: str, query_id: str) -> HqlSavedQueryRow | None:
        return await session.scalar(
            select(HqlSavedQueryRow).where(
                HqlSavedQueryRow.org_id == org_id, HqlSavedQueryRow.id == query_id
            )
        )
