"""approvals: the review gate's ledger

A project under review (`review: keyframes`) pays for a clip only when an approval covers it: who
approved (a person's `approve`, or a deliberate `regenerate` / `retake`), from where, the estimate
approved and the fingerprints of the storyboard and of each scene's frames and clip it covers.

Revision ID: 0006
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.String(63), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("nonce", sa.String(32), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("estimate_usd", sa.Float(), nullable=False),
        sa.Column("budget_usd", sa.Float(), nullable=True),
        sa.Column("storyboard_fingerprint", sa.String(64), nullable=True),
        sa.Column("scenes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_approvals_project_id", "approvals", ["project_id"])


def downgrade() -> None:
    op.drop_index("ix_approvals_project_id", table_name="approvals")
    op.drop_table("approvals")
