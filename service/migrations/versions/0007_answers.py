"""Written answers and their manual grades; a submission's one-sentence summary and whether it was graded with
the fast budgets

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch_op:
        batch_op.add_column(sa.Column("summary", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("fast", sa.Boolean(), nullable=False, server_default="0"))
    for table, columns in (
        ("answers", [sa.Column("draft", sa.Text(), nullable=False),
                     sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
                     sa.Column("text", sa.Text(), nullable=True),
                     sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
                     sa.Column("late", sa.Boolean(), nullable=False)]),
        ("manual_grades", [sa.Column("points", sa.Float(), nullable=False),
                           sa.Column("comment", sa.Text(), nullable=False),
                           sa.Column("grader", sa.String(length=320), nullable=False),
                           sa.Column("graded_at", sa.DateTime(timezone=True), nullable=False)]),
    ):  # fmt: skip
        op.create_table(
            table,
            sa.Column("student_pk", sa.Integer(), nullable=False),
            sa.Column("assignment_id", sa.String(length=64), nullable=False),
            sa.Column("question_id", sa.String(length=40), nullable=False),
            *columns,
            sa.ForeignKeyConstraint(["student_pk"], ["students.id"], name=op.f(f"fk_{table}_student_pk_students"),
                                    ondelete="CASCADE"),
            sa.ForeignKeyConstraint(["assignment_id"], ["assignments.id"],
                                    name=op.f(f"fk_{table}_assignment_id_assignments"), ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("student_pk", "assignment_id", "question_id", name=op.f(f"pk_{table}")),
        )  # fmt: skip


def downgrade() -> None:
    op.drop_table("manual_grades")
    op.drop_table("answers")
    with op.batch_alter_table("submissions") as batch_op:
        batch_op.drop_column("fast")
        batch_op.drop_column("summary")
