"""tasks

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    task_status = sa.Enum("todo", "in_progress", "done", name="task_status")
    task_priority = sa.Enum("low", "medium", "high", name="task_priority")
    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("status", task_status, nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("priority", task_priority, nullable=False),
        sa.Column("due_at", TIMESTAMP, nullable=True),
        sa.Column(
            "labels",
            postgresql.ARRAY(sa.String(50)),
            nullable=False,
            server_default=sa.text("'{}'"),
        ),
        sa.Column("completed_at", TIMESTAMP, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint(
            "owner_id",
            "status",
            "position",
            name="uq_tasks_owner_status_position",
            deferrable=True,
            initially="DEFERRED",
        ),
        sa.CheckConstraint("char_length(title) BETWEEN 1 AND 200", name="ck_tasks_title_length"),
        sa.CheckConstraint("char_length(description) <= 10000", name="ck_tasks_description_length"),
        sa.CheckConstraint("cardinality(labels) <= 20", name="ck_tasks_labels_count"),
        sa.CheckConstraint(
            "(status = 'done') = (completed_at IS NOT NULL)", name="ck_tasks_completed_at"
        ),
    )
    op.create_index(
        "ix_tasks_owner_created",
        "tasks",
        ["owner_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_index(
        "ix_tasks_owner_updated",
        "tasks",
        ["owner_id", sa.text("updated_at DESC"), sa.text("id DESC")],
    )
    op.create_index("ix_tasks_owner_due", "tasks", ["owner_id", "due_at", "id"])
    op.create_index("ix_tasks_labels", "tasks", ["labels"], postgresql_using="gin")


def downgrade() -> None:
    op.drop_table("tasks")
    sa.Enum(name="task_priority").drop(op.get_bind(), checkfirst=True)
    sa.Enum(name="task_status").drop(op.get_bind(), checkfirst=True)
