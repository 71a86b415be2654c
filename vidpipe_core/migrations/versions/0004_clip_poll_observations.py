"""what the polls of a video operation saw

The poll schedule (vidpipe_core/polling.py) learned from ``completed_at - submitted_at``, which
also counts the time a process was dead before a resume and the time a machine was too busy to
poll. It learns instead from what the polls saw in a wait that began at the submission: when the
last poll that found the operation running was sent (NULL when its first poll found it done), and
when the poll that first found it done was sent and answered. Older rows keep NULL: not learned from.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = ("running_seen_at", "done_asked_at", "done_seen_at")


def upgrade() -> None:
    with op.batch_alter_table("video_clips") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("video_clips") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
