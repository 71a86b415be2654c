"""project nonce and the stored plan

A project's nonce ties Dagster's materializations to the project record that made them (a
project re-created under the same id gets a new one). The storyboard document moves into the
database, so storyboard.json can always be rewritten from it without asking the planner again.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("nonce", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("storyboard", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("storyboard")
        batch.drop_column("nonce")
