"""Instructor sessions end server-side: a session version, kept in the signed cookie and raised by a logout or a
password change, so that a cookie saved before either opens nothing

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instructors") as batch_op:
        batch_op.add_column(sa.Column("session_version", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("instructors") as batch_op:
        batch_op.drop_column("session_version")
