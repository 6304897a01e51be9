"""Provider keys (BYOK, encrypted at rest) and gateway-key scopes.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # NULL: full access, what every key created before scopes existed keeps.
    op.add_column("api_keys", sa.Column("scopes", sa.Text(), nullable=True))
    op.create_table(
        "provider_keys",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("org_id", sa.String(36), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("config_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("encryption_key_id", sa.String(16), nullable=False),
        sa.Column("api_key_masked", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_by_key_id", sa.String(36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_validated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_provider_keys"),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name="fk_provider_keys_org_id_organizations",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "org_id",
            "provider",
            "deployment_id",
            name="uq_provider_keys_org_id_provider_deployment_id",
        ),
    )
    op.create_index("ix_provider_keys_org_id_provider", "provider_keys", ["org_id", "provider"])
    # At most one default key per organisation and provider (the router's first choice).
    op.create_index(
        "uq_provider_keys_default",
        "provider_keys",
        ["org_id", "provider"],
        unique=True,
        sqlite_where=sa.text("is_default"),
        postgresql_where=sa.text("is_default"),
    )


def downgrade() -> None:
    op.drop_index("uq_provider_keys_default", table_name="provider_keys")
    op.drop_index("ix_provider_keys_org_id_provider", table_name="provider_keys")
    op.drop_table("provider_keys")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("scopes")
