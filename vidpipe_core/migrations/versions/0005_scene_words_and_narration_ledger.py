"""scene words and the narration ledger

A scene carries its words and sound: the narrator's line, the dialogue and the sound cues Veo
makes (NULL in rows written before them: none). Each narrated scene's line is said once and
recorded here like a keyframe (fingerprint, path, sha256, cost), with its measured length and the
speed-up applied.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCENE_COLUMNS = ("narration", "dialogue", "sound")


def upgrade() -> None:
    with op.batch_alter_table("scenes") as batch:
        for name in SCENE_COLUMNS:
            batch.add_column(sa.Column(name, sa.Text(), nullable=True))
    op.create_table(
        "narration_lines",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("scene_index", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column(
            "status", sa.Enum("pending", "done", "failed", name="keyframestatus", native_enum=False, length=16), nullable=False
        ),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("tempo", sa.Float(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "scene_index", "fingerprint", name="uq_narration_line"),
    )
    with op.batch_alter_table("narration_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_narration_lines_project_id"), ["project_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("narration_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_narration_lines_project_id"))
    op.drop_table("narration_lines")
    with op.batch_alter_table("scenes") as batch:
        for name in SCENE_COLUMNS:
            batch.drop_column(name)
