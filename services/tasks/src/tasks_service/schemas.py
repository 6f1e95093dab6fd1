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
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    Storable,
    Field(description="1-100 characters after trimming"),
]
WipLimit = Annotated[
    int | None,
    Field(ge=1, le=10_000, description="At most this many cards (a create or move over it is 409 "
          "`wip_limit_reached`); null: no limit"),
]  # fmt: skip
MAX_CHECKLIST_ITEMS = 50


class ChecklistItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable
    ]
    done: bool = False


Checklist = Annotated[
    list[ChecklistItem],
    Field(max_length=MAX_CHECKLIST_ITEMS, description="Up to 50 items, in order"),
]


class TaskCreate(BaseModel):
    """A new task, at the end of its column: `column_id`'s, else the first column of `status`'s
    category on `board_id`'s board (default: the caller's default board)."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description = ""
    status: TaskStatus = Field(
        TaskStatus.TODO,
        description="The category of the column; with `column_id`, leave it out or give the "
        "column's own",
    )
    priority: Priority = Priority.MEDIUM
    due_at: DueAt = None
    labels: Labels = Field(default_factory=list)
    checklist: Checklist = Field(default_factory=list)
    board_id: uuid.UUID | None = Field(None, description="Default: the caller's default board")
    column_id: uuid.UUID | None = Field(None, description="Default: by `status`, see above")


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
    checklist: Checklist | None = None

    @model_validator(mode="after")
    def _no_null_for_required(self) -> TaskPatch:
        for name in ("title", "description", "status", "priority", "labels", "checklist"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class MoveRequest(BaseModel):
    """Where to put a card: a column (of this board or another), and a neighbour (or neither,
    for the end of the column). The target column is `column_id`, else the anchor's, else the
    first column of `status`'s category on `board_id`'s board (default: the card's board), else
    the card's own."""

    model_config = ConfigDict(extra="forbid")

    column_id: uuid.UUID | None = Field(None, description="Target column")
    board_id: uuid.UUID | None = Field(None, description="Target board (with `status`)")
    status: TaskStatus | None = Field(
        None, description="Target category: the first column of it on the board"
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
    board_id: uuid.UUID
    column_id: uuid.UUID
    checklist: list[ChecklistItem]

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


class StatusColumn(BaseModel):
    status: TaskStatus
    total: int = Field(description="Tasks in this column")
    items: list[TaskOut] = Field(description="The first cards of the column, in position order")
    next_cursor: str | None = Field(
        description="Continue with GET /api/tasks?status=<status>&cursor=<next_cursor>"
    )


class StatusBoard(BaseModel):
    """The caller's tasks by status across all boards (the view from before boards)."""

    columns: list[StatusColumn]


class BoardCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name


class BoardPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    archived: bool | None = Field(None, description="Archive (true) or bring back (false)")


class BoardOut(BaseModel):
    id: uuid.UUID
    name: str
    is_default: bool = Field(description="Where tasks go that name no board; one per user")
    archived: bool
    archived_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime


class BoardList(BaseModel):
    items: list[BoardOut] = Field(description="In the user's order")


class ColumnCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    category: TaskStatus = Field(
        TaskStatus.TODO, description="What the column means for completion and the todo API"
    )
    wip_limit: WipLimit = None


class ColumnPatch(BaseModel):
    """Only the fields present change; `wip_limit: null` removes the limit. A new category
    reaches every card of the column (their `status` and `completed_at`)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    category: TaskStatus | None = None
    wip_limit: WipLimit = None

    @model_validator(mode="after")
    def _no_null_for_required(self) -> ColumnPatch:
        for name in ("name", "category"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class ColumnOut(BaseModel):
    id: uuid.UUID
    board_id: uuid.UUID
    name: str
    category: TaskStatus
    wip_limit: int | None
    total: int = Field(description="Cards in the column")
    version: int


class BoardColumn(ColumnOut):
    items: list[TaskOut] = Field(description="The column's first cards, in order")
    next_cursor: str | None = Field(
        description="Continue with GET /api/columns/{id}/tasks?cursor=<next_cursor>"
    )


class Board(BoardOut):
    columns: list[BoardColumn] = Field(description="In board order")


class ColumnPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class Placement(BaseModel):
    """Where a board or a column goes among its siblings: before or after one of them, or
    (neither) at the end."""

    model_config = ConfigDict(extra="forbid")

    before_id: uuid.UUID | None = None
    after_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _one_anchor(self) -> Placement:
        if self.before_id is not None and self.after_id is not None:
            raise ValueError("give before_id or after_id, not both")
        return self


class PageParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=100)
    cursor: str | None = Field(None, max_length=1024, description="From `next_cursor`")


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
    board_id: uuid.UUID | None = Field(None, description="Only this board's tasks")
    column_id: uuid.UUID | None = Field(None, description="Only this column's tasks")
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
            "board_id": str(self.board_id) if self.board_id else None,
            "column_id": str(self.column_id) if self.column_id else None,
        }


class BoardParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=100, description="Cards per column")
