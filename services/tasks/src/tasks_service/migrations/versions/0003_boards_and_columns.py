"""boards and columns

Every user gets boards with columns of their own; a task sits in one column of one board. The
column's category (`todo`, `in_progress`, `done`) is copied into the task's `status`, so the
todo API, the status filters and `completed_at` keep their meaning whatever the columns are
called. Existing data: each owner gets a default board "My board" with the three columns it
had ("To do", "In progress", "Done"), and every task keeps its position in its column.

Each column's `task_count` is kept by a trigger in the writing transaction, so the board view
reads totals in O(columns) instead of counting the user's tasks. Search (`q=`) and the label
filter are served by GIN indexes on (owner, trigrams) and (owner, labels) (pg_trgm, btree_gin)
instead of scanning every task of the user.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
# Positions are 1048576 (core/positions.GAP, 2**20) apart, written out in the SQL below.


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "boards",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("archived_at", TIMESTAMP, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint(
            "owner_id",
            "position",
            name="uq_boards_owner_position",
            deferrable=True,
            initially="DEFERRED",
        ),
        sa.CheckConstraint("char_length(name) BETWEEN 1 AND 100", name="ck_boards_name_length"),
    )
    op.create_index(
        "uq_boards_owner_default",
        "boards",
        ["owner_id"],
        unique=True,
        postgresql_where=sa.text("is_default"),
    )
    op.create_table(
        "board_columns",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "board_id", sa.Uuid(), sa.ForeignKey("boards.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column(
            "category",
            sa.Enum(name="task_status", create_type=False),
            nullable=False,
        ),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("wip_limit", sa.Integer(), nullable=True),
        sa.Column("task_count", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint(
            "board_id",
            "position",
            name="uq_board_columns_board_position",
            deferrable=True,
            initially="DEFERRED",
        ),
        sa.CheckConstraint(
            "char_length(name) BETWEEN 1 AND 100", name="ck_board_columns_name_length"
        ),
        sa.CheckConstraint(
            "wip_limit IS NULL OR wip_limit BETWEEN 1 AND 10000", name="ck_board_columns_wip"
        ),
    )

    op.create_index("ix_board_columns_owner", "board_columns", ["owner_id", "category"])
    op.add_column("tasks", sa.Column("board_id", sa.Uuid(), nullable=True))
    op.add_column("tasks", sa.Column("column_id", sa.Uuid(), nullable=True))
    op.add_column(
        "tasks",
        sa.Column(
            "checklist",
            sa.dialects.postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'[]'::jsonb"),
        ),
    )
    # Today's data: one default board per owner, one column per status, every task in its own.
    op.execute(
        """
        INSERT INTO boards (id, owner_id, name, position, is_default)
        SELECT gen_random_uuid(), owner_id, 'My board', 1048576, true
        FROM (SELECT DISTINCT owner_id FROM tasks) AS owners
        """
    )
    op.execute(
        """
        INSERT INTO board_columns (id, board_id, owner_id, name, category, position)
        SELECT gen_random_uuid(), boards.id, boards.owner_id, defaults.name,
               defaults.category::task_status, defaults.rank * 1048576
        FROM boards CROSS JOIN (VALUES ('To do', 'todo', 1), ('In progress', 'in_progress', 2),
                                       ('Done', 'done', 3)) AS defaults (name, category, rank)
        """
    )
    op.execute(
        """
        UPDATE tasks SET board_id = board_columns.board_id, column_id = board_columns.id
        FROM board_columns
        WHERE board_columns.owner_id = tasks.owner_id AND board_columns.category = tasks.status
        """
    )
    op.execute(
        """
        UPDATE board_columns SET task_count = counted.n
        FROM (SELECT column_id, count(*) AS n FROM tasks GROUP BY column_id) AS counted
        WHERE board_columns.id = counted.column_id
        """
    )
    op.alter_column("tasks", "board_id", nullable=False)
    op.alter_column("tasks", "column_id", nullable=False)
    op.create_foreign_key(
        "fk_tasks_board", "tasks", "boards", ["board_id"], ["id"], ondelete="CASCADE"
    )
    # NO ACTION, checked at the end of the statement: a board's deletion removes its columns
    # and their tasks together; a column alone cannot go while it holds tasks.
    op.create_foreign_key("fk_tasks_column", "tasks", "board_columns", ["column_id"], ["id"])
    op.drop_constraint("uq_tasks_owner_status_position", "tasks")
    op.create_unique_constraint(
        "uq_tasks_column_position",
        "tasks",
        ["column_id", "position"],
        deferrable=True,
        initially="DEFERRED",
    )
    # The list's `position` sort (status, then position) and the status view (/api/board).
    op.create_index(
        "ix_tasks_owner_status_position", "tasks", ["owner_id", "status", "position", "id"]
    )
    op.create_index("ix_tasks_board", "tasks", ["board_id"])
    # Search and labels by owner in one index each (btree_gin puts the owner's uuid in a GIN
    # index): the rows read are the owner's matches, not every user's, nor every task of the
    # owner. No pending list, as 0002 decided for the labels index.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    op.execute(
        "CREATE INDEX ix_tasks_owner_title_trgm ON tasks"
        " USING gin (owner_id, title gin_trgm_ops) WITH (fastupdate = off)"
    )
    op.execute(
        "CREATE INDEX ix_tasks_owner_description_trgm ON tasks"
        " USING gin (owner_id, description gin_trgm_ops) WITH (fastupdate = off)"
    )
    op.execute(
        "CREATE INDEX ix_tasks_owner_labels ON tasks USING gin (owner_id, labels)"
        " WITH (fastupdate = off)"
    )
    op.drop_index("ix_tasks_labels", "tasks")
    op.create_check_constraint(
        "ck_tasks_checklist",
        "tasks",
        "jsonb_typeof(checklist) = 'array' AND jsonb_array_length(checklist) <= 50",
    )
    op.execute(
        """
        CREATE FUNCTION tasks_count_in_columns() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('DELETE', 'UPDATE') THEN
                UPDATE board_columns SET task_count = task_count - 1 WHERE id = OLD.column_id;
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                UPDATE board_columns SET task_count = task_count + 1 WHERE id = NEW.column_id;
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER tasks_count_in_columns AFTER INSERT OR DELETE ON tasks
        FOR EACH ROW EXECUTE FUNCTION tasks_count_in_columns()
        """
    )
    op.execute(
        """
        CREATE TRIGGER tasks_count_in_columns_moved AFTER UPDATE OF column_id ON tasks
        FOR EACH ROW WHEN (OLD.column_id IS DISTINCT FROM NEW.column_id)
        EXECUTE FUNCTION tasks_count_in_columns()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER tasks_count_in_columns_moved ON tasks")
    op.execute("DROP TRIGGER tasks_count_in_columns ON tasks")
    op.execute("DROP FUNCTION tasks_count_in_columns()")
    op.drop_constraint("ck_tasks_checklist", "tasks")
    op.create_index("ix_tasks_labels", "tasks", ["labels"], postgresql_using="gin")
    op.execute("ALTER INDEX ix_tasks_labels SET (fastupdate = off)")
    op.drop_index("ix_tasks_owner_labels", "tasks")
    op.drop_index("ix_tasks_owner_description_trgm", "tasks")
    op.drop_index("ix_tasks_owner_title_trgm", "tasks")
    op.drop_index("ix_tasks_board", "tasks")
    op.drop_index("ix_tasks_owner_status_position", "tasks")
    op.drop_constraint("uq_tasks_column_position", "tasks")
    # Back to one column per status: a user with custom columns would collide here.
    op.create_unique_constraint(
        "uq_tasks_owner_status_position",
        "tasks",
        ["owner_id", "status", "position"],
        deferrable=True,
        initially="DEFERRED",
    )
    op.drop_constraint("fk_tasks_column", "tasks")
    op.drop_constraint("fk_tasks_board", "tasks")
    op.drop_column("tasks", "checklist")
    op.drop_column("tasks", "column_id")
    op.drop_column("tasks", "board_id")
    op.drop_table("board_columns")
    op.drop_table("boards")
