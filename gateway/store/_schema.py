"""ORM mapping of the control-plane tables.

The migrations in ``migrations/versions`` are the source of truth for the schema; this module
mirrors them for queries (and for ``alembic revision --autogenerate`` comparisons).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so later migrations (batch mode on SQLite) can refer to them."""


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as naive UTC
    and marked UTC again when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass a timezone-aware value")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str | None] = mapped_column(String(255))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Native scopes, space separated (gateway/scopes.py); NULL is full access.
    scopes: Mapped[str | None] = mapped_column(Text)


class ProviderKey(Base):
    """An organisation's own provider key (BYOK). ``config_ciphertext`` is AES-GCM of
    ``{"api_key": ..., <deployment fields>}`` (gateway/store/_crypto.py); the mask is computed
    at write time so that nothing else needs decrypting to be shown."""

    __tablename__ = "provider_keys"
    __table_args__ = (
        UniqueConstraint("org_id", "provider", "deployment_id"),
        Index("ix_provider_keys_org_id_provider", "org_id", "provider"),
        Index(
            "uq_provider_keys_default",
            "org_id",
            "provider",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE")
    )
    provider: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    deployment_id: Mapped[str] = mapped_column(String(64))
    config_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    encryption_key_id: Mapped[str] = mapped_column(String(16))
    api_key_masked: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    error_message: Mapped[str | None] = mapped_column(Text)
    is_default: Mapped[bool] = mapped_column(Boolean)
    created_by_key_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_validated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CreditAccount(Base):
    """An organisation's prepaid balance for the managed keys (credits), in nano-USD.

    ``balance_nano`` is what was added minus what settled requests cost; ``reserved_nano`` the
    sum of open holds. What a new request may reserve is ``balance_nano - reserved_nano``."""

    __tablename__ = "credit_accounts"

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    balance_nano: Mapped[int] = mapped_column(BigInteger)
    reserved_nano: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class BudgetRow(Base):
    """A spend limit per UTC period for an organisation, one of its gateway keys or one of its
    users (``Helicone-User-Id``). ``spent_nano`` counts the period that starts at
    ``period_start``; a later period starts from zero (rolled over by the statements that
    touch the row)."""

    __tablename__ = "budgets"
    __table_args__ = (UniqueConstraint("org_id", "scope", "subject", "period"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE")
    )
    scope: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(255))
    period: Mapped[str] = mapped_column(String(8))
    limit_nano: Mapped[int] = mapped_column(BigInteger)
    spent_nano: Mapped[int] = mapped_column(BigInteger)
    reserved_nano: Mapped[int] = mapped_column(BigInteger)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class CreditHold(Base):
    """One request attempt's reservation: ``amount_nano`` held on the org's account (when
    ``account``) and on each budget in ``budget_ids`` (space separated) until it is settled,
    released, or found expired by the sweep. Whoever deletes the row gives the amount back."""

    __tablename__ = "credit_holds"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE")
    )
    account: Mapped[bool] = mapped_column(Boolean)
    budget_ids: Mapped[str] = mapped_column(Text)
    amount_nano: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
