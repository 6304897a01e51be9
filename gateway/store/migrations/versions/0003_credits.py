"""Credit accounts, budgets and their reservations (holds).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Amounts are nano-USD (USD x 1e9) in 64-bit integers, as the request log's cost column.
    op.create_table(
        "credit_accounts",
        sa.Column("org_id", sa.String(36), nullable=False),
        sa.Column("balance_nano", sa.BigInteger(), nullable=False),
        sa.Column("reserved_nano", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id", name="pk_credit_accounts"),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name="fk_credit_accounts_org_id_organizations",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "budgets",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("org_id", sa.String(36), nullable=False),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("limit_nano", sa.BigInteger(), nullable=False),
        sa.Column("spent_nano", sa.BigInteger(), nullable=False),
        sa.Column("reserved_nano", sa.BigInteger(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_budgets"),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name="fk_budgets_org_id_organizations",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "org_id",
            "scope",
            "subject",
            "period",
            name="uq_budgets_org_id_scope_subject_period",
        ),
    )
    op.create_table(
        "credit_holds",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("org_id", sa.String(36), nullable=False),
        sa.Column("account", sa.Boolean(), nullable=False),
        sa.Column("budget_ids", sa.Text(), nullable=False),
        sa.Column("amount_nano", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_credit_holds"),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name="fk_credit_holds_org_id_organizations",
            ondelete="CASCADE",
        ),
    )
    # The sweep looks for expired holds.
    op.create_index("ix_credit_holds_expires_at", "credit_holds", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_credit_holds_expires_at", table_name="credit_holds")
    op.drop_table("credit_holds")
    op.drop_table("budgets")
    op.drop_table("credit_accounts")
