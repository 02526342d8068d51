"""Assignment ids are slugs (service/ids.py): a database with any other id is refused, with the command that
renames it (labgrader rename-assignment OLD NEW); service.migrate.upgrade checks the same before any revision runs

Revision ID: 0005
Revises: 0004
"""

from alembic import op

from service.migrate import check_assignment_ids

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    check_assignment_ids(op.get_bind())


def downgrade() -> None:
    pass
