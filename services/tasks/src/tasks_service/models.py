"""The tasks database: boards, their columns, and tasks, each row owned by the `sub` of the
token that created it (the migrations are the truth; these models document them)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class TaskStatus(enum.StrEnum):
    """The Kanban columns, in board order (the PostgreSQL enum sorts in this order too)."""

    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"


class Priority(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


def _values(enum_type: type[enum.StrEnum]) -> list[str]:
    return [member.value for member in enum_type]


class Board(Base):
    __tablename__ = "boards"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column()
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(BigInteger)
    is_default: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint(
            "owner_id",
            "position",
            name="uq_boards_owner_position",
            deferrable=True,
            initially="DEFERRED",
        ),
        Index(
            "uq_boards_owner_default", "owner_id", unique=True, postgresql_where=text("is_default")
        ),
        CheckConstraint("char_length(name) BETWEEN 1 AND 100", name="ck_boards_name_length"),
    )


class BoardColumn(Base):
    """A column of a board; `task_count` is kept by a trigger on `tasks` (migration 0003)."""

    __tablename__ = "board_columns"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    board_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("boards.id", ondelete="CASCADE"))
    owner_id: Mapped[uuid.UUID] = mapped_column()
    name: Mapped[str] = mapped_column(String(100))
    category: Mapped[TaskStatus] = mapped_column(
        Enum(TaskStatus, name="task_status", values_callable=_values)
    )
    position: Mapped[int] = mapped_column(BigInteger)
    wip_limit: Mapped[int | None] = mapped_column(Integer)
    task_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint(
            "board_id",
            "position",
            name="uq_board_columns_board_position",
            deferrable=True,
            initially="DEFERRED",
        ),
        CheckConstraint("char_length(name) BETWEEN 1 AND 100", name="ck_board_columns_name_length"),
        CheckConstraint(
            "wip_limit IS NULL OR wip_limit BETWEEN 1 AND 10000", name="ck_board_columns_wip"
        ),
    )


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column()
    board_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("boards.id", ondelete="CASCADE"))
    column_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("board_columns.id"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The column's category, copied: the todo API and the filters read it without a join.
    status: Mapped[TaskStatus] = mapped_column(
        Enum(TaskStatus, name="task_status", values_callable=_values)
    )
    position: Mapped[int] = mapped_column(BigInteger)
    checklist: Mapped[list[dict[str, object]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    priority: Mapped[Priority] = mapped_column(
        Enum(Priority, name="task_priority", values_callable=_values)
    )
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    labels: Mapped[list[str]] = mapped_column(
        ARRAY(String(50)), default=list, server_default=text("'{}'")
    )
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        # Deferred, so a rebalance may renumber a column in one statement; it also serves the
        # board view and the column pages (column, position).
        UniqueConstraint(
            "column_id",
            "position",
            name="uq_tasks_column_position",
            deferrable=True,
            initially="DEFERRED",
        ),
        Index("ix_tasks_owner_status_position", "owner_id", "status", "position", "id"),
        Index("ix_tasks_board", "board_id"),
        # GIN with the owner (btree_gin): search and labels read only the owner's matches;
        # no pending list (its periodic merge made one insert in many take ~300 ms, 0002).
        Index(
            "ix_tasks_owner_title_trgm",
            "owner_id",
            "title",
            postgresql_using="gin",
            postgresql_ops={"title": "gin_trgm_ops"},
            postgresql_with={"fastupdate": "off"},
        ),
        Index(
            "ix_tasks_owner_description_trgm",
            "owner_id",
            "description",
            postgresql_using="gin",
            postgresql_ops={"description": "gin_trgm_ops"},
            postgresql_with={"fastupdate": "off"},
        ),
        Index(
            "ix_tasks_owner_labels",
            "owner_id",
            "labels",
            postgresql_using="gin",
            postgresql_with={"fastupdate": "off"},
        ),
        Index("ix_tasks_owner_created", "owner_id", text("created_at DESC"), text("id DESC")),
        Index("ix_tasks_owner_updated", "owner_id", text("updated_at DESC"), text("id DESC")),
        Index("ix_tasks_owner_due", "owner_id", "due_at", "id"),
        CheckConstraint("char_length(title) BETWEEN 1 AND 200", name="ck_tasks_title_length"),
        CheckConstraint("char_length(description) <= 10000", name="ck_tasks_description_length"),
        CheckConstraint("cardinality(labels) <= 20", name="ck_tasks_labels_count"),
        CheckConstraint(
            "(status = 'done') = (completed_at IS NOT NULL)", name="ck_tasks_completed_at"
        ),
        CheckConstraint(
            "jsonb_typeof(checklist) = 'array' AND jsonb_array_length(checklist) <= 50",
            name="ck_tasks_checklist",
        ),
    )
