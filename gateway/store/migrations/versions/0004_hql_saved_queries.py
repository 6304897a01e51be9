"""Saved HQL queries (``/v1/helicone-sql/saved-query``), shared within an organisation.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "hql_saved_queries",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("org_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("sql", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hql_saved_queries"),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name="fk_hql_saved_queries_org_id_organizations",
            ondelete="CASCADE",
        ),
        # A name is unique within its organisation (HQL_QUERY_NAME_EXISTS).
        sa.UniqueConstraint("org_id", "name", name="uq_hql_saved_queries_org_id_name"),
    )


def downgrade() -> None:
    op.drop_table("hql_saved_queries")
