"""Request and response bodies of the tasks API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
    model_validator,
)

from tasks_service.core.cursor import MAX_TIME, MIN_TIME
from tasks_service.models import Priority, TaskStatus


def _storable(text: str) -> str:
    """PostgreSQL text holds neither NUL nor lone surrogates; refuse them as a 422, not a 500."""
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return text


def _utc(value: datetime) -> datetime:
    """In UTC, strictly inside Python's years 1..9999: asyncpg cannot send a time whose UTC
    value falls outside (a 500 once, not a 422), and sends the two ends themselves as
    PostgreSQL's -infinity/infinity, which read back as naive datetimes."""
    try:
        moment = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if not MIN_TIME < moment < MAX_TIME:
        raise ValueError("is out of range")
    return moment


def _unique(labels: list[str]) -> list[str]:
    """Keep the first of each label, in the order given."""
    return list(dict.fromkeys(labels))


Storable = AfterValidator(_storable)
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Storable,
    Field(description="1-200 characters after trimming; not blank"),
]
Description = Annotated[
    str, Field(max_length=10_000, description="At most 10 000 characters"), Storable
]
Label = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50), Storable
]
SearchText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable
]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]


Labels = Annotated[
    list[Label],
    Field(max_length=20, description="Up to 20 labels of 1-50 characters; duplicates dropped"),
    AfterValidator(_unique),
]
DueAt = Annotated[
    UtcDatetime | None,
    Field(description="ISO 8601 with an offset (a naive time is refused); stored as UTC"),
]
SortOrder = Literal["position", "-created_at", "due_at", "-updated_at"]


class TaskCreate(BaseModel):
    """A new task; it is placed at the end of its status column."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description = ""
    status: TaskStatus = TaskStatus.TODO
    priority: Priority = Priority.MEDIUM
    due_at: DueAt = None
    labels: Labels = Field(default_factory=list)


class TaskReplace(TaskCreate):
    """Every field of a task (PUT); a field left out takes its default."""


class TaskPatch(BaseModel):
    """Only the fields present change; `due_at: null` clears the due date."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    description: Description | None = None
    status: TaskStatus | None = None
    priority: Priority | None = None
    due_at: DueAt = None
    labels: Labels | None = None

    @model_validator(mode="after")
    def _no_null_for_required(self) -> TaskPatch:
        for name in ("title", "description", "status", "priority", "labels"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class MoveRequest(BaseModel):
    """Where to put a card: a column, and a neighbour (or neither, for the end of the column)."""

    model_config = ConfigDict(extra="forbid")

    status: TaskStatus | None = Field(
        None, description="Target column; defaults to the anchor's column, else the current one"
    )
    before_id: uuid.UUID | None = Field(None, description="Place the card just before this one")
    after_id: uuid.UUID | None = Field(None, description="Place the card just after this one")

    @model_validator(mode="after")
    def _one_anchor(self) -> MoveRequest:
        if self.before_id is not None and self.after_id is not None:
            raise ValueError("give before_id or after_id, not both")
        return self


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    description: str
    status: TaskStatus
    priority: Priority
    due_at: datetime | None
    labels: list[str]
    completed_at: datetime | None
    version: int = Field(description="Bumped on every change; the ETag is this number, quoted")
    created_at: datetime
    updated_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def completed(self) -> bool:
        """True when the task is in the `done` column (what todo frontends show)."""
        return self.status is TaskStatus.DONE


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


class BoardColumn(BaseModel):
    status: TaskStatus
    total: int = Field(description="Tasks in this column")
    items: list[TaskOut] = Field(description="The first cards of the column, in position order")
    next_cursor: str | None = Field(
        description="Continue with GET /api/tasks?status=<status>&cursor=<next_cursor>"
    )


class Board(BaseModel):
    columns: list[BoardColumn]


class TaskListParams(BaseModel):
    """Filters, sort and page of a task list; every filter narrows the result (AND)."""

    model_config = ConfigDict(extra="forbid")

    status: list[TaskStatus] = Field(default_factory=list, description="Repeatable: any of")
    label: list[Label] = Field(
        default_factory=list, max_length=20, description="Repeatable: has all of"
    )
    priority: list[Priority] = Field(default_factory=list, description="Repeatable: any of")
    q: SearchText | None = Field(None, description="Case-insensitive text in title or description")
    due_before: UtcDatetime | None = Field(None, description="Due strictly before (ISO 8601)")
    due_after: UtcDatetime | None = Field(None, description="Due strictly after (ISO 8601)")
    completed: bool | None = Field(None, description="Only done (true) or not done (false)")
    sort: SortOrder = Field(
        "position",
        description="`position`: column order then card order; `-created_at`: newest first; "
        "`due_at`: soonest first, undated last; `-updated_at`: recently changed first",
    )
    limit: int = Field(50, ge=1, le=100)
    cursor: str | None = Field(None, max_length=1024, description="From `next_cursor`")

    def filters(self) -> dict[str, Any]:
        """The filters alone, normalised: what a cursor is bound to."""
        return {
            "status": sorted(set(self.status)),
            "label": sorted(set(self.label)),
            "priority": sorted(set(self.priority)),
            "q": self.q,
            "due_before": self.due_before.isoformat() if self.due_before else None,
            "due_after": self.due_after.isoformat() if self.due_after else None,
            "completed": self.completed,
        }


class BoardParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=100, description="Cards per column")
