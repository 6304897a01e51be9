"""Managed prompts: prompts, their immutable versions, and deployments to environments.

One store serves the Helicone facade (``/v1/prompt-2025``), the PostHog facade
(``llm_prompts``) and the gateway's request-time ``prompt_id`` (prompts-and-peer-apis.md E.2).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "prompts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("org_id", sa.String(36), nullable=False),
        sa.Column("short_id", sa.String(6), nullable=False),
        sa.Column("slug", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("production_version_id", sa.String(36), nullable=True),
        sa.Column("created_by_key_id", sa.String(36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_prompts"),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name="fk_prompts_org_id_organizations",
            ondelete="CASCADE",
        ),
        # The Helicone id is never reused within an organisation, archived or not.
        sa.UniqueConstraint("org_id", "short_id", name="uq_prompts_org_id_short_id"),
    )
    # A slug (PostHog name) is unique among the organisation's live prompts only: archiving
    # frees it (B.0).
    op.create_index(
        "uq_prompts_live_slug",
        "prompts",
        ["org_id", "slug"],
        unique=True,
        sqlite_where=sa.text("archived_at IS NULL"),
        postgresql_where=sa.text("archived_at IS NULL"),
    )
    op.create_table(
        "prompt_versions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("prompt_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("major", sa.Integer(), nullable=False),
        sa.Column("minor", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_kind", sa.String(8), nullable=False),
        sa.Column("template_syntax", sa.String(16), nullable=False),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("commit_message", sa.Text(), nullable=False),
        sa.Column("created_by_key_id", sa.String(36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_versions"),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["prompts.id"],
            name="fk_prompt_versions_prompt_id_prompts",
            ondelete="CASCADE",
        ),
        # seq is never reused (deleted versions keep theirs): two publishes on the same base
        # cannot both commit.
        sa.UniqueConstraint("prompt_id", "seq", name="uq_prompt_versions_prompt_id_seq"),
    )
    op.create_index(
        "uq_prompt_versions_live_number",
        "prompt_versions",
        ["prompt_id", "major", "minor"],
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "prompt_deployments",
        sa.Column("prompt_id", sa.String(36), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("version_id", sa.String(36), nullable=False),
        sa.Column("updated_by_key_id", sa.String(36), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("prompt_id", "environment", name="pk_prompt_deployments"),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["prompts.id"],
            name="fk_prompt_deployments_prompt_id_prompts",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["prompt_versions.id"],
            name="fk_prompt_deployments_version_id_prompt_versions",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_prompt_deployments_version_id", "prompt_deployments", ["version_id"])


def downgrade() -> None:
    op.drop_table("prompt_deployments")
    op.drop_table("prompt_versions")
    op.drop_table("prompts")
