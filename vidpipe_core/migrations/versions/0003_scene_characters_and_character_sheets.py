"""scene characters and the character sheet ledger

A scene names the style guide's characters it shows; each shown character gets one reference
sheet, paid once and recorded here like a keyframe (fingerprint, path, sha256, cost), so every
frame that shows the character is conditioned on the same image.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scenes") as batch:
        batch.add_column(sa.Column("characters", sa.JSON(), nullable=True))
    op.create_table(
        "character_sheets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column(
            "status", sa.Enum("pending", "done", "failed", name="keyframestatus", native_enum=False, length=16), nullable=False
        ),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name", "fingerprint", name="uq_character_sheet"),
    )
    with op.batch_alter_table("character_sheets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_character_sheets_project_id"), ["project_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("character_sheets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_character_sheets_project_id"))
    op.drop_table("character_sheets")
    with op.batch_alter_table("scenes") as batch:
        batch.drop_column("characters")
