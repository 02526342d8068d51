"""The dashboard: which submission counts per assignment, and points per check kept with each graded submission

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
    with op.batch_alter_table("assignments") as batch_op:
        batch_op.add_column(sa.Column("counting", sa.String(length=8), nullable=False, server_default="latest"))
    with op.batch_alter_table("submissions") as batch_op:
        batch_op.add_column(sa.Column("check_scores", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch_op:
        batch_op.drop_column("check_scores")
    with op.batch_alter_table("assignments") as batch_op:
        batch_op.drop_column("counting")
