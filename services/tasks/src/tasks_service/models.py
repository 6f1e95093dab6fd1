"""The tasks database: one table, each row owned by the `sub` of the token that created it."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Enum,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
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


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column()
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    status: Mapped[TaskStatus] = mapped_column(
        Enum(TaskStatus, name="task_status", values_callable=_values)
    )
    position: Mapped[int] = mapped_column(BigInteger)
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
        # default `position` sort (owner, status column, position).
        UniqueConstraint(
            "owner_id",
            "status",
            "position",
            name="uq_tasks_owner_status_position",
            deferrable=True,
            initially="DEFERRED",
        ),
        Index("ix_tasks_owner_created", "owner_id", text("created_at DESC"), text("id DESC")),
        Index("ix_tasks_owner_updated", "owner_id", text("updated_at DESC"), text("id DESC")),
        Index("ix_tasks_owner_due", "owner_id", "due_at", "id"),
        # No pending list: its periodic merge made one insert in many take ~300 ms (0002).
        Index(
            "ix_tasks_labels",
            "labels",
            postgresql_using="gin",
            postgresql_with={"fastupdate": "off"},
        ),
        CheckConstraint("char_length(title) BETWEEN 1 AND 200", name="ck_tasks_title_length"),
        CheckConstraint("char_length(description) <= 10000", name="ck_tasks_description_length"),
        CheckConstraint("cardinality(labels) <= 20", name="ck_tasks_labels_count"),
        CheckConstraint(
            "(status = 'done') = (completed_at IS NOT NULL)", name="ck_tasks_completed_at"
        ),
    )
